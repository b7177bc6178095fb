//! Host tests of [`guest_cpuid`] against synthetic Intel-like (Skylake-SP-like) and
//! AMD-like (Zen 3-like) hosts. Unknown host leaves return recognizable garbage, so a
//! leaf that should be zeroed cannot pass by accident.

use super::features::*;
use super::*;

const GARBAGE: CpuidResult = CpuidResult {
    eax: 0xDEAD_BEEF,
    ebx: 0xDEAD_BEEF,
    ecx: 0xDEAD_BEEF,
    edx: 0xDEAD_BEEF,
};

const fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
    CpuidResult { eax, ebx, ecx, edx }
}

fn intel_host(leaf: u32, sub: u32) -> CpuidResult {
    match (leaf, sub) {
        // "GenuineIntel", max basic leaf 0x1B (above the policy's 0x16).
        (0, _) => r(0x1B, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        // Initial APIC ID 0x0C, 16 logical IDs, CLFLUSH 8 * 8 bytes; every ECX feature
        // including VMX, SMX, MONITOR, x2APIC, TSC-deadline, PCID, XSAVE, OSXSAVE, AVX.
        (1, _) => r(0x0005_0654, 0x0C10_0800, 0x7FFE_FBFF, 0xBFEB_FBFF),
        (2, _) => r(0x0076_0301, 0x00F0_B5FF, 0, 0x00C3_0000),
        (4, 0) => r(0x7C00_4121, 0x01C0_003F, 0x3F, 0),
        (4, 1) => r(0x7C00_4122, 0x01C0_003F, 0x3F, 0),
        (4, 2) => r(0x7C00_4143, 0x03C0_003F, 0x3FF, 0),
        (4, 3) => r(0x7C0F_C163, 0x0280_003F, 0xB7FF, 4),
        (4, _) => r(0, 0, 0, 0),
        (6, _) => r(0x0000_0077, 2, 9, 0),
        // HLE, RTM, SGX, MPX, PT, AVX-512 ... all set; ECX has UMIP, PKU, WAITPKG, GFNI,
        // VAES, LA57, RDPID; EDX MD_CLEAR, the speculation controls and ARCH_CAPABILITIES.
        (7, 0) => r(0, 0xD39F_FFFF, 0x0041_072E, 0xBC00_0400),
        (7, 1) => r(0x30, 0, 0, 0),
        (0xA, _) => r(0x0730_0404, 0, 0, 0x603),
        (0xB, 0) => r(1, 2, 0x100, 0x0C),
        (0xB, 1) => r(5, 16, 0x201, 0x0C),
        // x87, SSE, AVX, BNDREGS, BNDCSR, opmask, ZMM_Hi256, Hi16_ZMM, PKRU.
        (0xD, 0) => r(0x2FF, 0x988, 0xA88, 0),
        (0xD, 1) => r(0xF, 0x988, 0x100, 0),
        (0xD, 2) => r(256, 576, 0, 0),
        (0xD, 3) => r(64, 960, 0, 0),
        (0xD, 4) => r(64, 1024, 0, 0),
        (0xD, 5) => r(64, 1088, 0, 0),
        (0xD, 6) => r(512, 1152, 0, 0),
        (0xD, 7) => r(1024, 1664, 0, 0),
        (0xD, 9) => r(8, 2688, 0, 0),
        (0x15, _) => r(2, 0xC8, 0x016E_3600, 0),
        (0x16, _) => r(0x0BB8, 0x0E74, 0x64, 0),
        (0x8000_0000, _) => r(0x8000_0008, 0, 0, 0),
        // LAHF_LM, ABM, PREFETCHW; SYSCALL, NX, Page1GB, RDTSCP, LM.
        (0x8000_0001, _) => r(0, 0, 0x121, 0x2C10_0800),
        (0x8000_0002..=0x8000_0004, _) => r(0x6574_6e49, 0x2952_286c, 0x6f65_5820, 0x2952_286e),
        (0x8000_0006, _) => r(0, 0, 0x0100_6040, 0),
        (0x8000_0007, _) => r(0, 0, 0, 0x100),
        (0x8000_0008, _) => r(0x0000_302E, 0x200, 0xFFFF, 0xFFFF),
        _ => GARBAGE,
    }
}

fn amd_host(leaf: u32, sub: u32) -> CpuidResult {
    match (leaf, sub) {
        // "AuthenticAMD".
        (0, _) => r(0x10, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
        (1, _) => r(0x00A2_0F10, 0x0A10_0800, 0x7EF8_320B, 0x178B_FBFF),
        (5, _) => r(0x40, 0x40, 3, 0x11),
        (6, _) => r(4, 0, 1, 0),
        (7, 0) => r(0, 0x219C_97A9, 0x0040_069C, 0x10),
        (0xD, 0) => r(0x207, 0x340, 0x988, 0),
        (0xD, 1) => r(0xF, 0x340, 0, 0),
        (0xD, 2) => r(256, 576, 0, 0),
        (0xD, 9) => r(8, 2432, 0, 0),
        (0x8000_0000, _) => r(0x8000_0023, 0x6874_7541, 0x444d_4163, 0x6974_6e65),
        // CmpLegacy, SVM, ExtApicSpace, TopoExt, MONITORX ... set.
        (0x8000_0001, _) => r(0x00A2_0F10, 0x2000_0000, 0x75C2_37FF, 0x2FD3_FBFF),
        (0x8000_0005, _) => r(0xFF40_FF40, 0xFF40_FF40, 0x2004_0140, 0x2004_0140),
        (0x8000_0007, _) => r(0, 0x3B, 0, 0x6799),
        (0x8000_0008, _) => r(0x3030, 0x111E_F657, 0x400F, 0),
        (0x8000_000A, _) => r(1, 0x8000, 0, 0x1EBF_BCFF),
        _ => GARBAGE,
    }
}

fn ctx(vcpu_id: u32) -> VcpuCpuidContext {
    VcpuCpuidContext {
        vcpu_id,
        apic_id: vcpu_id,
        cr4_osxsave: false,
        cr4_pke: false,
        xcr0: 0x3,
        apic_enabled: true,
        tsc_khz: 0,
        long_mode: true,
    }
}

fn intel(policy: &CpuidPolicy, leaf: u32, sub: u32, vcpu: VcpuCpuidContext) -> CpuidResult {
    guest_cpuid(policy, &intel_host, leaf, sub, vcpu)
}

fn amd(policy: &CpuidPolicy, leaf: u32, sub: u32, vcpu: VcpuCpuidContext) -> CpuidResult {
    guest_cpuid(policy, &amd_host, leaf, sub, vcpu)
}

fn is_empty(r: CpuidResult) -> bool {
    (r.eax, r.ebx, r.ecx, r.edx) == (0, 0, 0, 0)
}

/// Everything the policy can allow, allowed.
fn generous(nr_vcpus: u32) -> CpuidPolicy {
    CpuidPolicy {
        x2apic: true,
        tsc_deadline: true,
        pcid: true,
        invpcid: true,
        xsave: true,
        avx512: true,
        pku: true,
        rdtscp: true,
        invariant_tsc: true,
        mtrr: true,
        machine_check: true,
        spec_ctrl: true,
        ..CpuidPolicy::new(nr_vcpus)
    }
}

#[test]
fn hypervisor_bit_set_and_virtualization_hidden() {
    let p = CpuidPolicy::new(1);
    let l1 = intel(&p, 1, 0, ctx(0));
    assert_ne!(l1.ecx & leaf1_ecx::HYPERVISOR, 0);
    assert_eq!(
        l1.ecx & (leaf1_ecx::VMX | leaf1_ecx::SMX | leaf1_ecx::MONITOR),
        0
    );
    let l1 = amd(&p, 1, 0, ctx(0));
    assert_ne!(l1.ecx & leaf1_ecx::HYPERVISOR, 0);
    let e1 = amd(&generous(1), 0x8000_0001, 0, ctx(0));
    assert_eq!(
        e1.ecx & (ext1_ecx::SVM | ext1_ecx::MONITORX | ext1_ecx::TOPOEXT),
        0
    );
    assert_ne!(e1.ecx & ext1_ecx::LAHF_LM, 0);
    // SVM and MONITOR leaves are empty.
    assert!(is_empty(amd(&generous(1), 0x8000_000A, 0, ctx(0))));
    assert!(is_empty(amd(&generous(1), 5, 0, ctx(0))));
    assert!(is_empty(intel(&generous(1), 5, 0, ctx(0))));
}

#[test]
fn leaf1_passes_family_and_safe_features() {
    let p = CpuidPolicy::new(1);
    let l1 = intel(&p, 1, 0, ctx(0));
    assert_eq!(l1.eax, 0x0005_0654);
    use leaf1_ecx::*;
    let expect_ecx = SSE3 | PCLMULQDQ | SSSE3 | CX16 | SSE4_1 | SSE4_2 | MOVBE | POPCNT | AES;
    assert_eq!(l1.ecx, expect_ecx | RDRAND | HYPERVISOR);
    use leaf1_edx::*;
    assert_eq!(
        l1.edx & (MTRR | MCE | MCA | PSN | DS | ACPI | TM | PBE | HTT),
        0
    );
    assert_ne!(
        l1.edx & (FPU | TSC | MSR | PAE | APIC | CX8 | SSE2 | FXSR),
        0
    );
}

#[test]
fn perf_monitoring_and_unknown_leaves_are_zero() {
    let p = generous(2);
    assert!(is_empty(intel(&p, 0xA, 0, ctx(0))));
    assert!(is_empty(intel(&p, 3, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0x12, 0, ctx(0)))); // SGX
    assert!(is_empty(intel(&p, 0x14, 0, ctx(0)))); // PT
    assert!(is_empty(intel(&p, 0x2000_0000, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0x5000_0000, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0xC000_0000, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0x8001_0000, 0, ctx(0))));
    assert!(is_empty(amd(&p, 0x8000_001E, 0, ctx(0))));
}

#[test]
fn max_leaves_are_clamped() {
    let p = CpuidPolicy::new(1);
    let l0 = intel(&p, 0, 0, ctx(0));
    assert_eq!(l0.eax, 0x16, "host 0x1B clamped to policy 0x16");
    assert_eq!(
        (l0.ebx, l0.edx, l0.ecx),
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    );
    assert!(is_empty(intel(&p, 0x17, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0x1B, 0, ctx(0))));
    // Host lower than policy: the host wins.
    assert_eq!(amd(&p, 0, 0, ctx(0)).eax, 0x10);
    assert!(is_empty(amd(&p, 0x15, 0, ctx(0))));
    // Extended: AMD host 0x80000023 clamped to 0x80000008; vendor string kept.
    let e0 = amd(&p, 0x8000_0000, 0, ctx(0));
    assert_eq!(e0.eax, 0x8000_0008);
    assert_eq!(e0.ebx, 0x6874_7541);
    assert!(is_empty(amd(&p, 0x8000_000A, 0, ctx(0))));
    let low = CpuidPolicy {
        max_basic_leaf: 7,
        max_extended_leaf: 0x8000_0001,
        ..p
    };
    assert_eq!(intel(&low, 0, 0, ctx(0)).eax, 7);
    assert!(is_empty(intel(&low, 0xB, 0, ctx(0))));
    assert!(is_empty(intel(&low, 0x8000_0008, 0, ctx(0))));
    assert_eq!(intel(&low, 0x8000_0000, 0, ctx(0)).eax, 0x8000_0001);
}

#[test]
fn xen_leaves_are_routed() {
    let p = CpuidPolicy::new(4);
    let base = intel(&p, 0x4000_0000, 0, ctx(0));
    assert_eq!(base.eax, 0x4000_0005);
    assert_eq!(base.ebx, crate::xen::cpuid::XEN_CPUID_SIGNATURE_EBX);
    let hvm = amd(&p, 0x4000_0004, 0, ctx(3));
    assert_eq!(hvm.ebx, 3);
    assert!(is_empty(intel(&p, 0x4000_0006, 0, ctx(0))));
    assert!(is_empty(intel(&p, 0x4000_0100, 0, ctx(0))));
}

#[test]
fn apic_id_and_logical_count_in_leaf1() {
    let p = CpuidPolicy::new(6);
    let mut v = ctx(5);
    v.apic_id = 5;
    let l1 = intel(&p, 1, 0, v);
    assert_eq!(
        l1.ebx >> 24,
        5,
        "initial APIC ID is the vCPU's, not the host's 0x0C"
    );
    assert_eq!((l1.ebx >> 16) & 0xFF, 8, "6 vCPUs need 3 ID bits");
    assert_eq!(
        l1.ebx & 0xFFFF,
        0x0800,
        "CLFLUSH size and brand index from the host"
    );
    assert_ne!(l1.edx & leaf1_edx::HTT, 0);
    let one = intel(&CpuidPolicy::new(1), 1, 0, ctx(0));
    assert_eq!(
        one.edx & leaf1_edx::HTT,
        0,
        "host HTT is not passed through"
    );
    assert_eq!((one.ebx >> 16) & 0xFF, 1);
}

#[test]
fn extended_topology_is_synthesized() {
    let p = CpuidPolicy::new(6);
    let v = VcpuCpuidContext {
        apic_id: 4,
        ..ctx(4)
    };
    let smt = intel(&p, 0xB, 0, v);
    assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 4));
    let core = intel(&p, 0xB, 1, v);
    assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (3, 6, 0x201, 4));
    let invalid = intel(&p, 0xB, 2, v);
    assert_eq!(
        (invalid.eax, invalid.ebx, invalid.ecx, invalid.edx),
        (0, 0, 2, 4)
    );
}

