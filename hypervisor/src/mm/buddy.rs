//! The main physical frame allocator: a binary buddy allocator over 4 KiB frames.
//!
//! # Design
//!
//! - **Zones.** Each maximal contiguous stretch of usable memory (usable ranges rounded
//!   inward, clipped to `[1 MiB, 2^52)`, overlapping or touching ones merged) is a zone; at
//!   most [`MAX_ZONES`], stored inline. Blocks never span or merge across zones.
//! - **Metadata.** One [`FrameMeta`] per frame of every zone, in one caller-provided slice:
//!   zone 0's frames first, then zone 1's, and so on (zones in ascending address order). The
//!   position of a frame in that slice is its *index*; within a zone, index and physical
//!   frame number differ by a constant, so a buddy's index is found without a lookup. Holes
//!   between zones cost nothing.
//! - **Free lists.** One intrusive doubly linked list per order, global across zones,
//!   threaded through the metadata by `u32` index ([`NIL`] terminates). Only the first frame
//!   (the *head*) of a free block is on a list. Allocation pops the first non-empty list at
//!   or above the requested order and splits: O(orders). Freeing merges with the buddy
//!   (frame number `p ^ (1 << k)`) while it is a free head of the same order in the same
//!   zone: O(orders) plus an O(log zones) zone lookup.
//!
//! # Frame states
//!
//! Every zone frame is in exactly one state, which is what lets `free` reject bad calls
//! without corrupting anything:
//!
//! - *reserved*: never handed out, never merged with;
//! - *free head* of a free block of order `k` (on list `k`);
//! - *allocated head* of a block handed out at order `k`;
//! - *tail*: any other frame of a free or allocated block.
//!
//! Which block a frame belongs to is implicit: blocks are naturally aligned, so a tail's head
//! is its frame number rounded down to `2^k` for the block's order `k`.

use core::fmt;
use core::ops::Range;

use super::{FRAME_SIZE, merged_usable, reserved_extent};

/// Largest block order: blocks are `2^order` frames, so order 9 is 2 MiB and order 18 is
/// 1 GiB (the largest page size x86_64 maps).
pub const MAX_ORDER: u8 = 18;

/// Maximum number of zones (contiguous usable stretches after merging).
pub const MAX_ZONES: usize = 64;

const ORDERS: usize = MAX_ORDER as usize + 1;

/// List terminator; also why at most `u32::MAX` frames (16 TiB) can be managed.
const NIL: u32 = u32::MAX;

// Frame states. A plain `u8` rather than an enum so that every bit pattern is a valid
// `FrameMeta`: the kernel builds the slice over raw physical memory.
const TAIL: u8 = 0;
const FREE: u8 = 1;
const ALLOCATED: u8 = 2;
const RESERVED: u8 = 3;

/// Per-frame metadata, 12 bytes per 4 KiB frame (0.3 %).
///
/// Any bit pattern is valid, and [`BuddyAllocator::new`] overwrites every entry it uses, so
/// the kernel may back the slice with uninitialised-but-readable (e.g. zeroed) memory.
/// Fields are private: only the allocator interprets them.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Next free block head on the same list (meaningful for free heads only).
    next: u32,
    /// Previous free block head on the same list (meaningful for free heads only).
    prev: u32,
    /// Block order (meaningful for free and allocated heads only).
    order: u8,
    /// One of `TAIL`, `FREE`, `ALLOCATED`, `RESERVED`; unknown values act like `TAIL` but
    /// never occur after `new`.
    state: u8,
}

const _: () = assert!(size_of::<FrameMeta>() == 12);

impl FrameMeta {
    /// A neutral value for initialising a metadata buffer (e.g. `vec![FrameMeta::UNUSED; n]`).
    pub const UNUSED: Self = Self {
        next: NIL,
        prev: NIL,
        order: 0,
        state: RESERVED,
    };
}

impl Default for FrameMeta {
    fn default() -> Self {
        Self::UNUSED
    }
}

/// Errors from [`BuddyAllocator::new`] and [`BuddyAllocator::free`]. A failed call changes
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `order` is above [`MAX_ORDER`].
    InvalidOrder,
    /// The address is not aligned to the block size of the given order.
    Misaligned,
    /// The address is not managed by this allocator: outside every zone, or reserved.
    NotOwned,
    /// The block (or the frame, if it lies inside a larger free block) is already free.
    DoubleFree,
    /// A block starts here but was allocated at a different order.
    WrongOrder {
        /// The order the block was allocated with.
        allocated: u8,
    },
    /// The address lies inside an allocated block but is not its start.
    NotBlockStart,
    /// The usable map has more than [`MAX_ZONES`] separate stretches.
    TooManyZones,
    /// More than `u32::MAX` frames (16 TiB) to manage: indices would not fit.
    TooManyFrames,
    /// The metadata slice is shorter than [`BuddyAllocator::metadata_len`].
    MetadataTooSmall {
        /// Entries required.
        needed: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidOrder => write!(f, "block order above {MAX_ORDER}"),
            Self::Misaligned => write!(f, "address not aligned to the block size"),
            Self::NotOwned => write!(f, "frame not managed by the allocator"),
            Self::DoubleFree => write!(f, "block is already free"),
            Self::WrongOrder { allocated } => {
                write!(f, "block was allocated at order {allocated}")
            }
            Self::NotBlockStart => write!(f, "address inside an allocated block"),
            Self::TooManyZones => write!(f, "more than {MAX_ZONES} usable memory stretches"),
            Self::TooManyFrames => write!(f, "more than {} frames", u32::MAX),
            Self::MetadataTooSmall { needed } => {
                write!(f, "frame metadata needs {needed} entries")
            }
        }
    }
}

