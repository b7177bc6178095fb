//! Time Stamp Counter frequency discovery and tick/nanosecond conversion.
//!
//! Pure arithmetic, no instructions executed here: the caller runs CPUID and reads the
//! reference timers, and these functions turn the numbers into a TSC frequency and a fast
//! converter. Where the frequency comes from, in order of preference:
//!
//! 1. [`tsc_hz_from_cpuid`]: CPUID leaf 15H enumerates the TSC/crystal ratio and, on most
//!    Intel parts since Ice Lake / Goldmont Plus, the crystal frequency itself. Exact.
//! 2. Calibration against a timer of known frequency: the ACPI PM timer
//!    ([`PM_TIMER_HZ`], delta via [`pm_timer_delta`]), the HPET, or the PIT ([`PIT_HZ`]),
//!    combined with [`hz_from_reference`].
//! 3. [`tsc_hz_from_base_frequency`]: CPUID leaf 16H's nominal base frequency, an
//!    approximation to use only when nothing better exists (or to sanity-check 2).
//!
//! [`TscScale`] then converts between TSC ticks and nanoseconds with a multiply and a shift.

/// Frequency of the ACPI power-management timer in Hz (ACPI 6.5 §4.8.3.3, "Power Management
/// Timer (PM_TMR)": 3.579545 MHz).
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// Input frequency of the 8254 PIT in Hz (1.193182 MHz, a third of the 14.31818 MHz NTSC
/// colour-burst crystal divided by 4; the exact value is 1 193 181.8 Hz).
pub const PIT_HZ: u64 = 1_193_182;

/// Core crystal frequencies listed by the Intel SDM (Vol. 3B, "Determining the Processor
/// Base Frequency", table "Nominal Core Crystal Clock Frequency") for processors whose CPUID
/// leaf 15H enumerates the TSC/crystal ratio but reports ECX = 0: 24 MHz (6th/7th
/// generation Core, Xeon W), 25 MHz (Xeon Scalable, CPUID signature 06_55H) and 19.2 MHz
/// (Atom Goldmont, 06_5CH).
pub const SDM_CRYSTAL_HZ: [u64; 3] = [24_000_000, 25_000_000, 19_200_000];

/// Largest relative distance, in parts per million, between a crystal frequency derived from
/// CPUID leaf 16H and an [`SDM_CRYSTAL_HZ`] entry for [`tsc_hz_from_cpuid`] to accept the
/// entry. The listed crystals are at least 4 % apart, so 1 % cannot pick the wrong one;
/// base frequencies are rounded to whole MHz and differ from crystal × ratio by a few
/// tenths of a percent on the affected parts (e.g. 4000 MHz base vs 4008 MHz TSC).
pub const CRYSTAL_MATCH_PPM: u64 = 10_000;

