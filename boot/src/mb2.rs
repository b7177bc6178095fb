//! Multiboot2 1.6 boot information (spec section "Boot information format").
//!
//! The `multiboot2` crate validates the outer structure: the 8-byte header
//! (`total_size`, `reserved`), 8-byte alignment, that every tag's `size`
//! keeps it inside `total_size`, and that the list ends with the end tag.
//! We then walk its untyped tags and decode the few payloads we need with
//! explicit length checks. We avoid the crate's typed getters
//! (`memory_map_tag()`, `module_tags()`, ...) because their casts `assert!`
//! on a tag that is too short or an unexpected `entry_size`, and a corrupt
//! info structure must give an error, not a panic.

use multiboot2::{BootInformation, BootInformationHeader, LoadError, TagType};

use crate::info::{BootError, BootInfo, BootProtocol, MemoryKind, MemoryRegion, Module};
use crate::memory_map::{self, RawMap};
use crate::phys::{PhysMemory, le_u32, le_u64, read, to_bounded, until_nul};

const WHAT_INFO: &str = "multiboot2 boot information";
const WHAT_MMAP: &str = "multiboot2 memory map tag";
const WHAT_MODULE: &str = "multiboot2 module tag";
const WHAT_CMDLINE: &str = "multiboot2 command line tag";
const WHAT_LOADER: &str = "multiboot2 boot loader name tag";
const WHAT_RSDP: &str = "multiboot2 ACPI RSDP tag";

const TAG_CMDLINE: u32 = TagType::Cmdline.val();
const TAG_BOOT_LOADER_NAME: u32 = TagType::BootLoaderName.val();
const TAG_MODULE: u32 = TagType::Module.val();
const TAG_MMAP: u32 = TagType::Mmap.val();
const TAG_ACPI_V1: u32 = TagType::AcpiV1.val();
const TAG_ACPI_V2: u32 = TagType::AcpiV2.val();

/// Tag header: `u32 type`, `u32 size` (spec "Basic tags structure").
const TAG_HEADER_LEN: usize = 8;
/// Fixed info header (`total_size`, `reserved`) plus the mandatory end tag.
const MIN_TOTAL_SIZE: u32 = 16;
/// An ACPI 1.0 RSDP is 20 bytes; 2.0+ is 36 ("ACPI old/new RSDP" tags).
const RSDP_V1_LEN: usize = 20;
const RSDP_V2_LEN: usize = 36;
/// Memory map entry ("Memory map" tag): `u64 base_addr`, `u64 length`,
/// `u32 type`, `u32 reserved`. `entry_size` may grow in later versions.
const MMAP_ENTRY_MIN: u32 = 24;

/// Binds the crate's unbounded lifetime to the slice the data lives in.
fn load(bytes: &[u8]) -> Result<BootInformation<'_>, LoadError> {
    // SAFETY: `load` reads `total_size` (the first `u32`) and then that many
    // bytes from the pointer. The caller passes a slice obtained from
    // `PhysMemory` for exactly `total_size` bytes, so every byte read is
    // inside the slice; `load` re-checks alignment itself. The result
    // borrows `bytes`, so the memory cannot be mutated through Rust while
    // it is in use.
    unsafe { BootInformation::load(bytes.as_ptr().cast::<BootInformationHeader>()) }
}

