//! Synthetic physical memory for the tests, plus byte-writing helpers.

use crate::{BootInfo, BootProtocol, BoundedStr, MemoryKind, MemoryRegion, Module, PhysMemory};

/// A `BootInfo` full of stale data, to check that parsers reset it.
pub fn dirty_info() -> BootInfo {
    let mut info = BootInfo::empty(BootProtocol::Multiboot1);
    info.cmdline = BoundedStr::from_str_truncating("stale");
    info.rsdp = Some(0xdead);
    info.bootloader = Some(BoundedStr::from_str_truncating("stale"));
    info.memory_map
        .push(MemoryRegion {
            start: 0,
            len: 1,
            kind: MemoryKind::Usable,
        })
        .unwrap();
    info.modules.push(Module::default()).unwrap();
    info.add_structure(0xdead_0000, 1).unwrap();
    info
}

/// One readable chunk. The backing buffer is over-allocated so that the
/// host address of every byte has the same alignment modulo 8 as its
/// physical address, as it would under the kernel's identity map.
struct Chunk {
    base: u64,
    buf: Vec<u8>,
    offset: usize,
    len: usize,
}

/// Several disjoint readable chunks; everything else is unreadable.
#[derive(Default)]
pub struct TestMem {
    chunks: Vec<Chunk>,
}

impl TestMem {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `data` readable at `base`.
    pub fn add(&mut self, base: u64, data: &[u8]) {
        self.add_skewed(base, data, 0);
    }

    /// Like `add`, but the host copy is misaligned by `skew` bytes relative
    /// to the physical address (to test alignment checks).
    pub fn add_skewed(&mut self, base: u64, data: &[u8], skew: usize) {
        let mut buf = vec![0u8; data.len() + 16];
        let offset = buf.as_ptr().align_offset(8) + (base % 8) as usize + skew;
        buf[offset..offset + data.len()].copy_from_slice(data);
        self.chunks.push(Chunk {
            base,
            buf,
            offset,
            len: data.len(),
        });
    }
}

impl PhysMemory for TestMem {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        self.chunks.iter().find_map(|c| {
            let rel = usize::try_from(paddr.checked_sub(c.base)?).ok()?;
            let end = rel.checked_add(len)?;
            (end <= c.len).then(|| &c.buf[c.offset + rel..c.offset + end])
        })
    }
}

/// Little-endian byte writer for hand-built structures.
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Writes a little-endian `u32` at `off`, growing the buffer if needed.
    pub fn put_u32(&mut self, off: usize, v: u32) {
        if self.0.len() < off + 4 {
            self.0.resize(off + 4, 0);
        }
        self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
}