/// One contiguous stretch of managed frames.
#[derive(Clone, Copy, Debug)]
struct Zone {
    /// Physical frame number of the first frame.
    base_pfn: u64,
    /// Number of frames (including reserved ones).
    frames: u32,
    /// Metadata index of the first frame.
    first: u32,
}

impl Zone {
    const EMPTY: Self = Self {
        base_pfn: 0,
        frames: 0,
        first: 0,
    };

    fn contains(&self, pfn: u64) -> bool {
        pfn >= self.base_pfn && pfn - self.base_pfn < u64::from(self.frames)
    }

    /// Metadata index of `pfn`, which must be in the zone.
    fn index(&self, pfn: u64) -> u32 {
        // In range by `contains`, so the difference fits in u32 and the sum stays below the
        // total frame count (itself at most u32::MAX).
        self.first + (pfn - self.base_pfn) as u32
    }
}

/// A buddy allocator of naturally aligned blocks of `2^order` frames, `order` in
/// `0..=MAX_ORDER`. See the module documentation for the design.
///
/// Invariants (checked by the tests after every operation):
/// - `free_frames` = Σ over orders `k` of `free_blocks(k) << k` ≤ `total_frames`;
/// - every free or allocated block is aligned to its size *physically* and lies inside one
///   zone, outside all reserved frames; no two blocks overlap;
/// - no two free buddies of the same order exist (they would have been merged), so once
///   everything is freed the free lists are back to their initial shape.
///
/// Allocation order among equally sized blocks is unspecified. The allocator never reads or
/// writes the managed memory, so blocks come back with stale contents: zeroing is the
/// caller's job. It is `Send` (it holds only a `&mut` slice of plain data) so the kernel can
/// keep it in a `spin::Mutex`.
pub struct BuddyAllocator<'a> {
    meta: &'a mut [FrameMeta],
    zones: [Zone; MAX_ZONES],
    zone_count: usize,
    /// Head index of the free list of each order, or `NIL`.
    heads: [u32; ORDERS],
    /// Length of each free list, for O(1) `free_blocks`.
    counts: [usize; ORDERS],
    free_frames: u64,
    total_frames: u64,
}

const fn assert_send<T: Send>() {}
const _: () = assert_send::<BuddyAllocator<'static>>();

/// The smallest order whose block holds `bytes` bytes, or `None` above 1 GiB. Zero bytes
/// gives order 0 (the smallest block).
pub fn order_for_size(bytes: u64) -> Option<u8> {
    let frames = bytes.div_ceil(FRAME_SIZE).max(1);
    // Exact: ceil(log2(frames)) via the next power of two (no overflow: frames < 2^52).
    let order = frames.next_power_of_two().trailing_zeros();
    u8::try_from(order).ok().filter(|&o| o <= MAX_ORDER)
}

impl<'a> BuddyAllocator<'a> {
    /// Number of [`FrameMeta`] entries needed to manage `usable` (multiply by
    /// `size_of::<FrameMeta>()` for bytes): one per frame of every zone, reserved frames
    /// included, holes between zones excluded. It depends only on `usable`, so the kernel can
    /// size the metadata first, carve it out of usable memory, and pass that region as
    /// reserved to [`new`](Self::new). Saturates at `usize::MAX` rather than overflowing.
    pub fn metadata_len(usable: &[Range<u64>]) -> usize {
        let frames: u64 = merged_usable(usable)
            .map(|zone| (zone.end - zone.start) / FRAME_SIZE)
            .sum();
        usize::try_from(frames).unwrap_or(usize::MAX)
    }