/// The TSC frequency in Hz from CPUID leaf 15H (and 16H when the crystal is not reported),
/// or `None` when the caller must calibrate.
///
/// `leaf15` is `(EAX, EBX, ECX)` of CPUID.15H (`None` if the leaf is beyond the maximum basic
/// leaf). Per the Intel SDM Vol. 2A, CPUID leaf 15H: EAX is the denominator and EBX the
/// numerator of the TSC/"core crystal clock" ratio (EBX = 0 means the ratio is not
/// enumerated), ECX the nominal crystal frequency in Hz (0 = not enumerated), and
/// TSC Hz = ECX × EBX ÷ EAX. That exact case is returned, rounded to the nearest Hz.
///
/// When ECX is 0 but the ratio and `leaf16_base_mhz` (`CPUID.16H:EAX[15:0]`, the processor
/// base frequency in MHz) are known, the crystal is first derived as
/// base × EAX ÷ EBX, as Linux's `native_calibrate_tsc` does for Skylake/Kaby Lake. That
/// derived value is only as good as the base frequency (the SDM says leaf 16H data "does not
/// reflect actual values"), and is typically 0.2–0.3 % off, which is far too much for
/// timekeeping (Linux therefore does not trust it either and refines it by calibration).
/// So it is used only to *select* one of the crystals the SDM tabulates for such parts
/// ([`SDM_CRYSTAL_HZ`]), when it lies within [`CRYSTAL_MATCH_PPM`] of one; the TSC frequency
/// is then computed exactly from that crystal. If no listed crystal is that close, the
/// result is `None` and the kernel must calibrate.
///
/// Non-Intel processors (AMD does not implement leaf 15H) and hypervisors that leave the leaf
/// zeroed also yield `None`.
pub fn tsc_hz_from_cpuid(
    leaf15: Option<(u32, u32, u32)>,
    leaf16_base_mhz: Option<u32>,
) -> Option<u64> {
    let (denominator, numerator, crystal_hz) = leaf15?;
    if denominator == 0 || numerator == 0 {
        return None;
    }
    let crystal_hz = if crystal_hz != 0 {
        u64::from(crystal_hz)
    } else {
        // Only bits 15:0 are defined (SDM Vol. 2A, CPUID leaf 16H); the rest is reserved.
        let base_hz = u128::from(leaf16_base_mhz? & 0xffff) * 1_000_000;
        if base_hz == 0 {
            return None;
        }
        let derived = base_hz * u128::from(denominator) / u128::from(numerator);
        snap_to_sdm_crystal(derived)?
    };
    let hz = div_round(
        u128::from(crystal_hz) * u128::from(numerator),
        u128::from(denominator),
    );
    u64::try_from(hz).ok().filter(|&hz| hz != 0)
}

/// The [`SDM_CRYSTAL_HZ`] entry within [`CRYSTAL_MATCH_PPM`] of `derived_hz`, if any.
fn snap_to_sdm_crystal(derived_hz: u128) -> Option<u64> {
    SDM_CRYSTAL_HZ.into_iter().find(|&crystal| {
        let crystal = u128::from(crystal);
        let distance = derived_hz.abs_diff(crystal);
        distance * 1_000_000 <= crystal * u128::from(CRYSTAL_MATCH_PPM)
    })
}

/// The processor base frequency from `CPUID.16H:EAX[15:0]` (in MHz) as Hz, or `None` if it
/// is 0 (not enumerated).
///
/// **An approximation.** On Intel processors with an invariant TSC the TSC ticks at roughly
/// the base frequency, but the SDM (Vol. 2A, CPUID leaf 16H) states that this data is a
/// nominal, marketing-style value that "does not accurately correlate" with the hardware:
/// it is rounded to whole MHz and commonly differs from the true TSC rate by 0.1–0.5 %
/// (e.g. a 4000 MHz part whose TSC runs at 4008 MHz). Use it only when neither CPUID leaf
/// 15H nor calibration is available, or to sanity-check a calibration result.
pub fn tsc_hz_from_base_frequency(leaf16_base_mhz: u32) -> Option<u64> {
    let mhz = u64::from(leaf16_base_mhz & 0xffff);
    (mhz != 0).then_some(mhz * 1_000_000)
}

/// The frequency of a counter that advanced `tsc_delta` while a reference timer of
/// `ref_hz` advanced `ref_ticks`: `tsc_delta × ref_hz ÷ ref_ticks`, rounded to the nearest
/// Hz, computed in 128 bits so no input can overflow. `None` if `ref_ticks` or `ref_hz` is
/// zero or the result does not fit in a `u64`.
///
/// The calibration error is about ±1 reference tick over the interval (plus the TSC reads'
/// jitter): with the PM timer, 50 ms gives roughly ±6 ppm.
pub fn hz_from_reference(tsc_delta: u64, ref_ticks: u64, ref_hz: u64) -> Option<u64> {
    if ref_ticks == 0 || ref_hz == 0 {
        return None;
    }
    let hz = div_round(
        u128::from(tsc_delta) * u128::from(ref_hz),
        u128::from(ref_ticks),
    );
    u64::try_from(hz).ok()
}

