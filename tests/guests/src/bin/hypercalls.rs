//! Hypercall ABI basics: xen_version (including the domain handle, a random UUID),
//! console_io with good and bad arguments, an unknown hypercall and unknown sub-ops get
//! -ENOSYS, a bad pointer gets -EFAULT.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

/// A hypercall whose pointer arguments are either live buffers or deliberately invalid
/// addresses the hypervisor must refuse (which is what this guest tests).
#[cfg(target_os = "none")]
fn hc(number: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: see above: no pointer passed here makes the hypervisor write into memory
    // this guest relies on (console writes only read, and bad pointers are refused).
    unsafe { ferrovisor_test_guests::hypercall::hypercall3(number, a1, a2, a3) }
}

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::abi::*;
    let mut t = ferrovisor_test_guests::Checks::default();
    let version = hc(HYPERVISOR_XEN_VERSION, XENVER_VERSION, 0, 0);
    t.check(
        version == (4 << 16) | 17,
        format_args!("xen_version = {version:#x}, expected 0x40011"),
    );
    let text = b"console_io write from the hypercalls guest\n";
    let ok = hc(
        HYPERVISOR_CONSOLE_IO,
        CONSOLEIO_WRITE,
        text.len() as u64,
        text.as_ptr() as u64,
    );
    t.check(ok == 0, format_args!("console_io write returned {ok}"));
    // Beyond the guest's identity-mapped first GiB: not mapped in its page tables.
    let bad = hc(HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE, 16, 0x7f00_0000_0000);
    t.check(
        bad == EFAULT,
        format_args!("console_io with a bad pointer returned {bad}, expected -EFAULT"),
    );
    let unknown_sub = hc(HYPERVISOR_CONSOLE_IO, 99, 0, 0);
    t.check(
        unknown_sub == ENOSYS,
        format_args!("console_io sub-op 99 returned {unknown_sub}"),
    );
    let unknown = hc(60, 0, 0, 0);
    t.check(
        unknown == ENOSYS,
        format_args!("hypercall 60 returned {unknown}"),
    );
    // XENVER_guest_handle (8): the domain's UUID, a version-4 (random) one.
    let mut handle = [0u8; 16];
    let got = hc(HYPERVISOR_XEN_VERSION, 8, handle.as_mut_ptr() as u64, 0);
    let v4 = handle[6] >> 4 == 4 && handle[8] >> 6 == 0b10;
    t.check(
        got == 0 && v4,
        format_args!("XENVER_guest_handle returned {got} and {handle:02x?}: not a version-4 UUID"),
    );
    ferrovisor_test_guests::println!(
        "hypercalls: domain handle {:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        handle[0],
        handle[1],
        handle[2],
        handle[3],
        handle[4],
        handle[5],
        handle[6],
        handle[7],
        handle[8],
        handle[9],
        handle[10],
        handle[11],
        handle[12],
        handle[13],
        handle[14],
        handle[15]
    );
    let yielded = hc(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, 0, 0);
    t.check(
        yielded == 0,
        format_args!("sched_op yield returned {yielded}"),
    );
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("hypercalls", test);
