//! ELF64 (and ELF32, which PVH allows) program headers and notes, read defensively:
//! every offset and size is checked against the image and against guest RAM.

/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h).
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// Most loadable segments accepted (kernels have a handful).
pub const MAX_SEGMENTS: usize = 16;

/// Why an image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhImageError {
    /// Not an ELF file (bad magic), or a class/endianness/machine we cannot run.
    NotElf,
    /// The ELF is not for x86 (EM_386 or EM_X86_64).
    WrongMachine { machine: u16 },
    /// A header or table lies outside the image.
    Truncated { what: &'static str },
    /// No `XEN_ELFNOTE_PHYS32_ENTRY` note: not a PVH kernel.
    NoPvhEntry,
    /// A loadable segment lies outside guest RAM or overlaps the reserved area.
    SegmentOutsideRam { paddr: u64, memsz: u64 },
    /// The entry point is not inside a loaded segment.
    EntryOutsideImage { entry: u64 },
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// No loadable segment at all.
    NothingToLoad,
}

impl core::fmt::Display for PvhImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotElf => f.write_str("not a little-endian ELF32/ELF64 executable"),
            Self::WrongMachine { machine } => write!(f, "ELF machine {machine} is not x86"),
            Self::Truncated { what } => write!(f, "the {what} lies outside the image"),
            Self::NoPvhEntry => f.write_str("no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel"),
            Self::SegmentOutsideRam { paddr, memsz } => write!(
                f,
                "segment at {paddr:#x} ({memsz:#x} bytes) does not fit in guest RAM"
            ),
            Self::EntryOutsideImage { entry } => {
                write!(f, "entry point {entry:#x} is not inside a loaded segment")
            }
            Self::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            Self::NothingToLoad => f.write_str("no loadable segment"),
        }
    }
}

/// One loadable segment: copy `file_size` bytes from `offset` to `paddr`, zero the rest
/// up to `mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    pub paddr: u64,
    pub offset: u64,
    pub file_size: u64,
    pub mem_size: u64,
}

/// Where the image goes and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    pub segments: [Segment; MAX_SEGMENTS],
    pub count: usize,
    /// 32-bit protected-mode entry point (guest-physical).
    pub entry: u32,
    /// Lowest and highest guest-physical byte the image occupies.
    pub lowest: u64,
    pub end: u64,
}

