//! Time: the TSC as the one clock source, calibrated once at boot; busy-wait delays for
//! bring-up; per-CPU one-shot timer interrupts (TSC-deadline mode where available,
//! APIC one-shot otherwise).
//!
//! Calibration: 10 ms windows of the ACPI PM timer, else the HPET, else the PIT's
//! channel 0; CPUID leaf 15H wins when it agrees with that measurement. Conversions between
//! ticks and nanoseconds use a multiply-and-shift [`TscScale`], no division.

use core::sync::atomic::{AtomicU64, Ordering};

use ferrovisor::timer::{TimerError, TimerId};
use ferrovisor_arch::apic::{ApicRegister, LocalApic, has_tsc_deadline};
use ferrovisor_arch::tsc::{self, TscScale};
use ferrovisor_drivers::acpi::{HpetDescription, Platform, PmTimer, RegisterLocation};
use log::{info, warn};
use spin::Once;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::instructions::port::Port;

use crate::percpu::PerCpu;
use crate::smp::vectors;

static SCALE: Once<TscScale> = Once::new();
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks per second at divide-by-1 (only for the one-shot fallback).
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// The TSC rate measured against the PIT as a second opinion (0 if not measured).
static PIT_CROSS_CHECK_HZ: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn tsc() -> u64 {
    // SAFETY: RDTSC is unprivileged here (CR4.TSD is clear) and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn scale() -> &'static TscScale {
    SCALE.get().expect("time used before time::init")
}

/// TSC frequency in Hz (after [`init`]).
pub fn tsc_hz() -> u64 {
    scale().hz()
}

/// The TSC rate measured against the PIT, when the primary source was something else.
pub fn pit_cross_check_hz() -> Option<u64> {
    Some(PIT_CROSS_CHECK_HZ.load(Ordering::Relaxed)).filter(|&hz| hz != 0)
}

