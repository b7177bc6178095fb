//! A guest that reads guest-physical memory beyond its RAM (its identity map covers the
//! first GiB; its RAM is much smaller): no nested page maps it, so the hypervisor must
//! crash this domain alone, naming the access, and go on with the next.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(info: &StartInfo) -> Verdict {
    // Past the end of RAM as the memory map describes it, inside the identity map.
    let Some((_, ram_end)) = info.free_ram() else {
        ferrovisor_test_guests::println!("beyond: no RAM in the memory map");
        return Verdict::Error;
    };
    let target = (ram_end + (16 << 20)) & !0xfff;
    if target >= 1 << 30 {
        ferrovisor_test_guests::println!("beyond: RAM reaches the end of the identity map");
        return Verdict::Error;
    }
    ferrovisor_test_guests::println!(
        "beyond: reading {target:#x}, past the end of RAM at {ram_end:#x}"
    );
    // SAFETY: deliberately fatal for this guest: the address is identity-mapped by its
    // own page tables but is not guest RAM, so the access exits as a nested page fault
    // and the hypervisor crashes the domain; the read never completes.
    let value = unsafe { core::ptr::read_volatile(target as *const u64) };
    ferrovisor_test_guests::println!("beyond: read {value:#x}: memory outside RAM is reachable");
    Verdict::Failure
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("beyond", test);
