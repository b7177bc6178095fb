//! The vCPU time record, `struct vcpu_time_info` (`public/xen.h`), and the TSC-to-time
//! scale in it.
//!
//! A Xen guest reads time without a hypercall: the hypervisor publishes, per vCPU, a TSC
//! stamp, the system time (ns) at that stamp, and a fixed-point factor that turns TSC
//! ticks into ns. The guest then computes
//!
//! ```text
//! now = system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)
//! ```
//!
//! (a negative `tsc_shift` shifts right), which is the formula in the comment on the
//! struct in `public/xen.h`; [`scale_delta`] is that second term. [`tsc_scale`] computes
//! the factor and shift from a TSC rate the way Xen's `set_time_scale()`
//! (`xen/arch/x86/time.c`) does, so guests see the same numbers for the same rate.
//!
//! The record reaches the guest through `VCPUOP_register_vcpu_time_memory_area`
//! (`public/vcpu.h`, command 13), whose argument is one 64-bit guest *virtual* address
//! (the union `vcpu_register_time_memory_area.addr`). Xen stores the address without
//! checking it (for HVM/PVH guests `guest_handle_okay()` is always true) and answers 0;
//! each later update translates it through the guest's page tables at that moment, and
//! a write that fails is dropped silently. A bad address is therefore accepted, and the
//! guest simply never sees time there.
//!
//! # The version protocol
//!
//! `version` is a sequence count. To update a record the hypervisor
//!
//! 1. writes `version` = [`version_update_begin`]`(previous)`, which is odd ("update in
//!    progress");
//! 2. writes the other fields (Xen writes the whole record, carrying the odd version);
//! 3. writes `version` = [`version_update_end`] of the odd value, which is even,
//!
//! with a write barrier between the steps (on x86 stores are not reordered with other
//! stores, so program order is enough as long as the compiler keeps it). A guest reads
//! `version`, then the fields (and the TSC), then `version` again, and retries if the
//! first read was odd or the two differ: then it has a consistent snapshot.
//! [`time_info`] builds the record of step 2 with the even version of step 3.

use core::mem::{offset_of, size_of};

use crate::guest_memory::abi::impl_guest_abi;

/// `XEN_PVCLOCK_TSC_STABLE_BIT` (`public/xen.h`): the TSC is synchronised across all
/// CPUs, so a guest may skip its own cross-vCPU monotonicity fix-up. Xen sets it only
/// when its own clock source is the TSC; [`time_info`] leaves it clear.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED` (`public/xen.h`): the guest was paused by the toolstack.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// ns per second: the unit Xen's system time counts in.
const NS_PER_SEC: u64 = 1_000_000_000;

/// `struct vcpu_time_info` (`public/xen.h`, the layout for
/// `__XEN_INTERFACE_VERSION__ > 0x040600`, where the old `pad1[3]` became `flags` and
/// `pad1[2]`). Size 32; identical for 32- and 64-bit guests.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuTimeInfo {
    /// `uint32_t version`: odd while an update is in progress (see the module comment).
    pub version: u32,
    /// `uint32_t pad0`.
    pub pad0: u32,
    /// `uint64_t tsc_timestamp`: the guest TSC when the record was made.
    pub tsc_timestamp: u64,
    /// `uint64_t system_time`: ns since the domain's time origin at `tsc_timestamp`.
    pub system_time: u64,
    /// `uint32_t tsc_to_system_mul`: a 0.32 fixed-point factor from shifted TSC ticks
    /// to ns.
    pub tsc_to_system_mul: u32,
    /// `int8_t tsc_shift`: applied to a TSC delta before the multiply (negative: right).
    pub tsc_shift: i8,
    /// `uint8_t flags`: `XEN_PVCLOCK_*`.
    pub flags: u8,
    /// `uint8_t pad1[2]`.
    pub pad1: [u8; 2],
}
impl_guest_abi!(VcpuTimeInfo {
    version,
    pad0,
    tsc_timestamp,
    system_time,
    tsc_to_system_mul,
    tsc_shift,
    flags,
    pad1
});
const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(offset_of!(VcpuTimeInfo, version) == 0);
const _: () = assert!(offset_of!(VcpuTimeInfo, pad0) == 4);
const _: () = assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
const _: () = assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
const _: () = assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
const _: () = assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
const _: () = assert!(offset_of!(VcpuTimeInfo, flags) == 29);
const _: () = assert!(offset_of!(VcpuTimeInfo, pad1) == 30);

impl VcpuTimeInfo {
    /// The system time (ns) this record gives for guest TSC value `tsc`, as a guest
    /// computes it. A `tsc` before the stamp counts as the stamp itself, so a reader
    /// on a CPU whose TSC lags slightly never sees time run backwards past the record.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.saturating_sub(self.tsc_timestamp);
        self.system_time
            .wrapping_add(scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift))
    }
}

/// The odd version to write first when updating a record whose version is `version`
/// (Xen's `version_update_begin()`: `(v + 1) | 1`; the OR keeps it odd even if the
/// stored count was odd, e.g. after a torn update).
pub const fn version_update_begin(version: u32) -> u32 {
    version.wrapping_add(1) | 1
}

