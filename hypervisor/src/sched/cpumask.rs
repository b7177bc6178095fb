//! A set of physical CPUs: hard affinity masks and the scheduler's own CPU sets.

use core::fmt;

use super::CpuId;

/// How many CPUs a [`CpuMask`] can name.
pub const MAX_CPUS: usize = 256;

const WORDS: usize = MAX_CPUS / 64;

/// A set of CPU numbers below [`MAX_CPUS`]. Plain data: copying it is cheap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuMask([u64; WORDS]);

impl CpuMask {
    /// No CPU.
    pub const EMPTY: Self = Self([0; WORDS]);
    /// Every CPU (the default affinity: run anywhere).
    pub const ALL: Self = Self([u64::MAX; WORDS]);

    /// Just `cpu`.
    pub const fn single(cpu: CpuId) -> Self {
        Self::EMPTY.with(cpu)
    }

    /// CPUs `0..n` (all of them when `n >= MAX_CPUS`).
    pub const fn first(n: usize) -> Self {
        let mut m = Self::EMPTY;
        let mut w = 0;
        while w < WORDS {
            let lo = w * 64;
            m.0[w] = if n >= lo + 64 {
                u64::MAX
            } else if n > lo {
                (1u64 << (n - lo)) - 1
            } else {
                0
            };
            w += 1;
        }
        m
    }

    /// This set plus `cpu` (ignored when out of range).
    pub const fn with(mut self, cpu: CpuId) -> Self {
        let c = cpu.0 as usize;
        if c < MAX_CPUS {
            self.0[c / 64] |= 1 << (c % 64);
        }
        self
    }

    /// This set minus `cpu`.
    pub const fn without(mut self, cpu: CpuId) -> Self {
        let c = cpu.0 as usize;
        if c < MAX_CPUS {
            self.0[c / 64] &= !(1 << (c % 64));
        }
        self
    }

    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: CpuId) {
        *self = self.with(cpu);
    }

    /// Removes `cpu`.
    pub fn remove(&mut self, cpu: CpuId) {
        *self = self.without(cpu);
    }

    /// Whether `cpu` is in the set.
    pub const fn contains(&self, cpu: CpuId) -> bool {
        let c = cpu.0 as usize;
        c < MAX_CPUS && self.0[c / 64] & (1 << (c % 64)) != 0
    }

    /// The CPUs in both sets.
    pub const fn and(mut self, other: Self) -> Self {
        let mut w = 0;
        while w < WORDS {
            self.0[w] &= other.0[w];
            w += 1;
        }
        self
    }

    /// The CPUs in either set.
    pub const fn or(mut self, other: Self) -> Self {
        let mut w = 0;
        while w < WORDS {
            self.0[w] |= other.0[w];
            w += 1;
        }
        self
    }

    /// Whether the set is empty.
    pub const fn is_empty(&self) -> bool {
        let mut w = 0;
        while w < WORDS {
            if self.0[w] != 0 {
                return false;
            }
            w += 1;
        }
        true
    }

    /// How many CPUs are in the set.
    pub const fn count(&self) -> u32 {
        let mut n = 0;
        let mut w = 0;
        while w < WORDS {
            n += self.0[w].count_ones();
            w += 1;
        }
        n
    }

    /// The lowest CPU in the set.
    pub fn lowest(&self) -> Option<CpuId> {
        self.at_or_after(0)
    }

    /// The lowest CPU numbered `start` or more.
    fn at_or_after(&self, start: usize) -> Option<CpuId> {
        let mut w = start / 64;
        if w >= WORDS {
            return None;
        }
        let mut bits = self.0[w] & (u64::MAX << (start % 64));
        loop {
            if bits != 0 {
                return Some(CpuId((w * 64 + bits.trailing_zeros() as usize) as u16));
            }
            w += 1;
            if w == WORDS {
                return None;
            }
            bits = self.0[w];
        }
    }

    /// The first CPU at or after `start`, wrapping around: spreads choices over the set.
    pub fn next_from(&self, start: CpuId) -> Option<CpuId> {
        self.at_or_after(start.0 as usize)
            .or_else(|| self.at_or_after(0))
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = CpuId> + '_ {
        let mut next = 0;
        core::iter::from_fn(move || {
            let c = self.at_or_after(next)?;
            next = c.0 as usize + 1;
            Some(c)
        })
    }

    /// The CPUs from `start` upwards, then from 0 up to `start`: every CPU once.
    pub fn iter_from(&self, start: CpuId) -> impl Iterator<Item = CpuId> + '_ {
        let s = start.0;
        self.iter()
            .filter(move |c| c.0 >= s)
            .chain(self.iter().filter(move |c| c.0 < s))
    }
}

