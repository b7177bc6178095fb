//! Memory map normalisation.
//!
//! Firmware and boot loaders hand over e820-style maps that may be unsorted,
//! contain empty entries and overlap. [`normalise`] turns such a list into
//! one the frame allocator can trust:
//!
//! * sorted by start address, no zero-length entries, no overlaps;
//! * where entries of different kinds overlap, every byte gets the **most
//!   restrictive** kind claimed for it, in this order (weakest first):
//!   `Usable` < `AcpiReclaimable` < `AcpiNvs` < `Reserved` < `Other(_)` <
//!   `Defective`. Unknown type codes (`Other`) must never be used as RAM, so
//!   they rank above `Reserved`; defective RAM ranks highest as nothing may
//!   ever touch it. Between two `Other` codes the larger wins, arbitrarily
//!   but deterministically. Handing out a byte that some entry says is
//!   reserved could corrupt firmware state, so the stricter claim wins;
//! * adjacent entries of the same kind are merged.
//!
//! It works in place on fixed-size arrays (no heap) with an O(n²) sweep over
//! the entries' boundaries; n ≤ 128, so this is at most a few tens of
//! thousands of comparisons, once per boot.

use crate::bounded::BoundedVec;
use crate::info::{BootError, MAX_MEMORY_REGIONS, MemoryKind, MemoryRegion};

/// A raw, not yet normalised memory map as collected by a parser.
pub(crate) type RawMap = BoundedVec<MemoryRegion, MAX_MEMORY_REGIONS>;

/// Appends a raw entry, checking that its end fits in 64 bits.
///
/// `what` and `paddr` name the entry for error messages.
pub(crate) fn push_raw(
    raw: &mut RawMap,
    region: MemoryRegion,
    what: &'static str,
    paddr: u64,
) -> Result<(), BootError> {
    if region.start.checked_add(region.len).is_none() {
        return Err(BootError::Malformed {
            what,
            paddr,
            detail: "a memory map entry's base + length overflows 64 bits",
        });
    }
    raw.push(region).map_err(|_| BootError::TooMany {
        what: "memory map entries",
        limit: MAX_MEMORY_REGIONS,
    })
}

/// How restrictive a kind is; where kinds overlap, the higher rank wins.
const fn rank(kind: MemoryKind) -> (u8, u32) {
    match kind {
        MemoryKind::Usable => (0, 0),
        MemoryKind::AcpiReclaimable => (1, 0),
        MemoryKind::AcpiNvs => (2, 0),
        MemoryKind::Reserved => (3, 0),
        MemoryKind::Other(code) => (4, code),
        MemoryKind::Defective => (5, 0),
    }
}