/// The even version that ends an update begun with `odd` (Xen's
/// `version_update_end()`: `v + 1`).
pub const fn version_update_end(odd: u32) -> u32 {
    odd.wrapping_add(1)
}

/// Xen's scale for a TSC running at `tsc_hz`: `(tsc_to_system_mul, tsc_shift)` such that
/// [`scale_delta`]`(ticks, mul, shift)` is the ns those ticks take.
///
/// Xen's `set_time_scale()`: halve the rate (shift - 1) until it is at most 2·10⁹, double
/// it (shift + 1) until it is above 10⁹, so the shifted rate `r` is in (10⁹, 2·10⁹];
/// then `mul = (10⁹ << 32) / r`, truncated, which lies in [2³¹, 2³²). Keeping `mul` that
/// large keeps 31 significant bits in the factor. A 0 Hz rate has no scale (Xen asserts
/// it is non-zero); it gives `(0, 0)`, a clock that does not advance.
pub fn tsc_scale(tsc_hz: u64) -> (u32, i8) {
    if tsc_hz == 0 {
        return (0, 0);
    }
    let mut rate = tsc_hz;
    let mut shift: i8 = 0;
    while rate > 2 * NS_PER_SEC {
        rate >>= 1;
        shift -= 1;
    }
    while rate <= NS_PER_SEC {
        rate <<= 1;
        shift += 1;
    }
    // rate is in (1e9, 2e9] here, so the quotient is below 2^32 (Xen's div_frac()
    // requires dividend < divisor for the same reason).
    let mul = (NS_PER_SEC << 32) / rate;
    (mul as u32, shift)
}

/// ns in `delta` TSC ticks under the scale `(mul, shift)`: shift first (left for a
/// positive `shift`, right for a negative one), then multiply by the 0.32 fixed-point
/// `mul` (Linux's `pvclock_scale_delta()`, the formula in `public/xen.h`). The product is
/// taken in 128 bits, so only bits shifted out to the left are lost, as in C; a shift of
/// 64 or more either way gives 0.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let magnitude = u32::from(shift.unsigned_abs());
    let shifted = if shift < 0 {
        delta.checked_shr(magnitude).unwrap_or(0)
    } else {
        delta.checked_shl(magnitude).unwrap_or(0)
    };
    ((u128::from(shifted) * u128::from(mul)) >> 32) as u64
}

/// The TSC rate a scale stands for: `((10⁹ << 32) / mul) >> shift` (the "CPU frequency"
/// formula in `public/xen.h`; a negative shift shifts left). 0 for `mul` 0.
pub fn tsc_hz_from_scale(mul: u32, shift: i8) -> u64 {
    if mul == 0 {
        return 0;
    }
    let rate = (u128::from(NS_PER_SEC) << 32) / u128::from(mul);
    let magnitude = u32::from(shift.unsigned_abs());
    let hz = if shift < 0 {
        rate.checked_shl(magnitude).unwrap_or(0)
    } else {
        rate.checked_shr(magnitude).unwrap_or(0)
    };
    u64::try_from(hz).unwrap_or(u64::MAX)
}

