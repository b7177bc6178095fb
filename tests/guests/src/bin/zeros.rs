//! A new domain never sees old data: every byte of the guest's free RAM (from the end of
//! its image to the start-info page) reads zero, even when its frames last belonged to a
//! domain that filled them with a pattern (the `memory` guest runs just before).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(info: &StartInfo) -> Verdict {
    let Some((start, end)) = info.free_ram() else {
        ferrovisor_test_guests::println!("no memory map");
        return Verdict::Error;
    };
    let mut dirty = 0u64;
    let mut first = 0;
    let mut address = start;
    while address < end {
        // SAFETY: [start, end) is guest RAM past the image, identity-mapped.
        if unsafe { (address as *const u64).read_volatile() } != 0 {
            if dirty == 0 {
                first = address;
            }
            dirty += 1;
        }
        address += 8;
    }
    ferrovisor_test_guests::println!(
        "checked {} KiB: {dirty} non-zero words (first at {first:#x})",
        (end - start) / 1024
    );
    if dirty == 0 {
        Verdict::Success
    } else {
        Verdict::Failure
    }
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("zeros", test);
