//! [`SparseGuestMemory`]: guest RAM made of up to `N` page-aligned regions with holes
//! between them, each backed by a caller-provided buffer.
//!
//! It needs no heap (regions live inline; the backing is any `AsRef<[u8]> + AsMut<[u8]>`:
//! a `Vec<u8>` in host tests, a `&mut [u8]` or an array elsewhere) and is the reference
//! implementation of the [`GuestMemory`] contract: whole-range checks before any copy, holes
//! (MMIO gaps) report [`GuestMemoryError::NotRam`] with the first missing address, and
//! adjacent regions behave as one contiguous stretch of RAM.

use super::{GUEST_PAGE_SIZE, GuestMemory, GuestMemoryError, GuestRange};

/// Why [`SparseGuestMemory::add_region`] refused a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// Base or length not a multiple of [`GUEST_PAGE_SIZE`], or the length is zero.
    Misaligned,
    /// The region's end overflows the 64-bit address space.
    Overflow,
    /// The region overlaps one that was added before.
    Overlap,
    /// All `N` slots are in use.
    Full,
}

#[derive(Debug)]
struct Region<B> {
    base: u64,
    backing: B,
}

impl<B: AsRef<[u8]>> Region<B> {
    fn len(&self) -> u64 {
        self.backing.as_ref().len() as u64
    }

    fn end(&self) -> u64 {
        // Checked when the region was added.
        self.base + self.len()
    }

    fn contains(&self, gpa: u64) -> bool {
        gpa >= self.base && gpa < self.end()
    }
}