    /// Builds the allocator over `usable` minus `reserved`, with every managed frame free.
    ///
    /// - `usable` may be unsorted, unaligned (rounded inward to frames) and overlapping
    ///   (merged); frames below 1 MiB ([`super::LOW_MEMORY_END`]) are always excluded.
    /// - `reserved` (kernel image, boot modules and structures, the bump allocator's frames,
    ///   this metadata) may be unaligned (rounded outward) and overlap anything; reserved
    ///   frames are never handed out and never counted.
    /// - `meta` needs at least [`metadata_len`](Self::metadata_len)`(usable)` entries; its
    ///   prior contents are ignored and extra entries are left untouched.
    ///
    /// Each maximal run of free frames is added as the largest naturally aligned blocks that
    /// fit, which is exactly the fully merged state, and is what makes 2 MiB and 1 GiB blocks
    /// available. Runs in O(frames + zones × reserved + usable²).
    pub fn new(
        meta: &'a mut [FrameMeta],
        usable: &[Range<u64>],
        reserved: &[Range<u64>],
    ) -> Result<Self, FrameError> {
        let mut zones = [Zone::EMPTY; MAX_ZONES];
        let mut zone_count = 0;
        let mut indexed: u64 = 0;
        for range in merged_usable(usable) {
            let slot = zones.get_mut(zone_count).ok_or(FrameError::TooManyZones)?;
            let frames = (range.end - range.start) / FRAME_SIZE;
            let first = indexed;
            indexed += frames;
            // Every index must be below NIL, i.e. at most NIL frames in total.
            if indexed > u64::from(NIL) {
                return Err(FrameError::TooManyFrames);
            }
            *slot = Zone {
                base_pfn: range.start / FRAME_SIZE,
                // Both fit: they are at most `indexed`, checked above.
                frames: frames as u32,
                first: first as u32,
            };
            zone_count += 1;
        }
        let needed = usize::try_from(indexed).map_err(|_| FrameError::TooManyFrames)?;
        if meta.len() < needed {
            return Err(FrameError::MetadataTooSmall { needed });
        }
        let mut this = Self {
            meta,
            zones,
            zone_count,
            heads: [NIL; ORDERS],
            counts: [0; ORDERS],
            free_frames: 0,
            total_frames: 0,
        };
        for zone in zones.into_iter().take(zone_count) {
            this.populate(zone, reserved);
        }
        Ok(this)
    }

    /// Initialises one zone's metadata: marks reserved frames, then adds each free run.
    fn populate(&mut self, zone: Zone, reserved: &[Range<u64>]) {
        let first = zone.first as usize;
        let len = zone.frames as usize;
        let zone_end = zone.base_pfn + u64::from(zone.frames);
        let frames = &mut self.meta[first..first + len];
        frames.fill(FrameMeta {
            state: TAIL,
            ..FrameMeta::UNUSED
        });
        for (start, end) in reserved.iter().filter_map(reserved_extent) {
            let start = (start / FRAME_SIZE).max(zone.base_pfn);
            let end = (end / FRAME_SIZE).min(zone_end);
            if start < end {
                let (lo, hi) = (
                    (start - zone.base_pfn) as usize,
                    (end - zone.base_pfn) as usize,
                );
                for frame in &mut frames[lo..hi] {
                    frame.state = RESERVED;
                }
            }
        }
        let mut i = 0;
        while i < len {
            if self.meta[first + i].state == RESERVED {
                i += 1;
                continue;
            }
            let run = i;
            while i < len && self.meta[first + i].state != RESERVED {
                i += 1;
            }
            self.add_run(
                zone.base_pfn + run as u64,
                (first + run) as u32,
                (i - run) as u64,
            );
        }
    }

    /// Adds `count` free frames starting at frame `pfn` (metadata index `index`) as the
    /// largest naturally aligned blocks that fit. No two resulting blocks are buddies: a
    /// block of order `k` at a `2^(k+1)`-aligned frame is only chosen when fewer than
    /// `2^(k+1)` frames remain, so its buddy is not in the run.
    fn add_run(&mut self, mut pfn: u64, mut index: u32, mut count: u64) {
        self.total_frames += count;
        self.free_frames += count;
        while count > 0 {
            let align = pfn.trailing_zeros(); // 64 for frame 0, never reached (>= 1 MiB)
            let fits = count.ilog2();
            let order = align.min(fits).min(u32::from(MAX_ORDER)) as u8;
            self.push(index, order);
            pfn += 1 << order;
            index += 1 << order;
            count -= 1 << order;
        }
    }

