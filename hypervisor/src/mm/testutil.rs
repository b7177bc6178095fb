//! Helpers shared by the allocator tests: a tiny deterministic PRNG (no new crates) and a
//! random memory-map generator.

use core::ops::Range;

/// xorshift64 (Marsaglia). Deterministic per seed so that a failing seed can be replayed.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Spread small seeds over the state and avoid the all-zero fixed point.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `0..n` (modulo bias is irrelevant here); `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform-ish in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random physical memory map inside `[base, base + span)`.
pub struct RandomMap {
    pub base: u64,
    pub span: u64,
    pub usable: Vec<Range<u64>>,
    pub reserved: Vec<Range<u64>>,
}

impl RandomMap {
    /// Usable ranges that may be unsorted, unaligned and overlapping; reserved ranges that
    /// are unaligned, may overlap anything and often straddle a usable range's edge.
    pub fn generate(rng: &mut XorShift) -> Self {
        const SPAN: u64 = 24 << 20;
        // Low memory (exercises the 1 MiB cut), straddling 4 GiB, and high memory.
        let base = match rng.below(3) {
            0 => 0,
            1 => 0x1_0000_0000 - SPAN / 2,
            _ => 0x3_0000_0000,
        };
        let mut usable = Vec::new();
        for _ in 0..rng.between(1, 6) {
            let start = base + rng.below(SPAN);
            let len = rng.below(SPAN / 3);
            let end = (start + len).min(base + SPAN);
            // Mostly page-aligned like real firmware maps, sometimes not.
            let (start, end) = if rng.percent(70) {
                (start & !0xfff, end & !0xfff)
            } else {
                (start, end)
            };
            usable.push(start..end);
        }
        let mut reserved = Vec::new();
        for _ in 0..rng.below(7) {
            let len = rng.between(1, 1 << 20);
            let start = if rng.percent(50) && !usable.is_empty() {
                // Around an edge of some usable range.
                let u = &usable[rng.below(usable.len() as u64) as usize];
                let edge = if rng.percent(50) { u.start } else { u.end };
                edge.saturating_sub(rng.below(len + 1)).max(base)
            } else {
                base + rng.below(SPAN)
            };
            reserved.push(start..(start + len).min(base + SPAN));
        }
        Self {
            base,
            span: SPAN,
            usable,
            reserved,
        }
    }

    /// Reference model, frame by frame and independent of the allocator code: a frame is
    /// managed iff it lies entirely inside one usable range, at or above 1 MiB, and no
    /// reserved range touches it. Indexed by frame number relative to `base`.
    pub fn managed_frames(&self) -> Vec<bool> {
        (0..self.span / 4096)
            .map(|i| {
                let lo = self.base + i * 4096;
                let hi = lo + 4096;
                lo >= super::LOW_MEMORY_END
                    && self.usable.iter().any(|u| u.start <= lo && hi <= u.end)
                    && !self.reserved.iter().any(|r| r.start < hi && lo < r.end)
            })
            .collect()
    }

    /// Frames inside some usable range at or above 1 MiB, ignoring reservations: what the
    /// metadata array has to cover.
    pub fn zone_frames(&self) -> usize {
        (0..self.span / 4096)
            .filter(|i| {
                let lo = self.base + i * 4096;
                lo >= super::LOW_MEMORY_END
                    && self
                        .usable
                        .iter()
                        .any(|u| u.start <= lo && lo + 4096 <= u.end)
            })
            .count()
    }
}
