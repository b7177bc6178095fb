//! Physical memory management: the frame allocators.
//!
//! Two allocators are used one after the other during boot:
//!
//! - [`BumpAllocator`] hands out single 4 KiB frames from one range chosen with
//!   [`pick_early_range`], while the kernel builds its first page tables. At that point only
//!   the low 4 GiB are identity-mapped and there is no heap and no direct map.
//! - [`BuddyAllocator`] takes over once the direct map exists. It manages every usable frame
//!   (minus reserved ones, including what the bump allocator used) in naturally aligned
//!   power-of-two blocks, so 2 MiB and 1 GiB frames are available for large mappings.
//!
//! Both do pure bookkeeping over physical addresses and never touch the memory they manage
//! (the buddy allocator's metadata is a slice the caller provides). That keeps them free of
//! `unsafe` and lets them be tested on the host.
//!
//! Address-range conventions shared by both: ranges are half-open `[start, end)` physical
//! byte addresses; usable ranges are rounded *inward* to whole frames (a partial frame is not
//! usable), reserved ranges are rounded *outward* (a partially reserved frame is reserved),
//! and nothing below [`LOW_MEMORY_END`] or at or above [`MAX_PHYS_ADDR`] is ever handed out.

pub mod buddy;
pub mod bump;

#[cfg(test)]
mod testutil;

use core::ops::Range;

pub use buddy::{BuddyAllocator, FrameError, FrameMeta, MAX_ORDER, MAX_ZONES, order_for_size};
pub use bump::{BumpAllocator, pick_early_range};

/// Size of a physical frame (a base page) in bytes.
pub const FRAME_SIZE: u64 = 4096;

/// Memory below this address (the first MiB) is never handed out by either allocator: it
/// holds the real-mode IVT, the BIOS data area, the EBDA and option ROMs, and the AP startup
/// trampoline will be placed there (SIPI vectors can only point below 1 MiB).
pub const LOW_MEMORY_END: u64 = 0x10_0000;

/// Architectural limit of physical addresses on x86_64 (52 bits). Ranges are clipped to it,
/// which also keeps all frame arithmetic far away from `u64` overflow.
pub const MAX_PHYS_ADDR: u64 = 1 << 52;

const FRAME_MASK: u64 = FRAME_SIZE - 1;

/// Rounds down to a frame boundary.
const fn align_down(addr: u64) -> u64 {
    addr & !FRAME_MASK
}

/// Rounds up to a frame boundary. Callers clip to [`MAX_PHYS_ADDR`] first, so the addition
/// cannot overflow; it saturates anyway so that a mistake cannot panic.
const fn align_up(addr: u64) -> u64 {
    addr.saturating_add(FRAME_MASK) & !FRAME_MASK
}

/// The frame-aligned part of a usable range that the allocators may use: rounded inward,
/// clipped to `[LOW_MEMORY_END, MAX_PHYS_ADDR)`. `None` if nothing is left (including for
/// inverted ranges).
fn usable_extent(r: &Range<u64>) -> Option<(u64, u64)> {
    let start = align_up(r.start.clamp(LOW_MEMORY_END, MAX_PHYS_ADDR));
    let end = align_down(r.end.min(MAX_PHYS_ADDR));
    (start < end).then_some((start, end))
}

/// The frames touched by a reserved range: rounded outward, clipped to `MAX_PHYS_ADDR`.
/// `None` for empty or inverted ranges.
fn reserved_extent(r: &Range<u64>) -> Option<(u64, u64)> {
    let start = align_down(r.start.min(MAX_PHYS_ADDR));
    let end = align_up(r.end.min(MAX_PHYS_ADDR));
    (r.start < r.end && start < end).then_some((start, end))
}

/// Iterates over the union of `usable` (each range first reduced by [`usable_extent`]) as
/// maximal disjoint ranges in ascending order; overlapping and touching ranges are merged.
///
/// Works without a heap or a sort: each step scans the input for the lowest range above what
/// was already produced and then grows it while any range overlaps or touches its end. That
/// is quadratic in the number of ranges, which is fine for firmware memory maps (at most a
/// few hundred entries) and runs once at boot.
fn merged_usable(usable: &[Range<u64>]) -> MergedUsable<'_> {
    MergedUsable { usable, cursor: 0 }
}

struct MergedUsable<'a> {
    usable: &'a [Range<u64>],
    /// Everything below this address has already been produced. Invariant: every input
    /// range that ends above `cursor` also starts above it (else it would have been merged
    /// into the previous output).
    cursor: u64,
}

impl Iterator for MergedUsable<'_> {
    type Item = Range<u64>;

    fn next(&mut self) -> Option<Range<u64>> {
        let extents = self.usable.iter().filter_map(usable_extent);
        let (start, mut end) = extents
            .clone()
            .filter(|&(_, e)| e > self.cursor)
            .min_by_key(|&(s, _)| s)?;
        loop {
            let grown = extents
                .clone()
                .filter(|&(s, e)| s <= end && e > end)
                .map(|(_, e)| e)
                .max();
            match grown {
                Some(e) => end = e,
                None => break,
            }
        }
        self.cursor = end;
        Some(start..end)
    }
}

#[cfg(test)]
#[allow(
    clippy::reversed_empty_ranges,
    reason = "inverted ranges are test input"
)]
mod tests {
    use super::*;

    #[test]
    fn merged_usable_sorts_merges_and_rounds() {
        let usable = [
            0x50_0000..0x60_0000,
            0x20_0fff..0x30_0001, // rounds inward to 0x20_1000..0x30_0000
            0x30_0000..0x31_0000, // touches the previous one: merged
            0x55_0000..0x70_0000, // overlaps the first one
            0x0..0x9fc00,         // entirely below 1 MiB: dropped
            0x8_0000..0x10_2000,  // clipped to 0x10_0000
            0x90_0000..0x80_0000, // inverted: ignored
            0x90_0800..0x90_0fff, // less than a frame after rounding: ignored
        ];
        let merged: Vec<_> = merged_usable(&usable).collect();
        assert_eq!(
            merged,
            [
                0x10_0000..0x10_2000,
                0x20_1000..0x31_0000,
                0x50_0000..0x70_0000
            ]
        );
    }

    #[test]
    fn extents_clip_to_physical_limit() {
        assert_eq!(usable_extent(&(u64::MAX - 5..u64::MAX)), None);
        assert_eq!(
            usable_extent(&(MAX_PHYS_ADDR - 0x2000..u64::MAX)),
            Some((MAX_PHYS_ADDR - 0x2000, MAX_PHYS_ADDR))
        );
        assert_eq!(reserved_extent(&(0x1001..0x1002)), Some((0x1000, 0x2000)));
        assert_eq!(reserved_extent(&(0x1001..0x1001)), None);
        assert_eq!(
            reserved_extent(&(u64::MAX - 1..u64::MAX)),
            None,
            "entirely above the physical limit"
        );
    }
}
