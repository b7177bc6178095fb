//! Exit round-trip costs, measured from inside the guest: the TSC around N iterations
//! of CPUID (leaf 0x40000000), a null hypercall (`xen_version`), and an I/O port write,
//! minus the same loop without the exiting instruction. Under QEMU `-icount shift=0`
//! and in Bochs the TSC counts instructions, so the figures are instructions per round
//! trip, hypervisor and emulated VM exit/entry included, and repeatable.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
const ITERATIONS: u64 = 1000;

#[cfg(target_os = "none")]
fn rdtsc() -> u64 {
    // SAFETY: LFENCE orders RDTSC after earlier instructions; no memory effects.
    unsafe { core::arch::x86_64::_mm_lfence() };
    // SAFETY: RDTSC is allowed at CPL 0 in the guest.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_os = "none")]
fn per_op(f: impl Fn()) -> u64 {
    let start = rdtsc();
    for _ in 0..ITERATIONS {
        f();
    }
    (rdtsc() - start) / ITERATIONS
}

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::abi::{HYPERVISOR_XEN_VERSION, XENVER_VERSION};
    use ferrovisor_test_guests::println;
    let empty = per_op(|| {
        // SAFETY: an empty asm statement: the loop's own cost.
        unsafe { core::arch::asm!("", options(nostack, nomem)) }
    });
    let cpuid = per_op(|| {
        core::hint::black_box(core::arch::x86_64::__cpuid_count(0x4000_0000, 0));
    });
    let hypercall = per_op(|| {
        // SAFETY: xen_version(XENVER_version) takes no pointer.
        core::hint::black_box(unsafe {
            ferrovisor_test_guests::hypercall::hypercall3(
                HYPERVISOR_XEN_VERSION,
                XENVER_VERSION,
                0,
                0,
            )
        });
    });
    let io = per_op(|| {
        // SAFETY: an OUT to the unclaimed POST port 0x80 is dropped by the hypervisor.
        unsafe { core::arch::asm!("out 0x80, al", in("al") 0u8, options(nostack, nomem)) }
    });
    println!(
        "bench: cpuid-roundtrip {} instructions",
        cpuid.saturating_sub(empty)
    );
    println!(
        "bench: hypercall-roundtrip {} instructions",
        hypercall.saturating_sub(empty)
    );
    println!(
        "bench: io-out-roundtrip {} instructions",
        io.saturating_sub(empty)
    );
    println!("bench: loop-overhead {} instructions", empty);
    Verdict::Success
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("bench", test);
