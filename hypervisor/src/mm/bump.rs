//! The early frame allocator: a bump pointer over one physical range.
//!
//! Used while the kernel builds its first page tables, before the direct map (and so the
//! buddy allocator's metadata) exists. It never frees; whatever it handed out is reported by
//! [`BumpAllocator::used`] and passed to the buddy allocator as reserved.

use core::ops::Range;

use super::{FRAME_SIZE, MAX_PHYS_ADDR, align_down, align_up, merged_usable, reserved_extent};

/// Hands out 4 KiB frames upward from a fixed physical range.
///
/// Invariants: `start <= next <= end`, all three frame-aligned; frames in `[start, next)`
/// have been handed out exactly once, frames in `[next, end)` never.
#[derive(Debug, Clone)]
pub struct BumpAllocator {
    start: u64,
    next: u64,
    end: u64,
}

impl BumpAllocator {
    /// An allocator over `[range.start, range.end)` rounded inward to whole frames. An
    /// empty, inverted or sub-frame range gives an allocator that always returns `None`.
    pub const fn new(range: Range<u64>) -> Self {
        let mut start = align_up(if range.start < MAX_PHYS_ADDR {
            range.start
        } else {
            MAX_PHYS_ADDR
        });
        let end = align_down(if range.end < MAX_PHYS_ADDR {
            range.end
        } else {
            MAX_PHYS_ADDR
        });
        if start > end {
            // Keep the invariant `start <= end` for inverted or sub-frame input.
            start = end;
        }
        Self {
            start,
            next: start,
            end,
        }
    }

    /// The physical address of a fresh 4 KiB frame, or `None` when the range is used up.
    /// The frame's contents are whatever was in memory: the caller zeroes it.
    pub fn alloc_frame(&mut self) -> Option<u64> {
        if self.end - self.next < FRAME_SIZE {
            return None;
        }
        let frame = self.next;
        self.next += FRAME_SIZE;
        Some(frame)
    }

    /// The frames handed out so far, as one range (empty if none). The buddy allocator must
    /// be given this as reserved: these frames hold live page tables.
    pub fn used(&self) -> Range<u64> {
        self.start..self.next
    }

    /// The whole (rounded) range this allocator draws from.
    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }

    /// How many frames are still available.
    pub fn frames_left(&self) -> u64 {
        (self.end - self.next) / FRAME_SIZE
    }
}

/// Chooses the range for the [`BumpAllocator`]: the lowest frame-aligned window of `size`
/// bytes (rounded up to whole frames) that
///
/// - lies inside the usable memory (usable ranges rounded inward, overlapping or touching
///   ones merged, as for the buddy allocator),
/// - ends at or below `below` (rounded down to a frame; the kernel passes 4 GiB because only
///   that much is identity-mapped early),
/// - starts at or above 1 MiB ([`super::LOW_MEMORY_END`]), and
/// - overlaps no `reserved` range (each rounded outward to whole frames).
///
/// Returns `None` if no such window exists or `size` is zero. Runs in
/// O(usable² + windows tried × reserved) with no allocation.
pub fn pick_early_range(
    usable: &[Range<u64>],
    reserved: &[Range<u64>],
    size: u64,
    below: u64,
) -> Option<Range<u64>> {
    if size == 0 || size > MAX_PHYS_ADDR {
        return None;
    }
    let size = align_up(size);
    let limit = align_down(below.min(MAX_PHYS_ADDR));
    for zone in merged_usable(usable) {
        let end = zone.end.min(limit);
        let mut candidate = zone.start;
        // `candidate` only moves up, to the end of a reserved range that overlaps the
        // current window; every window starting in between overlaps that same range, so
        // the first window that fits is the lowest one.
        'windows: while let Some(window_end) = candidate.checked_add(size) {
            if window_end > end {
                break;
            }
            for (r_start, r_end) in reserved.iter().filter_map(reserved_extent) {
                if r_start < window_end && candidate < r_end {
                    candidate = r_end;
                    continue 'windows;
                }
            }
            return Some(candidate..window_end);
        }
    }
    None
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    clippy::reversed_empty_ranges,
    reason = "memory maps with one range are slices of ranges; inverted ranges are test input"
)]
mod tests {
    use super::super::testutil::{RandomMap, XorShift};
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn bump_hands_out_frames_upward_then_stops() {
        let mut bump = BumpAllocator::new(0x20_0123..0x20_4fff);
        assert_eq!(bump.range(), 0x20_1000..0x20_4000, "rounded inward");
        assert_eq!(bump.used(), 0x20_1000..0x20_1000);
        assert_eq!(bump.frames_left(), 3);
        assert_eq!(bump.alloc_frame(), Some(0x20_1000));
        assert_eq!(bump.alloc_frame(), Some(0x20_2000));
        assert_eq!(bump.used(), 0x20_1000..0x20_3000);
        assert_eq!(bump.alloc_frame(), Some(0x20_3000));
        assert_eq!(bump.alloc_frame(), None);
        assert_eq!(bump.alloc_frame(), None, "stays exhausted");
        assert_eq!(bump.used(), 0x20_1000..0x20_4000);
        assert_eq!(bump.frames_left(), 0);
    }