impl LoadPlan {
    /// The loadable segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&self, offset: u64, len: u64, what: &'static str) -> Result<&[u8], PvhImageError> {
        let start = usize::try_from(offset).map_err(|_| PvhImageError::Truncated { what })?;
        let len = usize::try_from(len).map_err(|_| PvhImageError::Truncated { what })?;
        let end = start
            .checked_add(len)
            .ok_or(PvhImageError::Truncated { what })?;
        self.0
            .get(start..end)
            .ok_or(PvhImageError::Truncated { what })
    }
    fn u16(&self, offset: u64, what: &'static str) -> Result<u16, PvhImageError> {
        let b = self.bytes(offset, 2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, offset: u64, what: &'static str) -> Result<u32, PvhImageError> {
        let b = self.bytes(offset, 4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, offset: u64, what: &'static str) -> Result<u64, PvhImageError> {
        let b = self.bytes(offset, 8, what)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A word of the ELF's class: 4 bytes for ELF32, 8 for ELF64.
    fn word(&self, offset: u64, elf64: bool, what: &'static str) -> Result<u64, PvhImageError> {
        if elf64 {
            self.u64(offset, what)
        } else {
            self.u32(offset, what).map(u64::from)
        }
    }
}

/// Plans loading `image` into a guest whose RAM is `[0, ram_end)`, keeping the image
/// out of `[reserved_start, ram_end)` (where the start-info area goes).
pub fn plan_load(
    image: &[u8],
    ram_end: u64,
    reserved_start: u64,
) -> Result<LoadPlan, PvhImageError> {
    let r = Reader(image);
    let ident = r
        .bytes(0, 16, "ELF header")
        .map_err(|_| PvhImageError::NotElf)?;
    if &ident[..4] != b"\x7fELF" || ident[5] != 1 {
        return Err(PvhImageError::NotElf);
    }
    let elf64 = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err(PvhImageError::NotElf),
    };
    let machine = r.u16(18, "ELF header")?;
    if machine != 3 && machine != 62 {
        return Err(PvhImageError::WrongMachine { machine });
    }
    // Program header table: e_phoff, e_phentsize, e_phnum.
    let (phoff, phentsize, phnum) = if elf64 {
        (
            r.u64(32, "ELF header")?,
            r.u16(54, "ELF header")?,
            r.u16(56, "ELF header")?,
        )
    } else {
        (
            u64::from(r.u32(28, "ELF header")?),
            r.u16(42, "ELF header")?,
            r.u16(44, "ELF header")?,
        )
    };
    let min_entsize = if elf64 { 56 } else { 32 };
    if phentsize < min_entsize {
        return Err(PvhImageError::Truncated {
            what: "program header table",
        });
    }
    r.bytes(
        phoff,
        u64::from(phentsize) * u64::from(phnum),
        "program header table",
    )?;

    let mut plan = LoadPlan {
        segments: [Segment::default(); MAX_SEGMENTS],
        count: 0,
        entry: 0,
        lowest: u64::MAX,
        end: 0,
    };
    let mut entry = None;
    for i in 0..u64::from(phnum) {
        let ph = phoff + i * u64::from(phentsize);
        let p_type = r.u32(ph, "program header")?;
        // Field offsets differ by class (ELF64: flags after type; ELF32: flags late).
        let (offset, paddr, filesz, memsz) = if elf64 {
            (
                r.u64(ph + 8, "program header")?,
                r.u64(ph + 24, "program header")?,
                r.u64(ph + 32, "program header")?,
                r.u64(ph + 40, "program header")?,
            )
        } else {
            (
                r.word(ph + 4, false, "program header")?,
                r.word(ph + 12, false, "program header")?,
                r.word(ph + 16, false, "program header")?,
                r.word(ph + 20, false, "program header")?,
            )
        };
        match p_type {
            PT_LOAD if memsz > 0 => {
                r.bytes(offset, filesz, "segment contents")?;
                let end = paddr
                    .checked_add(memsz)
                    .ok_or(PvhImageError::SegmentOutsideRam { paddr, memsz })?;
                if filesz > memsz || end > reserved_start.min(ram_end) {
                    return Err(PvhImageError::SegmentOutsideRam { paddr, memsz });
                }
                let slot = plan
                    .segments
                    .get_mut(plan.count)
                    .ok_or(PvhImageError::TooManySegments)?;
                *slot = Segment {
                    paddr,
                    offset,
                    file_size: filesz,
                    mem_size: memsz,
                };
                plan.count += 1;
                plan.lowest = plan.lowest.min(paddr);
                plan.end = plan.end.max(end);
            }
            PT_NOTE => {
                if let Some(found) = find_phys32_entry(&r, offset, filesz)? {
                    entry = Some(found);
                }
            }
            _ => {}
        }
    }
    if plan.count == 0 {
        return Err(PvhImageError::NothingToLoad);
    }
    let entry = entry.ok_or(PvhImageError::NoPvhEntry)?;
    if !plan
        .segments()
        .iter()
        .any(|s| s.paddr <= u64::from(entry) && u64::from(entry) < s.paddr + s.mem_size)
    {
        return Err(PvhImageError::EntryOutsideImage {
            entry: u64::from(entry),
        });
    }
    plan.entry = entry;
    Ok(plan)
}

/// Walks the notes in `[offset, offset + size)` for Xen's PHYS32_ENTRY (name "Xen").
fn find_phys32_entry(r: &Reader<'_>, offset: u64, size: u64) -> Result<Option<u32>, PvhImageError> {
    let notes = r.bytes(offset, size, "note segment")?;
    let mut at = 0usize;
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while at + 12 <= notes.len() {
        let word = |o: usize| {
            u32::from_le_bytes([notes[o], notes[o + 1], notes[o + 2], notes[o + 3]]) as usize
        };
        let (namesz, descsz, kind) = (word(at), word(at + 4), word(at + 8) as u32);
        let name_start = at + 12;
        let desc_start = name_start
            .checked_add(align4(namesz))
            .ok_or(PvhImageError::Truncated { what: "note" })?;
        let next = desc_start
            .checked_add(align4(descsz))
            .ok_or(PvhImageError::Truncated { what: "note" })?;
        if next > notes.len() {
            return Err(PvhImageError::Truncated { what: "note" });
        }
        let name = &notes[name_start..name_start + namesz];
        if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY && descsz >= 4 {
            return Ok(Some(word(desc_start) as u32));
        }
        at = next;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_LOAD at `paddr` and a PT_NOTE carrying `entry`.
    fn elf64(paddr: u64, entry: Option<u32>, machine: u16) -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        // PT_LOAD: offset 0x100, 0x80 file bytes, 0x1000 in memory.
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&0x100u64.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&0x80u64.to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
        // PT_NOTE at 0x180, 20 bytes.
        let ph = 64 + 56;
        f[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes());
        f[ph + 8..ph + 16].copy_from_slice(&0x180u64.to_le_bytes());
        f[ph + 32..ph + 40].copy_from_slice(&20u64.to_le_bytes());
        let note = 0x180;
        f[note..note + 4].copy_from_slice(&4u32.to_le_bytes());
        f[note + 4..note + 8].copy_from_slice(&4u32.to_le_bytes());
        let kind: u32 = if entry.is_some() { 18 } else { 17 };
        f[note + 8..note + 12].copy_from_slice(&kind.to_le_bytes());
        f[note + 12..note + 16].copy_from_slice(b"Xen\0");
        f[note + 16..note + 20].copy_from_slice(&entry.unwrap_or(0).to_le_bytes());
        f
    }

    #[test]
    fn plans_a_pvh_image() {
        let plan = plan_load(&elf64(0x10_0000, Some(0x10_0010), 62), 16 << 20, 15 << 20).unwrap();
        assert_eq!(plan.entry, 0x10_0010);
        assert_eq!(
            plan.segments(),
            &[Segment {
                paddr: 0x10_0000,
                offset: 0x100,
                file_size: 0x80,
                mem_size: 0x1000
            }]
        );
        assert_eq!((plan.lowest, plan.end), (0x10_0000, 0x10_1000));
    }

    #[test]
    fn refuses_bad_images() {
        assert_eq!(
            plan_load(b"not an elf at all", 1 << 24, 1 << 23),
            Err(PvhImageError::NotElf)
        );
        assert_eq!(
            plan_load(&elf64(0x10_0000, None, 62), 1 << 24, 1 << 23),
            Err(PvhImageError::NoPvhEntry)
        );
        assert_eq!(
            plan_load(&elf64(0x10_0000, Some(0x10_0000), 40), 1 << 24, 1 << 23),
            Err(PvhImageError::WrongMachine { machine: 40 })
        );
        assert!(matches!(
            plan_load(&elf64(0xff_f800, Some(0xff_f800), 62), 1 << 24, 1 << 24),
            Err(PvhImageError::SegmentOutsideRam { .. })
        ));
        assert_eq!(
            plan_load(&elf64(0x10_0000, Some(0x20_0000), 62), 1 << 24, 1 << 23),
            Err(PvhImageError::EntryOutsideImage { entry: 0x20_0000 })
        );
        let mut truncated = elf64(0x10_0000, Some(0x10_0000), 62);
        truncated.truncate(0x90);
        assert!(matches!(
            plan_load(&truncated, 1 << 24, 1 << 23),
            Err(PvhImageError::Truncated { .. })
        ));
        // Every prefix of a good image is refused cleanly, never a panic.
        let good = elf64(0x10_0000, Some(0x10_0000), 62);
        for len in 0..good.len() {
            let _ = plan_load(&good[..len], 1 << 24, 1 << 23);
        }
        // Random corruption never panics either.
        let mut seed = 12345u64;
        for _ in 0..2000 {
            let mut image = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % image.len();
                image[i] = (seed >> 32) as u8;
            }
            let _ = plan_load(&image, 1 << 24, 1 << 23);
        }
    }

    #[test]
    fn accepts_the_real_test_guest_layout() {
        // The real guests are linked at 1 MiB with a single PT_LOAD; covered by the
        // emulator tests, which load them.
        let plan = plan_load(
            &elf64(0x10_0000, Some(0x10_0000), 62),
            64 << 20,
            (64 << 20) - 4096,
        );
        assert!(plan.is_ok());
    }
}
