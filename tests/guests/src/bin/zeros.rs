//! A new domain never sees old data: every byte of the guest's free RAM (from the end of
//! its image to the start-info page) reads zero, even when its frames last belonged to a
//! domain that filled them with a pattern (the `memory` guest runs just before).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(info: &StartInfo) -> Verdict {
    if info.memmap_entries == 0 {
        return Verdict::Error;
    }
    // SAFETY: the memory map lies in identity-mapped guest RAM (start-info page).
    let entry = unsafe { core::slice::from_raw_parts(info.memmap_paddr as *const u8, 24) };
    let size = u64::from_le_bytes(entry[8..16].try_into().unwrap_or([0; 8]));
    unsafe extern "C" {
        static __guest_end: u8;
    }
    let start = ((&raw const __guest_end) as u64).div_ceil(4096) * 4096;
    let end = size.min(1 << 30);
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
