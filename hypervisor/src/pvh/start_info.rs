//! `hvm_start_info` version 1 and what it points at, laid out in one 4 KiB page the
//! domain builder copies into guest memory. The structures are the typed, asserted ones in
//! `crate::xen::start_info` (Xen
//! `xen/include/public/arch-x86/hvm/start_info.h`).
//!
//! Page layout: 0x000 `hvm_start_info` (56 bytes); 0x040 the memory map (up to 8
//! `hvm_memmap_table_entry`, 24 bytes each); 0x100 the module list (up to 4
//! `hvm_modlist_entry`, 32 bytes each); 0x200 the command line, NUL-terminated
//! (up to 3583 bytes).

use crate::guest_memory::GuestAbi;
use crate::xen::start_info::{
    HVM_START_INFO_VERSION, HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo,
    XEN_HVM_START_MAGIC_VALUE, memmap_type,
};

/// `XEN_HVM_MEMMAP_TYPE_RAM` / `_RESERVED` (the E820 numbering).
pub const E820_RAM: u32 = memmap_type::RAM;
pub const E820_RESERVED: u32 = memmap_type::RESERVED;

const MEMMAP_OFFSET: usize = 0x40;
const MEMMAP_ENTRY: usize = core::mem::size_of::<HvmMemmapTableEntry>();
const MAX_MEMMAP: usize = 8;
const MODLIST_OFFSET: usize = 0x100;
const MODLIST_ENTRY: usize = core::mem::size_of::<HvmModlistEntry>();
const MAX_MODULES: usize = 4;
const CMDLINE_OFFSET: usize = 0x200;
const PAGE: usize = 4096;

/// What the guest should be told.
#[derive(Clone, Copy, Debug)]
pub struct StartInfoRequest<'a> {
    /// Guest RAM is `[0, ram_end)`.
    pub ram_end: u64,
    /// Guest-physical address of the start-info page (4 KiB, inside RAM); the map marks
    /// `[reserved_start, ram_end)` reserved so the guest leaves it alone.
    pub reserved_start: u64,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// Modules already placed in guest memory: (gpa, size).
    pub modules: &'a [(u64, u64)],
}

/// The filled page and where it goes.
#[derive(Clone, Debug)]
pub struct StartInfoLayout {
    /// The page to copy to `gpa`.
    pub page: [u8; PAGE],
    /// Guest-physical address of `hvm_start_info` (what EBX gets).
    pub gpa: u64,
}

