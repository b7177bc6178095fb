//! The Xen hypervisor CPUID leaves (`xen/include/public/arch-x86/cpuid.h`) and the
//! hypercall-page MSR they advertise.
//!
//! Xen puts its leaves at the first 0x100-aligned base from 0x40000000 that is not used by
//! another interface (0x40000100 when it also offers Viridian). Ferrovisor offers no other
//! interface, so the base is always [`XEN_CPUID_FIRST_LEAF`]. Leaf contents follow Xen's
//! `cpuid_hypervisor_leaves()` for an HVM domain.

pub use core::arch::x86_64::CpuidResult;

use super::hypercall::xen_version_word;

/// `XEN_CPUID_FIRST_LEAF`: the base of the Xen leaves.
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;

/// `XEN_CPUID_MAX_NUM_LEAVES`: the highest leaf index Xen defines (leaf 6, "0x40000x05").
/// Xen reports `base + 5` in leaf 0 EAX unless the toolstack lowers it.
pub const XEN_CPUID_MAX_NUM_LEAVES: u32 = 5;

/// `XEN_CPUID_SIGNATURE_EBX`: "XenV".
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
/// `XEN_CPUID_SIGNATURE_ECX`: "MMXe".
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
/// `XEN_CPUID_SIGNATURE_EDX`: "nVMM".
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;

/// Leaf 0x40000002 ECX bit `XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD` (PV guests only).
pub const XEN_CPUID_FEAT1_MMU_PT_UPDATE_PRESERVE_AD: u32 = 1 << 0;

/// Leaf 0x40000003 sub-leaf 0 EAX bit `XEN_CPUID_TSC_EMULATED`.
pub const XEN_CPUID_TSC_EMULATED: u32 = 1 << 0;
/// Leaf 0x40000003 sub-leaf 0 EAX bit `XEN_CPUID_HOST_TSC_RELIABLE`.
pub const XEN_CPUID_HOST_TSC_RELIABLE: u32 = 1 << 1;
/// Leaf 0x40000003 sub-leaf 0 EAX bit `XEN_CPUID_RDTSCP_INSTR_AVAIL`.
pub const XEN_CPUID_RDTSCP_INSTR_AVAIL: u32 = 1 << 2;
/// Leaf 0x40000003 sub-leaf 0 EBX `XEN_CPUID_TSC_MODE_DEFAULT`: emulate if necessary.
pub const XEN_CPUID_TSC_MODE_DEFAULT: u32 = 0;
/// `XEN_CPUID_TSC_MODE_ALWAYS_EMULATE`.
pub const XEN_CPUID_TSC_MODE_ALWAYS_EMULATE: u32 = 1;
/// `XEN_CPUID_TSC_MODE_NEVER_EMULATE`.
pub const XEN_CPUID_TSC_MODE_NEVER_EMULATE: u32 = 2;
/// `XEN_CPUID_TSC_MODE_PVRDTSCP`.
pub const XEN_CPUID_TSC_MODE_PVRDTSCP: u32 = 3;

/// Leaf 0x40000004 EAX `XEN_HVM_CPUID_APIC_ACCESS_VIRT`: xAPIC register accesses are
/// hardware-virtualized.
pub const XEN_HVM_CPUID_APIC_ACCESS_VIRT: u32 = 1 << 0;
/// `XEN_HVM_CPUID_X2APIC_VIRT`: x2APIC MSR accesses are hardware-virtualized (no exits).
pub const XEN_HVM_CPUID_X2APIC_VIRT: u32 = 1 << 1;
/// `XEN_HVM_CPUID_IOMMU_MAPPINGS`: memory mapped from other domains has valid IOMMU
/// entries (grant maps honour DMA).
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
/// `XEN_HVM_CPUID_VCPU_ID_PRESENT`: EBX holds the vCPU id.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// `XEN_HVM_CPUID_DOMID_PRESENT`: ECX holds the domain id.
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// `XEN_HVM_CPUID_EXT_DEST_ID`: 15-bit destination IDs in IO-APIC RTEs and MSI addresses.
pub const XEN_HVM_CPUID_EXT_DEST_ID: u32 = 1 << 5;
/// `XEN_HVM_CPUID_UPCALL_VECTOR`: per-vCPU event channel upcall vectors work with PIRQs.
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;