/// Parses the multiboot2 information structure at `info_paddr` (EBX).
pub(crate) fn parse<M: PhysMemory + ?Sized>(
    info_paddr: u64,
    mem: &M,
    info: &mut BootInfo,
) -> Result<(), BootError> {
    info.reset(BootProtocol::Multiboot2);
    let malformed = |paddr, detail| BootError::Malformed {
        what: WHAT_INFO,
        paddr,
        detail,
    };
    let total_size = le_u32(read(mem, WHAT_INFO, info_paddr, 4)?, 0);
    if total_size < MIN_TOTAL_SIZE {
        return Err(malformed(
            info_paddr,
            "total_size is smaller than the 8-byte header plus the end tag",
        ));
    }
    if !total_size.is_multiple_of(8) {
        return Err(malformed(info_paddr, "total_size is not a multiple of 8"));
    }
    let bytes = read(mem, WHAT_INFO, info_paddr, total_size as usize)?;
    if !info_paddr.is_multiple_of(8) || !bytes.as_ptr().addr().is_multiple_of(8) {
        return Err(malformed(info_paddr, "structure is not 8-byte aligned"));
    }
    let mbi = load(bytes).map_err(|e| {
        malformed(
            info_paddr,
            match e {
                LoadError::NoEndTag => "tag list has no end tag (type 0, size 8)",
                LoadError::Memory(_) => {
                    "tag list is inconsistent: a tag is shorter than 8 bytes, runs past \
                     total_size, or the end tag is not last"
                }
            },
        )
    })?;

    // Every tag, string and memory map entry lives inside the block.
    info.add_structure(info_paddr, u64::from(total_size))?;

    let base = bytes.as_ptr().addr();
    let mut raw_map = RawMap::new();
    let mut have_mmap = false;
    let (mut rsdp_v1, mut rsdp_v2) = (None, None);
    let (mut have_cmdline, mut have_loader) = (false, false);

    for tag in mbi.tags() {
        let payload = tag.payload();
        // The payload lies inside `bytes`, right after the tag header.
        let payload_off = payload.as_ptr().addr() - base;
        let tag_paddr = info_paddr + (payload_off - TAG_HEADER_LEN) as u64;
        let payload_paddr = info_paddr + payload_off as u64;
        match tag.header().typ.get() {
            // Only the first of each single-instance tag counts.
            TAG_CMDLINE if !have_cmdline => {
                have_cmdline = true;
                info.cmdline = to_bounded("command line", cstr(payload, WHAT_CMDLINE, tag_paddr)?);
            }
            TAG_BOOT_LOADER_NAME if !have_loader => {
                have_loader = true;
                let s = cstr(payload, WHAT_LOADER, tag_paddr)?;
                info.bootloader = Some(to_bounded("boot loader name", s));
            }
            TAG_MODULE => info.add_module(module(payload, tag_paddr)?)?,
            TAG_MMAP if !have_mmap => {
                have_mmap = true;
                mmap(payload, tag_paddr, &mut raw_map)?;
            }
            TAG_ACPI_V1 if rsdp_v1.is_none() => {
                rsdp_v1 = Some(rsdp(payload, RSDP_V1_LEN, tag_paddr, payload_paddr)?);
            }
            TAG_ACPI_V2 if rsdp_v2.is_none() => {
                rsdp_v2 = Some(rsdp(payload, RSDP_V2_LEN, tag_paddr, payload_paddr)?);
            }
            // EFI memory maps (type 17) and everything else: out of scope.
            _ => {}
        }
    }

    // The XSDT of an ACPI 2.0+ RSDP supersedes the RSDT of a 1.0 one.
    info.rsdp = rsdp_v2.or(rsdp_v1);
    if !have_mmap {
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Multiboot2,
        });
    }
    memory_map::normalise(&raw_map, &mut info.memory_map)?;
    if info.memory_map.is_empty() {
        return Err(BootError::NoMemoryMap {
            protocol: BootProtocol::Multiboot2,
        });
    }
    Ok(())
}

/// A string that must be NUL-terminated within its tag.
fn cstr<'a>(bytes: &'a [u8], what: &'static str, tag_paddr: u64) -> Result<&'a [u8], BootError> {
    until_nul(bytes).ok_or(BootError::Malformed {
        what,
        paddr: tag_paddr,
        detail: "string is not NUL-terminated within the tag",
    })
}

/// "Modules" tag: `u32 mod_start`, `u32 mod_end`, then the module's string.
fn module(payload: &[u8], tag_paddr: u64) -> Result<Module, BootError> {
    let malformed = |detail| BootError::Malformed {
        what: WHAT_MODULE,
        paddr: tag_paddr,
        detail,
    };
    if payload.len() < 8 {
        return Err(malformed("tag is too short for mod_start and mod_end"));
    }
    let start = u64::from(le_u32(payload, 0));
    let end = u64::from(le_u32(payload, 4));
    if end < start {
        return Err(malformed("module end address is below its start address"));
    }
    Ok(Module {
        start,
        end,
        cmdline: to_bounded(
            "module command line",
            cstr(&payload[8..], WHAT_MODULE, tag_paddr)?,
        ),
    })
}