#[test]
fn intel_cache_leaf_topology_fields() {
    let p = CpuidPolicy::new(4);
    let l1d = intel(&p, 4, 0, ctx(0));
    assert_eq!(l1d.eax & 0x3FFF, 0x121, "type and level kept");
    assert_eq!(l1d.eax >> 26, 3, "4 core IDs");
    assert_eq!((l1d.eax >> 14) & 0xFFF, 0, "L1 private to a core");
    assert_eq!(
        (l1d.ebx, l1d.ecx),
        (0x01C0_003F, 0x3F),
        "geometry from the host"
    );
    let l3 = intel(&p, 4, 3, ctx(0));
    assert_eq!((l3.eax >> 14) & 0xFFF, 3, "L3 shared by the package");
    assert!(
        is_empty(intel(&p, 4, 4, ctx(0))),
        "null descriptor ends the list"
    );
    // AMD reserves leaf 4.
    let amd_big = CpuidPolicy {
        max_basic_leaf: 0x10,
        ..p
    };
    assert!(is_empty(amd(&amd_big, 4, 0, ctx(0))));
}

#[test]
fn amd_core_count_in_0x80000008() {
    let p = CpuidPolicy::new(6);
    let e8 = amd(&p, 0x8000_0008, 0, ctx(0));
    assert_eq!(e8.ecx, 5 | (3 << 12));
    assert_eq!(e8.eax, 0x3030);
    assert_eq!(
        e8.ebx,
        ext8_ebx::CLZERO | ext8_ebx::RSTR_FP_ERR_PTRS | ext8_ebx::WBNOINVD
    );
    let i8 = intel(&p, 0x8000_0008, 0, ctx(0));
    assert_eq!((i8.eax, i8.ebx, i8.ecx, i8.edx), (0x302E, 0x200, 0, 0));
    let spec = amd(&generous(6), 0x8000_0008, 0, ctx(0));
    assert_ne!(spec.ebx & ext8_ebx::IBPB, 0);
}

