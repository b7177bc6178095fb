//! Reading Xen system time from a `vcpu_time_info` ([`VcpuTimeInfo`]) the hypervisor
//! keeps up to date, the way a Xen guest does (xen.h's comment on the structure):
//!
//! ```text
//! now = system_time + ((((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul) >> 32)
//! ```
//!
//! Version protocol: the hypervisor makes `version` odd, rewrites the fields, then makes
//! it even again. A reader takes `version`, the fields and the TSC, then `version`
//! again, and retries if the first was odd or the two differ.

use core::sync::atomic::{Ordering, fence};

use crate::abi::VcpuTimeInfo;

/// Reads [`read_time`] retries before giving up on a record that never settles.
pub const READ_ATTEMPTS: u32 = 10_000_000;

/// ns in `delta` TSC ticks for the scale `(mul, shift)`: shift first (right when
/// negative), then the 32.32 fixed-point multiply, in 128 bits (Linux's
/// `pvclock_scale_delta()`). The hypervisor crate has the same function
/// (`ferrovisor::xen::time::scale_delta`); it is written again here because test
/// guests depend only on Xen's headers, so they check the hypervisor rather than share
/// its mistakes.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let magnitude = u32::from(shift.unsigned_abs());
    let shifted = if shift < 0 {
        delta.checked_shr(magnitude).unwrap_or(0)
    } else {
        delta.checked_shl(magnitude).unwrap_or(0)
    };
    ((u128::from(shifted) * u128::from(mul)) >> 32) as u64
}

/// One consistent reading: the TSC and the system time it corresponds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The record's (even) version.
    pub version: u32,
    /// The TSC read inside the version window.
    pub tsc: u64,
    /// System time (ns) at `tsc`.
    pub system_time_ns: u64,
}

/// Reads `info` under the version protocol with `read_tsc` as the clock, at most
/// `attempts` times; `None` if the record was being updated (or changed under the read)
/// on every attempt. A TSC before the record's stamp counts as the stamp.
pub fn read_with(
    info: &VcpuTimeInfo,
    mut read_tsc: impl FnMut() -> u64,
    attempts: u32,
) -> Option<Reading> {
    for _ in 0..attempts {
        let version = info.version.load(Ordering::Acquire);
        if version & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let stamp = info.tsc_timestamp.load(Ordering::Relaxed);
        let system_time = info.system_time.load(Ordering::Relaxed);
        let mul = info.tsc_to_system_mul.load(Ordering::Relaxed);
        let shift = info.tsc_shift.load(Ordering::Relaxed);
        let tsc = read_tsc();
        // Keeps the field loads before the second version load (seqlock reader).
        fence(Ordering::Acquire);
        if info.version.load(Ordering::Relaxed) != version {
            continue;
        }
        let elapsed = scale_delta(tsc.saturating_sub(stamp), mul, shift);
        return Some(Reading {
            version,
            tsc,
            system_time_ns: system_time.wrapping_add(elapsed),
        });
    }
    None
}

/// The TSC, after all earlier loads completed (LFENCE; RDTSC, as Linux's
/// `rdtsc_ordered()`), so it is not read before the record's fields.
pub fn tsc_ordered() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: LFENCE and RDTSC have no side effects beyond ordering; RDTSC is allowed
    // at CPL 0 in the guest (and in host unit tests, where CR4.TSD is clear).
    unsafe {
        core::arch::asm!("lfence", "rdtsc", out("eax") low, out("edx") high, options(nostack, preserves_flags))
    };
    u64::from(high) << 32 | u64::from(low)
}

/// [`read_with`] on the real TSC; panics (ERROR in a test guest) if the record never
/// settles in [`READ_ATTEMPTS`] reads, rather than hanging.
pub fn read_time(info: &VcpuTimeInfo) -> Reading {
    match read_with(info, tsc_ordered, READ_ATTEMPTS) {
        Some(reading) => reading,
        None => panic!(
            "vcpu_time_info version odd or changing on each of {READ_ATTEMPTS} reads (now {})",
            info.version.load(Ordering::Relaxed)
        ),
    }
}

