//! The bad-boot shim: a loader that enters the kernel with chosen (wrong) registers.
//!
//! QEMU's multiboot1 loader boots `shim.bin`, a flat image with the a.out kludge (no ELF).
//! The shim loads EAX and EBX from a parameter block and jumps to the kernel's entry:
//!
//! ```text
//! A1 00 00 00 04       mov eax, [0x04000000]
//! 8B 1D 04 00 00 04    mov ebx, [0x04000004]
//! FF 25 08 00 00 04    jmp dword [0x04000008]
//! F4 EB FD             hlt; jmp $-1
//! ```
//!
//! The parameter block and the kernel are placed by QEMU's generic loader device
//! (`-device loader,file=F,addr=A,force-raw=on`). The kernel image is the part of the ELF
//! that its multiboot1 header's a.out kludge describes (exactly what a multiboot loader
//! copies), zero-filled up to `bss_end_addr`, loaded at `load_addr`.
//!
//! The shim lives at [`SHIM_ADDR`] rather than at 1 MiB, where the kernel itself is
//! usually linked: QEMU's multiboot option ROM copies the shim into place after the loader
//! device has written the kernel, so the two must not overlap.

use crate::platform::BadBoot;

/// Magic of a multiboot1 header.
pub const MB1_MAGIC: u32 = 0x1BAD_B002;
/// EAX value a multiboot1 loader passes.
pub const MB1_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Flags bit 16: the header carries load addresses (the a.out kludge).
pub const MB1_AOUT_KLUDGE: u32 = 1 << 16;
/// Where the shim is loaded and linked.
pub const SHIM_ADDR: u32 = 0x03F0_0000;
/// Memory kept free for the shim and the multiboot information QEMU puts after it.
pub const SHIM_RESERVED: u32 = 0x0010_0000;
/// Where the parameter block goes.
pub const PARAMS_ADDR: u32 = 0x0400_0000;
/// Size of the parameter block.
pub const PARAMS_SIZE: usize = 0x300;
/// The command line the no-memory-map boot passes.
pub const NO_MEMORY_MAP_CMDLINE: &str = "ferrovisor loglvl=info";
/// EAX for the bad-magic boot.
pub const BAD_MAGIC: u32 = 0xDEAD_BEEF;

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn put32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A 32-byte multiboot1 header with the a.out kludge for a flat image at `addr` whose
/// code starts right after the header.
fn flat_header(addr: u32) -> Vec<u8> {
    let flags = MB1_AOUT_KLUDGE;
    let checksum = 0u32.wrapping_sub(MB1_MAGIC.wrapping_add(flags));
    // magic, flags, checksum, header_addr, load_addr, load_end_addr (0: whole file),
    // bss_end_addr (0: none), entry_addr.
    [MB1_MAGIC, flags, checksum, addr, addr, 0, 0, addr + 0x20]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// The shim image (`build/.../shim.bin`).
pub fn shim_image() -> Vec<u8> {
    let mut image = flat_header(SHIM_ADDR);
    let p = PARAMS_ADDR.to_le_bytes();
    image.push(0xA1); // mov eax, [PARAMS_ADDR]
    image.extend_from_slice(&p);
    image.extend_from_slice(&[0x8B, 0x1D]); // mov ebx, [PARAMS_ADDR + 4]
    image.extend_from_slice(&(PARAMS_ADDR + 4).to_le_bytes());
    image.extend_from_slice(&[0xFF, 0x25]); // jmp dword [PARAMS_ADDR + 8]
    image.extend_from_slice(&(PARAMS_ADDR + 8).to_le_bytes());
    image.extend_from_slice(&[0xF4, 0xEB, 0xFD]); // hlt; jmp back to hlt
    image
}

/// A flat multiboot1 image that writes the SUCCESS code to port 0xf4: QEMU exits with
/// status 33 when it runs. Used to find out whether KVM can run a guest at all.
pub fn probe_image() -> Vec<u8> {
    let mut image = flat_header(SHIM_ADDR);
    image.extend_from_slice(&[0xB8, 0x10, 0x00, 0x00, 0x00]); // mov eax, 0x10
    image.extend_from_slice(&[0xE7, 0xF4]); // out 0xf4, eax
    image.extend_from_slice(&[0xF4, 0xEB, 0xFD]);
    image
}

/// The parameter block for a bad boot: EAX, EBX and the entry point, a multiboot1
/// information structure at +0x100 and its command line at +0x200.
pub fn params(bad: BadBoot, entry: u32) -> Vec<u8> {
    let mut p = vec![0u8; PARAMS_SIZE];
    match bad {
        BadBoot::BadMagic => {
            put32(&mut p, 0, BAD_MAGIC);
            put32(&mut p, 4, 0);
        }
        BadBoot::NoMemoryMap => {
            put32(&mut p, 0, MB1_BOOTLOADER_MAGIC);
            put32(&mut p, 4, PARAMS_ADDR + 0x100);
            // flags: bit 2 (cmdline) only; cmdline pointer at offset 16.
            put32(&mut p, 0x100, 1 << 2);
            put32(&mut p, 0x110, PARAMS_ADDR + 0x200);
            let cmdline = NO_MEMORY_MAP_CMDLINE.as_bytes();
            p[0x200..0x200 + cmdline.len()].copy_from_slice(cmdline);
        }
    }
    put32(&mut p, 8, entry);
    p
}

/// A multiboot1 header found in an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mb1Header {
    /// File offset of the header.
    pub offset: usize,
    /// Header flags.
    pub flags: u32,
    /// a.out kludge: address of the header.
    pub header_addr: u32,
    /// a.out kludge: where the text starts.
    pub load_addr: u32,
    /// a.out kludge: end of the loaded data (0: end of file).
    pub load_end_addr: u32,
    /// a.out kludge: end of bss (0: no bss).
    pub bss_end_addr: u32,
    /// a.out kludge: the 32-bit entry point.
    pub entry_addr: u32,
}

