//! MSR and I/O defaults: an unknown MSR read or write raises #GP in the guest; an
//! unclaimed port reads all-ones and ignores writes; EFER reads back what the guest set.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::probe;
    let mut t = ferrovisor_test_guests::Checks::default();
    let read = probe!("mov ecx, 0x12345678", "rdmsr");
    t.check(
        read.map(|r| (r.vector, r.error_code)) == Some((13, 0)),
        format_args!("rdmsr of an unknown MSR raised {read:?}, expected #GP(0)"),
    );
    let write = probe!(
        "mov ecx, 0x12345678",
        "xor eax, eax",
        "xor edx, edx",
        "wrmsr"
    );
    t.check(
        write.map(|r| r.vector) == Some(13),
        format_args!("wrmsr of an unknown MSR raised {write:?}, expected #GP"),
    );
    let value: u32;
    // SAFETY: IN from an unclaimed port has no effect but an exit.
    unsafe {
        core::arch::asm!("in eax, dx", in("dx") 0x0cfcu16, out("eax") value, options(nostack, nomem))
    };
    t.check(
        value == u32::MAX,
        format_args!("IN from port 0xcfc read {value:#x}, expected all-ones"),
    );
    // SAFETY: an OUT to an unclaimed port is dropped.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") 0x0080u16, in("al") 0u8, options(nostack, nomem))
    };
    let (low, high): (u32, u32);
    // SAFETY: RDMSR of IA32_EFER, which the guest set up itself.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") 0xC000_0080u32, out("eax") low, out("edx") high, options(nostack, nomem))
    };
    let efer = (u64::from(high) << 32) | u64::from(low);
    t.check(
        efer & (1 << 8) != 0 && efer & (1 << 10) != 0,
        format_args!("EFER reads {efer:#x}, expected LME and LMA"),
    );
    t.check(
        efer & (1 << 12) == 0,
        format_args!("EFER shows SVME ({efer:#x}): host state leaks"),
    );
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("defaults", test);