#[test]
fn policy_controlled_leaf1_features() {
    use leaf1_ecx::*;
    let off = intel(&CpuidPolicy::new(1), 1, 0, ctx(0));
    assert_eq!(
        off.ecx & (X2APIC | TSC_DEADLINE | PCID | XSAVE | AVX | FMA | F16C | OSXSAVE),
        0
    );
    let on = intel(&generous(1), 1, 0, ctx(0));
    assert_eq!(
        on.ecx & (X2APIC | TSC_DEADLINE | PCID | XSAVE | AVX | FMA | F16C),
        X2APIC | TSC_DEADLINE | PCID | XSAVE | AVX | FMA | F16C
    );
    assert_ne!(
        on.edx & (leaf1_edx::MTRR | leaf1_edx::MCE | leaf1_edx::MCA),
        0
    );
}

#[test]
fn osxsave_mirrors_guest_cr4() {
    let p = generous(1);
    let mut v = ctx(0);
    assert_eq!(
        intel(&p, 1, 0, v).ecx & leaf1_ecx::OSXSAVE,
        0,
        "host OSXSAVE not leaked"
    );
    v.cr4_osxsave = true;
    assert_ne!(intel(&p, 1, 0, v).ecx & leaf1_ecx::OSXSAVE, 0);
    // Without XSAVE in the policy, CR4.OSXSAVE cannot surface.
    assert_eq!(
        intel(&CpuidPolicy::new(1), 1, 0, v).ecx & leaf1_ecx::OSXSAVE,
        0
    );
}

