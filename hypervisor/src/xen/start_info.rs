//! The PVH start-of-day structures (`xen/include/public/arch-x86/hvm/start_info.h`).
//!
//! A PVH guest is entered in 32-bit protected mode with paging off and EBX holding the
//! guest-physical address of an [`HvmStartInfo`]. Everything it points to (module list,
//! command lines, memory map) is also guest-physical, and nothing is ever placed at
//! physical address 0, so 0 in an address field means "absent". All fields are
//! little-endian; Xen places all this data below 4 GiB.

use core::mem::{offset_of, size_of};

use crate::guest_memory::abi::impl_guest_abi;

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of the "E" set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// The `hvm_start_info` version this hypervisor writes: 1, which adds the memory map
/// fields. Versions are backwards compatible; a version-0 reader ignores the tail.
pub const HVM_START_INFO_VERSION: u32 = 1;

/// `XEN_HVM_MEMMAP_TYPE_*`: memory map entry types, the ACPI address range types
/// (ACPI 6.2 section 15).
pub mod memmap_type {
    /// `XEN_HVM_MEMMAP_TYPE_RAM`.
    pub const RAM: u32 = 1;
    /// `XEN_HVM_MEMMAP_TYPE_RESERVED`.
    pub const RESERVED: u32 = 2;
    /// `XEN_HVM_MEMMAP_TYPE_ACPI` (ACPI reclaimable).
    pub const ACPI: u32 = 3;
    /// `XEN_HVM_MEMMAP_TYPE_NVS` (ACPI NVS).
    pub const NVS: u32 = 4;
    /// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`.
    pub const UNUSABLE: u32 = 5;
    /// `XEN_HVM_MEMMAP_TYPE_DISABLED`.
    pub const DISABLED: u32 = 6;
    /// `XEN_HVM_MEMMAP_TYPE_PMEM` (persistent memory).
    pub const PMEM: u32 = 7;
}

/// `SIF_*` flags of [`HvmStartInfo::flags`] (`public/xen.h`, shared with the PV
/// `start_info`).
pub mod sif {
    /// `SIF_PRIVILEGED`: the domain is privileged.
    pub const PRIVILEGED: u32 = 1 << 0;
    /// `SIF_INITDOMAIN`: the domain is the initial control domain.
    pub const INITDOMAIN: u32 = 1 << 1;
    /// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module (PV).
    pub const MULTIBOOT_MOD: u32 = 1 << 2;
    /// `SIF_MOD_START_PFN`: `mod_start` is a PFN (PV).
    pub const MOD_START_PFN: u32 = 1 << 3;
    /// `SIF_VIRT_P2M_4TOOLS`: tools understand a virtually mapped P2M (PV).
    pub const VIRT_P2M_4TOOLS: u32 = 1 << 4;
    /// `SIF_PM_MASK`: one byte reserved for xen-pm options.
    pub const PM_MASK: u32 = 0xFF << 8;
}

/// `struct hvm_start_info` (version 1). Size 56.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Version of this structure ([`HVM_START_INFO_VERSION`]).
    pub version: u32,
    /// `SIF_*` flags ([`sif`]).
    pub flags: u32,
    /// Number of entries in the module list.
    pub nr_modules: u32,
    /// Guest-physical address of an array of [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Guest-physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Guest-physical address of an array of [`HvmMemmapTableEntry`] (version 1).
    pub memmap_paddr: u64,
    /// Number of memory map entries; 0 if no map is provided (version 1).
    pub memmap_entries: u32,
    /// Must be zero (version 1).
    pub reserved: u32,
}
impl_guest_abi!(HvmStartInfo {
    magic,
    version,
    flags,
    nr_modules,
    modlist_paddr,
    cmdline_paddr,
    rsdp_paddr,
    memmap_paddr,
    memmap_entries,
    reserved,
});
const _: () = assert!(size_of::<HvmStartInfo>() == 56);
const _: () = assert!(offset_of!(HvmStartInfo, version) == 4);
const _: () = assert!(offset_of!(HvmStartInfo, flags) == 8);
const _: () = assert!(offset_of!(HvmStartInfo, nr_modules) == 12);
const _: () = assert!(offset_of!(HvmStartInfo, modlist_paddr) == 16);
const _: () = assert!(offset_of!(HvmStartInfo, cmdline_paddr) == 24);
const _: () = assert!(offset_of!(HvmStartInfo, rsdp_paddr) == 32);
const _: () = assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
const _: () = assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
const _: () = assert!(offset_of!(HvmStartInfo, reserved) == 52);