impl fmt::Debug for CpuMask {
    /// Ranges, as Xen prints masks: `{0-3,6}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        let mut run: Option<(u16, u16)> = None;
        let mut emit = |f: &mut fmt::Formatter<'_>, (a, b): (u16, u16)| {
            let sep = if first { "" } else { "," };
            first = false;
            if a == b {
                write!(f, "{sep}{a}")
            } else {
                write!(f, "{sep}{a}-{b}")
            }
        };
        for c in self.iter() {
            run = match run {
                Some((a, b)) if b + 1 == c.0 => Some((a, c.0)),
                Some(r) => {
                    emit(f, r)?;
                    Some((c.0, c.0))
                }
                None => Some((c.0, c.0)),
            };
        }
        if let Some(r) = run {
            emit(f, r)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::vec::Vec;

    use super::*;

    fn cpus(m: &CpuMask) -> Vec<u16> {
        m.iter().map(|c| c.0).collect()
    }

    #[test]
    fn set_operations() {
        let m = CpuMask::EMPTY
            .with(CpuId(0))
            .with(CpuId(63))
            .with(CpuId(64))
            .with(CpuId(255));
        assert_eq!(cpus(&m), [0, 63, 64, 255]);
        assert_eq!(m.count(), 4);
        assert!(m.contains(CpuId(64)) && !m.contains(CpuId(65)));
        assert!(!m.contains(CpuId(300)));
        assert_eq!(CpuMask::EMPTY.with(CpuId(300)), CpuMask::EMPTY);
        assert_eq!(m.without(CpuId(63)).count(), 3);
        assert_eq!(
            m.and(CpuMask::first(64)),
            CpuMask::EMPTY.with(CpuId(0)).with(CpuId(63))
        );
        assert_eq!(CpuMask::first(0), CpuMask::EMPTY);
        assert_eq!(CpuMask::first(65).count(), 65);
        assert_eq!(CpuMask::first(1000), CpuMask::ALL);
        assert_eq!(CpuMask::ALL.count(), 256);
        assert!(CpuMask::EMPTY.is_empty() && !m.is_empty());
        assert_eq!(m.lowest(), Some(CpuId(0)));
        assert_eq!(CpuMask::EMPTY.lowest(), None);
        let mut n = CpuMask::EMPTY;
        n.insert(CpuId(5));
        n.insert(CpuId(6));
        n.remove(CpuId(5));
        assert_eq!(n, CpuMask::single(CpuId(6)));
        assert_eq!(n.or(CpuMask::single(CpuId(1))).count(), 2);
    }

    #[test]
    fn wrapping_search() {
        let m = CpuMask::EMPTY
            .with(CpuId(2))
            .with(CpuId(5))
            .with(CpuId(130));
        assert_eq!(m.next_from(CpuId(3)), Some(CpuId(5)));
        assert_eq!(m.next_from(CpuId(131)), Some(CpuId(2)));
        assert_eq!(m.next_from(CpuId(130)), Some(CpuId(130)));
        let order: Vec<u16> = m.iter_from(CpuId(5)).map(|c| c.0).collect();
        assert_eq!(order, [5, 130, 2]);
        assert_eq!(CpuMask::EMPTY.next_from(CpuId(0)), None);
    }

    #[test]
    fn debug_prints_ranges() {
        let m = CpuMask::first(4)
            .with(CpuId(6))
            .with(CpuId(8))
            .with(CpuId(9));
        assert_eq!(format!("{m:?}"), "{0-3,6,8-9}");
        assert_eq!(format!("{:?}", CpuMask::EMPTY), "{}");
    }
}