/// Finds the multiboot1 header: 4-byte aligned, in the first 8192 bytes, with a valid
/// checksum.
pub fn find_multiboot1(image: &[u8]) -> Option<Mb1Header> {
    let limit = image.len().min(8192);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let magic = le32(image, off)?;
        let flags = le32(image, off + 4)?;
        let checksum = le32(image, off + 8)?;
        if magic != MB1_MAGIC || magic.wrapping_add(flags).wrapping_add(checksum) != 0 {
            return None;
        }
        let field = |n: usize| le32(image, off + 12 + 4 * n).unwrap_or(0);
        Some(Mb1Header {
            offset: off,
            flags,
            header_addr: field(0),
            load_addr: field(1),
            load_end_addr: field(2),
            bss_end_addr: field(3),
            entry_addr: field(4),
        })
    })
}

/// A raw image to place with QEMU's loader device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadImage {
    /// Physical load address.
    pub addr: u32,
    /// The bytes, bss included.
    pub bytes: Vec<u8>,
    /// The 32-bit entry point.
    pub entry: u32,
}

/// Upper bound on the zero-filled bss the harness is willing to write into a file.
const MAX_BSS: u64 = 256 << 20;

/// Cuts out what a multiboot1 loader would load from `image` by its a.out kludge fields.
pub fn kludge_image(image: &[u8]) -> Result<LoadImage, String> {
    let h = find_multiboot1(image)
        .ok_or("no multiboot1 header (magic 0x1BADB002, valid checksum) in the first 8 KiB")?;
    if h.flags & MB1_AOUT_KLUDGE == 0 {
        return Err(format!(
            "multiboot1 header at offset {:#x} lacks the a.out kludge (flags bit 16)",
            h.offset
        ));
    }
    let head = h
        .header_addr
        .checked_sub(h.load_addr)
        .ok_or("multiboot1 header: header_addr is below load_addr")? as usize;
    let start = h
        .offset
        .checked_sub(head)
        .ok_or("multiboot1 header: load_addr lies before the start of the file")?;
    let end = if h.load_end_addr == 0 {
        image.len()
    } else {
        let len = h
            .load_end_addr
            .checked_sub(h.load_addr)
            .ok_or("multiboot1 header: load_end_addr < load_addr")?;
        start + len as usize
    };
    if end > image.len() || end < start {
        return Err(format!(
            "multiboot1 header: load range {start:#x}..{end:#x} is outside the file"
        ));
    }
    let mut bytes = image[start..end].to_vec();
    if h.bss_end_addr != 0 {
        let total = u64::from(h.bss_end_addr)
            .checked_sub(u64::from(h.load_addr))
            .ok_or("multiboot1 header: bss_end_addr < load_addr")?;
        if total > MAX_BSS {
            return Err(format!(
                "multiboot1 header: bss_end_addr {:#x} is implausibly far",
                h.bss_end_addr
            ));
        }
        if total as usize > bytes.len() {
            bytes.resize(total as usize, 0);
        }
    }
    Ok(LoadImage {
        addr: h.load_addr,
        bytes,
        entry: h.entry_addr,
    })
}