/// Ticks elapsed between two readings of the ACPI PM timer, `bits` wide (24, or 32 when the
/// FADT sets TMR_VAL_EXT; ACPI 6.5 §4.8.3.3, and the FADT flags in §5.2.9).
///
/// The counter wraps modulo 2^`bits`, so one wrap between the readings is handled by modular
/// subtraction; an interval longer than a full period (about 4.69 s at 24 bits, 1200 s at
/// 32 bits) cannot be detected and comes out short. Bits above the counter width in the
/// readings are ignored (for a 24-bit timer they read as zero anyway). Widths above 32 are
/// treated as 32 and a width of 0 yields 0.
pub fn pm_timer_delta(start: u32, end: u32, bits: u8) -> u64 {
    let mask = match bits {
        0 => 0,
        1..=31 => (1u32 << bits) - 1,
        _ => u32::MAX,
    };
    u64::from(end.wrapping_sub(start) & mask)
}

/// `numerator ÷ denominator` rounded to nearest (halves up); `denominator` must be non-zero.
fn div_round(numerator: u128, denominator: u128) -> u128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    // `remainder < denominator`, so comparing against the other half cannot overflow.
    if remainder >= denominator - remainder {
        quotient + 1
    } else {
        quotient
    }
}

const NS_PER_SEC: u128 = 1_000_000_000;

/// A multiply-and-shift factor: `value × mult >> shift` approximates `value × ratio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MulShift {
    mult: u64,
    shift: u32,
}

impl MulShift {
    /// The factor for `numerator / denominator` (both non-zero and below 2^64), with `mult`
    /// normalised to about 2^63..2^64 for 63 significant bits and rounded *up*, so that
    /// `mult / 2^shift` is at least the true ratio and exceeds it by less than one part in
    /// 2^63. Rounding up (rather than down, as Linux does) makes every integral result
    /// exact: one second of ticks is exactly 10^9 ns.
    const fn new(numerator: u128, denominator: u128) -> Self {
        let mut shift = 0u32;
        // No overflow: each step runs only while the previous quotient was below 2^63, so
        // numerator << shift < 2^64 × denominator ≤ 2^128, and the new quotient is at most
        // twice the old one plus one, so below 2^64. The ratio is above 2^-64, so the loop
        // ends by shift 127; the bound merely makes that evident.
        let mut floor = numerator / denominator;
        while floor < (1 << 63) && shift < 127 {
            shift += 1;
            floor = (numerator << shift) / denominator;
        }
        let mut mult = (numerator << shift).div_ceil(denominator);
        if mult > u64::MAX as u128 && shift > 0 {
            // Rounding up carried into bit 64: one bit less precision (the quotient at this
            // shift was below 2^63, so its ceiling is at most 2^63), then round up again.
            shift -= 1;
            mult = (numerator << shift).div_ceil(denominator);
        }
        let mult = if mult > u64::MAX as u128 {
            // Only a ratio of 2^64 or more could get here; our callers never pass one.
            u64::MAX
        } else {
            mult as u64
        };
        Self { mult, shift }
    }

    /// `value × mult >> shift`, saturated to `u64::MAX`.
    ///
    /// The product is formed in 128 bits: on x86_64 that is a single `MUL` (64 × 64 → 128 in
    /// RDX:RAX) plus a `SHRD`, the same cost as the 64-bit product of the Linux clocksource
    /// scheme but with no overflow range to stay within, so no slow path is needed.
    const fn apply(self, value: u64) -> u64 {
        let product = (value as u128 * self.mult as u128) >> self.shift;
        if product > u64::MAX as u128 {
            u64::MAX
        } else {
            product as u64
        }
    }
}