/// The current system time (ns) by `info`.
pub fn system_time_ns(info: &VcpuTimeInfo) -> u64 {
    read_time(info).system_time_ns
}

/// `VCPUOP_register_vcpu_time_memory_area` for `vcpu` with `area`: 0 or a negative
/// errno. From then on the hypervisor writes the record into `area` whenever it updates
/// the vCPU's time.
#[cfg(target_os = "none")]
pub fn register_time_area(vcpu: u32, area: &'static VcpuTimeInfo) -> i64 {
    let arg = crate::abi::VcpuRegisterTimeMemoryArea {
        addr: core::ptr::from_ref(area) as u64,
    };
    // SAFETY: the hypervisor reads the 8-byte argument (a live local) and afterwards
    // writes 32 bytes at `area`: a static made of atomics, which tolerates those writes
    // at any time.
    unsafe {
        crate::hypercall::hypercall3(
            crate::abi::HYPERVISOR_VCPU_OP,
            crate::abi::VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
            u64::from(vcpu),
            (&raw const arg) as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: u32, stamp: u64, system_time: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        let info = VcpuTimeInfo::new();
        info.version.store(version, Ordering::Relaxed);
        info.tsc_timestamp.store(stamp, Ordering::Relaxed);
        info.system_time.store(system_time, Ordering::Relaxed);
        info.tsc_to_system_mul.store(mul, Ordering::Relaxed);
        info.tsc_shift.store(shift, Ordering::Relaxed);
        info
    }

    #[test]
    fn scale_delta_matches_xen_scales() {
        // 1 GHz: Xen's scale is mul 2^31, shift 1.
        assert_eq!(scale_delta(1_000_000_000, 1 << 31, 1), 1_000_000_000);
        // 4 MHz: shift 8, mul 4194304000.
        assert_eq!(scale_delta(4_000_000, 4_194_304_000, 8), 1_000_000_000);
        // 3.5 GHz: shift -1; the low bit goes before the multiply.
        let mul = ((1_000_000_000u128 << 32) / 1_750_000_000) as u32;
        assert!(scale_delta(3_500_000_000, mul, -1).abs_diff(1_000_000_000) <= 1);
        assert_eq!(scale_delta(1, 1 << 31, -1), 0);
        assert_eq!(scale_delta(u64::MAX, 1, 64), 0);
    }

    #[test]
    fn reads_a_settled_record() {
        let info = record(4, 1000, 5_000_000_000, 1 << 31, 1);
        let reading = read_with(&info, || 1000 + 2_000, 1).unwrap();
        assert_eq!(reading.version, 4);
        assert_eq!(reading.tsc, 3000);
        assert_eq!(reading.system_time_ns, 5_000_002_000);
        // A TSC behind the stamp reads as the stamp's time.
        let early = read_with(&info, || 10, 1).unwrap();
        assert_eq!(early.system_time_ns, 5_000_000_000);
    }

    #[test]
    fn an_update_in_progress_is_never_returned() {
        let info = record(3, 0, 7, 1 << 31, 1);
        assert_eq!(read_with(&info, || 0, 1000), None);
    }

    #[test]
    fn a_record_changed_under_the_read_is_read_again() {
        let info = record(2, 0, 100, 1 << 31, 1);
        let mut reads = 0;
        let reading = read_with(
            &info,
            || {
                reads += 1;
                if reads == 1 {
                    // The hypervisor completes an update while the reader is in the
                    // middle of the record.
                    info.system_time.store(200, Ordering::Relaxed);
                    info.version.store(4, Ordering::Relaxed);
                }
                0
            },
            10,
        )
        .unwrap();
        assert_eq!(reads, 2);
        assert_eq!((reading.version, reading.system_time_ns), (4, 200));
    }
}
