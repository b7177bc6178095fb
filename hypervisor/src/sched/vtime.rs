//! Virtual time: CPU time scaled by weight.
//!
//! A vCPU of weight `w` that runs for `t` ns advances its virtual time by `t * 2^16 / w`
//! units, so at weight 65535 one unit is about one nanosecond and at the default weight 256
//! one nanosecond is 256 units. The scale keeps the heaviest weight's resolution at a
//! nanosecond without any floating point.
//!
//! Virtual times are `u64` that wrap (after 2^48 ns, about three days, of weight-1 CPU time;
//! about two years at weight 256). They are only ever compared by their wrapping difference
//! read as `i64`, which is correct while all the times compared lie within 2^63 units of each
//! other; the scheduler clamps every vCPU that joins a CPU to within a few slices of that
//! CPU's clock, so they always do.

/// Virtual units per nanosecond at weight 1.
pub(super) const VT_SHIFT: u32 = 16;

/// `2^48 / weight`: multiplying nanoseconds by it and shifting right by 32 gives virtual
/// units (`2^16 / weight` per ns with 32 fractional bits, exact to under one unit per call).
pub(super) const fn inverse_weight(weight: u16) -> u64 {
    let w = if weight == 0 { 1 } else { weight as u64 };
    (1u64 << (32 + VT_SHIFT)) / w
}

/// Virtual units for `ns` of CPU time at the weight whose inverse is `inv` (wrapping).
pub(super) const fn to_virtual(ns: u64, inv: u64) -> u64 {
    ((ns as u128 * inv as u128) >> 32) as u64
}

/// Nanoseconds of CPU time that advance a vCPU of `weight` by `vt` units, rounded up (so a
/// timer programmed for it never fires before the virtual time is reached).
pub(super) const fn to_real(vt: u64, weight: u16) -> u64 {
    let ns = (vt as u128 * weight as u128).div_ceil(1 << VT_SHIFT);
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

/// `a - b` for virtual times: positive when `a` is later.
pub(super) const fn diff(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// Whether virtual time `a` is before `b`.
pub(super) const fn before(a: u64, b: u64) -> bool {
    diff(a, b) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale() {
        assert_eq!(to_virtual(1_000, inverse_weight(256)), 256_000);
        assert_eq!(to_virtual(1_000, inverse_weight(1)), 65_536_000);
        // Weight 65535: just over one unit per ns.
        assert_eq!(to_virtual(1_000_000, inverse_weight(65535)), 1_000_015);
        assert_eq!(to_virtual(3, inverse_weight(3)), 65535);
        assert_eq!(to_virtual(1, inverse_weight(3)), 21845);
    }

    #[test]
    fn round_trip_rounds_up() {
        for w in [1u16, 2, 3, 7, 128, 255, 256, 1000, 65535] {
            for ns in [1u64, 999, 1_000_000, 3_000_000_000] {
                let vt = to_virtual(ns, inverse_weight(w));
                let back = to_real(vt, w);
                assert!(back <= ns && ns - back <= 2, "w {w} ns {ns} back {back}");
                assert!(to_virtual(to_real(vt, w), inverse_weight(w)) + 2 >= vt);
            }
        }
        assert!(to_real(u64::MAX, 65535) < u64::MAX);
        assert_eq!(to_real(1 << 16, 1), 1);
    }

    #[test]
    fn wrapping_order() {
        assert!(before(1, 2) && !before(2, 1) && !before(5, 5));
        assert!(before(u64::MAX - 3, 4));
        assert_eq!(diff(2, u64::MAX), 3);
        assert_eq!(inverse_weight(0), inverse_weight(1));
    }
}
