//! Xen's CPUID leaves and the hypercall page: signature, version, the hypercall-page
//! MSR leaf, the vCPU-id leaf; VT-x/AMD-V hidden, the hypervisor bit set.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    use ferrovisor_test_guests::hypercall::{cpuid, xen_cpuid_base};
    let mut t = ferrovisor_test_guests::Checks::default();
    let base = xen_cpuid_base();
    t.check(
        base == 0x4000_0000,
        format_args!("Xen leaves at {base:#x}, expected 0x40000000"),
    );
    let [max, ..] = cpuid(base, 0);
    t.check(
        max >= base + 4,
        format_args!("max Xen leaf {max:#x} is below base+4"),
    );
    let [version, ..] = cpuid(base + 1, 0);
    t.check(
        version >> 16 == 4,
        format_args!(
            "Xen major version {} (leaf+1 EAX {version:#x})",
            version >> 16
        ),
    );
    let [pages, msr, ..] = cpuid(base + 2, 0);
    t.check(
        pages == 1 && msr == 0x4000_0000,
        format_args!("hypercall pages {pages}, MSR {msr:#x}"),
    );
    let [hvm_flags, vcpu_id, ..] = cpuid(base + 4, 0);
    // XEN_HVM_CPUID_VCPU_ID_PRESENT (bit 3): EBX holds the vCPU id.
    t.check(
        hvm_flags & (1 << 3) != 0 && vcpu_id == 0,
        format_args!("leaf+4 EAX {hvm_flags:#x} EBX {vcpu_id}"),
    );
    let [_, _, ecx1, _] = cpuid(1, 0);
    t.check(
        ecx1 & (1 << 31) != 0,
        format_args!("hypervisor bit clear in leaf 1 ECX {ecx1:#x}"),
    );
    t.check(
        ecx1 & (1 << 5) == 0,
        format_args!("VMX visible in leaf 1 ECX {ecx1:#x}"),
    );
    let [_, _, ecx81, _] = cpuid(0x8000_0001, 0);
    t.check(
        ecx81 & (1 << 2) == 0,
        format_args!("SVM visible in 0x80000001 ECX {ecx81:#x}"),
    );
    t.verdict()
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("xen-cpuid", test);