/// Converts TSC ticks to nanoseconds and back without division, in the style of Linux's
/// clocksource `mult`/`shift`: `ns = ticks × mult >> shift`.
///
/// Unlike Linux, the product is 128 bits wide and `mult` is normalised to 63 significant
/// bits, so:
///
/// - **Range:** every `u64` tick count and every frequency from 1 Hz to `u64::MAX` Hz is
///   accepted; results saturate at `u64::MAX` (at 1 GHz that is 584 years). Ten years of
///   uptime at 10 GHz is 3.2 × 10^18 ticks, well inside the range.
/// - **Accuracy:** the factor is rounded up with a relative error below 2^-63, so a result
///   is the exact value rounded down or up: never below the truncated exact value and at
///   most one unit (1 ns or 1 tick) above it, for results below 2^63 (beyond 292 years in
///   nanoseconds the bound grows to two units). That is far below 1 ppm for any interval
///   over a microsecond, and exact whenever the exact result is an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscScale {
    hz: u64,
    to_ns: MulShift,
    to_ticks: MulShift,
}

impl TscScale {
    /// The converter for a TSC running at `tsc_hz`. A frequency of 0 (which no caller should
    /// pass: every discovery function above returns `None` instead) is treated as 1 Hz so
    /// this cannot divide by zero.
    pub const fn new(tsc_hz: u64) -> Self {
        let hz = if tsc_hz == 0 { 1 } else { tsc_hz };
        Self {
            hz,
            to_ns: MulShift::new(NS_PER_SEC, hz as u128),
            to_ticks: MulShift::new(hz as u128, NS_PER_SEC),
        }
    }

    /// The frequency this converter was built for, in Hz.
    pub const fn hz(&self) -> u64 {
        self.hz
    }

    /// The multiplier of the ticks → nanoseconds conversion.
    pub const fn mult(&self) -> u64 {
        self.to_ns.mult
    }

    /// The shift of the ticks → nanoseconds conversion.
    pub const fn shift(&self) -> u32 {
        self.to_ns.shift
    }

    /// `ticks` TSC ticks in nanoseconds: the exact value truncated, or at most 1 ns more
    /// (see the type's documentation), saturating at `u64::MAX`.
    pub const fn ticks_to_ns(&self, ticks: u64) -> u64 {
        self.to_ns.apply(ticks)
    }

    /// `ns` nanoseconds in TSC ticks: the exact value truncated, or at most 1 tick more
    /// (see the type's documentation), saturating at `u64::MAX`. Truncation can land up to
    /// one tick before the exact instant: add a tick where a deadline must never be early.
    pub const fn ns_to_ticks(&self, ns: u64) -> u64 {
        self.to_ticks.apply(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaf15_exact() {
        // Crystal reported in ECX: 24 MHz × 176/2 = 2112 MHz.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 176, 24_000_000)), None),
            Some(2_112_000_000)
        );
        // 38.4 MHz × 125/2 = 2400 MHz (Tiger Lake style); leaf 16H is ignored when ECX is set.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 125, 38_400_000)), Some(9999)),
            Some(2_400_000_000)
        );
        // Rounds to nearest: 25 MHz × 1/3 = 8 333 333.3, × 2/3 = 16 666 666.7.
        assert_eq!(
            tsc_hz_from_cpuid(Some((3, 1, 25_000_000)), None),
            Some(8_333_333)
        );
        assert_eq!(
            tsc_hz_from_cpuid(Some((3, 2, 25_000_000)), None),
            Some(16_666_667)
        );
        // Extreme register values cannot overflow.
        assert_eq!(
            tsc_hz_from_cpuid(Some((1, u32::MAX, u32::MAX)), None),
            Some(u64::from(u32::MAX) * u64::from(u32::MAX))
        );
    }

    #[test]
    fn cpuid_ratio_not_enumerated() {
        assert_eq!(tsc_hz_from_cpuid(None, Some(3000)), None);
        assert_eq!(tsc_hz_from_cpuid(Some((0, 0, 0)), Some(3000)), None);
        assert_eq!(tsc_hz_from_cpuid(Some((2, 0, 24_000_000)), None), None);
        assert_eq!(tsc_hz_from_cpuid(Some((0, 100, 24_000_000)), None), None);
    }

