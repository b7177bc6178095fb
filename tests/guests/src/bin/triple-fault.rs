//! A guest that triple-faults on purpose (an empty IDT, then INT3): the hypervisor must
//! crash this domain alone and go on with the next.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    ferrovisor_test_guests::println!("loading an empty IDT and raising #BP: expect a triple fault");
    let empty: [u16; 5] = [0; 5];
    // SAFETY: deliberately fatal for this guest: with a zero-limit IDT, #BP becomes #GP,
    // then #DF, then a triple fault (shutdown), which the hypervisor intercepts.
    unsafe { core::arch::asm!("lidt [{}]", "int3", in(reg) &empty) };
    Verdict::Failure
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("triple-fault", test);
