//! Wake-up latency of a vCPU that blocks often (an I/O-like vCPU): `rounds=N` times
//! (default 200) it reads the system time from its pvclock record, sleeps with
//! `SCHEDOP_poll` until `period-us=P` microseconds later (default 1000), and records how
//! late it runs again (system time after the call minus the deadline). Run among CPU
//! hogs on the same CPU, the figures show how promptly the scheduler lets a vCPU that
//! used little CPU run again. After the last round it prints `wakeup: rounds N period
//! P us p50 A us p99 B us max C us`; the benchmark (`cargo xtask bench wakeup`) judges
//! them. Nothing is printed while it measures (a console line costs the vCPU time).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
mod guest {
    use ferrovisor_test_guests::abi::{SchedPoll, VcpuTimeInfo};
    use ferrovisor_test_guests::hypercall::sched_poll;
    use ferrovisor_test_guests::println;
    use ferrovisor_test_guests::time::{register_time_area, system_time_ns};

    use super::{StartInfo, Verdict};

    const MAX_ROUNDS: usize = 1000;

    /// 32-byte aligned like Xen's own copies, so it never straddles a page.
    #[repr(C, align(32))]
    struct TimeArea(VcpuTimeInfo);

    static TIME_AREA: TimeArea = TimeArea(VcpuTimeInfo::new());

    pub fn test(info: &StartInfo) -> Verdict {
        let rounds = info.cmdline_value("rounds").unwrap_or(200) as usize;
        let period_ns = info.cmdline_value("period-us").unwrap_or(1000) * 1000;
        if rounds == 0 || rounds > MAX_ROUNDS || period_ns == 0 {
            println!("wakeup: rounds must be 1..={MAX_ROUNDS} and period-us at least 1");
            return Verdict::Error;
        }
        let registered = register_time_area(0, &TIME_AREA.0);
        if registered != 0 {
            println!("wakeup: VCPUOP_register_vcpu_time_memory_area returned {registered}");
            return Verdict::Error;
        }
        let mut late_ns = [0u64; MAX_ROUNDS];
        for slot in late_ns.iter_mut().take(rounds) {
            let deadline = system_time_ns(&TIME_AREA.0) + period_ns;
            let result = sched_poll(&SchedPoll {
                ports: 0,
                nr_ports: 0,
                timeout: deadline,
            });
            let now = system_time_ns(&TIME_AREA.0);
            if result != 0 {
                println!("wakeup: SCHEDOP_poll returned {result}");
                return Verdict::Error;
            }
            if now < deadline {
                println!("wakeup: woke {} ns before the deadline", deadline - now);
                return Verdict::Failure;
            }
            *slot = now - deadline;
        }
        let late = &mut late_ns[..rounds];
        late.sort_unstable();
        let percentile = |p: usize| late[(rounds * p / 100).min(rounds - 1)] / 1000;
        println!(
            "wakeup: rounds {rounds} period {} us p50 {} us p99 {} us max {} us",
            period_ns / 1000,
            percentile(50),
            percentile(99),
            late[rounds - 1] / 1000
        );
        Verdict::Success
    }
}

#[cfg(target_os = "none")]
use guest::test;

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("wakeup", test);