#[test]
fn apic_bit_follows_apic_base_enable() {
    let p = CpuidPolicy::new(1);
    let mut v = ctx(0);
    v.apic_enabled = false;
    assert_eq!(intel(&p, 1, 0, v).edx & leaf1_edx::APIC, 0);
    assert_eq!(amd(&p, 0x8000_0001, 0, v).edx & leaf1_edx::APIC, 0);
    v.apic_enabled = true;
    assert_ne!(amd(&p, 0x8000_0001, 0, v).edx & leaf1_edx::APIC, 0);
}

#[test]
fn leaf7_hides_tsx_sgx_pt_and_follows_policy() {
    use leaf7_ebx::*;
    let off = intel(&CpuidPolicy::new(1), 7, 0, ctx(0));
    assert_eq!(off.eax, 0, "only sub-leaf 0");
    assert_eq!(
        off.ebx & (HLE | RTM | SGX | MPX | PT | TSC_ADJUST | RDT_M | RDT_A),
        0
    );
    assert_eq!(off.ebx & (INVPCID | AVX2 | AVX512F), 0);
    assert_ne!(off.ebx & (SMEP | SMAP | FSGSBASE | BMI1 | BMI2 | ERMS), 0);
    assert_eq!(
        off.ecx & (leaf7_ecx::PKU | leaf7_ecx::RDPID | leaf7_ecx::VAES),
        0
    );
    assert_eq!(
        off.ecx & (leaf7_ecx::UMIP | leaf7_ecx::WAITPKG | leaf7_ecx::LA57),
        0
    );
    assert_eq!(off.edx, leaf7_edx::MD_CLEAR);
    let on = intel(&generous(1), 7, 0, ctx(0));
    assert_eq!(
        on.ebx & (HLE | RTM | SGX | MPX | PT),
        0,
        "never, whatever the policy"
    );
    assert_ne!(on.ebx & INVPCID, 0);
    assert_ne!(on.ebx & AVX512F, 0);
    assert_eq!(on.edx & leaf7_edx::ARCH_CAPABILITIES, 0);
    assert_ne!(on.edx & leaf7_edx::IBRS_IBPB, 0);
    assert!(
        is_empty(intel(&generous(1), 7, 1, ctx(0))),
        "sub-leaf 1 not exposed"
    );
}

