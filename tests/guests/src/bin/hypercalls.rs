//! Hypercall ABI basics: xen_version, console_io with good and bad arguments, an
//! unknown hypercall and unknown sub-ops get -ENOSYS, a bad pointer gets -EFAULT.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::abi::*;
    use ferrovisor_test_guests::hypercall::hypercall3;
    let mut t = ferrovisor_test_guests::Checks::default();
    // SAFETY (for the hypercalls below): every pointer argument is either a live buffer
    // or deliberately invalid, which is what is being tested.
    let version = unsafe { hypercall3(HYPERVISOR_XEN_VERSION, XENVER_VERSION, 0, 0) };
    t.check(
        version == (4 << 16) | 17,
        format_args!("xen_version = {version:#x}, expected 0x40011"),
    );
    let text = b"console_io write from the hypercalls guest\n";
    let ok = unsafe {
        hypercall3(
            HYPERVISOR_CONSOLE_IO,
            CONSOLEIO_WRITE,
            text.len() as u64,
            text.as_ptr() as u64,
        )
    };
    t.check(ok == 0, format_args!("console_io write returned {ok}"));
    // Beyond the guest's identity-mapped first GiB: not mapped in its page tables.
    let bad = unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, CONSOLEIO_WRITE, 16, 0x7f00_0000_0000) };
    t.check(
        bad == EFAULT,
        format_args!("console_io with a bad pointer returned {bad}, expected -EFAULT"),
    );
    let unknown_sub = unsafe { hypercall3(HYPERVISOR_CONSOLE_IO, 99, 0, 0) };
    t.check(
        unknown_sub == ENOSYS,
        format_args!("console_io sub-op 99 returned {unknown_sub}"),
    );
    let unknown = unsafe { hypercall3(60, 0, 0, 0) };
    t.check(
        unknown == ENOSYS,
        format_args!("hypercall 60 returned {unknown}"),
    );
    let yielded = unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, 0, 0) };
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