/// Checks that a kernel image loaded at its address leaves the shim's and the
/// parameters' memory alone and stays out of the first MiB (BIOS).
pub fn check_layout(kernel: &LoadImage) -> Result<(), String> {
    let start = u64::from(kernel.addr);
    let end = start + kernel.bytes.len() as u64;
    let overlaps = |a: u32, len: u64| start < u64::from(a) + len && u64::from(a) < end;
    if start < 0x10_0000 {
        return Err(format!("kernel load address {start:#x} is below 1 MiB"));
    }
    if overlaps(SHIM_ADDR, u64::from(SHIM_RESERVED)) || overlaps(PARAMS_ADDR, PARAMS_SIZE as u64) {
        return Err(format!(
            "kernel {start:#x}..{end:#x} overlaps the shim ({SHIM_ADDR:#x}) or its parameters ({PARAMS_ADDR:#x}): move SHIM_ADDR"
        ));
    }
    if !(start..end).contains(&u64::from(kernel.entry)) {
        return Err(format!(
            "entry {:#x} is outside the loaded kernel {start:#x}..{end:#x}",
            kernel.entry
        ));
    }
    Ok(())
}

/// A copy of `image` whose multiboot1 headers are disabled (magic zeroed), so QEMU's
/// `-kernel` falls through to the PVH ELF note (QEMU tries multiboot first, even on
/// microvm).
pub fn without_multiboot1(image: &[u8]) -> Vec<u8> {
    let mut out = image.to_vec();
    while let Some(h) = find_multiboot1(&out) {
        put32(&mut out, h.offset, 0);
    }
    out
}