#[test]
fn ospke_mirrors_guest_cr4() {
    let p = generous(1);
    let mut v = ctx(0);
    assert_eq!(intel(&p, 7, 0, v).ecx & leaf7_ecx::OSPKE, 0);
    v.cr4_pke = true;
    assert_ne!(intel(&p, 7, 0, v).ecx & leaf7_ecx::OSPKE, 0);
    assert_eq!(
        intel(&CpuidPolicy::new(1), 7, 0, v).ecx & leaf7_ecx::OSPKE,
        0
    );
}

#[test]
fn arat_and_thermal_leaf() {
    let l6 = intel(&CpuidPolicy::new(1), 6, 0, ctx(0));
    assert_eq!((l6.eax, l6.ebx, l6.ecx, l6.edx), (leaf6_eax::ARAT, 0, 0, 0));
    let no_arat = CpuidPolicy {
        arat: false,
        ..CpuidPolicy::new(1)
    };
    assert!(is_empty(intel(&no_arat, 6, 0, ctx(0))));
}

#[test]
fn extended_leaf1_and_invariant_tsc() {
    let p = CpuidPolicy::new(1);
    let e1 = amd(&p, 0x8000_0001, 0, ctx(0));
    use ext1_edx::*;
    assert_eq!(e1.edx & (FFXSR | RDTSCP), 0);
    assert_ne!(e1.edx & (SYSCALL | NX | LM | PAGE1GB), 0);
    assert_eq!(e1.eax, 0x00A2_0F10);
    assert_ne!(amd(&generous(1), 0x8000_0001, 0, ctx(0)).edx & RDTSCP, 0);
    let no_1g = CpuidPolicy {
        page_1gb: false,
        ..p
    };
    assert_eq!(intel(&no_1g, 0x8000_0001, 0, ctx(0)).edx & PAGE1GB, 0);
    assert!(is_empty(amd(&p, 0x8000_0007, 0, ctx(0))));
    let itsc = amd(&generous(1), 0x8000_0007, 0, ctx(0));
    assert_eq!(
        (itsc.eax, itsc.ebx, itsc.ecx, itsc.edx),
        (0, 0, 0, ext7_edx::ITSC)
    );
    // Brand string and cache leaves pass through.
    assert_eq!(intel(&p, 0x8000_0002, 0, ctx(0)).eax, 0x6574_6e49);
    assert_eq!(amd(&p, 0x8000_0005, 0, ctx(0)).ecx, 0x2004_0140);
}