    /// Allocates a block of `2^order` frames aligned to its size, returning its physical
    /// address, or `None` if no such block is free (or `order > MAX_ORDER`). O(orders).
    pub fn alloc(&mut self, order: u8) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        let mut k = (order..=MAX_ORDER).find(|&k| self.heads[usize::from(k)] != NIL)?;
        let index = self.heads[usize::from(k)];
        self.unlink(index, k);
        // Split: give back upper halves until the block has the requested order. The block
        // is inside one zone, so the upper half's index is simply `index + 2^k`.
        while k > order {
            k -= 1;
            self.push(index + (1 << k), k);
        }
        let head = &mut self.meta[index as usize];
        head.state = ALLOCATED;
        head.order = order;
        self.free_frames -= 1 << order;
        Some(self.pfn_of(index) * FRAME_SIZE)
    }

    /// Returns the block at `paddr`, allocated with the same `order`, and merges it with
    /// free buddies. O(orders + log zones).
    ///
    /// Errors (nothing is changed): [`FrameError::InvalidOrder`], [`FrameError::Misaligned`]
    /// for an address not aligned to the block size, [`FrameError::NotOwned`] outside the
    /// managed frames or on a reserved frame, [`FrameError::DoubleFree`] if already free,
    /// [`FrameError::WrongOrder`] if allocated at another order, and
    /// [`FrameError::NotBlockStart`] inside an allocated block.
    pub fn free(&mut self, paddr: u64, order: u8) -> Result<(), FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::InvalidOrder);
        }
        if !paddr.is_multiple_of(FRAME_SIZE << order) {
            return Err(FrameError::Misaligned);
        }
        let mut pfn = paddr / FRAME_SIZE;
        let zone = self.zone_of_pfn(pfn).ok_or(FrameError::NotOwned)?;
        let mut index = zone.index(pfn);
        let head = self.meta[index as usize];
        match head.state {
            ALLOCATED if head.order == order => {}
            ALLOCATED => {
                return Err(FrameError::WrongOrder {
                    allocated: head.order,
                });
            }
            FREE => return Err(FrameError::DoubleFree),
            RESERVED => return Err(FrameError::NotOwned),
            _ => return Err(self.classify_tail(zone, pfn)),
        }
        self.free_frames += 1 << order;
        let mut k = order;
        while k < MAX_ORDER {
            let buddy_pfn = pfn ^ (1 << k);
            // Never merge across a zone edge: the buddy may be a hole or another zone.
            if !zone.contains(buddy_pfn) {
                break;
            }
            let buddy = zone.index(buddy_pfn);
            let meta = self.meta[buddy as usize];
            if meta.state != FREE || meta.order != k {
                break;
            }
            self.unlink(buddy, k);
            // The upper half stops being a head, so a later free of its address is seen as
            // pointing inside a block instead of at a stale head.
            self.meta[index.max(buddy) as usize].state = TAIL;
            index = index.min(buddy);
            pfn = pfn.min(buddy_pfn);
            k += 1;
        }
        self.push(index, k);
        Ok(())
    }

    /// Error for freeing `pfn`, a tail frame: find the block containing it (the head at
    /// `pfn` rounded down to `2^k` whose order is `k`) and report whether it is free.
    fn classify_tail(&self, zone: Zone, pfn: u64) -> FrameError {
        for k in 1..=MAX_ORDER {
            let head_pfn = pfn & !((1u64 << k) - 1);
            if !zone.contains(head_pfn) {
                break;
            }
            let head = self.meta[zone.index(head_pfn) as usize];
            if head.order == k {
                match head.state {
                    FREE => return FrameError::DoubleFree,
                    ALLOCATED => return FrameError::NotBlockStart,
                    _ => {}
                }
            }
        }
        // Unreachable while the invariants hold (every tail is inside a block).
        FrameError::NotOwned
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Frames managed: usable minus reserved. Constant after `new`.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Number of free blocks of exactly `order` (0 for orders above `MAX_ORDER`).
    pub fn free_blocks(&self, order: u8) -> usize {
        self.counts.get(usize::from(order)).copied().unwrap_or(0)
    }

    /// The zones, as physical address ranges in ascending order (for boot reports).
    pub fn zones(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.zones[..self.zone_count]
            .iter()
            .map(|z| z.base_pfn * FRAME_SIZE..(z.base_pfn + u64::from(z.frames)) * FRAME_SIZE)
    }

    /// The zone containing physical frame `pfn`, by binary search (zones are sorted).
    fn zone_of_pfn(&self, pfn: u64) -> Option<Zone> {
        let zones = &self.zones[..self.zone_count];
        let after = zones.partition_point(|z| z.base_pfn <= pfn);
        let zone = zones[after.checked_sub(1)?];
        zone.contains(pfn).then_some(zone)
    }

    /// Physical frame number of metadata `index`, by binary search over zone index starts.
    fn pfn_of(&self, index: u32) -> u64 {
        let zones = &self.zones[..self.zone_count];
        let zone = zones[zones
            .partition_point(|z| z.first <= index)
            .saturating_sub(1)];
        zone.base_pfn + u64::from(index - zone.first)
    }

    /// Makes `index` a free head of order `order` at the front of that list.
    fn push(&mut self, index: u32, order: u8) {
        let k = usize::from(order);
        let old = self.heads[k];
        if old != NIL {
            self.meta[old as usize].prev = index;
        }
        self.meta[index as usize] = FrameMeta {
            next: old,
            prev: NIL,
            order,
            state: FREE,
        };
        self.heads[k] = index;
        self.counts[k] += 1;
    }

    /// Removes free head `index` from the list of `order`. The caller sets its new state.
    fn unlink(&mut self, index: u32, order: u8) {
        let k = usize::from(order);
        let FrameMeta { next, prev, .. } = self.meta[index as usize];
        if prev == NIL {
            self.heads[k] = next;
        } else {
            self.meta[prev as usize].next = next;
        }
        if next != NIL {
            self.meta[next as usize].prev = prev;
        }
        self.counts[k] -= 1;
    }
}