/// Whether the image carries a PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`, type 18, name
/// "Xen"): found by scanning for the note header.
pub fn has_pvh_note(image: &[u8]) -> bool {
    image.len() >= 16
        && (0..image.len() - 15).step_by(4).any(|off| {
            le32(image, off) == Some(4)
                && matches!(le32(image, off + 4), Some(4 | 8))
                && le32(image, off + 8) == Some(18)
                && &image[off + 12..off + 16] == b"Xen\0"
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake ELF-like file: the header at offset 0x1000, linked at 1 MiB.
    fn fake_kernel(load_end: u32, bss_end: u32) -> Vec<u8> {
        let mut f = vec![0x11u8; 0x3000];
        let flags = 0x0001_0003u32;
        let fields = [
            MB1_MAGIC,
            flags,
            0u32.wrapping_sub(MB1_MAGIC + flags),
            0x10_0000,
            0x10_0000,
            load_end,
            bss_end,
            0x10_0040,
        ];
        for (i, v) in fields.iter().enumerate() {
            put32(&mut f, 0x1000 + 4 * i, *v);
        }
        f
    }

    #[test]
    fn shim_bytes() {
        let s = shim_image();
        assert_eq!(s.len(), 32 + 5 + 6 + 6 + 3);
        assert_eq!(
            &s[32..],
            &[
                0xA1, 0x00, 0x00, 0x00, 0x04, 0x8B, 0x1D, 0x04, 0x00, 0x00, 0x04, 0xFF, 0x25, 0x08,
                0x00, 0x00, 0x04, 0xF4, 0xEB, 0xFD
            ]
        );
        let h = find_multiboot1(&s).unwrap();
        assert_eq!(h.offset, 0);
        assert_eq!(h.flags, MB1_AOUT_KLUDGE);
        assert_eq!(
            (h.header_addr, h.load_addr, h.entry_addr),
            (SHIM_ADDR, SHIM_ADDR, SHIM_ADDR + 0x20)
        );
        let p = probe_image();
        assert_eq!(find_multiboot1(&p).unwrap().entry_addr, SHIM_ADDR + 0x20);
        assert_eq!(&p[32..39], &[0xB8, 0x10, 0, 0, 0, 0xE7, 0xF4]);
    }

    #[test]
    fn param_blocks() {
        let p = params(BadBoot::BadMagic, 0x10_0040);
        assert_eq!(p.len(), PARAMS_SIZE);
        assert_eq!(le32(&p, 0), Some(0xDEAD_BEEF));
        assert_eq!(le32(&p, 4), Some(0));
        assert_eq!(le32(&p, 8), Some(0x10_0040));
        let p = params(BadBoot::NoMemoryMap, 0x10_0040);
        assert_eq!(le32(&p, 0), Some(0x2BAD_B002));
        assert_eq!(le32(&p, 4), Some(0x0400_0100));
        assert_eq!(le32(&p, 0x100), Some(4));
        assert_eq!(le32(&p, 0x110), Some(0x0400_0200));
        assert_eq!(&p[0x200..0x217], b"ferrovisor loglvl=info\0");
    }

    #[test]
    fn finds_header_and_cuts_image() {
        let f = fake_kernel(0x10_1800, 0x10_4000);
        let h = find_multiboot1(&f).unwrap();
        assert_eq!(h.offset, 0x1000);
        let k = kludge_image(&f).unwrap();
        assert_eq!(k.addr, 0x10_0000);
        assert_eq!(k.entry, 0x10_0040);
        assert_eq!(k.bytes.len(), 0x4000);
        assert_eq!(&k.bytes[..4], &MB1_MAGIC.to_le_bytes());
        assert_eq!(k.bytes[0x17ff], 0x11);
        assert_eq!(k.bytes[0x1800], 0);
        assert_eq!(check_layout(&k), Ok(()));
        // load_end_addr = 0: up to the end of the file.
        let k = kludge_image(&fake_kernel(0, 0)).unwrap();
        assert_eq!(k.bytes.len(), 0x2000);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut f = fake_kernel(0, 0);
        put32(&mut f, 0x1008, 0); // bad checksum
        assert!(find_multiboot1(&f).is_none());
        assert!(kludge_image(&f).is_err());
        assert!(kludge_image(&fake_kernel(0x20_0000, 0)).is_err()); // past the end of the file
        let mut far = vec![0u8; 0x4000];
        far[0x2000..0x2020].copy_from_slice(&flat_header(0x10_0000));
        assert!(find_multiboot1(&far[..]).is_none(), "header past 8 KiB");
        let clash = LoadImage {
            addr: SHIM_ADDR - 0x1000,
            bytes: vec![0; 0x2000],
            entry: SHIM_ADDR - 0x1000,
        };
        assert!(check_layout(&clash).is_err());
        let low = LoadImage {
            addr: 0xff000,
            bytes: vec![0; 0x2000],
            entry: 0x100000,
        };
        assert!(check_layout(&low).is_err());
    }

    #[test]
    fn pvh_copy() {
        let f = fake_kernel(0, 0);
        let p = without_multiboot1(&f);
        assert!(find_multiboot1(&p).is_none());
        assert_eq!(p.len(), f.len());
        assert!(!has_pvh_note(&f));
        let mut n = f.clone();
        let note = [4u32, 4, 18];
        for (i, v) in note.iter().enumerate() {
            put32(&mut n, 0x2000 + 4 * i, *v);
        }
        n[0x200c..0x2010].copy_from_slice(b"Xen\0");
        assert!(has_pvh_note(&n));
    }
}