/// "Memory map" tag: `u32 entry_size`, `u32 entry_version`, entries.
fn mmap(payload: &[u8], tag_paddr: u64, raw: &mut RawMap) -> Result<(), BootError> {
    let malformed = |detail| BootError::Malformed {
        what: WHAT_MMAP,
        paddr: tag_paddr,
        detail,
    };
    if payload.len() < 8 {
        return Err(malformed(
            "tag is too short for entry_size and entry_version",
        ));
    }
    let entry_size = le_u32(payload, 0);
    if entry_size < MMAP_ENTRY_MIN || !entry_size.is_multiple_of(8) {
        return Err(malformed(
            "entry_size is not a multiple of 8 of at least 24 bytes",
        ));
    }
    let entries = &payload[8..];
    let entry_size = entry_size as usize;
    if !entries.len().is_multiple_of(entry_size) {
        return Err(malformed(
            "tag size is not a whole number of entries of entry_size bytes",
        ));
    }
    for (i, e) in entries.chunks_exact(entry_size).enumerate() {
        let region = MemoryRegion {
            start: le_u64(e, 0),
            len: le_u64(e, 8),
            kind: MemoryKind::from_e820(le_u32(e, 16)),
        };
        let entry_paddr = tag_paddr + (TAG_HEADER_LEN + 8 + i * entry_size) as u64;
        memory_map::push_raw(raw, region, WHAT_MMAP, entry_paddr)?;
    }
    Ok(())
}