impl fmt::Debug for BuddyAllocator<'_> {
    // Not derived: the metadata slice has millions of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuddyAllocator")
            .field("zones", &self.zone_count)
            .field("total_frames", &self.total_frames)
            .field("free_frames", &self.free_frames)
            .field("free_blocks", &self.counts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl BuddyAllocator<'_> {
    /// Walks every free list and checks links, states, alignment, zone containment, the
    /// counters, and that no two free buddies of the same order coexist.
    fn check_invariants(&self) {
        let mut free_sum = 0u64;
        for order in 0..=MAX_ORDER {
            let k = usize::from(order);
            let mut prev = NIL;
            let mut index = self.heads[k];
            let mut count = 0;
            while index != NIL {
                let m = self.meta[index as usize];
                assert_eq!(m.state, FREE, "order {order} list holds a non-free entry");
                assert_eq!(m.order, order);
                assert_eq!(m.prev, prev, "broken back link");
                let pfn = self.pfn_of(index);
                assert_eq!(pfn % (1 << order), 0, "free block misaligned");
                let zone = self.zone_of_pfn(pfn).expect("free block outside zones");
                assert!(
                    zone.contains(pfn + (1 << order) - 1),
                    "block crosses zone end"
                );
                if order < MAX_ORDER {
                    let buddy = pfn ^ (1 << order);
                    if zone.contains(buddy) {
                        let b = self.meta[zone.index(buddy) as usize];
                        assert!(
                            !(b.state == FREE && b.order == order),
                            "unmerged free buddies at order {order}"
                        );
                    }
                }
                count += 1;
                free_sum += 1 << order;
                prev = index;
                index = m.next;
            }
            assert_eq!(count, self.counts[k], "order {order} count");
        }
        assert_eq!(
            free_sum, self.free_frames,
            "free_frames != Σ free_blocks(k) << k"
        );
        assert!(self.free_frames <= self.total_frames);
    }

    fn free_block_shape(&self) -> [usize; ORDERS] {
        self.counts
    }
}

#[cfg(test)]
#[allow(
    clippy::single_range_in_vec_init,
    reason = "memory maps with one range are slices of ranges, not ranges to collect"
)]
mod tests {
    use super::super::testutil::{RandomMap, XorShift};
    use super::*;
    use std::collections::HashMap;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// QEMU's e820 map for a 15 GiB guest: low memory, up to the PCI hole, then above 4 GiB.
    const QEMU_USABLE: [Range<u64>; 3] = [
        0..0x9fc00,
        0x10_0000..0x7ffe_0000,
        0x1_0000_0000..0x4_4000_0000,
    ];

    fn meta_for(usable: &[Range<u64>]) -> Vec<FrameMeta> {
        vec![FrameMeta::UNUSED; BuddyAllocator::metadata_len(usable)]
    }

    /// Checks a freshly allocated block against the reference model and marks it live.
    /// `managed`/`live` are indexed by frame number relative to `base`.
    fn claim(base: u64, managed: &[bool], live: &mut [bool], paddr: u64, order: u8) {
        let size = FRAME_SIZE << order;
        assert_eq!(paddr % size, 0, "block {paddr:#x} order {order} misaligned");
        assert!(paddr >= base, "block {paddr:#x} below the map");
        let first = ((paddr - base) / FRAME_SIZE) as usize;
        let frames = first..first + (1 << order);
        assert!(
            frames.end <= managed.len() && managed[frames.clone()].iter().all(|&m| m),
            "block {paddr:#x} order {order} covers unmanaged frames"
        );
        for (i, frame) in live[frames].iter_mut().enumerate() {
            assert!(
                !*frame,
                "frame {:#x} handed out twice",
                paddr + i as u64 * FRAME_SIZE
            );
            *frame = true;
        }
    }

    fn release(base: u64, live: &mut [bool], paddr: u64, order: u8) {
        let first = ((paddr - base) / FRAME_SIZE) as usize;
        live[first..first + (1 << order)].fill(false);
    }

    fn random_order(rng: &mut XorShift) -> u8 {
        // Biased to small blocks, like real use; occasionally huge ones that mostly fail.
        (match rng.below(100) {
            0..50 => 0,
            50..75 => rng.between(1, 3),
            75..95 => rng.between(4, 9),
            _ => rng.between(10, u64::from(MAX_ORDER)),
        }) as u8
    }

    #[test]
    fn order_for_size_rounds_up() {
        assert_eq!(order_for_size(0), Some(0));
        assert_eq!(order_for_size(1), Some(0));
        assert_eq!(order_for_size(4096), Some(0));
        assert_eq!(order_for_size(4097), Some(1));
        assert_eq!(order_for_size(3 * 4096), Some(2));
        assert_eq!(order_for_size(2 * MIB), Some(9));
        assert_eq!(order_for_size(2 * MIB + 1), Some(10));
        assert_eq!(order_for_size(GIB), Some(18));
        assert_eq!(order_for_size(GIB + 1), None);
        assert_eq!(order_for_size(u64::MAX), None);
    }

    #[test]
    fn metadata_is_small_and_covers_zones_only() {
        assert!(size_of::<FrameMeta>() <= 16);
        let usable = [
            0x40_0000..0x50_0000,
            0x10_0000..0x20_0800, // unaligned end: 0x10_0000..0x20_0000
            0x48_0000..0x60_0000, // overlaps the first
            0..0x9fc00,           // below 1 MiB: excluded
        ];
        assert_eq!(BuddyAllocator::metadata_len(&usable), 256 + 512);
        assert_eq!(BuddyAllocator::metadata_len(&[]), 0);
        // 2 GiB + 13 GiB, minus the first MiB.
        assert_eq!(
            BuddyAllocator::metadata_len(&QEMU_USABLE),
            ((0x7ffe_0000 - 0x10_0000) + 13 * GIB as usize) / 4096
        );
    }