/// The leaf 0x40000004 EAX features Ferrovisor reports. Only the vCPU id: the others
/// promise hardware APIC virtualization, IOMMU-backed grant maps, extended destination
/// IDs or per-vCPU upcall vectors, none of which exist yet; a guest that is not told
/// simply uses the architectural paths.
pub const FERROVISOR_HVM_CPUID_FEATURES: u32 = XEN_HVM_CPUID_VCPU_ID_PRESENT;

/// The MSR index a guest writes the hypercall page's address to: the base of Xen's MSRs,
/// reported in leaf 0x40000002 EBX (Xen uses 0x40000200 only alongside Viridian).
pub const XEN_HYPERCALL_PAGE_MSR: u32 = 0x4000_0000;

/// Decodes a write of `value` to [`XEN_HYPERCALL_PAGE_MSR`]: bits 63:12 are the frame to
/// fill with the hypercall page, bits 11:0 the page index, which must be 0 because leaf
/// 0x40000002 advertises exactly one page (Xen's `guest_wrmsr_xen()` raises #GP
/// otherwise). Returns the page's guest-physical address, or `None` for a bad index.
pub const fn hypercall_page_gpa(value: u64) -> Option<u64> {
    if value & 0xFFF != 0 {
        None
    } else {
        Some(value)
    }
}

const EMPTY: CpuidResult = CpuidResult {
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
};