/// Nanoseconds since [`init`]: the hypervisor's one monotonic clock (the TSC is
/// invariant on every CPU the hypervisor supports and synchronised by firmware).
pub fn now_ns() -> u64 {
    scale().ticks_to_ns(tsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// TSC ticks in `ns` nanoseconds.
pub fn ns_to_ticks(ns: u64) -> u64 {
    scale().ns_to_ticks(ns)
}

/// Calibrates the TSC. Call once on the boot CPU, after the ACPI platform description
/// is read and before APs start. Sources, best first: CPUID leaf 15H, the ACPI PM
/// timer, the PIT. When the PM timer is used, the PIT measures too, as a cross-check.
pub fn init(platform: &Platform) {
    let cpuid = raw_cpuid::CpuId::new();
    let leaf15 = cpuid.get_tsc_info().map(|info| {
        (
            info.denominator(),
            info.numerator(),
            info.nominal_frequency(),
        )
    });
    let leaf16 = cpuid
        .get_processor_frequency_info()
        .map(|info| u32::from(info.processor_base_frequency()));
    let pm_timer = platform.pm_timer.as_ref().and_then(PmTimerReader::new);

    // A measurement against a reference timer: the PM timer, else the PIT.
    let measured = match pm_timer.and_then(PmTimerReader::calibrate) {
        Some(hz) => {
            if let Some(pit) = calibrate_with_pit() {
                PIT_CROSS_CHECK_HZ.store(pit, Ordering::Relaxed);
            }
            Some((hz, "acpi pm timer"))
        }
        None => match platform.hpet.as_ref().and_then(calibrate_with_hpet) {
            Some(hz) => Some((hz, "hpet")),
            None => calibrate_with_pit().map(|hz| (hz, "pit")),
        },
    };
    // CPUID 15H is exact on hardware, but emulators and some hypervisors enumerate a
    // nominal crystal their TSC does not follow (Bochs' TSC runs at its `ips`). Trust
    // it only when a measurement agrees within 2%.
    let enumerated = tsc::tsc_hz_from_cpuid(leaf15, leaf16);
    let (hz, source) = match (enumerated, measured) {
        (Some(cpuid), Some((hz, source))) if cpuid.abs_diff(hz) * 50 > cpuid => {
            warn!(
                "time: cpuid 15h says the tsc runs at {} kHz but it measures {} kHz against the {source}; using the measurement",
                cpuid / 1000,
                hz / 1000
            );
            (hz, source)
        }
        (Some(cpuid), _) => (cpuid, "cpuid 15h"),
        (None, Some(measured)) => measured,
        (None, None) => {
            warn!(
                "time: cannot calibrate the TSC (no CPUID 15h, PM timer, HPET or PIT); assuming 1 GHz"
            );
            (1_000_000_000, "assumed")
        }
    };
    SCALE.call_once(|| TscScale::new(hz));
    BOOT_TSC.store(tsc(), Ordering::Relaxed);
    match pit_cross_check_hz() {
        Some(pit) => info!(
            "time: tsc {} kHz (source: {source}; pit cross-check {} kHz)",
            hz / 1000,
            pit / 1000
        ),
        None => info!("time: tsc {} kHz (source: {source})", hz / 1000),
    }
}

/// The ACPI PM timer, 3.579545 MHz, 24 or 32 bits (ACPI 6.5 §4.8.3.3).
struct PmTimerReader {
    port: Port<u32>,
    bits: u8,
}

impl PmTimerReader {
    fn new(timer: &PmTimer) -> Option<Self> {
        match timer.location {
            // Memory-mapped PM timers exist only on hardware-reduced-era boards that
            // also have CPUID 15h or an HPET; the port form is universal on PCs.
            RegisterLocation::Io(port) => Some(Self {
                port: Port::new(port),
                bits: timer.bits,
            }),
            _ => None,
        }
    }

    fn read(&mut self) -> u32 {
        // SAFETY: the port is the PM timer block the FADT names; reading it has no
        // side effects.
        unsafe { self.port.read() }
    }

    /// TSC ticks per second over a 10 ms PM-timer window (best of three).
    fn calibrate(mut self) -> Option<u64> {
        let bits = self.bits;
        calibrate_against(
            tsc::PM_TIMER_HZ,
            || u64::from(self.read()),
            |start, now| tsc::pm_timer_delta(start as u32, now as u32, bits),
        )
    }
}

/// TSC ticks per second, the best (lowest) of three 10 ms windows of a reference
/// counter running at `reference_hz`; `elapsed(start, now)` is its ticks between two
/// reads (handling its wrap). `None` when the counter does not move (it is absent).
fn calibrate_against(
    reference_hz: u64,
    mut read: impl FnMut() -> u64,
    elapsed: impl Fn(u64, u64) -> u64,
) -> Option<u64> {
    let window = reference_hz / 100;
    let mut best: Option<u64> = None;
    for _ in 0..3 {
        let start = read();
        let start_tsc = tsc();
        loop {
            let ticks = elapsed(start, read());
            if ticks >= window {
                let hz = tsc::hz_from_reference(tsc() - start_tsc, ticks, reference_hz)?;
                best = Some(best.map_or(hz, |b| b.min(hz)));
                break;
            }
            if tsc() - start_tsc > 1 << 34 {
                return None;
            }
        }
    }
    best
}

/// TSC ticks per second over a 10 ms window of the HPET main counter (IA-PC HPET
/// 1.0a §2.3: capabilities at 0x00 with the period in femtoseconds in bits 63:32,
/// configuration at 0x10 with ENABLE_CNF in bit 0, main counter at 0xF0).
fn calibrate_with_hpet(hpet: &HpetDescription) -> Option<u64> {
    const FEMTOSECONDS_PER_SECOND: u64 = 1_000_000_000_000_000;
    let base = crate::memory::map_mmio(hpet.base_address, 0x100).ok()?;
    let read = |offset: u64| {
        // SAFETY: `base` maps the HPET's register block uncached; these offsets are
        // architectural 64-bit registers inside it; reads have no side effects.
        unsafe { core::ptr::read_volatile((base + offset) as *const u64) }
    };
    let period_fs = read(0x00) >> 32;
    // The specification bounds the period to (0, 100 ns].
    if period_fs == 0 || period_fs > 100_000_000 {
        return None;
    }
    let config = read(0x10);
    // SAFETY: setting ENABLE_CNF only starts the main counter (no comparator is armed
    // and legacy replacement is left as firmware set it); nothing else uses the HPET.
    unsafe { core::ptr::write_volatile((base + 0x10) as *mut u64, config | 1) };
    let hpet_hz = FEMTOSECONDS_PER_SECOND / period_fs;
    calibrate_against(hpet_hz, || read(0xF0), |start, now| now.wrapping_sub(start))
}

/// Counts TSC ticks over 10 ms of PIT channel 0, read by latching its counter through
/// the command port (8254 datasheet, counter latch command). Channel 0 exists wherever
/// a PIT does, unlike the port 0x61 gate of channel 2 (QEMU's microvm has no port
/// 0x61). Its interrupt is masked (PICs masked, I/O APIC pins masked at reset).
/// Best of three windows; `None` when the counter does not move (no PIT).
fn calibrate_with_pit() -> Option<u64> {
    const WINDOW_TICKS: u64 = tsc::PIT_HZ / 100;
    // The PIT ticks every ~0.84 µs; an emulator's vCPU thread can be descheduled for
    // milliseconds between two reads, so only a long stall means there is no PIT.
    const STALL_TSC_TICKS: u64 = 1 << 27;
    let mut command: Port<u8> = Port::new(0x43);
    let mut channel0: Port<u8> = Port::new(0x40);
    let mut read_counter = || {
        // SAFETY: (for this and the two reads) 0x43/0x40 are the PIT's command and
        // channel 0 ports, used by nothing else in the hypervisor; 0x00 latches
        // channel 0's count, then low and high bytes are read.
        unsafe { command.write(0x00) };
        // SAFETY: see above.
        let low = unsafe { channel0.read() };
        // SAFETY: see above.
        let high = unsafe { channel0.read() };
        u16::from_le_bytes([low, high])
    };
    // SAFETY: channel 0, low/high byte access, mode 2 (rate generator), binary; reload
    // 0 means 65536, so the count wraps every ~55 ms, far slower than we sample.
    unsafe { Port::<u8>::new(0x43).write(0b0011_0100) };
    // SAFETY: see above (reload value, low then high byte).
    unsafe { Port::<u8>::new(0x40).write(0) };
    // SAFETY: see above.
    unsafe { Port::<u8>::new(0x40).write(0) };
    let mut best = u64::MAX;
    for _ in 0..3 {
        let mut previous = read_counter();
        let mut elapsed = 0u64;
        let start = tsc();
        let mut last_change = start;
        while elapsed < WINDOW_TICKS {
            let now_count = read_counter();
            let now = tsc();
            if now_count != previous {
                elapsed += u64::from(previous.wrapping_sub(now_count));
                previous = now_count;
                last_change = now;
            } else if now - last_change > STALL_TSC_TICKS {
                return None;
            }
        }
        best = best.min(tsc::hz_from_reference(tsc() - start, elapsed, tsc::PIT_HZ)?);
    }
    Some(best)
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
    let hz = tsc::hz_from_reference(counted, elapsed_ticks.max(1), tsc_hz()).unwrap_or(0);
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
/// The scheduler's timer: the end of the running vCPU's stint (`vmm::cpu_loop`).
pub const SCHED_TOKEN: u64 = 1;
/// A blocked vCPU's deadline (`SCHEDOP_poll` timeout): this base plus its scheduler id.
pub const VCPU_WAKE_TOKEN_BASE: u64 = 1 << 40;

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
            SCHED_TOKEN => cpu.need_resched.store(true, Ordering::Release),
            token if (VCPU_WAKE_TOKEN_BASE..VCPU_WAKE_TOKEN_BASE + (1 << 32)).contains(&token) => {
                // Waking takes the scheduler's lock, which interrupted code may hold:
                // queue it for the CPU's loop, which runs it next.
                cpu.expired_wakes
                    .lock()
                    .push((token - VCPU_WAKE_TOKEN_BASE) as u32);
                cpu.need_resched.store(true, Ordering::Release);
            }
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