#[test]
fn syscall_hidden_outside_long_mode_on_intel_only() {
    let p = CpuidPolicy::new(1);
    let mut v = ctx(0);
    assert_ne!(intel(&p, 0x8000_0001, 0, v).edx & ext1_edx::SYSCALL, 0);
    v.long_mode = false;
    assert_eq!(intel(&p, 0x8000_0001, 0, v).edx & ext1_edx::SYSCALL, 0);
    assert_ne!(amd(&p, 0x8000_0001, 0, v).edx & ext1_edx::SYSCALL, 0);
}

#[test]
fn xsave_leaf_restricted_and_sized() {
    // Without XSAVE the whole leaf is empty.
    assert!(is_empty(intel(&CpuidPolicy::new(1), 0xD, 0, ctx(0))));

    // XSAVE without AVX-512 or PKU: x87 | SSE | AVX only; MPX components hidden.
    let p = CpuidPolicy {
        xsave: true,
        ..CpuidPolicy::new(1)
    };
    let mut v = ctx(0);
    v.xcr0 = 0x3;
    let s0 = intel(&p, 0xD, 0, v);
    assert_eq!((s0.eax, s0.edx), (0x7, 0));
    assert_eq!(s0.ebx, 576, "XCR0 = x87|SSE: legacy area and header");
    assert_eq!(s0.ecx, 576 + 256, "maximum: through AVX");
    v.xcr0 = 0x7;
    assert_eq!(intel(&p, 0xD, 0, v).ebx, 832);
    let s1 = intel(&p, 0xD, 1, v);
    assert_eq!(
        s1.eax,
        xsave_eax1::XSAVEOPT | xsave_eax1::XSAVEC | xsave_eax1::XGETBV1
    );
    assert_eq!((s1.ebx, s1.ecx, s1.edx), (832, 0, 0));
    assert_eq!(intel(&p, 0xD, 2, v).eax, 256);
    assert!(is_empty(intel(&p, 0xD, 3, v)), "BNDREGS hidden");
    assert!(
        is_empty(intel(&p, 0xD, 5, v)),
        "opmask hidden without AVX-512"
    );
    assert!(is_empty(intel(&p, 0xD, 63, v)));

    // Everything allowed: x87 | SSE | AVX | AVX-512 | PKRU (still no MPX).
    let g = generous(1);
    v.xcr0 = 0x2E7;
    let s0 = intel(&g, 0xD, 0, v);
    assert_eq!(s0.eax, 0x2E7);
    assert_eq!((s0.ebx, s0.ecx), (2696, 2696));
    // Compacted: 576 + 256 (AVX) + 64 (opmask) + 512 + 1024 + 8 (PKRU) = 2440.
    assert_eq!(intel(&g, 0xD, 1, v).ebx, 2440);
    assert_eq!(intel(&g, 0xD, 9, v).ebx, 2688);

    // AMD: PKRU at its own offset.
    let s0 = amd(&g, 0xD, 0, VcpuCpuidContext { xcr0: 0x207, ..v });
    assert_eq!((s0.eax, s0.ebx, s0.ecx), (0x207, 2440, 2440));
}
