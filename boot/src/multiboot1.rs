//! Multiboot 0.6.96 boot information (spec §3.3 "Boot information format").
//!
//! Field offsets in the info block (all little-endian `u32`):
//!
//! | offset | field              | valid if flags bit |
//! |--------|--------------------|--------------------|
//! | 0      | `flags`            | always             |
//! | 16     | `cmdline`          | 2                  |
//! | 20/24  | `mods_count/addr`  | 3                  |
//! | 44/48  | `mmap_length/addr` | 6                  |
//! | 64     | `boot_loader_name` | 9                  |
//!
//! The whole block, as defined by the spec, is 116 bytes (it ends with the
//! framebuffer fields at offsets 88..116).

use crate::info::{BootError, BootInfo, BootProtocol, MemoryKind, MemoryRegion, Module};
use crate::memory_map::{self, RawMap};
use crate::phys::{PhysMemory, cstr, le_u32, le_u64, read, to_bounded};

const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const FLAG_BOOT_LOADER_NAME: u32 = 1 << 9;

const OFF_CMDLINE: usize = 16;
const OFF_MODS_COUNT: usize = 20;
const OFF_MODS_ADDR: usize = 24;
const OFF_MMAP_LENGTH: usize = 44;
const OFF_MMAP_ADDR: usize = 48;
const OFF_BOOT_LOADER_NAME: usize = 64;

/// Bytes we read: everything up to and including `mmap_addr`, or up to
/// `boot_loader_name` when flags bit 9 says it is valid. We do not read
/// further so that a loader that only fills the fields it flags still works.
const READ_LEN_BASE: usize = OFF_MMAP_ADDR + 4;
const READ_LEN_WITH_NAME: usize = OFF_BOOT_LOADER_NAME + 4;
/// Size of the info block per spec §3.3; recorded in full as a boot
/// structure since the loader reserved that much.
const INFO_SIZE: u64 = 116;

/// A module list entry (§3.3): `mod_start`, `mod_end`, `string`, `reserved`.
const MOD_ENTRY_SIZE: usize = 16;
/// A memory map entry (§3.3) after its `size` field: `base_addr` (u64),
/// `length` (u64), `type` (u32). `size` may be larger, never smaller.
const MMAP_ENTRY_MIN: u32 = 20;

const WHAT_INFO: &str = "multiboot1 information block";
const WHAT_MMAP: &str = "multiboot1 memory map";
const WHAT_MODS: &str = "multiboot1 module list";

/// Parses the multiboot1 information block at `info_paddr` (EBX).
pub(crate) fn parse<M: PhysMemory + ?Sized>(
    info_paddr: u64,
    mem: &M,
    info: &mut BootInfo,
) -> Result<(), BootError> {
    info.reset(BootProtocol::Multiboot1);

    let flags = le_u32(read(mem, WHAT_INFO, info_paddr, 4)?, 0);
    let len = if flags & FLAG_BOOT_LOADER_NAME != 0 {
        READ_LEN_WITH_NAME
    } else {
        READ_LEN_BASE
    };
    let block = read(mem, WHAT_INFO, info_paddr, len)?;
    info.add_structure(info_paddr, INFO_SIZE)?;

    // Deliberately no fallback to mem_lower/mem_upper (flags bit 0): they
    // describe only conventional and first-extended memory, with no holes or
    // ACPI regions. A hypervisor must know exactly what it hands out.
    if flags & FLAG_MMAP == 0 {
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Multiboot1,
        });
    }
    let mmap_len = le_u32(block, OFF_MMAP_LENGTH);
    let mmap_addr = u64::from(le_u32(block, OFF_MMAP_ADDR));
    let mut raw = RawMap::new();
    parse_mmap(mem, mmap_addr, mmap_len as usize, &mut raw)?;
    info.add_structure(mmap_addr, u64::from(mmap_len))?;
    memory_map::normalise(&raw, &mut info.memory_map)?;
    if info.memory_map.is_empty() {
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Multiboot1,
        });
    }

    if flags & FLAG_CMDLINE != 0 {
        let paddr = u64::from(le_u32(block, OFF_CMDLINE));
        if let Some(s) = cstr(mem, info, "multiboot1 command line", paddr)? {
            info.cmdline = to_bounded("command line", s);
        }
    }

    if flags & FLAG_MODS != 0 {
        parse_modules(mem, info, block)?;
    }

    if flags & FLAG_BOOT_LOADER_NAME != 0 {
        let paddr = u64::from(le_u32(block, OFF_BOOT_LOADER_NAME));
        if let Some(s) = cstr(mem, info, "multiboot1 boot loader name", paddr)? {
            info.bootloader = Some(to_bounded("boot loader name", s));
        }
    }

    // Multiboot1 has no ACPI pointer; the ACPI code scans the BIOS areas.
    info.rsdp = None;
    Ok(())
}