/// Copies `value`'s ABI encoding into `page` at `offset`.
fn put<T: GuestAbi>(page: &mut [u8], offset: usize, value: &T) {
    let bytes = value.to_bytes();
    let bytes = bytes.as_ref();
    page[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// Builds the start-info page. Errors name what does not fit.
pub fn build_start_info(request: &StartInfoRequest<'_>) -> Result<StartInfoLayout, &'static str> {
    let base = request.reserved_start;
    if !base.is_multiple_of(PAGE as u64)
        || base
            .checked_add(PAGE as u64)
            .is_none_or(|end| end > request.ram_end)
    {
        return Err("the start-info page must be a page inside guest RAM");
    }
    if request.cmdline.len() >= PAGE - CMDLINE_OFFSET || request.cmdline.contains('\0') {
        return Err("the command line is too long or contains NUL");
    }
    if request.modules.len() > MAX_MODULES {
        return Err("too many modules for the start-info page");
    }
    let mut page = [0u8; PAGE];
    // Memory map: RAM below the reserved area, the reserved area itself.
    let map = [
        (0, base, E820_RAM),
        (base, request.ram_end - base, E820_RESERVED),
    ];
    let entries: usize = map.iter().filter(|m| m.1 > 0).count();
    debug_assert!(entries <= MAX_MEMMAP);
    for (i, &(addr, size, type_)) in map.iter().filter(|m| m.1 > 0).enumerate() {
        let entry = HvmMemmapTableEntry {
            addr,
            size,
            type_,
            reserved: 0,
        };
        put(&mut page, MEMMAP_OFFSET + i * MEMMAP_ENTRY, &entry);
    }
    for (i, &(paddr, size)) in request.modules.iter().enumerate() {
        let entry = HvmModlistEntry {
            paddr,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        put(&mut page, MODLIST_OFFSET + i * MODLIST_ENTRY, &entry);
    }
    page[CMDLINE_OFFSET..CMDLINE_OFFSET + request.cmdline.len()]
        .copy_from_slice(request.cmdline.as_bytes());
    let info = HvmStartInfo {
        magic: XEN_HVM_START_MAGIC_VALUE,
        // Version 1 carries the memory map.
        version: HVM_START_INFO_VERSION,
        flags: 0,
        nr_modules: request.modules.len() as u32,
        modlist_paddr: if request.modules.is_empty() {
            0
        } else {
            base + MODLIST_OFFSET as u64
        },
        cmdline_paddr: base + CMDLINE_OFFSET as u64,
        // No ACPI tables for PVH guests yet.
        rsdp_paddr: 0,
        memmap_paddr: base + MEMMAP_OFFSET as u64,
        memmap_entries: entries as u32,
        reserved: 0,
    };
    put(&mut page, 0, &info);
    Ok(StartInfoLayout { page, gpa: base })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(p: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(p[o..o + 4].try_into().unwrap())
    }
    fn u64_at(p: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(p[o..o + 8].try_into().unwrap())
    }

    #[test]
    fn layout_matches_start_info_h() {
        let req = StartInfoRequest {
            ram_end: 16 << 20,
            reserved_start: (16 << 20) - 4096,
            cmdline: "console=hvc0",
            modules: &[(0x80_0000, 1234)],
        };
        let l = build_start_info(&req).unwrap();
        let p = &l.page;
        assert_eq!(l.gpa, (16 << 20) - 4096);
        assert_eq!(u32_at(p, 0), 0x336e_c578);
        assert_eq!(u32_at(p, 4), 1);
        assert_eq!(u32_at(p, 12), 1);
        assert_eq!(u64_at(p, 16), l.gpa + 0x100);
        assert_eq!(u64_at(p, 24), l.gpa + 0x200);
        assert_eq!(&p[0x200..0x20d], b"console=hvc0\0");
        assert_eq!(u64_at(p, 40), l.gpa + 0x40);
        assert_eq!(u32_at(p, 48), 2);
        assert_eq!(
            (u64_at(p, 0x40), u64_at(p, 0x48), u32_at(p, 0x50)),
            (0, l.gpa, E820_RAM)
        );
        assert_eq!(
            (u64_at(p, 0x58), u64_at(p, 0x60), u32_at(p, 0x68)),
            (l.gpa, 4096, E820_RESERVED)
        );
        assert_eq!((u64_at(p, 0x100), u64_at(p, 0x108)), (0x80_0000, 1234));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let long = "x".repeat(4000);
        let bad = [
            StartInfoRequest {
                ram_end: 1 << 20,
                reserved_start: 1 << 20,
                cmdline: "",
                modules: &[],
            },
            StartInfoRequest {
                ram_end: 1 << 20,
                reserved_start: 123,
                cmdline: "",
                modules: &[],
            },
            StartInfoRequest {
                ram_end: 1 << 20,
                reserved_start: 0x8000,
                cmdline: &long,
                modules: &[],
            },
            StartInfoRequest {
                ram_end: 1 << 20,
                reserved_start: 0x8000,
                cmdline: "a\0b",
                modules: &[],
            },
            StartInfoRequest {
                ram_end: 1 << 20,
                reserved_start: 0x8000,
                cmdline: "",
                modules: &[(0, 1); 5],
            },
        ];
        for request in bad {
            assert!(build_start_info(&request).is_err());
        }
    }
}