/// `struct hvm_modlist_entry`. Size 32.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvmModlistEntry {
    /// Guest-physical address of the module.
    pub paddr: u64,
    /// Size of the module in bytes.
    pub size: u64,
    /// Guest-physical address of the module's NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}
impl_guest_abi!(HvmModlistEntry {
    paddr,
    size,
    cmdline_paddr,
    reserved
});
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);
const _: () = assert!(offset_of!(HvmModlistEntry, size) == 8);
const _: () = assert!(offset_of!(HvmModlistEntry, cmdline_paddr) == 16);
const _: () = assert!(offset_of!(HvmModlistEntry, reserved) == 24);

/// `struct hvm_memmap_table_entry`. Size 24.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HvmMemmapTableEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// A [`memmap_type`] value.
    pub type_: u32,
    /// Must be zero (version 1).
    pub reserved: u32,
}
impl_guest_abi!(HvmMemmapTableEntry {
    addr,
    size,
    type_,
    reserved
});
const _: () = assert!(size_of::<HvmMemmapTableEntry>() == 24);
const _: () = assert!(offset_of!(HvmMemmapTableEntry, size) == 8);
const _: () = assert!(offset_of!(HvmMemmapTableEntry, type_) == 16);
const _: () = assert!(offset_of!(HvmMemmapTableEntry, reserved) == 20);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory::GuestAbi;

    #[test]
    fn magic_is_xen3_with_high_bit() {
        // "xEn3" little-endian with 0x80 set on the 'E' (0x45 | 0x80 = 0xC5).
        assert_eq!(
            XEN_HVM_START_MAGIC_VALUE.to_le_bytes(),
            [b'x', b'E' | 0x80, b'n', b'3']
        );
    }

    #[test]
    fn start_info_bytes() {
        let info = HvmStartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: HVM_START_INFO_VERSION,
            flags: 0,
            nr_modules: 1,
            modlist_paddr: 0x1000,
            cmdline_paddr: 0x2000,
            rsdp_paddr: 0xE_0000,
            memmap_paddr: 0x3000,
            memmap_entries: 4,
            reserved: 0,
        };
        let b = info.to_bytes();
        assert_eq!(&b[0..4], &[0x78, 0xC5, 0x6E, 0x33]);
        assert_eq!(&b[4..8], &[1, 0, 0, 0]);
        assert_eq!(&b[12..16], &[1, 0, 0, 0]);
        assert_eq!(&b[16..24], &0x1000u64.to_le_bytes());
        assert_eq!(&b[40..48], &0x3000u64.to_le_bytes());
        assert_eq!(&b[48..52], &[4, 0, 0, 0]);
        assert_eq!(HvmStartInfo::from_bytes(&b), info);
    }

    #[test]
    fn memmap_entry_bytes() {
        let e = HvmMemmapTableEntry {
            addr: 0x10_0000,
            size: 0x7FF0_0000,
            type_: memmap_type::RAM,
            reserved: 0,
        };
        let b = e.to_bytes();
        assert_eq!(&b[16..24], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(HvmMemmapTableEntry::from_bytes(&b), e);
        assert_eq!(memmap_type::PMEM, 7);
        assert_eq!(sif::PM_MASK, 0xFF00);
    }
}