    #[test]
    fn new_rejects_bad_configurations() {
        let usable = [0x10_0000..0x20_0000];
        let mut meta = vec![FrameMeta::UNUSED; 255];
        assert_eq!(
            BuddyAllocator::new(&mut meta, &usable, &[]).unwrap_err(),
            FrameError::MetadataTooSmall { needed: 256 }
        );
        // 65 separate stretches.
        let many: Vec<_> = (0..=MAX_ZONES as u64)
            .map(|i| 0x100_0000 + i * 0x2000..0x100_0000 + i * 0x2000 + 0x1000)
            .collect();
        let mut meta = meta_for(&many);
        assert_eq!(
            BuddyAllocator::new(&mut meta, &many, &[]).unwrap_err(),
            FrameError::TooManyZones
        );
        // Exactly MAX_ZONES is fine.
        let mut meta = meta_for(&many[1..]);
        let buddy = BuddyAllocator::new(&mut meta, &many[1..], &[]).unwrap();
        assert_eq!(buddy.zones().count(), MAX_ZONES);
        assert_eq!(buddy.total_frames(), MAX_ZONES as u64);
        // 64 TiB of frames do not fit u32 indices; checked before the metadata length.
        assert_eq!(
            BuddyAllocator::new(&mut [], &[0..1 << 46], &[]).unwrap_err(),
            FrameError::TooManyFrames
        );
    }