/// Walks the memory map buffer (§3.3): each entry starts with a `size`
/// field that does not count itself, so the next entry is `size + 4` bytes
/// further on.
fn parse_mmap<M: PhysMemory + ?Sized>(
    mem: &M,
    paddr: u64,
    len: usize,
    raw: &mut RawMap,
) -> Result<(), BootError> {
    let buf = read(mem, WHAT_MMAP, paddr, len)?;
    let mut off = 0usize;
    while off < len {
        let entry_paddr = paddr + off as u64;
        let malformed = |detail| BootError::Malformed {
            what: WHAT_MMAP,
            paddr: entry_paddr,
            detail,
        };
        if len - off < 4 {
            return Err(malformed(
                "trailing bytes too short for an entry's size field",
            ));
        }
        let size = le_u32(buf, off);
        if size < MMAP_ENTRY_MIN {
            return Err(malformed("entry size field is smaller than 20 bytes"));
        }
        let body = off + 4;
        if size as usize > len - body {
            return Err(malformed("entry runs past mmap_length"));
        }
        let region = MemoryRegion {
            start: le_u64(buf, body),
            len: le_u64(buf, body + 8),
            kind: MemoryKind::from_e820(le_u32(buf, body + 16)),
        };
        memory_map::push_raw(raw, region, WHAT_MMAP, entry_paddr)?;
        off = body + size as usize;
    }
    Ok(())
}

