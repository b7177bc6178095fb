//! FPU/SSE state survives exits: XMM registers loaded with a pattern keep it across
//! thousands of CPUID exits (the hypervisor never touches guest vector state, or saves
//! and restores it).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    let mut t = ferrovisor_test_guests::Checks::default();
    let pattern: [u64; 4] = [
        0x0123_4567_89ab_cdef,
        0xfedc_ba98_7654_3210,
        0x5555_aaaa_5555_aaaa,
        0x0f0f_f0f0_0f0f_f0f0,
    ];
    let mut out = [0u64; 4];
    // SAFETY: CR4.OSFXSR is set by the entry code, so SSE moves are allowed; the
    // buffers are live locals; CPUID clobbers only the registers declared.
    unsafe {
        core::arch::asm!(
            "movdqu xmm0, [{p}]",
            "movdqu xmm7, [{p} + 16]",
            "push rbx",
            "mov r8d, 2000",
            "2:",
            "mov eax, 0x40000000",
            "xor ecx, ecx",
            "cpuid",
            "dec r8d",
            "jnz 2b",
            "pop rbx",
            "movdqu [{o}], xmm0",
            "movdqu [{o} + 16], xmm7",
            p = in(reg) pattern.as_ptr(),
            o = in(reg) out.as_mut_ptr(),
            out("rax") _, out("rcx") _, out("rdx") _, out("r8") _,
            out("xmm0") _, out("xmm7") _,
        )
    };
    t.check(
        out == pattern,
        format_args!("XMM0/XMM7 changed across 2000 exits: {out:x?}"),
    );
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("fpu", test);
