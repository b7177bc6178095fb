//! PVH direct boot: `struct hvm_start_info` from Xen's
//! `xen/include/public/arch-x86/hvm/start_info.h`.
//!
//! The structs below mirror the C layout (all fields little-endian) and
//! exist to pin that layout with compile-time asserts; the parser reads the
//! fields by copying bytes at those offsets, never by casting pointers, so
//! neither alignment nor validity of loader memory matters.

use core::mem::{offset_of, size_of};

use crate::info::{
    BootError, BootInfo, BootProtocol, MAX_MEMORY_REGIONS, MAX_MODULES, MemoryKind, MemoryRegion,
    Module,
};
use crate::memory_map::{self, RawMap};
use crate::phys::{PhysMemory, cstr, le_u32, le_u64, read, to_bounded};

/// `hvm_start_info` (`start_info.h`). Fields from `memmap_paddr` on exist
/// only if `version >= 1`.
#[repr(C)]
#[allow(dead_code)] // layout documentation only, see the module docs
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `hvm_modlist_entry` (`start_info.h`).
#[repr(C)]
#[allow(dead_code)] // layout documentation only
struct HvmModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// `hvm_memmap_table_entry` (`start_info.h`); `type` uses the e820 codes
/// (`XEN_HVM_MEMMAP_TYPE_RAM` = 1 ... `_PMEM` = 7).
#[repr(C)]
#[allow(dead_code)] // layout documentation only
struct HvmMemmapTableEntry {
    addr: u64,
    size: u64,
    typ: u32,
    reserved: u32,
}

const _: () = {
    assert!(offset_of!(HvmStartInfo, magic) == 0);
    assert!(offset_of!(HvmStartInfo, version) == 4);
    assert!(offset_of!(HvmStartInfo, flags) == 8);
    assert!(offset_of!(HvmStartInfo, nr_modules) == 12);
    assert!(offset_of!(HvmStartInfo, modlist_paddr) == 16);
    assert!(offset_of!(HvmStartInfo, cmdline_paddr) == 24);
    assert!(offset_of!(HvmStartInfo, rsdp_paddr) == 32);
    assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
    assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
    assert!(offset_of!(HvmStartInfo, reserved) == 52);
    assert!(size_of::<HvmStartInfo>() == 56);
    assert!(START_INFO_V0_LEN == offset_of!(HvmStartInfo, memmap_paddr));

    assert!(offset_of!(HvmModlistEntry, paddr) == 0);
    assert!(offset_of!(HvmModlistEntry, size) == 8);
    assert!(offset_of!(HvmModlistEntry, cmdline_paddr) == 16);
    assert!(size_of::<HvmModlistEntry>() == 32);

    assert!(offset_of!(HvmMemmapTableEntry, addr) == 0);
    assert!(offset_of!(HvmMemmapTableEntry, size) == 8);
    assert!(offset_of!(HvmMemmapTableEntry, typ) == 16);
    assert!(size_of::<HvmMemmapTableEntry>() == 24);
};

/// Size of a version 0 `hvm_start_info` (no memory map fields).
const START_INFO_V0_LEN: usize = 40;
const START_INFO_V1_LEN: usize = size_of::<HvmStartInfo>();
const MODLIST_ENTRY_LEN: usize = size_of::<HvmModlistEntry>();
const MEMMAP_ENTRY_LEN: usize = size_of::<HvmMemmapTableEntry>();

const WHAT_START_INFO: &str = "PVH hvm_start_info";
const WHAT_MODLIST: &str = "PVH module list";
const WHAT_MEMMAP: &str = "PVH memory map";

