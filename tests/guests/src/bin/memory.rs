//! All of the guest's RAM, as its memory map describes it, is readable and writable:
//! a pattern written through every free page reads back.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(info: &StartInfo) -> Verdict {
    let mut t = ferrovisor_test_guests::Checks::default();
    // The first RAM entry of the PVH memory map.
    let Some((start, end)) = info.free_ram() else {
        ferrovisor_test_guests::println!("no memory map");
        return Verdict::Error;
    };
    ferrovisor_test_guests::println!(
        "checking {:#x}..{:#x} ({} KiB)",
        start,
        end,
        (end - start) / 1024
    );
    let mut bad = 0u64;
    let mut address = start;
    while address < end {
        let word = address as *mut u64;
        let pattern = address ^ 0xa5a5_5a5a_dead_beef;
        // SAFETY: [start, end) is free guest RAM past the image, identity-mapped.
        unsafe { word.write_volatile(pattern) };
        // SAFETY: as above.
        if unsafe { word.read_volatile() } != pattern {
            bad += 1;
        }
        address += 512;
    }
    t.check(
        bad == 0 && end > start,
        format_args!("{bad} words did not read back"),
    );
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("memory", test);
