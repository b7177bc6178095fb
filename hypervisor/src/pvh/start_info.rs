//! `hvm_start_info` version 1 and what it points at, laid out in one 4 KiB page the
//! domain builder copies into guest memory (layouts: Xen
//! `xen/include/public/arch-x86/hvm/start_info.h`).
//!
//! Page layout: 0x000 `hvm_start_info` (56 bytes); 0x040 the memory map (up to 8
//! `hvm_memmap_table_entry`, 24 bytes each); 0x100 the module list (up to 4
//! `hvm_modlist_entry`, 32 bytes each); 0x200 the command line, NUL-terminated
//! (up to 3583 bytes).

/// `XEN_HVM_START_MAGIC_VALUE`.
const START_MAGIC: u32 = 0x336e_c578;
/// `XEN_HVM_MEMMAP_TYPE_RAM` / `_RESERVED` (the E820 numbering).
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

const MEMMAP_OFFSET: usize = 0x40;
const MEMMAP_ENTRY: usize = 24;
const MAX_MEMMAP: usize = 8;
const MODLIST_OFFSET: usize = 0x100;
const MODLIST_ENTRY: usize = 32;
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

fn put_u32(page: &mut [u8], offset: usize, value: u32) {
    page[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(page: &mut [u8], offset: usize, value: u64) {
    page[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
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
    for (i, (addr, size, kind)) in map.iter().filter(|m| m.1 > 0).enumerate() {
        let at = MEMMAP_OFFSET + i * MEMMAP_ENTRY;
        put_u64(&mut page, at, *addr);
        put_u64(&mut page, at + 8, *size);
        put_u32(&mut page, at + 16, *kind);
    }
    for (i, (gpa, size)) in request.modules.iter().enumerate() {
        let at = MODLIST_OFFSET + i * MODLIST_ENTRY;
        put_u64(&mut page, at, *gpa);
        put_u64(&mut page, at + 8, *size);
    }
    page[CMDLINE_OFFSET..CMDLINE_OFFSET + request.cmdline.len()]
        .copy_from_slice(request.cmdline.as_bytes());

    put_u32(&mut page, 0, START_MAGIC);
    put_u32(&mut page, 4, 1); // version 1: has the memory map
    put_u32(&mut page, 8, 0); // flags
    put_u32(&mut page, 12, request.modules.len() as u32);
    put_u64(
        &mut page,
        16,
        if request.modules.is_empty() {
            0
        } else {
            base + MODLIST_OFFSET as u64
        },
    );
    put_u64(&mut page, 24, base + CMDLINE_OFFSET as u64);
    put_u64(&mut page, 32, 0); // no ACPI tables for PVH test guests yet
    put_u64(&mut page, 40, base + MEMMAP_OFFSET as u64);
    put_u32(&mut page, 48, entries as u32);
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
