//! A CPU-bound counter for scheduler tests: for `windows=W` windows of `window-ms=M`
//! milliseconds of TSC time (defaults 10 and 100) it spins reading the TSC and counts
//! iterations, and adds up the time it ran: the TSC steps between consecutive reads
//! shorter than `gap-us=G` microseconds (default 500); a longer step is time the vCPU
//! was descheduled. After the last window it prints a `spinner: config ...` line with the
//! settings, `spinner: window <k> count <c> share <permille>` for each window (share: run
//! time over window length, in permille) and `spinner: total count <c> share
//! <permille>`. Nothing is printed while it measures: a console line costs the vCPU
//! milliseconds on an emulated UART (87 µs a character at 115200 baud), which would be
//! charged to it and distort the shares. It always passes: the harness judges the
//! numbers (e.g. two spinners with weights 2:1 on one physical CPU should show shares
//! near 667 and 333).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
mod guest {
    use ferrovisor_test_guests::println;
    use ferrovisor_test_guests::smp::{tsc, tsc_khz};

    use super::{StartInfo, Verdict};

    const DEFAULT_WINDOWS: u64 = 10;
    const DEFAULT_WINDOW_MS: u64 = 100;
    const DEFAULT_GAP_US: u64 = 500;

    /// What one window (or the whole run) measured.
    #[derive(Clone, Copy, Default)]
    struct Tally {
        count: u64,
        /// TSC ticks the vCPU ran.
        ran: u64,
    }

    /// Spins until the TSC reaches `end`. `prev` is the previous TSC read, carried
    /// across windows so no interval is lost or counted twice. The loop body is the
    /// same in every domain: one RDTSC, one increment, one compare for the gap, one
    /// for the end.
    /// Most windows one run measures (their figures are kept until the end).
    const MAX_WINDOWS: u64 = 64;

    fn spin(end: u64, gap: u64, prev: &mut u64) -> Tally {
        let mut tally = Tally::default();
        let mut last = *prev;
        loop {
            let now = tsc();
            tally.count += 1;
            let delta = now.wrapping_sub(last);
            if delta < gap {
                tally.ran += delta;
            }
            last = now;
            if now >= end {
                break;
            }
        }
        *prev = last;
        tally
    }

    fn permille(ran: u64, length: u64) -> u64 {
        (u128::from(ran) * 1000 / u128::from(length.max(1))) as u64
    }

    pub fn test(info: &StartInfo) -> Verdict {
        let windows = info.cmdline_value("windows").unwrap_or(DEFAULT_WINDOWS);
        let window_ms = info.cmdline_value("window-ms").unwrap_or(DEFAULT_WINDOW_MS);
        let gap_us = info.cmdline_value("gap-us").unwrap_or(DEFAULT_GAP_US);
        if windows == 0 || window_ms == 0 || gap_us == 0 {
            println!(
                "spinner: windows={windows} window-ms={window_ms} gap-us={gap_us}: each must be at least 1"
            );
            return Verdict::Error;
        }
        let Some(khz) = tsc_khz() else {
            println!("spinner: TSC rate unknown (Xen leaf base+3 ECX is 0)");
            return Verdict::Error;
        };
        let (Some(window), Some(total_length)) = (
            window_ms.checked_mul(khz),
            window_ms
                .checked_mul(khz)
                .and_then(|w| w.checked_mul(windows)),
        ) else {
            println!("spinner: {windows} windows of {window_ms} ms overflow the TSC");
            return Verdict::Error;
        };
        if windows > MAX_WINDOWS {
            println!("spinner: windows={windows}: at most {MAX_WINDOWS}");
            return Verdict::Error;
        }
        let gap = gap_us.saturating_mul(khz) / 1000;

        // Measure with interrupts enabled, as a kernel's busy code runs. Nothing sends
        // this guest interrupts; but Bochs 2.7 only lets a physical interrupt exit a
        // guest (VT-x external-interrupt exiting, AMD-V INTR intercept) once the guest's
        // own IF is set, so with IF = 0 the scheduler's timer could never preempt it
        // there. Hardware and QEMU exit either way.
        // SAFETY: the hypervisor injects no interrupts into this guest, so STI only
        // changes how the emulator re-evaluates physical-interrupt masking.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
        let start = tsc();
        let mut prev = start;
        let mut total = Tally::default();
        let mut tallies = [Tally::default(); MAX_WINDOWS as usize];
        for (k, tally) in tallies.iter_mut().enumerate().take(windows as usize) {
            // Window ends are fixed from the start.
            *tally = spin(
                start.saturating_add((k as u64 + 1) * window),
                gap,
                &mut prev,
            );
            total.count += tally.count;
            total.ran += tally.ran;
        }
        println!(
            "spinner: config windows={windows} window-ms={window_ms} gap-us={gap_us} tsc-khz={khz}"
        );
        for (k, tally) in tallies.iter().enumerate().take(windows as usize) {
            println!(
                "spinner: window {k} count {} share {}",
                tally.count,
                permille(tally.ran, window)
            );
        }
        println!(
            "spinner: total count {} share {}",
            total.count,
            permille(total.ran, total_length)
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

guest_test!("spinner", test);