/// Reads the module list (§3.3, flags bit 3).
fn parse_modules<M: PhysMemory + ?Sized>(
    mem: &M,
    info: &mut BootInfo,
    block: &[u8],
) -> Result<(), BootError> {
    let count = le_u32(block, OFF_MODS_COUNT) as usize;
    let addr = u64::from(le_u32(block, OFF_MODS_ADDR));
    if count > crate::info::MAX_MODULES {
        return Err(BootError::TooMany {
            what: "boot modules",
            limit: crate::info::MAX_MODULES,
        });
    }
    let list = read(mem, WHAT_MODS, addr, count * MOD_ENTRY_SIZE)?;
    info.add_structure(addr, list.len() as u64)?;
    for (i, e) in list.chunks_exact(MOD_ENTRY_SIZE).enumerate() {
        let start = u64::from(le_u32(e, 0));
        let end = u64::from(le_u32(e, 4));
        if end < start {
            return Err(BootError::Malformed {
                what: WHAT_MODS,
                paddr: addr + (i * MOD_ENTRY_SIZE) as u64,
                detail: "module end address is below its start address",
            });
        }
        let mut module = Module {
            start,
            end,
            ..Module::default()
        };
        let string = u64::from(le_u32(e, 8));
        if let Some(s) = cstr(mem, info, "multiboot1 module string", string)? {
            module.cmdline = to_bounded("module command line", s);
        }
        info.add_module(module)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::PhysRange;
    use crate::test_mem::{Bytes, TestMem};
    use crate::{EntryPath, MULTIBOOT1_MAGIC, parse as parse_entry};

    const INFO: u64 = 0x9000;

    fn parse(paddr: u64, mem: &TestMem) -> Result<BootInfo, BootError> {
        // Parsing must overwrite whatever was there before.
        let mut info = crate::test_mem::dirty_info();
        super::parse(paddr, mem, &mut info).map(|()| info)
    }
    const MMAP: u64 = 0x9100;
    const MODS: u64 = 0x9200;
    const STRINGS: u64 = 0x9300;

    fn mmap_entry(b: Bytes, size: u32, base: u64, len: u64, typ: u32) -> Bytes {
        let b = b.u32(size).u64(base).u64(len).u32(typ);
        // Extra bytes of a larger-than-minimum entry.
        b.raw(&vec![0xee; size as usize - 20])
    }

    /// A QEMU-like info block: e820 map with an overlap, two modules,
    /// command line with the image path, loader name.
    fn build(flags: u32, mmap: &[u8], mods_count: u32) -> TestMem {
        let mut info = Bytes::new().raw(&[0; 116]);
        info.put_u32(0, flags);
        info.put_u32(4, 639); // mem_lower: must be ignored
        info.put_u32(8, 0x1_0000); // mem_upper: must be ignored
        info.put_u32(16, STRINGS as u32);
        info.put_u32(20, mods_count);
        info.put_u32(24, MODS as u32);
        info.put_u32(44, mmap.len() as u32);
        info.put_u32(48, MMAP as u32);
        info.put_u32(64, STRINGS as u32 + 0x90);

        let mods = Bytes::new()
            .u32(0x20_0000)
            .u32(0x28_0000)
            .u32(STRINGS as u32 + 0x40)
            .u32(0)
            .u32(0x28_0000)
            .u32(0x28_1234)
            .u32(STRINGS as u32 + 0x70)
            .u32(0);

        let mut strings = vec![0u8; 0x100];
        let mut put = |off: usize, s: &[u8]| {
            strings[off..off + s.len()].copy_from_slice(s);
        };
        put(0, b"/boot/ferrovisor.elf loglvl=debug selftest=boot\0");
        put(0x40, b"/guests/linux.bzImage console=hvc0 quiet\0");
        put(0x70, b"initrd.img\0");
        put(0x90, b"qemu\0");

        let mut m = TestMem::new();
        m.add(INFO, &info.0);
        m.add(MMAP, mmap);
        m.add(MODS, &mods.0);
        m.add(STRINGS, &strings);
        m
    }

    fn qemu_mmap() -> Vec<u8> {
        let b = mmap_entry(Bytes::new(), 20, 0, 0x9_fc00, 1);
        let b = mmap_entry(b, 20, 0x9_fc00, 0x400, 2);
        let b = mmap_entry(b, 20, 0xf_0000, 0x1_0000, 2);
        let b = mmap_entry(b, 28, 0x10_0000, 0x7ee_0000, 1); // bigger entry
        let b = mmap_entry(b, 20, 0x7fe_0000, 0x2_0000, 3);
        let b = mmap_entry(b, 20, 0x7ff_0000, 0x1_0000, 4); // overlaps the ACPI entry
        let b = mmap_entry(b, 20, 0xfffc_0000, 0x4_0000, 2);
        b.0
    }

    const ALL: u32 = FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | FLAG_BOOT_LOADER_NAME | 1;

    #[test]
    fn full_info() {
        let mmap = qemu_mmap();
        let mem = build(ALL, &mmap, 2);
        let info = parse_entry(EntryPath::Multiboot, MULTIBOOT1_MAGIC, INFO as u32, &mem).unwrap();
        assert_eq!(info.protocol, BootProtocol::Multiboot1);
        let r = |start, len, kind| MemoryRegion { start, len, kind };
        assert_eq!(
            info.memory_map.as_slice(),
            &[
                r(0, 0x9_fc00, MemoryKind::Usable),
                r(0x9_fc00, 0x400, MemoryKind::Reserved),
                r(0xf_0000, 0x1_0000, MemoryKind::Reserved),
                r(0x10_0000, 0x7ee_0000, MemoryKind::Usable),
                r(0x7fe_0000, 0x1_0000, MemoryKind::AcpiReclaimable),
                r(0x7ff_0000, 0x1_0000, MemoryKind::AcpiNvs),
                r(0xfffc_0000, 0x4_0000, MemoryKind::Reserved),
            ]
        );
        assert_eq!(info.usable_bytes(), 0x9_fc00 + 0x7ee_0000);
        assert_eq!(info.ram_bytes(), 0x9_fc00 + 0x7ee_0000 + 0x2_0000);
        assert_eq!(
            info.cmdline,
            "/boot/ferrovisor.elf loglvl=debug selftest=boot"
        );
        assert_eq!(info.bootloader.unwrap(), "qemu");
        assert_eq!(info.rsdp, None);

        assert_eq!(info.modules.len(), 2);
        let m0 = &info.modules[0];
        assert_eq!((m0.start, m0.end), (0x20_0000, 0x28_0000));
        assert_eq!(m0.name(), "/guests/linux.bzImage");
        assert_eq!(m0.args(), "console=hvc0 quiet");
        let m1 = &info.modules[1];
        assert_eq!((m1.start, m1.end), (0x28_0000, 0x28_1234));
        assert_eq!(m1.name(), "initrd.img");
        assert_eq!(m1.args(), "");

        let covered = |start: u64, len: u64| {
            let want = PhysRange {
                start,
                end: start + len,
            };
            info.boot_structures.iter().any(|r| r.contains_range(&want))
        };
        assert!(covered(INFO, 116));
        assert!(covered(MMAP, mmap.len() as u64));
        assert!(covered(MODS, 32));
        assert!(covered(STRINGS, 48)); // cmdline + NUL
        assert!(covered(STRINGS + 0x40, 41));
        assert!(covered(STRINGS + 0x70, 11));
        assert!(covered(STRINGS + 0x90, 5));
        // Nothing beyond what the structures occupy.
        let total: u64 = info.boot_structures.iter().map(PhysRange::len).sum();
        assert_eq!(total, 116 + mmap.len() as u64 + 32 + 48 + 41 + 11 + 5);
    }

    #[test]
    fn optional_fields_absent() {
        let mmap = qemu_mmap();
        let mem = build(FLAG_MMAP, &mmap, 2);
        let info = parse(INFO, &mem).unwrap();
        assert!(info.cmdline.is_empty());
        assert!(info.modules.is_empty());
        assert!(info.bootloader.is_none());
        assert_eq!(info.boot_structures.len(), 2);
    }

    #[test]
    fn no_mmap_flag_is_an_error() {
        let mem = build(ALL & !FLAG_MMAP, &qemu_mmap(), 2);
        let err = parse(INFO, &mem).unwrap_err();
        assert_eq!(
            err,
            BootError::NoMemoryMap {
                protocol: BootProtocol::Multiboot1
            }
        );
        assert!(err.to_string().contains("no memory map"));
    }

    #[test]
    fn empty_mmap_is_no_memory_map() {
        let mem = build(ALL, &[], 0);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::NoMemoryMap { .. })
        ));
    }

    #[test]
    fn mmap_entry_size_too_small() {
        let mut mmap = qemu_mmap();
        mmap[24] = 16; // second entry's size field
        let mem = build(ALL, &mmap, 2);
        assert_eq!(
            parse(INFO, &mem),
            Err(BootError::Malformed {
                what: WHAT_MMAP,
                paddr: MMAP + 24,
                detail: "entry size field is smaller than 20 bytes",
            })
        );
    }

    #[test]
    fn mmap_entry_past_length() {
        let mmap = qemu_mmap();
        // Claim a length that cuts the last entry in half.
        let mem = build(ALL, &mmap[..mmap.len() - 10], 2);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::Malformed {
                detail: "entry runs past mmap_length",
                ..
            })
        ));
        let mem = build(ALL, &mmap[..mmap.len() - 22], 2);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::Malformed {
                detail: "trailing bytes too short for an entry's size field",
                ..
            })
        ));
    }

    #[test]
    fn mmap_entry_wraps() {
        let mmap = mmap_entry(Bytes::new(), 20, u64::MAX - 5, 0x10, 1).0;
        let mem = build(ALL, &mmap, 0);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::Malformed { paddr: MMAP, .. })
        ));
    }

    #[test]
    fn unreadable_structures() {
        // Info block itself.
        let mem = TestMem::new();
        assert_eq!(
            parse(INFO, &mem),
            Err(BootError::Unreadable {
                what: WHAT_INFO,
                paddr: INFO,
                len: 4
            })
        );
        // mmap_length larger than the readable buffer.
        let mmap = qemu_mmap();
        let mut mem = build(ALL, &mmap, 2);
        let mut info = Bytes::new().raw(mem.bytes(INFO, 116).unwrap());
        info.put_u32(44, mmap.len() as u32 + 4);
        mem.add(0x5000, &info.0);
        assert_eq!(
            parse(0x5000, &mem),
            Err(BootError::Unreadable {
                what: WHAT_MMAP,
                paddr: MMAP,
                len: mmap.len() + 4
            })
        );
        // Module list of 3 where only 2 entries exist.
        let mem = build(ALL, &mmap, 3);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::Unreadable {
                what: WHAT_MODS,
                paddr: MODS,
                len: 48
            })
        ));
    }

    #[test]
    fn too_many_modules() {
        let mem = build(ALL, &qemu_mmap(), 33);
        assert_eq!(
            parse(INFO, &mem),
            Err(BootError::TooMany {
                what: "boot modules",
                limit: 32
            })
        );
    }

    #[test]
    fn module_end_before_start() {
        let mut mem = build(ALL, &qemu_mmap(), 1);
        let bad = Bytes::new().u32(0x30_0000).u32(0x20_0000).u32(0).u32(0);
        mem.add(0x7000, &bad.0);
        let mut info = Bytes::new().raw(mem.bytes(INFO, 116).unwrap());
        info.put_u32(24, 0x7000);
        mem.add(0x5000, &info.0);
        assert!(matches!(
            parse(0x5000, &mem),
            Err(BootError::Malformed {
                what: WHAT_MODS,
                paddr: 0x7000,
                ..
            })
        ));
    }

    #[test]
    fn unterminated_cmdline() {
        let mut mem = build(ALL, &qemu_mmap(), 0);
        mem.add(0x40_0000, &[b'x'; 5000]);
        let mut info = Bytes::new().raw(mem.bytes(INFO, 116).unwrap());
        info.put_u32(16, 0x40_0000);
        mem.add(0x5000, &info.0);
        assert_eq!(
            parse(0x5000, &mem),
            Err(BootError::Malformed {
                what: "multiboot1 command line",
                paddr: 0x40_0000,
                detail: "string is not NUL-terminated within 4096 bytes",
            })
        );
    }

    #[test]
    fn non_utf8_cmdline_is_replaced() {
        let mut mem = build(ALL, &qemu_mmap(), 0);
        mem.add(0x40_0000, b"loglvl=info \xff\xfe end\0");
        let mut info = Bytes::new().raw(mem.bytes(INFO, 116).unwrap());
        info.put_u32(16, 0x40_0000);
        mem.add(0x5000, &info.0);
        let info = parse(0x5000, &mem).unwrap();
        assert_eq!(info.cmdline, "loglvl=info ?? end");
    }
}