/// "ACPI old/new RSDP" tags: the payload is a copy of the RSDP itself, so
/// its physical address is what the ACPI code needs.
fn rsdp(
    payload: &[u8],
    min_len: usize,
    tag_paddr: u64,
    payload_paddr: u64,
) -> Result<u64, BootError> {
    if payload.len() < min_len {
        return Err(BootError::Malformed {
            what: WHAT_RSDP,
            paddr: tag_paddr,
            detail: "tag is too short for the RSDP it should contain",
        });
    }
    Ok(payload_paddr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::PhysRange;
    use crate::test_mem::{Bytes, TestMem};
    use crate::{EntryPath, MULTIBOOT2_MAGIC, parse as parse_entry};
    use multiboot2::{
        BootLoaderNameTag, Builder, CommandLineTag, MaybeDynSized, MemoryArea, MemoryAreaType,
        MemoryMapTag, ModuleTag, RsdpV1Tag, RsdpV2Tag,
    };

    const INFO: u64 = 0x1_0000;

    fn parse(paddr: u64, mem: &TestMem) -> Result<BootInfo, BootError> {
        // Parsing must overwrite whatever was there before.
        let mut info = crate::test_mem::dirty_info();
        super::parse(paddr, mem, &mut info).map(|()| info)
    }

    fn grub_like() -> Builder {
        Builder::new()
            .cmdline(CommandLineTag::new(
                "/boot/ferrovisor loglvl=warn maxcpus=2",
            ))
            .bootloader(BootLoaderNameTag::new("GRUB 2.12"))
            .add_module(ModuleTag::new(
                0x40_0000,
                0x80_0000,
                "/boot/vmlinuz console=ttyS0",
            ))
            .add_module(ModuleTag::new(0x80_0000, 0x80_1000, "/boot/initrd"))
            .mmap(MemoryMapTag::new(&[
                MemoryArea::new(0, 0x9_fc00, MemoryAreaType::Available),
                MemoryArea::new(0x9_fc00, 0x400, MemoryAreaType::Reserved),
                MemoryArea::new(0x10_0000, 0x3ff0_0000, MemoryAreaType::Available),
                // Overlaps the end of the RAM entry above.
                MemoryArea::new(0x3ffe_0000, 0x2_0000, MemoryAreaType::AcpiAvailable),
                MemoryArea::new(0xfec0_0000, 0x1000, MemoryAreaType::Reserved),
                MemoryArea::new(0x1_0000_0000, 0, MemoryAreaType::Available),
            ]))
    }

    fn mem_with(bytes: &[u8]) -> TestMem {
        let mut m = TestMem::new();
        m.add(INFO, bytes);
        m
    }

    /// Offset of the first tag of type `typ` in a built structure.
    fn tag_offset(bytes: &[u8], typ: u32) -> usize {
        let mut off = 8;
        loop {
            let t = le_u32(bytes, off);
            let size = le_u32(bytes, off + 4) as usize;
            if t == typ {
                return off;
            }
            assert_ne!(t, 0, "tag {typ} not found");
            off += size.div_ceil(8) * 8;
        }
    }

    #[test]
    fn full_info() {
        let blob = grub_like()
            .rsdpv1(RsdpV1Tag::new(*b"BOCHS ", 0, 0x3ffe_1000))
            .rsdpv2(RsdpV2Tag::new(*b"BOCHS ", 2, 0x3ffe_1000, 36, 0x3ffe_2000))
            .build();
        let bytes = blob.as_bytes().to_vec();
        let mem = mem_with(&bytes);
        let info = parse_entry(EntryPath::Multiboot, MULTIBOOT2_MAGIC, INFO as u32, &mem).unwrap();

        assert_eq!(info.protocol, BootProtocol::Multiboot2);
        assert_eq!(info.cmdline, "/boot/ferrovisor loglvl=warn maxcpus=2");
        assert_eq!(info.bootloader.unwrap(), "GRUB 2.12");
        let r = |start, len, kind| MemoryRegion { start, len, kind };
        assert_eq!(
            info.memory_map.as_slice(),
            &[
                r(0, 0x9_fc00, MemoryKind::Usable),
                r(0x9_fc00, 0x400, MemoryKind::Reserved),
                r(0x10_0000, 0x3fee_0000, MemoryKind::Usable),
                r(0x3ffe_0000, 0x2_0000, MemoryKind::AcpiReclaimable),
                r(0xfec0_0000, 0x1000, MemoryKind::Reserved),
            ]
        );
        assert_eq!(info.usable_bytes(), 0x9_fc00 + 0x3fee_0000);
        assert_eq!(info.ram_bytes(), 0x9_fc00 + 0x3ff0_0000);

        assert_eq!(info.modules.len(), 2);
        assert_eq!(
            (info.modules[0].start, info.modules[0].end),
            (0x40_0000, 0x80_0000)
        );
        assert_eq!(info.modules[0].name(), "/boot/vmlinuz");
        assert_eq!(info.modules[0].args(), "console=ttyS0");
        assert_eq!(info.modules[1].name(), "/boot/initrd");
        assert_eq!(info.modules[1].args(), "");

        // The RSDP v2 copy starts right after the tag header, and its bytes
        // there are a real RSDP.
        let off = tag_offset(&bytes, TAG_ACPI_V2);
        let rsdp = info.rsdp.unwrap();
        assert_eq!(rsdp, INFO + off as u64 + 8);
        assert_eq!(mem.bytes(rsdp, 8).unwrap(), b"RSD PTR ");

        assert_eq!(
            info.boot_structures.as_slice(),
            &[PhysRange {
                start: INFO,
                end: INFO + bytes.len() as u64
            }]
        );
        let occupied: Vec<_> = info.occupied_ranges().collect();
        assert_eq!(occupied.len(), 3);
    }

    #[test]
    fn rsdp_v1_only() {
        let blob = grub_like()
            .rsdpv1(RsdpV1Tag::new(*b"BOCHS ", 0, 0x3ffe_1000))
            .build();
        let bytes = blob.as_bytes().to_vec();
        let info = parse(INFO, &mem_with(&bytes)).unwrap();
        let off = tag_offset(&bytes, TAG_ACPI_V1);
        assert_eq!(info.rsdp, Some(INFO + off as u64 + 8));
    }

    #[test]
    fn minimal_info() {
        let blob = Builder::new()
            .mmap(MemoryMapTag::new(&[MemoryArea::new(
                0,
                0x1000_0000,
                MemoryAreaType::Available,
            )]))
            .build();
        let info = parse(INFO, &mem_with(blob.as_bytes())).unwrap();
        assert!(info.cmdline.is_empty());
        assert!(info.bootloader.is_none());
        assert!(info.modules.is_empty());
        assert_eq!(info.rsdp, None);
        assert_eq!(info.ram_bytes(), 0x1000_0000);
    }

    #[test]
    fn no_memory_map_tag() {
        let blob = Builder::new().cmdline(CommandLineTag::new("x")).build();
        let err = parse(INFO, &mem_with(blob.as_bytes())).unwrap_err();
        assert_eq!(
            err,
            BootError::NoMemoryMap {
                protocol: BootProtocol::Multiboot2
            }
        );
        assert!(err.to_string().contains("no memory map"));
    }

    #[test]
    fn misaligned() {
        let blob = grub_like().build();
        let mut mem = TestMem::new();
        mem.add(INFO + 4, blob.as_bytes());
        assert!(matches!(
            parse(INFO + 4, &mem),
            Err(BootError::Malformed {
                detail: "structure is not 8-byte aligned",
                ..
            })
        ));
        // Aligned physical address, but the memory hands out a misaligned
        // slice: still refused rather than handed to the crate.
        let mut mem = TestMem::new();
        mem.add_skewed(INFO, blob.as_bytes(), 4);
        assert!(matches!(
            parse(INFO, &mem),
            Err(BootError::Malformed {
                detail: "structure is not 8-byte aligned",
                ..
            })
        ));
    }

    #[test]
    fn truncated_or_unreadable() {
        let bytes = grub_like().build().as_bytes().to_vec();
        // Nothing at all.
        assert_eq!(
            parse(INFO, &TestMem::new()),
            Err(BootError::Unreadable {
                what: WHAT_INFO,
                paddr: INFO,
                len: 4
            })
        );
        // total_size claims more than is readable.
        let mem = mem_with(&bytes[..bytes.len() - 8]);
        assert_eq!(
            parse(INFO, &mem),
            Err(BootError::Unreadable {
                what: WHAT_INFO,
                paddr: INFO,
                len: bytes.len()
            })
        );
    }

    #[test]
    fn bad_total_size() {
        let mut bytes = grub_like().build().as_bytes().to_vec();
        bytes[0..4].copy_from_slice(&12u32.to_le_bytes());
        assert!(matches!(
            parse(INFO, &mem_with(&bytes)),
            Err(BootError::Malformed { paddr: INFO, .. })
        ));
        let len = bytes.len() as u32;
        bytes[0..4].copy_from_slice(&(len - 4).to_le_bytes());
        assert!(matches!(
            parse(INFO, &mem_with(&bytes)),
            Err(BootError::Malformed {
                detail: "total_size is not a multiple of 8",
                ..
            })
        ));
        // Cut short before the end tag: tag list inconsistent or no end tag.
        bytes[0..4].copy_from_slice(&(len - 8).to_le_bytes());
        assert!(matches!(
            parse(INFO, &mem_with(&bytes)),
            Err(BootError::Malformed {
                what: WHAT_INFO,
                ..
            })
        ));
    }

    /// Rewrites the size of the first tag of type `typ`. Callers keep the
    /// padded size unchanged so the tag list stays walkable.
    fn patch_tag_size(bytes: &mut [u8], typ: u32, size: u32) -> usize {
        let off = tag_offset(bytes, typ);
        bytes[off + 4..off + 8].copy_from_slice(&size.to_le_bytes());
        off
    }

    #[test]
    fn mmap_tag_malformed() {
        let bytes = grub_like().build().as_bytes().to_vec();

        let mut b = bytes.clone();
        let off = tag_offset(&b, TAG_MMAP);
        b[off + 8..off + 12].copy_from_slice(&20u32.to_le_bytes()); // entry_size
        assert_eq!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_MMAP,
                paddr: INFO + off as u64,
                detail: "entry_size is not a multiple of 8 of at least 24 bytes",
            })
        );

        // Size no longer a whole number of entries (the crate's own getter
        // would panic here).
        let mut b = bytes.clone();
        let old = le_u32(&b, tag_offset(&b, TAG_MMAP) + 4);
        patch_tag_size(&mut b, TAG_MMAP, old - 4);
        assert!(matches!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_MMAP,
                ..
            })
        ));

        // Too short for the entry_size / entry_version fields, in an
        // otherwise well-formed list.
        let b = hand_built(&[(TAG_MMAP, &[0; 4])]);
        assert_eq!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_MMAP,
                paddr: INFO + 8,
                detail: "tag is too short for entry_size and entry_version",
            })
        );
    }

    /// A structure with the given tags (type, payload), padded, plus an end
    /// tag.
    fn hand_built(tags: &[(u32, &[u8])]) -> Vec<u8> {
        let mut body = Bytes::new();
        for (typ, payload) in tags {
            body = body.u32(*typ).u32(8 + payload.len() as u32).raw(payload);
            while !body.0.len().is_multiple_of(8) {
                body = body.raw(&[0]);
            }
        }
        let body = body.u32(0).u32(8).0;
        Bytes::new().u32(8 + body.len() as u32).u32(0).raw(&body).0
    }

    #[test]
    fn mmap_larger_entries_accepted() {
        // entry_size 32: a future version with extra fields.
        let mut tag = Bytes::new().u32(32).u32(0);
        for (base, len, typ) in [(0u64, 0x1000u64, 1u32), (0x1000, 0x1000, 2)] {
            tag = tag.u64(base).u64(len).u32(typ).u32(0).u64(0xdead);
        }
        let b = hand_built(&[(TAG_MMAP, &tag.0)]);
        let info = parse(INFO, &mem_with(&b)).unwrap();
        assert_eq!(info.memory_map.len(), 2);
        assert_eq!(info.memory_map[1].kind, MemoryKind::Reserved);
    }

    #[test]
    fn module_tag_malformed() {
        let bytes = grub_like().build().as_bytes().to_vec();
        // mod_end below mod_start.
        let mut b = bytes.clone();
        let off = tag_offset(&b, TAG_MODULE);
        b[off + 12..off + 16].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_MODULE,
                paddr: INFO + off as u64,
                detail: "module end address is below its start address",
            })
        );
        // String without NUL inside the tag: shrink size to cut the NUL off.
        let mut b = bytes.clone();
        let off = tag_offset(&b, TAG_MODULE);
        let old = le_u32(&b, off + 4);
        patch_tag_size(&mut b, TAG_MODULE, old - 1);
        assert_eq!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_MODULE,
                paddr: INFO + off as u64,
                detail: "string is not NUL-terminated within the tag",
            })
        );
    }

    #[test]
    fn unterminated_cmdline() {
        let mut b = grub_like().build().as_bytes().to_vec();
        let off = tag_offset(&b, TAG_CMDLINE);
        let old = le_u32(&b, off + 4);
        patch_tag_size(&mut b, TAG_CMDLINE, old - 1);
        assert!(matches!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_CMDLINE,
                ..
            })
        ));
    }

    #[test]
    fn too_many_modules() {
        let mut builder = grub_like();
        for i in 0..33u32 {
            builder = builder.add_module(ModuleTag::new(i * 0x1000, i * 0x1000 + 1, "m"));
        }
        let bytes = builder.build().as_bytes().to_vec();
        assert_eq!(
            parse(INFO, &mem_with(&bytes)),
            Err(BootError::TooMany {
                what: "boot modules",
                limit: 32
            })
        );
    }

    #[test]
    fn short_rsdp_tag() {
        let mmap = Bytes::new()
            .u32(24)
            .u32(0)
            .u64(0)
            .u64(0x1000)
            .u32(1)
            .u32(0)
            .0;
        let b = hand_built(&[(TAG_MMAP, &mmap), (TAG_ACPI_V2, &[0; 24])]);
        assert_eq!(
            parse(INFO, &mem_with(&b)),
            Err(BootError::Malformed {
                what: WHAT_RSDP,
                paddr: INFO + 8 + 8 + 32,
                detail: "tag is too short for the RSDP it should contain",
            })
        );
        let b = hand_built(&[(TAG_MMAP, &mmap), (TAG_ACPI_V1, &[0; 20])]);
        assert_eq!(
            parse(INFO, &mem_with(&b)).unwrap().rsdp,
            Some(INFO + 8 + 8 + 32 + 8)
        );
    }
}
