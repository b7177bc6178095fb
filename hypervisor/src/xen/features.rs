//! Feature flags reported by `XENVER_get_features` (`XENFEAT_*`,
//! `xen/include/public/features.h`).
//!
//! The constants are bit *numbers* in submap 0, as in the header; [`feature_bit`] turns one
//! into a mask. Only one submap exists (`XENFEAT_NR_SUBMAPS` = 1): any other `submap_idx`
//! is answered with `-EINVAL` by Xen.

/// `XENFEAT_writable_page_tables`: the guest may write its page tables directly
/// (implied for any auto-translated guest, so PVH/HVM guests see it).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables` (PV).
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: the hypervisor translates guest-physical to machine
/// addresses (second-level paging), as for every PVH/HVM guest.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`: the guest kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb` (PV).
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad` (x86 PV).
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist` (x86 PV).
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits` (PV).
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`: event upcalls may be delivered on an IDT vector
/// (`HVM_PARAM_CALLBACK_IRQ` type "vector"), which PVH guests require.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`: the pvclock in `vcpu_time_info` is safe to use on HVM.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`: physical IRQs can be routed over event channels (HVM).
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`: the guest may run as the control domain.
pub const XENFEAT_DOM0: u32 = 11;
// 12 was XENFEAT_grant_map_identity; deprecated and commented out in the header.
/// `XENFEAT_memory_op_vnode_supported`: `XENMEMF_vnode` is honoured.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported` (Arm only).
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`: the ACPI RSDP may be anywhere (x86 PVH).
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// `XENFEAT_not_direct_mapped`: guest frames are not machine frames (gfn != mfn).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// `XENFEAT_direct_mapped`: gfn == mfn.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENFEAT_runstate_phys_area`: `VCPUOP_register_runstate_phys_area` is available.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// `XENFEAT_vcpu_time_phys_area`: `VCPUOP_register_vcpu_time_phys_area` is available.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// `XENFEAT_dm_msix_all_writes`: all MSI-X vector control writes go to the device model.
pub const XENFEAT_DM_MSIX_ALL_WRITES: u32 = 20;

/// `XENFEAT_NR_SUBMAPS`: number of 32-bit submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// The mask of feature `bit` in its submap.
pub const fn feature_bit(bit: u32) -> u32 {
    1 << bit
}

/// The submap 0 that Xen reports to a translated HVM/PVH domU without PIRQs
/// (`do_xen_version`, `XENVER_get_features`, in `xen/common/kernel.c`): writable page
/// tables and auto-translated physmap (paging is translated), the HVM callback vector and
/// safe pvclock, and not-direct-mapped. The hypercall handler starts from this and adds or
/// removes bits as interfaces are implemented.
pub const HVM_DOMU_FEATURES: u32 = feature_bit(XENFEAT_WRITABLE_PAGE_TABLES)
    | feature_bit(XENFEAT_AUTO_TRANSLATED_PHYSMAP)
    | feature_bit(XENFEAT_HVM_CALLBACK_VECTOR)
    | feature_bit(XENFEAT_HVM_SAFE_PVCLOCK)
    | feature_bit(XENFEAT_NOT_DIRECT_MAPPED);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_features_h() {
        assert_eq!(XENFEAT_AUTO_TRANSLATED_PHYSMAP, 2);
        assert_eq!(XENFEAT_HVM_CALLBACK_VECTOR, 8);
        assert_eq!(XENFEAT_HVM_SAFE_PVCLOCK, 9);
        assert_eq!(XENFEAT_LINUX_RSDP_UNRESTRICTED, 15);
        assert_eq!(XENFEAT_DM_MSIX_ALL_WRITES, 20);
        assert_eq!(HVM_DOMU_FEATURES, 0b1_0000_0011_0000_0101);
    }
}