    #[test]
    fn bump_degenerate_ranges_never_allocate() {
        for range in [
            0x1000..0x1000,
            0x2000..0x1000,
            0x1001..0x1fff,
            u64::MAX - 10..u64::MAX,
        ] {
            let mut bump = BumpAllocator::new(range.clone());
            assert_eq!(bump.alloc_frame(), None, "{range:x?}");
            assert!(bump.used().is_empty());
            assert_eq!(bump.frames_left(), 0);
        }
    }

    #[test]
    fn bump_is_usable_in_const_context() {
        const EARLY: BumpAllocator = BumpAllocator::new(0x10_0000..0x10_2000);
        let mut bump = EARLY;
        assert_eq!(bump.alloc_frame(), Some(0x10_0000));
    }

    /// The QEMU q35 map with 2 GiB below 4 GiB and more above, like the kernel will see.
    const QEMU_USABLE: [Range<u64>; 3] = [
        0..0x9fc00,
        0x10_0000..0x7ffe_0000,
        0x1_0000_0000..0x4_4000_0000,
    ];

    #[test]
    fn picks_lowest_window_above_1mib_avoiding_reserved() {
        // Kernel image loaded at 1 MiB, a boot module at 3.5 MiB (unaligned end).
        let reserved = [0x10_0000..0x2a_3456, 0x38_0000..0x3c_0001];
        let got = pick_early_range(&QEMU_USABLE, &reserved, 0x10_0000, 4 * GIB);
        // 1 MiB does not fit between the image (ends 0x2a_4000) and the module at 0x38_0000,
        // so the window starts right after the module, whose end rounds up to 0x3c_1000.
        assert_eq!(got, Some(0x3c_1000..0x4c_1000));
        // A smaller window fits in the gap.
        assert_eq!(
            pick_early_range(&QEMU_USABLE, &reserved, 0x1000, 4 * GIB),
            Some(0x2a_4000..0x2a_5000)
        );
        // Size is rounded up to whole frames.
        assert_eq!(
            pick_early_range(&QEMU_USABLE, &reserved, 0x1001, 4 * GIB),
            Some(0x2a_4000..0x2a_6000)
        );
    }

    #[test]
    fn pick_respects_below_and_fails_cleanly() {
        // Nothing usable below 4 GiB except low memory: no window.
        let usable = [0..0x9fc00, 0x1_0000_0000..0x2_0000_0000];
        assert_eq!(pick_early_range(&usable, &[], MIB, 4 * GIB), None);
        // The window must end at or below `below`.
        let usable = [0x10_0000..0x40_0000];
        assert_eq!(
            pick_early_range(&usable, &[], 2 * MIB, 3 * MIB),
            Some(0x10_0000..0x30_0000)
        );
        assert_eq!(pick_early_range(&usable, &[], 2 * MIB, 3 * MIB - 1), None);
        // Too big, zero, absurd sizes.
        assert_eq!(pick_early_range(&usable, &[], 4 * MIB, u64::MAX), None);
        assert_eq!(pick_early_range(&usable, &[], 0, u64::MAX), None);
        assert_eq!(pick_early_range(&usable, &[], u64::MAX, u64::MAX), None);
        // Everything reserved.
        assert_eq!(
            pick_early_range(&usable, &[0..u64::MAX], 0x1000, u64::MAX),
            None
        );
    }

    #[test]
    fn pick_spans_touching_usable_ranges() {
        let usable = [0x30_0000..0x40_0000, 0x20_0000..0x30_0000];
        // Unsorted, touching ranges form one 2 MiB stretch.
        assert_eq!(
            pick_early_range(&usable, &[], 2 * MIB, 4 * GIB),
            Some(0x20_0000..0x40_0000)
        );
        assert_eq!(
            pick_early_range(&usable, &[0x20_0000..0x28_0000], 2 * MIB, 4 * GIB),
            None
        );
        assert_eq!(
            pick_early_range(&usable, &[0x20_0000..0x21_0000], MIB + 0x8_0000, 4 * GIB),
            Some(0x21_0000..0x39_0000)
        );
    }

    /// Brute force over every frame-aligned start: the lowest start whose window lies in one
    /// merged usable frame run, at or above 1 MiB, below the limit, with no reserved frame.
    fn reference_pick(map: &RandomMap, frames: u64, below: u64) -> Option<Range<u64>> {
        let managed = map.managed_frames();
        let count = map.span / FRAME_SIZE;
        (0..count).find_map(|first| {
            let last = first + frames; // exclusive
            let start = map.base + first * FRAME_SIZE;
            let end = map.base + last * FRAME_SIZE;
            (last <= count && end <= below && (first..last).all(|i| managed[i as usize]))
                .then_some(start..end)
        })
    }

    #[test]
    fn pick_matches_brute_force_on_random_maps() {
        for seed in 0..200 {
            let mut rng = XorShift::new(seed);
            let map = RandomMap::generate(&mut rng);
            let frames = if rng.percent(50) {
                rng.between(1, 8)
            } else {
                rng.between(1, 1024)
            };
            let size = frames * FRAME_SIZE - rng.below(FRAME_SIZE); // unaligned sizes too
            let below = map.base + rng.below(map.span + 1);
            let got = pick_early_range(&map.usable, &map.reserved, size, below);
            assert_eq!(
                got,
                reference_pick(&map, frames, below),
                "seed {seed}: usable {:x?} reserved {:x?} size {size:#x} below {below:#x}",
                map.usable,
                map.reserved
            );
        }
    }
}