/// Guest RAM as up to `N` disjoint regions, each a page-aligned run of whole pages.
#[derive(Debug)]
pub struct SparseGuestMemory<B, const N: usize> {
    regions: [Option<Region<B>>; N],
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> Default for SparseGuestMemory<B, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> SparseGuestMemory<B, N> {
    /// No RAM at all.
    pub fn new() -> Self {
        Self {
            regions: core::array::from_fn(|_| None),
        }
    }

    /// Makes `backing` the guest RAM at `[base, base + backing.len())`.
    pub fn add_region(&mut self, base: u64, backing: B) -> Result<(), RegionError> {
        let len = backing.as_ref().len() as u64;
        if len == 0 || !base.is_multiple_of(GUEST_PAGE_SIZE) || !len.is_multiple_of(GUEST_PAGE_SIZE)
        {
            return Err(RegionError::Misaligned);
        }
        let end = base.checked_add(len).ok_or(RegionError::Overflow)?;
        if self
            .regions
            .iter()
            .flatten()
            .any(|r| base < r.end() && r.base < end)
        {
            return Err(RegionError::Overlap);
        }
        let slot = self
            .regions
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(RegionError::Full)?;
        *slot = Some(Region { base, backing });
        Ok(())
    }

    /// The region holding `gpa`, as an index into `regions`.
    fn region_at(&self, gpa: u64) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.contains(gpa)))
    }

    /// Splits `range` into `(region index, offset in region, len)` pieces in ascending
    /// order, calling `f` on each; stops at the first byte that is not RAM.
    fn for_each_piece(
        &self,
        range: GuestRange,
        mut f: impl FnMut(usize, usize, usize),
    ) -> Result<(), GuestMemoryError> {
        let mut gpa = range.start();
        let end = range.end();
        while gpa < end {
            let index = self
                .region_at(gpa)
                .ok_or(GuestMemoryError::NotRam { gpa })?;
            let Some(region) = &self.regions[index] else {
                unreachable!("region_at returned an empty slot");
            };
            let piece_end = region.end().min(end);
            // Offsets and lengths are within a backing slice, so they fit in usize.
            f(
                index,
                (gpa - region.base) as usize,
                (piece_end - gpa) as usize,
            );
            gpa = piece_end;
        }
        Ok(())
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>, const N: usize> GuestMemory for SparseGuestMemory<B, N> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let range = GuestRange::for_buf(gpa, buf.len())?;
        // Check pass: nothing is copied unless every byte is RAM.
        self.for_each_piece(range, |_, _, _| {})?;
        let mut done = 0;
        self.for_each_piece(range, |index, offset, len| {
            if let Some(region) = &self.regions[index] {
                buf[done..done + len]
                    .copy_from_slice(&region.backing.as_ref()[offset..offset + len]);
            }
            done += len;
        })
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), GuestMemoryError> {
        let range = GuestRange::for_buf(gpa, buf.len())?;
        // Check pass first, so a failed write changes nothing.
        self.for_each_piece(range, |_, _, _| {})?;
        let mut gpa = range.start();
        let mut done = 0;
        while done < buf.len() {
            let index = self
                .region_at(gpa)
                .ok_or(GuestMemoryError::NotRam { gpa })?;
            let Some(region) = &mut self.regions[index] else {
                unreachable!("region_at returned an empty slot");
            };
            let offset = (gpa - region.base) as usize;
            let backing = region.backing.as_mut();
            let len = (backing.len() - offset).min(buf.len() - done);
            backing[offset..offset + len].copy_from_slice(&buf[done..done + len]);
            done += len;
            gpa += len as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::GuestMemoryExt;
    use super::*;

    const PAGE: usize = GUEST_PAGE_SIZE as usize;

    /// RAM at [0, 8 KiB) and [12 KiB, 16 KiB) with a hole (an MMIO gap) at [8 KiB, 12 KiB),
    /// plus [16 KiB, 20 KiB) adjacent to the second region. Byte i of each region holds
    /// `(gpa / 7) as u8`-style patterns so copies can be checked.
    fn memory() -> SparseGuestMemory<Vec<u8>, 4> {
        let mut mem = SparseGuestMemory::new();
        for (base, pages) in [(0u64, 2usize), (0x3000, 1), (0x4000, 1)] {
            let backing = (0..pages * PAGE)
                .map(|i| pattern(base + i as u64))
                .collect();
            mem.add_region(base, backing).unwrap();
        }
        mem
    }

    fn pattern(gpa: u64) -> u8 {
        (gpa % 251) as u8
    }

    #[test]
    fn reads_within_and_across_adjacent_regions() {
        let mem = memory();
        let mut buf = [0u8; 16];
        mem.read(0x1FF8, &mut buf[..8]).unwrap();
        assert!(
            buf[..8]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(0x1FF8 + i as u64))
        );
        // 0x3FF8..0x4008 spans the second and third regions, which touch.
        mem.read(0x3FF8, &mut buf).unwrap();
        assert!(
            buf.iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(0x3FF8 + i as u64))
        );
    }

    #[test]
    fn read_straddling_a_hole_fails_and_copies_nothing() {
        let mem = memory();
        let mut buf = [0xAAu8; 32];
        assert_eq!(
            mem.read(0x1FF0, &mut buf),
            Err(GuestMemoryError::NotRam { gpa: 0x2000 })
        );
        assert_eq!(buf, [0xAA; 32], "no partial copy");
        // Starting inside the hole and ending in RAM fails at the first byte.
        assert_eq!(
            mem.read(0x2FF0, &mut buf),
            Err(GuestMemoryError::NotRam { gpa: 0x2FF0 })
        );
        assert_eq!(buf, [0xAA; 32]);
        // Beyond the end of RAM.
        assert_eq!(
            mem.read(0x4FF0, &mut buf),
            Err(GuestMemoryError::NotRam { gpa: 0x5000 })
        );
        assert_eq!(buf, [0xAA; 32]);
    }

    #[test]
    fn write_straddling_a_hole_changes_nothing() {
        let mut mem = memory();
        assert_eq!(
            mem.write(0x1FF0, &[0x55; 32]),
            Err(GuestMemoryError::NotRam { gpa: 0x2000 })
        );
        let mut buf = [0u8; 16];
        mem.read(0x1FF0, &mut buf).unwrap();
        assert!(
            buf.iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(0x1FF0 + i as u64))
        );
        // And a good write across adjacent regions lands.
        mem.write(0x3FFC, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut back = [0u8; 8];
        mem.read(0x3FFC, &mut back).unwrap();
        assert_eq!(back, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn overflowing_ranges_fail() {
        let mut mem = memory();
        let mut buf = [0u8; 16];
        assert_eq!(
            mem.read(u64::MAX - 3, &mut buf),
            Err(GuestMemoryError::Overflow {
                gpa: u64::MAX - 3,
                len: 16
            })
        );
        assert_eq!(
            mem.write(u64::MAX, &buf[..2]),
            Err(GuestMemoryError::Overflow {
                gpa: u64::MAX,
                len: 2
            })
        );
        // Near the top but not overflowing: simply not RAM.
        assert_eq!(
            mem.read(u64::MAX - 16, &mut buf),
            Err(GuestMemoryError::NotRam { gpa: u64::MAX - 16 })
        );
    }

    #[test]
    fn zero_length_accesses_succeed_anywhere() {
        let mut mem = memory();
        mem.read(0x2800, &mut []).unwrap();
        mem.read(u64::MAX, &mut []).unwrap();
        mem.write(0x2800, &[]).unwrap();
        mem.write(u64::MAX, &[]).unwrap();
    }

    #[test]
    fn add_region_validates() {
        let mut mem: SparseGuestMemory<Vec<u8>, 2> = SparseGuestMemory::new();
        assert_eq!(
            mem.add_region(0x800, vec![0; PAGE]),
            Err(RegionError::Misaligned)
        );
        assert_eq!(
            mem.add_region(0x1000, vec![0; 100]),
            Err(RegionError::Misaligned)
        );
        assert_eq!(mem.add_region(0x1000, vec![]), Err(RegionError::Misaligned));
        assert_eq!(
            mem.add_region(u64::MAX - 0xFFF, vec![0; 2 * PAGE]),
            Err(RegionError::Overflow)
        );
        mem.add_region(0x1000, vec![0; 2 * PAGE]).unwrap();
        assert_eq!(
            mem.add_region(0x2000, vec![0; PAGE]),
            Err(RegionError::Overlap)
        );
        assert_eq!(
            mem.add_region(0, vec![0; 2 * PAGE]),
            Err(RegionError::Overlap)
        );
        mem.add_region(0x3000, vec![0; PAGE]).unwrap();
        assert_eq!(
            mem.add_region(0x10000, vec![0; PAGE]),
            Err(RegionError::Full)
        );
    }

    #[test]
    fn works_over_borrowed_slices_without_a_heap() {
        let mut backing = [0u8; PAGE];
        {
            let mut mem: SparseGuestMemory<&mut [u8], 1> = SparseGuestMemory::new();
            mem.add_region(0x7000, &mut backing[..]).unwrap();
            mem.write_obj(0x7010, &0xDEAD_BEEFu32).unwrap();
            assert_eq!(mem.read_obj::<u32>(0x7010), Ok(0xDEAD_BEEF));
        }
        assert_eq!(&backing[0x10..0x14], &[0xEF, 0xBE, 0xAD, 0xDE]);
    }

    #[test]
    fn read_obj_is_unaligned_and_all_or_nothing() {
        let mut mem = memory();
        mem.write(0x1003, &0x0102_0304_0506_0708u64.to_le_bytes())
            .unwrap();
        assert_eq!(mem.read_obj::<u64>(0x1003), Ok(0x0102_0304_0506_0708));
        assert_eq!(
            mem.read_obj::<u64>(0x1FFC),
            Err(GuestMemoryError::NotRam { gpa: 0x2000 })
        );
    }

    #[test]
    fn cstring_reads() {
        let mut mem = memory();
        mem.write(0x100, b"hello\0world").unwrap();
        let mut buf = [0xFFu8; 32];
        assert_eq!(mem.read_cstring_bounded(0x100, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");

        // A string ending right before the hole is fine: reads stop at the NUL.
        mem.write(0x1FFC, b"abc\0").unwrap();
        assert_eq!(mem.read_cstring_bounded(0x1FFC, &mut buf), Ok(3));

        // No NUL before the hole: a fault, and nothing partial is left in the buffer.
        mem.write(0x1FFC, b"abcd").unwrap();
        let mut buf = [0xFFu8; 32];
        assert_eq!(
            mem.read_cstring_bounded(0x1FFC, &mut buf),
            Err(GuestMemoryError::NotRam { gpa: 0x2000 })
        );
        assert_eq!(buf, [0; 32]);

        // No NUL within the bound (NUL exactly one past it).
        mem.write(0x200, b"0123456789\0").unwrap();
        let mut small = [0u8; 10];
        assert_eq!(
            mem.read_cstring_bounded(0x200, &mut small),
            Err(GuestMemoryError::Unterminated { max_len: 10 })
        );
        let mut exact = [0u8; 11];
        assert_eq!(mem.read_cstring_bounded(0x200, &mut exact), Ok(10));

        // Spanning two pages of RAM.
        mem.write(0xFFE, b"xyz\0").unwrap();
        assert_eq!(mem.read_cstring_bounded(0xFFE, &mut exact), Ok(3));

        // A window that would wrap the address space.
        assert_eq!(
            mem.read_cstring_bounded(u64::MAX - 4, &mut exact),
            Err(GuestMemoryError::Overflow {
                gpa: u64::MAX - 4,
                len: 11
            })
        );
    }
}
