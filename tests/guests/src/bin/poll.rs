//! poll: SCHEDOP_poll and the vCPU time area.
//!
//! Registers a `vcpu_time_info` with `VCPUOP_register_vcpu_time_memory_area` and checks
//! the record: an even version once written, system time that advances and keeps pace
//! with the TSC (within 1% over 20 ms, against the TSC rate in Xen's CPUID leaf base+3).
//! Then `SCHEDOP_poll`, against what Xen's `do_poll()` answers: more than 128 ports is
//! -EINVAL before any port is read, an unreadable port array is -EFAULT, a port that is
//! not a bound event channel is -EINVAL (this domain has none; port 0 is reserved), a
//! deadline in the past returns 0 at once, and a deadline 20 ms ahead sleeps until
//! system time reaches it (and not for seconds of TSC time).
//!
//! Last, a registration with an address the guest has not mapped: Xen answers 0, since
//! for HVM/PVH guests it stores the address unchecked (`guest_handle_okay()` is always
//! true there) and each later update of the record, which fails, is silently dropped.
//! The bad area replaces the good one, which therefore stays as the guest left it (here:
//! zeroed); registering the good area again makes the hypervisor write it again.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::Ordering;

    use ferrovisor_test_guests::abi::{
        EFAULT, EINVAL, HYPERVISOR_VCPU_OP, SchedPoll, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
        VcpuRegisterTimeMemoryArea, VcpuTimeInfo,
    };
    use ferrovisor_test_guests::hypercall::{hypercall3, sched_poll};
    use ferrovisor_test_guests::smp::{current_vcpu, tsc, tsc_khz};
    use ferrovisor_test_guests::time::{Reading, read_time, register_time_area};
    use ferrovisor_test_guests::{Checks, println};

    use super::{StartInfo, Verdict};

    /// A guest-virtual address outside the identity-mapped first GiB: nothing is mapped
    /// there, so reads and writes through it fail.
    const BAD_POINTER: u64 = 0xdead_0000_0000;
    /// The sleep the poll test asks for.
    const SLEEP_NS: u64 = 20_000_000;
    /// How long a poll whose deadline has passed may take to return (TSC time):
    /// generous for emulators, far below any real sleep.
    const PROMPT_MS: u64 = 100;
    /// The longest a 20 ms poll may take by the TSC before it counts as hung.
    const SLEEP_LIMIT_MS: u64 = 2_000;
    /// TSC time over which system time must keep pace with the TSC.
    const TRACKING_MS: u64 = 20;
    /// A timeout of 1 ns after the time origin: long past, so a hypervisor that wrongly
    /// blocks on a poll it should refuse still returns at once instead of hanging.
    const PAST: u64 = 1;

    /// The registered time record: 32-byte aligned like Xen's own copies, so it never
    /// straddles a page.
    #[repr(C, align(32))]
    struct TimeArea(VcpuTimeInfo);

    static TIME_AREA: TimeArea = TimeArea(VcpuTimeInfo::new());

    fn area() -> &'static VcpuTimeInfo {
        &TIME_AREA.0
    }

    /// Spins until `ms` of TSC time passed (or, with the rate unknown, a fixed amount of
    /// work).
    fn spin_ms(khz: Option<u64>, ms: u64) {
        match khz {
            Some(khz) => {
                let start = tsc();
                while tsc().wrapping_sub(start) < ms * khz {
                    core::hint::spin_loop();
                }
            }
            None => {
                for _ in 0..ms * 100_000 {
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Microseconds in `ticks` TSC ticks at `khz`.
    fn tsc_us(ticks: u64, khz: u64) -> u64 {
        (u128::from(ticks) * 1000 / u128::from(khz)) as u64
    }

    /// `SCHEDOP_poll` on `nr_ports` ports at `ports` with `timeout`.
    fn poll(ports: u64, nr_ports: u32, timeout: u64) -> i64 {
        sched_poll(&SchedPoll {
            ports,
            nr_ports,
            timeout,
        })
    }

    /// Zeroes the record, as a guest's own write (the hypervisor's next update would
    /// overwrite it).
    fn clear_area() {
        let info = area();
        info.version.store(0, Ordering::Release);
        info.tsc_timestamp.store(0, Ordering::Relaxed);
        info.system_time.store(0, Ordering::Relaxed);
        info.tsc_to_system_mul.store(0, Ordering::Relaxed);
        info.tsc_shift.store(0, Ordering::Relaxed);
        info.flags.store(0, Ordering::Relaxed);
    }

    /// Checks the record was written: version even and non-zero, a non-zero factor.
    /// True if so.
    fn check_written(t: &mut Checks, when: &str) -> bool {
        let info = area();
        let version = info.version.load(Ordering::Acquire);
        let mul = info.tsc_to_system_mul.load(Ordering::Relaxed);
        let settled = version != 0 && version & 1 == 0;
        t.check(
            settled,
            format_args!(
                "vcpu_time_info version {version} {when}: expected even and non-zero (the \
                 hypervisor writes the record when it is registered)"
            ),
        );
        t.check(
            mul != 0,
            format_args!("vcpu_time_info tsc_to_system_mul is 0 {when}"),
        );
        settled && mul != 0
    }

    /// Two readings a little apart: system time must have advanced.
    fn check_advances(t: &mut Checks, khz: Option<u64>, when: &str) {
        let first = read_time(area());
        spin_ms(khz, 1);
        let second = read_time(area());
        t.check(
            second.system_time_ns > first.system_time_ns,
            format_args!(
                "system time did not advance {when}: {} ns, then {} ns",
                first.system_time_ns, second.system_time_ns
            ),
        );
    }

    /// System time must keep pace with the TSC: within 1% over `TRACKING_MS`.
    fn check_tracks_tsc(t: &mut Checks, khz: u64) {
        let start = read_time(area());
        spin_ms(Some(khz), TRACKING_MS);
        let end = read_time(area());
        let by_tsc_us = tsc_us(end.tsc - start.tsc, khz);
        let by_time_us = end.system_time_ns.saturating_sub(start.system_time_ns) / 1000;
        println!("poll: system time advanced {by_time_us} us over {by_tsc_us} us of TSC time");
        t.check(
            by_time_us.abs_diff(by_tsc_us) * 100 <= by_tsc_us,
            format_args!(
                "system time advanced {by_time_us} us over {by_tsc_us} us of TSC time at \
                 {khz} kHz: more than 1% apart"
            ),
        );
    }

    /// The refusals, in the order Xen checks. Each poll has a past deadline, so a
    /// hypervisor that blocks instead of refusing wakes at once.
    fn check_refusals(t: &mut Checks) {
        let too_many = poll(BAD_POINTER, 129, PAST);
        t.check(
            too_many == EINVAL,
            format_args!(
                "SCHEDOP_poll with nr_ports 129 (and an unreadable array) returned \
                 {too_many}, expected -EINVAL: Xen refuses more than 128 ports before \
                 reading any"
            ),
        );
        let unreadable = poll(BAD_POINTER, 1, PAST);
        t.check(
            unreadable == EFAULT,
            format_args!(
                "SCHEDOP_poll with ports at {BAD_POINTER:#x} (unmapped) returned \
                 {unreadable}, expected -EFAULT"
            ),
        );
        for (port, why) in [
            (1u32, "not bound: the domain has no event channels"),
            (0, "reserved"),
        ] {
            let ports = [port];
            let ret = poll(ports.as_ptr() as u64, 1, PAST);
            t.check(
                ret == EINVAL,
                format_args!(
                    "SCHEDOP_poll on port {port} ({why}) returned {ret}, expected -EINVAL"
                ),
            );
        }
    }

    /// A deadline already passed: returns 0 at once.
    fn check_past_deadline(t: &mut Checks, khz: Option<u64>) {
        let now = read_time(area());
        // Never 0, which would mean no timeout at all.
        let deadline = now.system_time_ns.saturating_sub(1_000_000).max(1);
        let start = tsc();
        let ret = poll(0, 0, deadline);
        let took = tsc().wrapping_sub(start);
        t.check(
            ret == 0,
            format_args!("SCHEDOP_poll with a deadline 1 ms in the past returned {ret}"),
        );
        if let Some(khz) = khz {
            t.check(
                took < PROMPT_MS * khz,
                format_args!(
                    "SCHEDOP_poll with a deadline 1 ms in the past took {} us to return, \
                     expected at once (under {PROMPT_MS} ms)",
                    tsc_us(took, khz)
                ),
            );
        }
    }

    /// A deadline 20 ms ahead: sleeps until system time reaches it.
    fn check_sleep(t: &mut Checks, khz: Option<u64>) {
        let before: Reading = read_time(area());
        let deadline = before.system_time_ns + SLEEP_NS;
        let ret = poll(0, 0, deadline);
        let after = read_time(area());
        let slept_us = after.system_time_ns.saturating_sub(before.system_time_ns) / 1000;
        println!(
            "poll: slept {slept_us} us for a {} us timeout",
            SLEEP_NS / 1000
        );
        t.check(
            ret == 0,
            format_args!("SCHEDOP_poll with a deadline 20 ms ahead returned {ret}"),
        );
        t.check(
            after.system_time_ns >= deadline,
            format_args!(
                "SCHEDOP_poll returned at system time {} ns, {} us before its deadline {} ns",
                after.system_time_ns,
                (deadline - after.system_time_ns.min(deadline)) / 1000,
                deadline
            ),
        );
        if let Some(khz) = khz {
            let wall = after.tsc.wrapping_sub(before.tsc);
            t.check(
                wall < SLEEP_LIMIT_MS * khz,
                format_args!(
                    "SCHEDOP_poll for 20 ms took {} us of TSC time (limit {SLEEP_LIMIT_MS} ms)",
                    tsc_us(wall, khz)
                ),
            );
        }
    }

    /// Registers an unmapped address, then the good area again.
    fn check_bad_registration(t: &mut Checks, me: u32, khz: Option<u64>) {
        clear_area();
        let arg = VcpuRegisterTimeMemoryArea { addr: BAD_POINTER };
        // SAFETY: the hypervisor reads the 8-byte argument (a live local); the address it
        // names is not mapped in this guest, so the record writes that follow fail and
        // touch no memory the guest uses.
        let ret = unsafe {
            hypercall3(
                HYPERVISOR_VCPU_OP,
                VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA,
                u64::from(me),
                (&raw const arg) as u64,
            )
        };
        t.check(
            ret == 0,
            format_args!(
                "VCPUOP_register_vcpu_time_memory_area at {BAD_POINTER:#x} (unmapped) \
                 returned {ret}, expected 0: Xen does not check the address of an HVM/PVH \
                 guest's area and drops the updates that fail"
            ),
        );
        spin_ms(khz, 1);
        let stale = area().version.load(Ordering::Acquire);
        t.check(
            stale == 0,
            format_args!(
                "the replaced time area was written (version {stale}) after another \
                 address was registered"
            ),
        );
        let again = register_time_area(me, area());
        t.check(
            again == 0,
            format_args!("registering the time area again returned {again}, expected 0"),
        );
        if check_written(t, "after registering the area again") {
            check_advances(t, khz, "after registering the area again");
        }
    }

    pub fn test(_info: &StartInfo) -> Verdict {
        let mut t = Checks::default();
        let me = current_vcpu();
        let khz = tsc_khz();
        t.check(
            khz.is_some(),
            format_args!("no TSC rate in Xen's CPUID leaf base+3 (sub-leaf 0 ECX)"),
        );

        let registered = register_time_area(me, area());
        t.check(
            registered == 0,
            format_args!("VCPUOP_register_vcpu_time_memory_area returned {registered}, expected 0"),
        );
        let time_works = registered == 0 && check_written(&mut t, "after registration");
        if time_works {
            let info = area();
            println!(
                "poll: vcpu_time_info version {}, tsc_to_system_mul {:#x}, tsc_shift {}, flags {:#x}",
                info.version.load(Ordering::Relaxed),
                info.tsc_to_system_mul.load(Ordering::Relaxed),
                info.tsc_shift.load(Ordering::Relaxed),
                info.flags.load(Ordering::Relaxed)
            );
            check_advances(&mut t, khz, "between two reads");
            if let Some(khz) = khz {
                check_tracks_tsc(&mut t, khz);
            }
        }

        check_refusals(&mut t);

        if time_works {
            check_past_deadline(&mut t, khz);
            check_sleep(&mut t, khz);
            check_bad_registration(&mut t, me, khz);
        } else {
            println!("poll: no vCPU time area, so the timed SCHEDOP_poll checks are skipped");
        }
        t.verdict()
    }
}

#[cfg(target_os = "none")]
use guest::test;

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("poll", test);