/// A complete record: at guest TSC `tsc_now` the system time is `system_time_ns`, and the
/// TSC runs at `tsc_hz`. `version` is the even version that ends the update (see the
/// module comment); an odd value is rounded up to the next even one, so a record built
/// here never claims to be mid-update. Padding is zero; `flags` is 0 (set
/// [`XEN_PVCLOCK_TSC_STABLE_BIT`] only for a TSC synchronised across CPUs).
pub fn time_info(version: u32, tsc_now: u64, system_time_ns: u64, tsc_hz: u64) -> VcpuTimeInfo {
    let (tsc_to_system_mul, tsc_shift) = tsc_scale(tsc_hz);
    VcpuTimeInfo {
        version: version.wrapping_add(version & 1),
        pad0: 0,
        tsc_timestamp: tsc_now,
        system_time: system_time_ns,
        tsc_to_system_mul,
        tsc_shift,
        flags: 0,
        pad1: [0; 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory::GuestAbi;

    const RATES: [u64; 5] = [
        4_000_000,
        100_000_000,
        1_000_000_000,
        2_600_000_000,
        3_500_000_000,
    ];

    #[test]
    fn one_second_of_ticks_is_one_second_within_a_nanosecond() {
        for hz in RATES {
            let (mul, shift) = tsc_scale(hz);
            let ns = scale_delta(hz, mul, shift);
            assert!(ns.abs_diff(NS_PER_SEC) <= 1, "{hz} Hz: {ns} ns");
        }
    }

    #[test]
    fn ten_seconds_of_ticks_within_ten_ppm() {
        for hz in RATES {
            let (mul, shift) = tsc_scale(hz);
            let ns = scale_delta(10 * hz, mul, shift);
            let expected = 10 * NS_PER_SEC;
            // 10 ppm of 10 s is 100 us.
            assert!(
                ns.abs_diff(expected) * 1_000_000 <= expected * 10,
                "{hz} Hz: {ns} ns"
            );
        }
    }

    #[test]
    fn scale_is_normalised_like_xen() {
        for hz in RATES
            .into_iter()
            .chain([1, 999_999_999, 2_000_000_000, u64::MAX])
        {
            let (mul, shift) = tsc_scale(hz);
            assert!(mul >= 1 << 31, "{hz} Hz: mul {mul:#x} not normalised");
            // The shifted rate is in (1e9, 2e9].
            let rate = if shift < 0 { hz >> -shift } else { hz << shift };
            assert!(rate > NS_PER_SEC && rate <= 2 * NS_PER_SEC, "{hz} Hz");
        }
        assert_eq!(tsc_scale(1_000_000_000), (1 << 31, 1));
        assert_eq!(tsc_scale(2_000_000_000), (1 << 31, 0));
        assert_eq!(tsc_scale(4_000_000), (4_194_304_000, 8));
        assert_eq!(tsc_scale(3_500_000_000).1, -1);
        assert_eq!(tsc_scale(0), (0, 0));
    }

    #[test]
    fn scale_round_trips_to_the_rate() {
        for hz in RATES {
            let (mul, shift) = tsc_scale(hz);
            let back = tsc_hz_from_scale(mul, shift);
            // mul is truncated, so the rate read back is at most a few ppb high.
            assert!(
                back >= hz && back - hz <= hz / 100_000_000 + 1,
                "{hz} -> {back}"
            );
        }
        assert_eq!(tsc_hz_from_scale(0, 0), 0);
    }

    #[test]
    fn scale_delta_shifts_before_multiplying() {
        // Right shift drops low bits before the multiply, as Linux and Xen do.
        assert_eq!(scale_delta(3, 1 << 31, -1), 0);
        assert_eq!(scale_delta(3, u32::MAX, 1), 5);
        // The product does not overflow in 64 bits.
        assert_eq!(
            scale_delta(u64::MAX, u32::MAX, 0),
            ((u128::from(u64::MAX) * u128::from(u32::MAX)) >> 32) as u64
        );
        assert_eq!(scale_delta(1 << 40, 1 << 31, 64), 0);
        assert_eq!(scale_delta(1 << 40, 1 << 31, -64), 0);
        assert_eq!(scale_delta(12_345, 0, 3), 0);
    }

    #[test]
    fn layout_matches_xen_h() {
        let info = VcpuTimeInfo {
            version: 0x0403_0201,
            pad0: 0,
            tsc_timestamp: 0x1817_1615_1413_1211,
            system_time: 0x2827_2625_2423_2221,
            tsc_to_system_mul: 0x3433_3231,
            tsc_shift: -2,
            flags: XEN_PVCLOCK_TSC_STABLE_BIT,
            pad1: [0; 2],
        };
        let bytes = info.to_bytes();
        assert_eq!(bytes.len(), 32);
        assert_eq!(bytes[0..4], [1, 2, 3, 4]);
        assert_eq!(bytes[4..8], [0; 4]);
        assert_eq!(
            bytes[8..16],
            [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        assert_eq!(
            bytes[16..24],
            [0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28]
        );
        assert_eq!(bytes[24..28], [0x31, 0x32, 0x33, 0x34]);
        assert_eq!(bytes[28], 0xFE);
        assert_eq!(bytes[29], 1);
        assert_eq!(bytes[30..32], [0; 2]);
        assert_eq!(VcpuTimeInfo::from_bytes(&bytes), info);
    }

    #[test]
    fn records_carry_an_even_version() {
        for version in [0, 1, 2, 7, 0xFFFF_FFFE, 0xFFFF_FFFF] {
            let info = time_info(version, 0, 0, 1_000_000_000);
            assert_eq!(info.version % 2, 0, "version {version}");
            assert!(info.version == version || info.version == version.wrapping_add(1));
        }
        let mut published = 0;
        for _ in 0..4 {
            let odd = version_update_begin(published);
            assert_eq!(odd % 2, 1);
            let even = version_update_end(odd);
            assert_eq!(even % 2, 0);
            assert_eq!(even, published + 2);
            published = even;
        }
        // A stray odd count still begins with an odd version and ends even.
        assert_eq!(version_update_begin(5), 7);
        assert_eq!(version_update_end(version_update_begin(u32::MAX)), 2);
    }

    #[test]
    fn time_info_extrapolates_from_its_stamp() {
        let hz = 2_600_000_000;
        let info = time_info(2, 1_000_000, 5_000_000_000, hz);
        assert_eq!(info.pad0, 0);
        assert_eq!(info.flags, 0);
        assert_eq!(info.pad1, [0; 2]);
        assert_eq!(info.system_time_at(1_000_000), 5_000_000_000);
        let later = info.system_time_at(1_000_000 + hz / 1000);
        assert!(later.abs_diff(5_001_000_000) <= 1, "{later}");
        // Before the stamp: the stamp's time, not a wrapped delta.
        assert_eq!(info.system_time_at(0), 5_000_000_000);
    }
}