/// Parses the `hvm_start_info` at `paddr` (EBX at the PVH entry point).
pub(crate) fn parse<M: PhysMemory + ?Sized>(
    paddr: u64,
    mem: &M,
    info: &mut BootInfo,
) -> Result<(), BootError> {
    let head = read(mem, WHAT_START_INFO, paddr, START_INFO_V0_LEN)?;
    let magic = le_u32(head, offset_of!(HvmStartInfo, magic));
    if magic != crate::PVH_START_INFO_MAGIC {
        return Err(BootError::BadStartInfoMagic { paddr, magic });
    }
    let version = le_u32(head, offset_of!(HvmStartInfo, version));
    info.reset(BootProtocol::Pvh);
    if version == 0 {
        // Version 0 predates the memory map; we refuse to guess one.
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Pvh,
        });
    }
    // Later versions only append fields, so the version 1 prefix is valid.
    let si = read(mem, WHAT_START_INFO, paddr, START_INFO_V1_LEN)?;
    info.add_structure(paddr, START_INFO_V1_LEN as u64)?;

    let memmap_paddr = le_u64(si, offset_of!(HvmStartInfo, memmap_paddr));
    let memmap_entries = le_u32(si, offset_of!(HvmStartInfo, memmap_entries)) as usize;
    if memmap_entries > MAX_MEMORY_REGIONS {
        return Err(BootError::TooMany {
            what: "memory map entries",
            limit: MAX_MEMORY_REGIONS,
        });
    }
    let table = read(
        mem,
        WHAT_MEMMAP,
        memmap_paddr,
        memmap_entries * MEMMAP_ENTRY_LEN,
    )?;
    info.add_structure(memmap_paddr, table.len() as u64)?;
    let mut raw = RawMap::new();
    for (i, e) in table.chunks_exact(MEMMAP_ENTRY_LEN).enumerate() {
        let region = MemoryRegion {
            start: le_u64(e, offset_of!(HvmMemmapTableEntry, addr)),
            len: le_u64(e, offset_of!(HvmMemmapTableEntry, size)),
            kind: MemoryKind::from_e820(le_u32(e, offset_of!(HvmMemmapTableEntry, typ))),
        };
        let entry_paddr = memmap_paddr + (i * MEMMAP_ENTRY_LEN) as u64;
        memory_map::push_raw(&mut raw, region, WHAT_MEMMAP, entry_paddr)?;
    }
    memory_map::normalise(&raw, &mut info.memory_map)?;
    if info.memory_map.is_empty() {
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Pvh,
        });
    }

    let cmdline_paddr = le_u64(si, offset_of!(HvmStartInfo, cmdline_paddr));
    if let Some(s) = cstr(mem, info, "PVH command line", cmdline_paddr)? {
        info.cmdline = to_bounded("command line", s);
    }

    let rsdp = le_u64(si, offset_of!(HvmStartInfo, rsdp_paddr));
    info.rsdp = (rsdp != 0).then_some(rsdp);

    let nr_modules = le_u32(si, offset_of!(HvmStartInfo, nr_modules)) as usize;
    if nr_modules > MAX_MODULES {
        return Err(BootError::TooMany {
            what: "boot modules",
            limit: MAX_MODULES,
        });
    }
    if nr_modules > 0 {
        let modlist_paddr = le_u64(si, offset_of!(HvmStartInfo, modlist_paddr));
        let list = read(
            mem,
            WHAT_MODLIST,
            modlist_paddr,
            nr_modules * MODLIST_ENTRY_LEN,
        )?;
        info.add_structure(modlist_paddr, list.len() as u64)?;
        for (i, e) in list.chunks_exact(MODLIST_ENTRY_LEN).enumerate() {
            let start = le_u64(e, offset_of!(HvmModlistEntry, paddr));
            let size = le_u64(e, offset_of!(HvmModlistEntry, size));
            let end = start.checked_add(size).ok_or(BootError::Malformed {
                what: WHAT_MODLIST,
                paddr: modlist_paddr + (i * MODLIST_ENTRY_LEN) as u64,
                detail: "module paddr + size overflows 64 bits",
            })?;
            let mut module = Module {
                start,
                end,
                ..Module::default()
            };
            let cmdline_paddr = le_u64(e, offset_of!(HvmModlistEntry, cmdline_paddr));
            if let Some(s) = cstr(mem, info, "PVH module command line", cmdline_paddr)? {
                module.cmdline = to_bounded("module command line", s);
            }
            info.add_module(module)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::PhysRange;
    use crate::test_mem::{Bytes, TestMem};
    use crate::{EntryPath, MULTIBOOT1_MAGIC, PVH_START_INFO_MAGIC, parse as parse_entry};

    const SI: u64 = 0x6000;

    fn parse(paddr: u64, mem: &TestMem) -> Result<BootInfo, BootError> {
        // Parsing must overwrite whatever was there before.
        let mut info = crate::test_mem::dirty_info();
        super::parse(paddr, mem, &mut info).map(|()| info)
    }
    const MODLIST: u64 = 0x6100;
    const MEMMAP: u64 = 0x6200;
    const CMDLINE: u64 = 0x6400;
    const MOD_CMDLINE: u64 = 0x6500;

    struct Layout {
        magic: u32,
        version: u32,
        nr_modules: u32,
        memmap_entries: u32,
        rsdp: u64,
    }

    impl Default for Layout {
        fn default() -> Self {
            Self {
                magic: PVH_START_INFO_MAGIC,
                version: 1,
                nr_modules: 2,
                memmap_entries: 5,
                rsdp: 0xf_5a40,
            }
        }
    }

    /// What QEMU's PVH loader builds: start_info, module list, e820 table.
    fn build(l: &Layout) -> TestMem {
        let si = Bytes::new()
            .u32(l.magic)
            .u32(l.version)
            .u32(0)
            .u32(l.nr_modules)
            .u64(MODLIST)
            .u64(CMDLINE)
            .u64(l.rsdp)
            .u64(MEMMAP)
            .u32(l.memmap_entries)
            .u32(0);
        let si = if l.version == 0 {
            &si.0[..START_INFO_V0_LEN]
        } else {
            &si.0[..]
        };
        let mods = Bytes::new()
            .u64(0x100_0000)
            .u64(0x52_3400)
            .u64(MOD_CMDLINE)
            .u64(0)
            .u64(0x200_0000)
            .u64(0x1000)
            .u64(0)
            .u64(0);
        let mut memmap = Bytes::new();
        for (addr, size, typ) in [
            (0u64, 0x9_fc00u64, 1u32),
            (0x9_fc00, 0x400, 2),
            (0xf_0000, 0x1_0000, 2),
            (0x10_0000, 0x7ef_0000, 1),
            (0xfeff_c000, 0x4000, 2),
        ] {
            memmap = memmap.u64(addr).u64(size).u32(typ).u32(0);
        }
        let mut m = TestMem::new();
        m.add(SI, si);
        m.add(MODLIST, &mods.0);
        m.add(MEMMAP, &memmap.0);
        m.add(CMDLINE, b"loglvl=trace selftest=pvh\0");
        m.add(MOD_CMDLINE, b"guest.elf  root=/dev/vda \0");
        m
    }

    #[test]
    fn full_info() {
        let mem = build(&Layout::default());
        // microvm enters PVH kernels with EAX = multiboot1 magic: ignored.
        let info = parse_entry(EntryPath::Pvh, MULTIBOOT1_MAGIC, SI as u32, &mem).unwrap();
        assert_eq!(info.protocol, BootProtocol::Pvh);
        assert_eq!(info.cmdline, "loglvl=trace selftest=pvh");
        assert_eq!(info.bootloader, None);
        assert_eq!(info.rsdp, Some(0xf_5a40));
        assert_eq!(info.memory_map.len(), 5);
        assert_eq!(info.usable_bytes(), 0x9_fc00 + 0x7ef_0000);
        assert_eq!(info.ram_bytes(), info.usable_bytes());
        assert_eq!(info.modules.len(), 2);
        let m = &info.modules[0];
        assert_eq!((m.start, m.end), (0x100_0000, 0x152_3400));
        assert_eq!(m.name(), "guest.elf");
        assert_eq!(m.args(), "root=/dev/vda");
        let m = &info.modules[1];
        assert_eq!((m.start, m.end), (0x200_0000, 0x200_1000));
        assert_eq!(m.cmdline, "");
        assert_eq!(m.name(), "");

        let covered = |start: u64, len: u64| {
            let want = PhysRange {
                start,
                end: start + len,
            };
            info.boot_structures.iter().any(|r| r.contains_range(&want))
        };
        assert!(covered(SI, 56));
        assert!(covered(MODLIST, 64));
        assert!(covered(MEMMAP, 5 * 24));
        assert!(covered(CMDLINE, 26));
        assert!(covered(MOD_CMDLINE, 26));
        assert_eq!(info.boot_structures.len(), 5);
    }

    #[test]
    fn no_rsdp_no_modules() {
        let mem = build(&Layout {
            rsdp: 0,
            nr_modules: 0,
            ..Layout::default()
        });
        let info = parse(SI, &mem).unwrap();
        assert_eq!(info.rsdp, None);
        assert!(info.modules.is_empty());
    }

    #[test]
    fn version_0_has_no_memory_map() {
        let mem = build(&Layout {
            version: 0,
            ..Layout::default()
        });
        let err = parse(SI, &mem).unwrap_err();
        assert_eq!(
            err,
            BootError::NoMemoryMap {
                protocol: BootProtocol::Pvh
            }
        );
        assert!(err.to_string().contains("no memory map"));
    }

    #[test]
    fn bad_magic() {
        let mem = build(&Layout {
            magic: MULTIBOOT1_MAGIC,
            ..Layout::default()
        });
        let err = parse_entry(EntryPath::Pvh, MULTIBOOT1_MAGIC, SI as u32, &mem).unwrap_err();
        assert_eq!(
            err,
            BootError::BadStartInfoMagic {
                paddr: SI,
                magic: MULTIBOOT1_MAGIC
            }
        );
        assert_eq!(
            err.to_string(),
            "PVH entry: hvm_start_info at physical address 0x6000 has bad magic 0x2badb002 \
             (expected 0x336ec578)"
        );
    }

    #[test]
    fn unreadable() {
        assert_eq!(
            parse(SI, &TestMem::new()),
            Err(BootError::Unreadable {
                what: WHAT_START_INFO,
                paddr: SI,
                len: 40
            })
        );
        // More memory map entries claimed than present.
        let mem = build(&Layout {
            memmap_entries: 6,
            ..Layout::default()
        });
        assert_eq!(
            parse(SI, &mem),
            Err(BootError::Unreadable {
                what: WHAT_MEMMAP,
                paddr: MEMMAP,
                len: 6 * 24
            })
        );
        let mem = build(&Layout {
            nr_modules: 3,
            ..Layout::default()
        });
        assert_eq!(
            parse(SI, &mem),
            Err(BootError::Unreadable {
                what: WHAT_MODLIST,
                paddr: MODLIST,
                len: 96
            })
        );
        // Version 1 claimed but only the version 0 prefix is readable.
        let mut mem = TestMem::new();
        let v0 = Bytes::new().u32(PVH_START_INFO_MAGIC).u32(1).raw(&[0; 32]);
        mem.add(SI, &v0.0);
        assert!(matches!(
            parse(SI, &mem),
            Err(BootError::Unreadable { len: 56, .. })
        ));
    }

    #[test]
    fn too_many() {
        let mem = build(&Layout {
            nr_modules: 33,
            ..Layout::default()
        });
        assert_eq!(
            parse(SI, &mem),
            Err(BootError::TooMany {
                what: "boot modules",
                limit: 32
            })
        );
        let mem = build(&Layout {
            memmap_entries: 129,
            ..Layout::default()
        });
        assert!(matches!(
            parse(SI, &mem),
            Err(BootError::TooMany { limit: 128, .. })
        ));
    }

    #[test]
    fn empty_memory_map() {
        let mem = build(&Layout {
            memmap_entries: 0,
            ..Layout::default()
        });
        assert!(matches!(
            parse(SI, &mem),
            Err(BootError::NoMemoryMap { .. })
        ));
    }

    #[test]
    fn overlapping_memmap_entries() {
        let mut mem = build(&Layout::default());
        // ACPI NVS inside usable RAM, and a duplicate reserved entry.
        let mut memmap = Bytes::new();
        for (addr, size, typ) in [
            (0x10_0000u64, 0x100_0000u64, 1u32),
            (0x80_0000, 0x1_0000, 4),
            (0x80_0000, 0x1_0000, 2),
        ] {
            memmap = memmap.u64(addr).u64(size).u32(typ).u32(0);
        }
        mem.add(0x9_0000, &memmap.0);
        let si = Bytes::new()
            .raw(mem.bytes(SI, 40).unwrap())
            .u64(0x9_0000)
            .u32(3)
            .u32(0);
        mem.add(0x8000, &si.0);
        let info = parse(0x8000, &mem).unwrap();
        let r = |start, len, kind| MemoryRegion { start, len, kind };
        assert_eq!(
            info.memory_map.as_slice(),
            &[
                r(0x10_0000, 0x70_0000, MemoryKind::Usable),
                r(0x80_0000, 0x1_0000, MemoryKind::Reserved),
                r(0x81_0000, 0x8f_0000, MemoryKind::Usable),
            ]
        );
    }

    #[test]
    fn module_size_overflow() {
        let mut mem = build(&Layout::default());
        let bad = Bytes::new().u64(u64::MAX - 1).u64(2).u64(0).u64(0);
        mem.add(0xa000, &bad.0);
        let mut si = Bytes::new().raw(mem.bytes(SI, 56).unwrap());
        si.0[12..16].copy_from_slice(&1u32.to_le_bytes());
        si.0[16..24].copy_from_slice(&0xa000u64.to_le_bytes());
        mem.add(0x8000, &si.0);
        assert!(matches!(
            parse(0x8000, &mem),
            Err(BootError::Malformed {
                what: WHAT_MODLIST,
                paddr: 0xa000,
                ..
            })
        ));
    }

    #[test]
    fn unterminated_cmdline() {
        let mut mem = build(&Layout::default());
        // Readable memory ends before any NUL.
        mem.add(0x7_0000, b"loglvl=debug");
        let mut si = Bytes::new().raw(mem.bytes(SI, 56).unwrap());
        si.0[24..32].copy_from_slice(&0x7_0000u64.to_le_bytes());
        mem.add(0x8000, &si.0);
        assert!(matches!(
            parse(0x8000, &mem),
            Err(BootError::Unreadable {
                what: "PVH command line",
                paddr: 0x7_0000,
                ..
            })
        ));
    }
}