    #[test]
    fn cpuid_crystal_from_leaf16_snaps_to_sdm_crystal() {
        // Skylake i7-6700K: ratio 334/2, base 4000 MHz, 24 MHz crystal → TSC 4008 MHz.
        // The derived crystal is 23.952 MHz (0.2 % low); it selects 24 MHz.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 334, 0)), Some(4000)),
            Some(4_008_000_000)
        );
        // Ratio 216/2 with base 2600 MHz: derived 24.07 MHz → 24 MHz → 2592 MHz.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 216, 0)), Some(2600)),
            Some(2_592_000_000)
        );
        // Xeon Scalable: 25 MHz × 168/2 = 2100 MHz, base 2100 MHz.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 168, 0)), Some(2100)),
            Some(2_100_000_000)
        );
        // Goldmont: 19.2 MHz × 100/1 = 1920 MHz, base 1900 MHz (1 % off is still accepted).
        assert_eq!(
            tsc_hz_from_cpuid(Some((1, 100, 0)), Some(1910)),
            Some(1_920_000_000)
        );
        // Reserved bits of leaf 16H EAX are ignored.
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 334, 0)), Some(0xabcd_0000 | 4000)),
            Some(4_008_000_000)
        );
    }

    #[test]
    fn cpuid_crystal_from_leaf16_unknown_crystal_gives_none() {
        // Derived crystal 21.5 MHz matches nothing in the SDM table: calibrate instead.
        assert_eq!(tsc_hz_from_cpuid(Some((2, 200, 0)), Some(2150)), None);
        // 2 % away from 24 MHz: too far to be trusted.
        assert_eq!(tsc_hz_from_cpuid(Some((1, 100, 0)), Some(2448)), None);
        // No leaf 16H or a zero base frequency.
        assert_eq!(tsc_hz_from_cpuid(Some((2, 334, 0)), None), None);
        assert_eq!(tsc_hz_from_cpuid(Some((2, 334, 0)), Some(0)), None);
        assert_eq!(
            tsc_hz_from_cpuid(Some((2, 334, 0)), Some(0xffff_0000)),
            None
        );
    }

    #[test]
    fn base_frequency_approximation() {
        assert_eq!(tsc_hz_from_base_frequency(0), None);
        assert_eq!(tsc_hz_from_base_frequency(3400), Some(3_400_000_000));
        assert_eq!(tsc_hz_from_base_frequency(0xffff), Some(65_535_000_000));
        assert_eq!(tsc_hz_from_base_frequency(0x1_0000), None);
    }

    #[test]
    fn reference_calibration() {
        // 50 ms of PM timer (178 977 ticks) during which a 3 GHz TSC advanced 150 M ticks
        // gives 3 GHz within the ±1-tick resolution (≈ 5.6 ppm).
        let hz = hz_from_reference(149_999_916, 178_977, PM_TIMER_HZ).unwrap();
        assert!(hz.abs_diff(3_000_000_000) < 20_000, "{hz}");
        assert_eq!(
            hz_from_reference(2_000_000_000, PIT_HZ, PIT_HZ),
            Some(2_000_000_000)
        );
        assert_eq!(hz_from_reference(3, 2, 1), Some(2)); // 1.5 rounds up
        assert_eq!(hz_from_reference(5, 4, 1), Some(1)); // 1.25 rounds down
        assert_eq!(hz_from_reference(0, 10, 10), Some(0));
        assert_eq!(hz_from_reference(1, 0, PIT_HZ), None);
        assert_eq!(hz_from_reference(1, 1, 0), None);
        // Intermediate products beyond 64 bits are fine...
        assert_eq!(
            hz_from_reference(u64::MAX, u64::MAX, u64::MAX),
            Some(u64::MAX)
        );
        // ...but a result beyond 64 bits is refused.
        assert_eq!(hz_from_reference(u64::MAX, 1, 2), None);
    }

    #[test]
    fn pm_timer_delta_wraps() {
        assert_eq!(pm_timer_delta(100, 250, 24), 150);
        assert_eq!(pm_timer_delta(0x00ff_fff0, 0x0000_0010, 24), 0x20);
        assert_eq!(pm_timer_delta(0xffff_fff0, 0x0000_0010, 32), 0x20);
        assert_eq!(pm_timer_delta(5, 5, 24), 0);
        // A full period minus one.
        assert_eq!(pm_timer_delta(1, 0, 24), 0x00ff_ffff);
        assert_eq!(pm_timer_delta(1, 0, 32), 0xffff_ffff);
        // Garbage in the upper byte of a 24-bit reading is ignored.
        assert_eq!(pm_timer_delta(0xab00_0010, 0xcd00_0020, 24), 0x10);
        // Degenerate widths.
        assert_eq!(pm_timer_delta(1, 0, 0), 0);
        assert_eq!(pm_timer_delta(1, 0, 64), 0xffff_ffff);
        assert_eq!(pm_timer_delta(0, 3, 1), 1);
    }

    /// Exact `ticks × 10^9 ÷ hz`, truncated (saturated like the converter).
    fn reference_ns(ticks: u64, hz: u64) -> u64 {
        let ns = u128::from(ticks) * NS_PER_SEC / u128::from(hz);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Exact `ns × hz ÷ 10^9`, truncated (saturated like the converter).
    fn reference_ticks(ns: u64, hz: u64) -> u64 {
        let ticks = u128::from(ns) * u128::from(hz) / NS_PER_SEC;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The documented bound: `want <= got <= want + 1` below 2^63, one more unit above.
    fn assert_close(got: u64, want: u64, what: &str) {
        let slack = 1 + (want >> 63);
        assert!(
            got >= want && got - want <= slack,
            "{what}: got {got}, exact {want}"
        );
        // Under 1 ppm whenever the value is large enough for ppm to mean anything.
        if want >= 1_000_000 {
            assert!(
                u128::from(got - want) * 1_000_000 < u128::from(want),
                "{what}"
            );
        }
    }

    /// Frequencies from 1 MHz to 10 GHz: every power-of-ten step with awkward neighbours,
    /// plus real-world TSC and reference-timer rates.
    fn test_frequencies() -> Vec<u64> {
        let mut v = vec![
            PIT_HZ,
            PM_TIMER_HZ,
            14_318_180,
            19_200_000,
            24_000_000,
            1_190_400_000,
            2_112_000_000,
            2_592_000_000,
            2_899_999_999,
            3_000_000_007,
            3_392_123_456,
            4_008_000_000,
        ];
        let mut f = 1_000_000u64;
        while f <= 10_000_000_000 {
            v.extend([f - 1, f, f + 1, f / 10 * 33, f / 10 * 77 + 3]);
            f *= 10;
        }
        v.retain(|&f| (1_000_000..=10_000_000_000).contains(&f));
        v
    }

    /// Ten years (with leap days) in seconds.
    const TEN_YEARS_S: u64 = (10 * 365 + 3) * 24 * 3600;
    const TEN_YEARS_NS: u64 = TEN_YEARS_S * 1_000_000_000;

    /// Checks `ticks_to_ns` on `ticks` and `ns_to_ticks` on `ns` against exact maths.
    fn check_scale(hz: u64, ticks: &[u64], ns: &[u64]) {
        let scale = TscScale::new(hz);
        for &t in ticks {
            let what = format!("hz={hz} ticks={t}");
            assert_close(scale.ticks_to_ns(t), reference_ns(t, hz), &what);
        }
        for &n in ns {
            let what = format!("hz={hz} ns={n}");
            assert_close(scale.ns_to_ticks(n), reference_ticks(n, hz), &what);
        }
    }

    /// 1 and a geometric sweep up to `limit` with non-round values, plus the limit itself.
    fn sweep(limit: u64) -> Vec<u64> {
        let mut values = vec![0, 1, 2, 999, 1000, 1001];
        let mut t = 3u64;
        while t < limit {
            values.extend([t, t + 1, t / 5 * 7]);
            t = t.saturating_mul(3) + 17;
        }
        values.extend([limit - 1, limit, limit + 12_345]);
        values
    }

    #[test]
    fn scale_matches_u128_reference_up_to_ten_years() {
        for hz in test_frequencies() {
            let mut ticks = sweep(hz * TEN_YEARS_S);
            ticks.extend([hz - 1, hz, hz + 1]);
            check_scale(hz, &ticks, &sweep(TEN_YEARS_NS));
        }
    }

    #[test]
    fn scale_pseudo_random_values() {
        // xorshift64*: deterministic, no crate needed.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for _ in 0..200 {
            let hz = 1_000_000 + next() % 9_999_000_001;
            let ticks: Vec<u64> = (0..200).map(|_| next() % (hz * TEN_YEARS_S)).collect();
            let ns: Vec<u64> = (0..200).map(|_| next() % TEN_YEARS_NS).collect();
            check_scale(hz, &ticks, &ns);
        }
    }

    #[test]
    fn scale_extremes_saturate_without_overflow() {
        let values = [0, 1, u64::MAX / 3, 1 << 63, u64::MAX - 1, u64::MAX];
        for hz in [
            1,
            2,
            3,
            7,
            1_000_000,
            1_000_000_000,
            10_000_000_000,
            u64::MAX,
        ] {
            let scale = TscScale::new(hz);
            for v in values {
                let what = format!("hz={hz} v={v}");
                assert_close(scale.ticks_to_ns(v), reference_ns(v, hz), &what);
                assert_close(scale.ns_to_ticks(v), reference_ticks(v, hz), &what);
            }
        }
        // 0 Hz is treated as 1 Hz rather than dividing by zero.
        assert_eq!(TscScale::new(0).hz(), 1);
        assert_eq!(TscScale::new(0).ticks_to_ns(2), 2_000_000_000);
    }

    #[test]
    fn scale_exact_when_the_exact_result_is_an_integer() {
        for hz in test_frequencies() {
            let scale = TscScale::new(hz);
            // One second, one minute, one day and ten years of ticks are whole nanoseconds.
            for seconds in [1, 60, 86_400, TEN_YEARS_S] {
                assert_eq!(scale.ticks_to_ns(hz * seconds), seconds * 1_000_000_000);
                assert_eq!(scale.ns_to_ticks(seconds * 1_000_000_000), hz * seconds);
            }
        }
    }

    #[test]
    fn scale_exact_for_round_frequencies() {
        // 1 GHz: 1 tick = 1 ns; 2 GHz: 2 ticks = 1 ns. Power-of-two ratios are exact.
        let s = TscScale::new(1_000_000_000);
        assert_eq!(s.ticks_to_ns(123_456_789), 123_456_789);
        assert_eq!(s.ns_to_ticks(123_456_789), 123_456_789);
        let s = TscScale::new(2_000_000_000);
        assert_eq!(s.ticks_to_ns(1_000), 500);
        assert_eq!(s.ns_to_ticks(500), 1_000);
        assert_eq!(s.hz(), 2_000_000_000);
        assert!(s.mult() >= 1 << 63);
        // A round trip is off by at most the rounding of the intermediate nanoseconds
        // (2.592 ticks per ns) plus one unit per conversion.
        let s = TscScale::new(2_592_000_000);
        for t in [0u64, 1, 10, 1 << 20, 1 << 40, 1 << 60] {
            let back = s.ns_to_ticks(s.ticks_to_ns(t));
            assert!(back.abs_diff(t) <= 4, "{t} -> {back}");
        }
    }

    #[test]
    fn scale_is_usable_in_const_context() {
        const SCALE: TscScale = TscScale::new(3_000_000_000);
        assert_eq!(SCALE.ticks_to_ns(3_000_000_000), 1_000_000_000);
    }
}