    #[test]
    fn empty_and_fully_reserved_maps() {
        let mut buddy = BuddyAllocator::new(&mut [], &[], &[]).unwrap();
        assert_eq!((buddy.total_frames(), buddy.free_frames()), (0, 0));
        assert_eq!(buddy.alloc(0), None);
        assert_eq!(buddy.free(0x10_0000, 0), Err(FrameError::NotOwned));

        let usable = [0x10_0000..0x20_0000];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &[0..u64::MAX]).unwrap();
        assert_eq!((buddy.total_frames(), buddy.free_frames()), (0, 0));
        assert_eq!(buddy.alloc(0), None);
        assert_eq!(buddy.free(0x10_0000, 0), Err(FrameError::NotOwned));
    }

    #[test]
    fn qemu_map_gives_aligned_2mib_and_1gib_blocks() {
        let usable = QEMU_USABLE;
        // Kernel image at 1 MiB (unaligned end), metadata somewhere, an unaligned boot
        // module straddling nothing in particular.
        let reserved = [
            0x10_0000..0x2a_3456,
            0x300_0000..0x330_0000,
            0x1234_5678..0x1234_9abc,
        ];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &reserved).unwrap();
        let expected_total = (0x7ffe_0000 - 0x10_0000) / 4096 + 13 * GIB / 4096
            - (0x2a_4000 - 0x10_0000) / 4096
            - 0x30_0000 / 4096
            - (0x1234_a000 - 0x1234_5000) / 4096;
        assert_eq!(buddy.total_frames(), expected_total);
        assert_eq!(buddy.free_frames(), expected_total);
        let initial = buddy.free_block_shape();
        // 4..17 GiB holds 13 aligned GiBs; below 4 GiB the hole at 0x7ffe_0000 leaves none.
        assert_eq!(buddy.free_blocks(18), 13);

        let mut blocks = Vec::new();
        for _ in 0..13 {
            let gib = buddy.alloc(18).unwrap();
            assert_eq!(gib % GIB, 0);
            assert!((4 * GIB..0x4_4000_0000).contains(&gib));
            blocks.push((gib, 18));
        }
        assert_eq!(buddy.alloc(18), None, "no aligned GiB left: fails cleanly");
        buddy.check_invariants();
        // Plenty of 2 MiB blocks remain below 4 GiB.
        for _ in 0..100 {
            let block = buddy.alloc(9).unwrap();
            assert_eq!(block % (2 * MIB), 0);
            assert!(block >= 0x40_0000 && block + 2 * MIB <= 0x7ffe_0000);
            for r in &reserved {
                assert!(
                    block + 2 * MIB <= r.start || r.end <= block,
                    "{block:#x} reserved"
                );
            }
            blocks.push((block, 9));
        }
        buddy.check_invariants();
        for (paddr, order) in blocks {
            buddy.free(paddr, order).unwrap();
        }
        buddy.check_invariants();
        assert_eq!(buddy.free_frames(), expected_total);
        assert_eq!(buddy.free_block_shape(), initial);
    }

    #[test]
    fn gib_request_fails_cleanly_without_an_aligned_gib() {
        // Almost 2 GiB, but the range ends just below 2 GiB: no aligned GiB inside.
        let usable = [0x10_0000..0x7ffe_0000];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &[]).unwrap();
        assert_eq!(buddy.free_blocks(18), 0);
        assert_eq!(buddy.alloc(18), None);
        assert_eq!(buddy.alloc(19), None, "orders above MAX_ORDER are refused");
        assert_eq!(buddy.alloc(u8::MAX), None);
        // One aligned 512 MiB in [1 GiB, 1.5 GiB) etc. still works.
        let half = buddy.alloc(17).unwrap();
        assert_eq!(half % (GIB / 2), 0);
        buddy.check_invariants();
        // One reserved byte inside the only aligned GiB ([1 GiB, 2 GiB)) rules it out.
        let usable = [0x10_0000..0x9000_0000];
        let mut meta = meta_for(&usable);
        let mut buddy =
            BuddyAllocator::new(&mut meta, &usable, &[0x6000_0000..0x6000_0001]).unwrap();
        assert_eq!(buddy.alloc(18), None);
        assert_eq!(buddy.free_frames(), buddy.total_frames());
    }

    #[test]
    fn blocks_never_merge_across_zones_or_reserved_frames() {
        // Zone A: frames 0x100..=0x102; hole at 0x103; zone B: 0x104..=0x105. With
        // zone-relative index arithmetic gone wrong, 0x102's buddy would be 0x104's entry.
        let usable = [0x10_4000..0x10_6000, 0x10_0000..0x10_3000];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &[]).unwrap();
        assert_eq!(
            buddy.zones().collect::<Vec<_>>(),
            [0x10_0000..0x10_3000, 0x10_4000..0x10_6000]
        );
        assert_eq!((buddy.free_blocks(0), buddy.free_blocks(1)), (1, 2));
        let frames: Vec<_> = (0..5).map(|_| buddy.alloc(0).unwrap()).collect();
        assert_eq!(buddy.alloc(0), None);
        for f in frames {
            buddy.free(f, 0).unwrap();
            buddy.check_invariants();
        }
        assert_eq!((buddy.free_blocks(0), buddy.free_blocks(1)), (1, 2));
        assert_eq!(buddy.free_blocks(2), 0);

        // A reserved frame in the middle of an aligned 4-frame block.
        let usable = [0x20_0000..0x20_4000];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &[0x20_1fff..0x20_2001]).unwrap();
        // Frames 0x201 and 0x202 are reserved (rounded outward).
        assert_eq!(buddy.total_frames(), 2);
        assert_eq!(buddy.free_blocks(0), 2);
        let a = buddy.alloc(0).unwrap();
        let b = buddy.alloc(0).unwrap();
        assert_eq!(buddy.alloc(0), None);
        let mut got = [a, b];
        got.sort_unstable();
        assert_eq!(got, [0x20_0000, 0x20_3000]);
        buddy.free(a, 0).unwrap();
        buddy.free(b, 0).unwrap();
        assert_eq!(buddy.free_blocks(0), 2);
        assert_eq!(buddy.free(0x20_1000, 0), Err(FrameError::NotOwned));
    }

    #[test]
    fn bad_frees_are_rejected_without_damage() {
        let usable = [0x10_0000..0x80_0000];
        let reserved = [0x10_0000..0x20_0000];
        let mut meta = meta_for(&usable);
        let mut buddy = BuddyAllocator::new(&mut meta, &usable, &reserved).unwrap();
        // Free: 2 MiB at 2 MiB (order 9) and 4 MiB at 4 MiB (order 10). Splitting the
        // order-9 block makes the result deterministic and 128 KiB-aligned.
        let big = buddy.alloc(4).unwrap(); // 64 KiB
        assert_eq!(big, 0x20_0000);
        let small = buddy.alloc(0).unwrap();
        assert_eq!(small, 0x21_0000);
        let free_before = buddy.free_frames();
        let shape_before = buddy.free_block_shape();

        let cases = [
            (big, 19, FrameError::InvalidOrder),
            (big + 0x800, 0, FrameError::Misaligned),
            (big + 0x1000, 4, FrameError::Misaligned),
            (big, 3, FrameError::WrongOrder { allocated: 4 }),
            (big, 5, FrameError::WrongOrder { allocated: 4 }),
            (big + 0x1000, 0, FrameError::NotBlockStart),
            (big + 0x8000, 3, FrameError::NotBlockStart),
            (0x5_0000, 0, FrameError::NotOwned),  // below 1 MiB
            (0x15_0000, 0, FrameError::NotOwned), // reserved
            (0x80_0000, 0, FrameError::NotOwned), // just past the end
            (0x1_0000_0000, 9, FrameError::NotOwned), // far away
            (0xffff_ffff_ffff_f000, 0, FrameError::NotOwned),
        ];
        for (paddr, order, err) in cases {
            assert_eq!(
                buddy.free(paddr, order),
                Err(err),
                "free({paddr:#x}, {order})"
            );
            assert_eq!(buddy.free_frames(), free_before);
            assert_eq!(buddy.free_block_shape(), shape_before);
            buddy.check_invariants();
        }

        // Double free, directly and after the block merged into a bigger free block.
        buddy.free(small, 0).unwrap();
        assert_eq!(buddy.free(small, 0), Err(FrameError::DoubleFree));
        buddy.free(big, 4).unwrap();
        assert_eq!(buddy.free(big, 4), Err(FrameError::DoubleFree));
        assert_eq!(buddy.free(big + 0x1000, 0), Err(FrameError::DoubleFree));
        assert_eq!(buddy.free_frames(), buddy.total_frames());
        // A never-allocated frame in the middle of a free block.
        assert_eq!(buddy.free(0x40_1000, 0), Err(FrameError::DoubleFree));
        buddy.check_invariants();
        // Everything still works afterwards.
        let all: Vec<_> = core::iter::from_fn(|| buddy.alloc(0)).collect();
        assert_eq!(all.len() as u64, buddy.total_frames());
    }

    #[test]
    fn allocating_everything_hands_out_each_managed_frame_once() {
        for seed in 0..60 {
            let mut rng = XorShift::new(seed);
            let map = RandomMap::generate(&mut rng);
            let managed = map.managed_frames();
            let mut live = vec![false; managed.len()];
            let mut meta = meta_for(&map.usable);
            assert_eq!(meta.len(), map.zone_frames(), "seed {seed}");
            let mut buddy = BuddyAllocator::new(&mut meta, &map.usable, &map.reserved).unwrap();
            let total = managed.iter().filter(|&&m| m).count() as u64;
            assert_eq!(
                buddy.total_frames(),
                total,
                "seed {seed} {:x?} {:x?}",
                map.usable,
                map.reserved
            );
            assert_eq!(buddy.free_frames(), total);
            let initial = buddy.free_block_shape();

            // Random orders; when one fails, fall back to smaller ones until nothing is left.
            let mut blocks = Vec::new();
            loop {
                let wanted = random_order(&mut rng);
                let Some((paddr, order)) = (0..=wanted)
                    .rev()
                    .find_map(|o| buddy.alloc(o).map(|p| (p, o)))
                else {
                    break;
                };
                claim(map.base, &managed, &mut live, paddr, order);
                blocks.push((paddr, order));
            }
            assert_eq!(buddy.free_frames(), 0, "seed {seed}");
            assert_eq!(live, managed, "seed {seed}: every managed frame handed out");
            buddy.check_invariants();
            for (paddr, order) in blocks {
                buddy.free(paddr, order).unwrap();
            }
            buddy.check_invariants();
            assert_eq!(buddy.free_frames(), total);
            assert_eq!(
                buddy.free_block_shape(),
                initial,
                "seed {seed}: full coalescing"
            );
        }
    }

    #[test]
    fn random_alloc_free_sequences_keep_invariants() {
        for seed in 0..200 {
            let mut rng = XorShift::new(seed ^ 0x0b0d_d1e5);
            let map = RandomMap::generate(&mut rng);
            let managed = map.managed_frames();
            let mut live = vec![false; managed.len()];
            let mut meta = meta_for(&map.usable);
            let mut buddy = BuddyAllocator::new(&mut meta, &map.usable, &map.reserved).unwrap();
            let start_free = buddy.free_frames();
            let initial = buddy.free_block_shape();
            let mut blocks: Vec<(u64, u8)> = Vec::new();
            let mut starts: HashMap<u64, u8> = HashMap::new();
            let mut live_frames = 0u64;

            for step in 0..300 {
                match rng.below(10) {
                    0..6 => {
                        let order = random_order(&mut rng);
                        let before = buddy.free_frames();
                        if let Some(paddr) = buddy.alloc(order) {
                            claim(map.base, &managed, &mut live, paddr, order);
                            blocks.push((paddr, order));
                            starts.insert(paddr, order);
                            live_frames += 1 << order;
                            assert_eq!(buddy.free_frames(), before - (1 << order));
                        } else {
                            assert_eq!(buddy.free_frames(), before);
                        }
                    }
                    6..9 if !blocks.is_empty() => {
                        let i = rng.below(blocks.len() as u64) as usize;
                        let (paddr, order) = blocks.swap_remove(i);
                        starts.remove(&paddr);
                        buddy.free(paddr, order).unwrap();
                        release(map.base, &mut live, paddr, order);
                        live_frames -= 1 << order;
                    }
                    _ => {
                        // A bogus free: must fail unless it names a live block exactly.
                        let order = random_order(&mut rng).min(4);
                        let paddr = if rng.percent(50) && !blocks.is_empty() {
                            let (p, _) = blocks[rng.below(blocks.len() as u64) as usize];
                            p + rng.below(4) * FRAME_SIZE
                        } else {
                            (map.base + rng.below(map.span)) & !0xfff
                        };
                        if starts.get(&paddr) != Some(&order) {
                            let before = (buddy.free_frames(), buddy.free_block_shape());
                            assert!(buddy.free(paddr, order).is_err(), "seed {seed} step {step}");
                            assert_eq!((buddy.free_frames(), buddy.free_block_shape()), before);
                        }
                    }
                }
                buddy.check_invariants();
                assert_eq!(buddy.free_frames(), start_free - live_frames, "seed {seed}");
            }
            for (paddr, order) in blocks {
                buddy.free(paddr, order).unwrap();
            }
            buddy.check_invariants();
            assert_eq!(buddy.free_frames(), start_free, "seed {seed}");
            assert_eq!(
                buddy.free_block_shape(),
                initial,
                "seed {seed}: full coalescing"
            );
        }
    }
}