/// Normalises `raw` as described in the [module documentation](self).
///
/// # Errors
///
/// [`BootError::TooMany`] if splitting overlaps yields more than
/// [`MAX_MEMORY_REGIONS`] entries.
///
/// Entries must not wrap past 2^64 (guaranteed by the parsers' `push_raw`);
/// any that do are ignored rather than trusted.
///
/// The result goes to `out` (cleared first) rather than the return value so
/// that no 3 KiB temporary lands on the small early-boot stack.
pub fn normalise(
    raw: &[MemoryRegion],
    out: &mut BoundedVec<MemoryRegion, MAX_MEMORY_REGIONS>,
) -> Result<(), BootError> {
    out.clear();
    let live = |r: &&MemoryRegion| r.len != 0 && r.start.checked_add(r.len).is_some();

    // Sweep over the distinct boundaries (starts and ends) in increasing
    // order. Between two consecutive boundaries no entry starts or ends, so
    // each such segment is either wholly inside an entry or wholly outside.
    let mut cur = raw.iter().filter(live).map(|r| r.start).min();
    while let Some(pos) = cur {
        let next = raw
            .iter()
            .filter(live)
            .flat_map(|r| [r.start, r.end()])
            .filter(|&b| b > pos)
            .min();
        let Some(next) = next else { break };

        let kind = raw
            .iter()
            .filter(live)
            .filter(|r| r.start <= pos && pos < r.end())
            .map(|r| r.kind)
            .max_by_key(|&k| rank(k));

        if let Some(kind) = kind {
            match out.last_mut() {
                Some(last) if last.kind == kind && last.end() == pos => last.len += next - pos,
                _ => out
                    .push(MemoryRegion {
                        start: pos,
                        len: next - pos,
                        kind,
                    })
                    .map_err(|_| BootError::TooMany {
                        what: "memory map entries (after splitting overlaps)",
                        limit: MAX_MEMORY_REGIONS,
                    })?,
            }
        }
        cur = Some(next);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemoryKind::*;

    fn r(start: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { start, len, kind }
    }

    fn normalise(raw: &[MemoryRegion]) -> Result<RawMap, BootError> {
        let mut out = RawMap::new();
        // Stale contents must not leak into the result.
        out.push(r(1, 1, Usable)).unwrap();
        super::normalise(raw, &mut out).map(|()| out)
    }

    #[test]
    fn sorts_drops_empty_and_merges() {
        let raw = [
            r(0x10_0000, 0x10_0000, Usable),
            r(0, 0x9_f000, Usable),
            r(0x5000, 0, Reserved),
            r(0x20_0000, 0x10_0000, Usable),
            r(0xf_0000, 0x1_0000, Reserved),
        ];
        let out = normalise(&raw).unwrap();
        assert_eq!(
            out.as_slice(),
            &[
                r(0, 0x9_f000, Usable),
                r(0xf_0000, 0x1_0000, Reserved),
                r(0x10_0000, 0x20_0000, Usable),
            ]
        );
    }

    #[test]
    fn overlap_more_restrictive_wins() {
        // Reserved hole punched into the middle of usable RAM.
        let raw = [r(0, 0x1_0000, Usable), r(0x4000, 0x1000, Reserved)];
        assert_eq!(
            normalise(&raw).unwrap().as_slice(),
            &[
                r(0, 0x4000, Usable),
                r(0x4000, 0x1000, Reserved),
                r(0x5000, 0xb000, Usable),
            ]
        );
        // Order of the input does not matter, nor does which entry is wider.
        let raw = [r(0x4000, 0x1000, Usable), r(0, 0x1_0000, AcpiNvs)];
        assert_eq!(
            normalise(&raw).unwrap().as_slice(),
            &[r(0, 0x1_0000, AcpiNvs)]
        );
    }

    #[test]
    fn overlap_chain_of_kinds() {
        let raw = [
            r(0, 0x4000, Usable),
            r(0x1000, 0x2000, AcpiReclaimable),
            r(0x1800, 0x1000, AcpiNvs),
            r(0x2000, 0x400, Reserved),
            r(0x2100, 0x100, Defective),
            r(0x3f00, 0x200, Other(7)),
            r(0x3f80, 0x10, Other(12)),
        ];
        assert_eq!(
            normalise(&raw).unwrap().as_slice(),
            &[
                r(0, 0x1000, Usable),
                r(0x1000, 0x800, AcpiReclaimable),
                r(0x1800, 0x800, AcpiNvs),
                r(0x2000, 0x100, Reserved),
                r(0x2100, 0x100, Defective),
                r(0x2200, 0x200, Reserved),
                r(0x2400, 0x400, AcpiNvs),
                r(0x2800, 0x800, AcpiReclaimable),
                r(0x3000, 0xf00, Usable),
                r(0x3f00, 0x80, Other(7)),
                r(0x3f80, 0x10, Other(12)),
                r(0x3f90, 0x170, Other(7)),
            ]
        );
    }

    #[test]
    fn identical_duplicates_and_top_of_address_space() {
        let raw = [
            r(0x1000, 0x1000, Usable),
            r(0x1000, 0x1000, Usable),
            r(u64::MAX - 0x1fff, 0x1000, Reserved),
        ];
        assert_eq!(
            normalise(&raw).unwrap().as_slice(),
            &[
                r(0x1000, 0x1000, Usable),
                r(u64::MAX - 0x1fff, 0x1000, Reserved)
            ]
        );
    }

    #[test]
    fn empty_input() {
        assert!(normalise(&[]).unwrap().is_empty());
        assert!(normalise(&[r(5, 0, Usable)]).unwrap().is_empty());
    }

    #[test]
    fn push_raw_rejects_wrapping_entry() {
        let mut raw = RawMap::new();
        let err = push_raw(&mut raw, r(u64::MAX, 2, Usable), "test map", 0x42).unwrap_err();
        assert!(matches!(err, BootError::Malformed { paddr: 0x42, .. }));
    }

    #[test]
    fn too_many_after_splitting() {
        // 64 reserved pages punched into one usable range give 129 pieces.
        let mut raw = RawMap::new();
        raw.push(r(0, 0x100_0000, Usable)).unwrap();
        for i in 0..64 {
            raw.push(r(0x1000 + i * 0x2000, 0x1000, Reserved)).unwrap();
        }
        assert!(matches!(
            normalise(&raw),
            Err(BootError::TooMany { limit: 128, .. })
        ));
    }
}
