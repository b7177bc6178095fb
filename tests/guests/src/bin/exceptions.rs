//! The guest's own exception handlers work under the hypervisor: #UD, #GP (a
//! non-canonical access) and #PF (an unmapped page) arrive at the guest's IDT with the
//! right vector and error code.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::probe;
    let mut t = ferrovisor_test_guests::Checks::default();
    let ud = probe!("ud2");
    t.check(
        ud.map(|r| r.vector) == Some(6),
        format_args!("ud2 raised {ud:?}, expected #UD"),
    );
    let gp = probe!("movabs rcx, 0x8000000000000000", "mov rax, qword ptr [rcx]");
    t.check(
        gp.map(|r| (r.vector, r.error_code)) == Some((13, 0)),
        format_args!("non-canonical load raised {gp:?}, expected #GP(0)"),
    );
    let pf = probe!(
        "mov ecx, 0x7ff00000",
        "shl rcx, 8",
        "mov rax, qword ptr [rcx]"
    );
    // Error code 0: not present, read, supervisor.
    t.check(
        pf.map(|r| (r.vector, r.error_code)) == Some((14, 0)),
        format_args!("unmapped load raised {pf:?}, expected #PF(0)"),
    );
    let none = probe!("nop");
    t.check(none.is_none(), format_args!("nop raised {none:?}"));
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("exceptions", test);