/// The Xen leaf `leaf` (sub-leaf `subleaf`) as seen by vCPU `vcpu_id` of an HVM/PVH
/// domain, or `None` if `leaf` is not in `0x40000000..=0x40000005`. Leaves:
///
/// - 0x40000000: EAX = highest Xen leaf (0x40000005, as Xen by default), EBX:ECX:EDX =
///   "XenVMMXenVMM".
/// - 0x40000001: EAX = version, `major << 16 | minor` (4.17: 0x00040011).
/// - 0x40000002: EAX = 1 hypercall page, EBX = [`XEN_HYPERCALL_PAGE_MSR`], no features
///   (the only feature bit is for PV guests).
/// - 0x40000003 (time): sub-leaf 0 ECX = the guest TSC frequency in kHz (`tsc_khz`,
///   Xen's `d->arch.tsc_khz`), sub-leaf 2 EAX = the host's (the same: the guest TSC runs
///   at the host rate); everything else zero, meaning TSC mode "default", not emulated, host TSC
///   reliability and frequency not reported. That is what a guest must assume anyway
///   until the TSC virtualization is settled (a later issue); Linux then prefers the Xen
///   pvclock over the raw TSC, which is the safe choice.
/// - 0x40000004 (HVM features): sub-leaf 0 EAX = [`FERROVISOR_HVM_CPUID_FEATURES`], EBX =
///   `vcpu_id`; other sub-leaves zero.
/// - 0x40000005 (PV parameters): zero for HVM guests, as in Xen.
pub fn xen_leaf(leaf: u32, subleaf: u32, vcpu_id: u32, tsc_khz: u32) -> Option<CpuidResult> {
    let index = leaf.checked_sub(XEN_CPUID_FIRST_LEAF)?;
    let result = match index {
        0 => CpuidResult {
            eax: XEN_CPUID_FIRST_LEAF + XEN_CPUID_MAX_NUM_LEAVES,
            ebx: XEN_CPUID_SIGNATURE_EBX,
            ecx: XEN_CPUID_SIGNATURE_ECX,
            edx: XEN_CPUID_SIGNATURE_EDX,
        },
        1 => CpuidResult {
            eax: xen_version_word(),
            ..EMPTY
        },
        2 => CpuidResult {
            eax: 1,
            ebx: XEN_HYPERCALL_PAGE_MSR,
            ..EMPTY
        },
        3 if subleaf == 0 => CpuidResult {
            ecx: tsc_khz,
            ..EMPTY
        },
        3 if subleaf == 2 => CpuidResult {
            eax: tsc_khz,
            ..EMPTY
        },
        3 => EMPTY,
        4 if subleaf == 0 => CpuidResult {
            eax: FERROVISOR_HVM_CPUID_FEATURES,
            ebx: vcpu_id,
            ..EMPTY
        },
        4 | 5 => EMPTY,
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(r: &CpuidResult) -> [u8; 12] {
        let mut s = [0u8; 12];
        s[..4].copy_from_slice(&r.ebx.to_le_bytes());
        s[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        s[8..].copy_from_slice(&r.edx.to_le_bytes());
        s
    }

    #[test]
    fn base_leaf_signature_and_limit() {
        let r = xen_leaf(0x4000_0000, 0, 0, 0).unwrap();
        assert_eq!(&signature(&r), b"XenVMMXenVMM");
        assert_eq!(r.eax, 0x4000_0005);
    }

    #[test]
    fn version_and_hypercall_leaves() {
        let v = xen_leaf(0x4000_0001, 0, 0, 0).unwrap();
        assert_eq!((v.eax, v.ebx, v.ecx, v.edx), (0x0004_0011, 0, 0, 0));
        let h = xen_leaf(0x4000_0002, 0, 0, 0).unwrap();
        assert_eq!((h.eax, h.ebx, h.ecx, h.edx), (1, 0x4000_0000, 0, 0));
    }

    #[test]
    fn hvm_leaf_reports_vcpu_id() {
        let r = xen_leaf(0x4000_0004, 0, 7, 0).unwrap();
        assert_eq!(r.eax, XEN_HVM_CPUID_VCPU_ID_PRESENT);
        assert_eq!(r.ebx, 7);
        assert_eq!(r.ecx, 0);
        let r = xen_leaf(0x4000_0004, 1, 7, 0).unwrap();
        assert_eq!((r.eax, r.ebx), (0, 0));
    }

    #[test]
    fn time_leaf_gives_the_tsc_frequency_and_others_are_absent() {
        let r = xen_leaf(0x4000_0003, 0, 1, 2_600_000).unwrap();
        assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (0, 0, 2_600_000, 0));
        let r = xen_leaf(0x4000_0003, 1, 1, 2_600_000).unwrap();
        assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (0, 0, 0, 0));
        let r = xen_leaf(0x4000_0003, 2, 1, 2_600_000).unwrap();
        assert_eq!((r.eax, r.ebx, r.ecx, r.edx), (2_600_000, 0, 0, 0));
        assert!(xen_leaf(0x4000_0005, 0, 0, 0).is_some());
        assert!(xen_leaf(0x4000_0006, 0, 0, 0).is_none());
        assert!(xen_leaf(0x4000_0100, 0, 0, 0).is_none());
        assert!(xen_leaf(0x3FFF_FFFF, 0, 0, 0).is_none());
        assert!(xen_leaf(0, 0, 0, 0).is_none());
    }

    #[test]
    fn hvm_feature_bits_match_header() {
        assert_eq!(XEN_HVM_CPUID_X2APIC_VIRT, 0x2);
        assert_eq!(XEN_HVM_CPUID_VCPU_ID_PRESENT, 0x8);
        assert_eq!(XEN_HVM_CPUID_UPCALL_VECTOR, 0x40);
    }

    #[test]
    fn hypercall_page_msr_decoding() {
        assert_eq!(hypercall_page_gpa(0x12_3000), Some(0x12_3000));
        assert_eq!(hypercall_page_gpa(0x12_3001), None);
    }
}
