//! Time: the TSC as the one clock source, calibrated once at boot; busy-wait delays for
//! bring-up; per-CPU one-shot timer interrupts (TSC-deadline mode where available,
//! APIC one-shot otherwise).
//!
//! Calibration order: CPUID leaf 15H (exact, when the CPU enumerates its crystal),
//! then a 10 ms window of the PIT's channel 2 (every PC has one; ACPI's PM timer
//! replaces it once the platform description is parsed).

use core::sync::atomic::{AtomicU64, Ordering};

use ferrovisor::timer::{TimerError, TimerId};
use ferrovisor_arch::apic::{ApicRegister, LocalApic, has_tsc_deadline};
use log::{info, warn};
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::instructions::port::Port;

use crate::percpu::PerCpu;
use crate::smp::vectors;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks per second at divide-by-1 (only for the one-shot fallback).
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// PIT input clock (Hz).
const PIT_HZ: u64 = 1_193_182;

/// Reads the time-stamp counter.
pub fn tsc() -> u64 {
    // SAFETY: RDTSC is unprivileged here (CR4.TSD is clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC frequency in Hz (after [`init`]).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since [`init`], monotonic (the TSC is invariant on every CPU the
/// hypervisor supports and synchronised by firmware at reset).
pub fn now_ns() -> u64 {
    ticks_to_ns(tsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let hz = tsc_hz().max(1);
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(tsc_hz()) / 1_000_000_000) as u64
}

/// Calibrates the TSC. Call once on the boot CPU, before APs start.
pub fn init() {
    let (hz, source) = match tsc_hz_from_cpuid() {
        Some(hz) => (hz, "cpuid 15h"),
        None => match calibrate_with_pit() {
            Some(hz) => (hz, "pit"),
            None => {
                warn!("time: cannot calibrate the TSC (no PIT response); assuming 1 GHz");
                (1_000_000_000, "assumed")
            }
        },
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    BOOT_TSC.store(tsc(), Ordering::Relaxed);
    info!("time: tsc {} kHz (source: {source})", hz / 1000);
}

/// CPUID 15H: TSC = crystal × EBX / EAX (SDM Vol. 2A, CPUID leaf 15H). Only when the
/// crystal frequency is enumerated (ECX ≠ 0); otherwise calibrate.
fn tsc_hz_from_cpuid() -> Option<u64> {
    let cpuid = raw_cpuid::CpuId::new();
    let info = cpuid.get_tsc_info()?;
    let (denominator, numerator, crystal) = (
        u64::from(info.denominator()),
        u64::from(info.numerator()),
        info.nominal_frequency() as u64,
    );
    (denominator != 0 && numerator != 0 && crystal != 0).then(|| crystal * numerator / denominator)
}

/// Counts TSC ticks over 10 ms of PIT channel 2 in mode 0 (interrupt on terminal
/// count), read through port 0x61 bit 5 (OUT2).
fn calibrate_with_pit() -> Option<u64> {
    const WINDOW_TICKS: u64 = PIT_HZ / 100;
    let mut control: Port<u8> = Port::new(0x61);
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel2: Port<u8> = Port::new(0x42);
    let mut best = u64::MAX;
    for _ in 0..3 {
        // SAFETY: (for this and the PIT writes below) ports 0x61/0x43/0x42 are the PC's
        // speaker gate and PIT channel 2, which nothing else in the hypervisor uses:
        // gate on, speaker off, channel 2 in mode 0 counting WINDOW_TICKS.
        let gate = unsafe { control.read() };
        // SAFETY: see above.
        unsafe { control.write((gate & !0x02) | 0x01) };
        // SAFETY: see above.
        unsafe { command.write(0b1011_0000) };
        // SAFETY: see above.
        unsafe { channel2.write(WINDOW_TICKS as u8) };
        // SAFETY: see above.
        unsafe { channel2.write((WINDOW_TICKS >> 8) as u8) };
        let start = tsc();
        loop {
            // SAFETY: reading the gate/status port has no side effects.
            if unsafe { control.read() } & 0x20 != 0 {
                break;
            }
            if tsc() - start > 1 << 34 {
                return None; // ~seconds at any plausible TSC rate: no PIT here
            }
        }
        best = best.min(tsc() - start);
    }
    Some(best * 100)
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let end = tsc() + ns_to_ticks(us * 1000);
    while tsc() < end {
        core::hint::spin_loop();
    }
}

/// Busy-waits up to `us` microseconds for `done`; returns whether it became true.
pub fn wait_until(us: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = tsc() + ns_to_ticks(us * 1000);
    loop {
        if done() {
            return true;
        }
        if tsc() >= end {
            return done();
        }
        core::hint::spin_loop();
    }
}

/// Measures the APIC timer rate against the TSC (for CPUs without TSC-deadline mode).
pub fn calibrate_apic_timer(apic: LocalApic) {
    if has_tsc_deadline() || APIC_TIMER_HZ.load(Ordering::Relaxed) != 0 {
        return;
    }
    apic.write(ApicRegister::TimerDivide, 0b1011);
    apic.write(ApicRegister::LvtTimer, 1 << 16 | u32::from(vectors::TIMER)); // masked
    apic.write(ApicRegister::TimerInitialCount, u32::MAX);
    let start = tsc();
    delay_us(10_000);
    let elapsed_ticks = tsc() - start;
    let counted = u64::from(u32::MAX - apic.read(ApicRegister::TimerCurrentCount));
    apic.disarm_timer();
    let hz = (u128::from(counted) * u128::from(tsc_hz()) / u128::from(elapsed_ticks.max(1))) as u64;
    APIC_TIMER_HZ.store(hz, Ordering::Relaxed);
    info!("time: apic timer {} kHz (one-shot mode)", hz / 1000);
}

/// Arms this CPU's one-shot timer to interrupt at `deadline_ns` (on the [`now_ns`]
/// clock); a deadline in the past fires at once.
pub fn arm(cpu: &PerCpu, deadline_ns: u64) {
    let apic = cpu.local_apic();
    if has_tsc_deadline() {
        let deadline = BOOT_TSC.load(Ordering::Relaxed) + ns_to_ticks(deadline_ns);
        apic.arm_tsc_deadline(vectors::TIMER, deadline);
    } else {
        let delta_ns = deadline_ns.saturating_sub(now_ns());
        let hz = APIC_TIMER_HZ.load(Ordering::Relaxed);
        let ticks =
            (u128::from(delta_ns) * u128::from(hz) / 1_000_000_000).min(u128::from(u32::MAX));
        apic.arm_one_shot(vectors::TIMER, ticks as u32);
    }
}

/// Timer tokens with this value only wake the CPU up.
pub const WAKEUP_TOKEN: u64 = 0;

/// Adds a one-shot timer on the running CPU `cpu`, firing at `deadline_ns` with
/// `token`, and reprograms the hardware if it is now the earliest.
pub fn add_timer(cpu: &PerCpu, deadline_ns: u64, token: u64) -> Result<TimerId, TimerError> {
    // The timer interrupt takes the same lock: hold it only with interrupts off.
    without_interrupts(|| {
        let mut queue = cpu.timers.lock();
        let id = queue.insert(deadline_ns, token)?;
        if queue.next_deadline() == Some(deadline_ns) {
            arm(cpu, deadline_ns);
        }
        Ok(id)
    })
}

/// Cancels a pending timer of the running CPU.
pub fn cancel_timer(cpu: &PerCpu, id: TimerId) {
    without_interrupts(|| {
        let _ = cpu.timers.lock().cancel(id);
    });
}

/// The timer interrupt: runs every expired timer, earliest first, then programs the
/// next deadline.
pub fn on_timer_interrupt(cpu: &PerCpu) {
    loop {
        let expired = cpu.timers.lock().pop_expired(now_ns());
        let Some((_id, token)) = expired else { break };
        match token {
            WAKEUP_TOKEN => {}
            #[cfg(feature = "selftest")]
            token if token >= crate::selftest::SELFTEST_TIMER_TOKEN_BASE => {
                crate::selftest::on_timer_expired(cpu, token)
            }
            other => warn!("cpu {}: timer with unknown token {other:#x}", cpu.index),
        }
    }
    if let Some(next) = cpu.timers.lock().next_deadline() {
        arm(cpu, next);
    }
}
