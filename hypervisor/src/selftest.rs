//! In-hypervisor self tests for emulator runs, chosen with `selftest=NAME` (test builds
//! only). Each deliberate fault first prints what the fatal report must say, so the
//! harness compares the report against an expectation rather than a hard-coded value:
//!
//! | NAME             | what happens                                  | report must show |
//! |------------------|-----------------------------------------------|------------------|
//! | `boot` (default) | nothing: the boot itself is the test          | `Test result: SUCCESS` |
//! | `null-deref`     | reads virtual address 0                       | #PF, RIP of the load, CR2 0 |
//! | `ro-write`       | writes a `.rodata` object                     | #PF, RIP of the store, CR2 of the object |
//! | `stack-overflow` | recurses into the boot stack's guard page     | #DF on the #DF IST stack, CR2 in the guard |
//! | `panic`          | panics                                        | message and location |
//! | `smp`            | checks every firmware-listed CPU came online  | `Test result: SUCCESS` |
//! | `timers`         | N one-shot deadlines on every CPU             | all fire, in order, none early |
//! | `ipi`            | K-hop IPI ring through all CPUs, then a broadcast | count reached, everyone got the broadcast |
//! | `ap-panic`       | the last AP panics                            | its PANIC report, and every other CPU's NMI stop report |

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ferrovisor_boot::BootInfo;
use spin::Mutex;

use crate::percpu::{self, PerCpu};
use crate::{smp, time};
use ferrovisor_boot::cmdline::Options;
use ferrovisor_drivers::console_print;

use crate::platform::{ExitCode, stop};

core::arch::global_asm!(
    r#"
    .section .text.selftest, "ax"
    .global selftest_read_null
selftest_read_null:
    xor eax, eax
    .global selftest_read_null_fault
selftest_read_null_fault:
    mov rax, qword ptr [rax]
    ret

    .global selftest_write_u64
selftest_write_u64:
    .global selftest_write_u64_fault
selftest_write_u64_fault:
    mov qword ptr [rdi], rsi
    ret
    "#
);

unsafe extern "C" {
    fn selftest_read_null() -> u64;
    static selftest_read_null_fault: u8;
    fn selftest_write_u64(address: *const u64, value: u64);
    static selftest_write_u64_fault: u8;
}

/// A read-only object for `ro-write` to hit: immutable statics live in `.rodata`.
static READ_ONLY_TARGET: u64 = 0x5afe_5afe;

pub fn run(_boot: &BootInfo, options: &Options) -> ! {
    let name = options.selftest.as_ref().map_or("boot", |s| s.as_str());
    console_print!("selftest: running '{name}'\n");
    match name {
        "boot" => verdict(ExitCode::Success),
        "null-deref" => {
            let rip = (&raw const selftest_read_null_fault) as u64;
            console_print!(
                "selftest: expect vector=14 rip={rip:#018x} cr2={:#018x}\n",
                0
            );
            // SAFETY: deliberately faults (virtual page 0 is unmapped); the fatal handler
            // reports and stops the machine, so nothing runs after the load.
            let value = unsafe { selftest_read_null() };
            console_print!("selftest: read {value:#x} from address 0: page 0 is mapped\n");
            verdict(ExitCode::Failure)
        }
        "ro-write" => {
            let rip = (&raw const selftest_write_u64_fault) as u64;
            let target = &raw const READ_ONLY_TARGET;
            console_print!(
                "selftest: expect vector=14 rip={rip:#018x} cr2={:#018x}\n",
                target as u64
            );
            // SAFETY: deliberately faults: the target is in .rodata, mapped read-only
            // with CR0.WP set, so the store never happens and the fatal handler stops
            // the machine.
            unsafe { selftest_write_u64(target, 0xbad) };
            console_print!("selftest: wrote to .rodata: it is writable\n");
            verdict(ExitCode::Failure)
        }
        "stack-overflow" => {
            let (guard, _, _) = ferrovisor_boot::entry::boot_stack();
            console_print!(
                "selftest: expect vector=8 cr2-min={guard:#018x} cr2-max={:#018x} stack=df-ist\n",
                guard + 4095
            );
            let depth = recurse(0);
            console_print!("selftest: recursed {depth} frames without a fault\n");
            verdict(ExitCode::Failure)
        }
        "panic" => deliberate_panic(),
        "smp" => verdict(smp_test(boot_expected_cpus(options))),
        "timers" => verdict(timer_test_all_cpus()),
        "ipi" => verdict(ipi_test()),
        "ap-panic" => ap_panic_test(),
        "guests" => run_domains(_boot, options, Mode::OnePerCpu),
        "churn" => verdict(churn(_boot, CHURN_RAM)),
        // Bochs zeroes memory a hundred times slower than QEMU: the same 500 cycles
        // with 4 MiB domains exercise the same paths there.
        "churn-small" => verdict(churn(_boot, 4 << 20)),
        "domains" => run_domains(_boot, options, Mode::AllAtOnce),
        "sched" => run_domains(_boot, options, Mode::Scheduler),
        "together" => run_domains(_boot, options, Mode::Together),
        "vmm-smoke" => match crate::vmm::smoke::run() {
            Ok(summary) => {
                console_print!("selftest: vmm-smoke: {summary}\n");
                verdict(ExitCode::Success)
            }
            Err(why) => {
                console_print!("selftest: vmm-smoke: {why}\n");
                verdict(ExitCode::Failure)
            }
        },
        other => {
            console_print!("selftest: unknown self test '{other}'\n");
            verdict(ExitCode::Error)
        }
    }
}

#[track_caller]
fn deliberate_panic() -> ! {
    let here = core::panic::Location::caller();
    let message = "selftest: deliberate panic";
    console_print!(
        "selftest: expect panic=\"{message}\" location={}:{}\n",
        here.file(),
        here.line()
    );
    // In a #[track_caller] function the panic reports the caller's location too.
    panic!("{message}")
}

/// Recurses until the stack runs into its guard page. Each frame keeps a buffer alive
/// across the call so the recursion is neither a loop nor a tail call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[0] = depth as u8;
    core::hint::black_box(&mut frame);
    if depth == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(core::hint::black_box(frame)[0])
}

fn verdict(code: ExitCode) -> ! {
    let word = match code {
        ExitCode::Success => "SUCCESS",
        ExitCode::Failure => "FAILURE",
        ExitCode::Skip => "SKIP",
        ExitCode::Error | ExitCode::Fatal => "ERROR",
    };
    console_print!("Test result: {word}\n");
    stop(code)
}

fn boot_expected_cpus(options: &Options) -> usize {
    let listed = crate::platform_acpi::get().map_or(1, |p| p.usable_cpus().count().max(1));
    let limit = if options.nosmp {
        1
    } else {
        options.maxcpus.map_or(usize::MAX, |n| n as usize)
    };
    listed.min(limit).min(crate::percpu::MAX_CPUS)
}

fn smp_test(expected: usize) -> ExitCode {
    let online = percpu::online_count();
    for cpu in percpu::all() {
        console_print!(
            "selftest: cpu {} apic id {} {}\n",
            cpu.index,
            cpu.apic_id,
            if cpu.online.load(Ordering::Acquire) {
                "online"
            } else {
                "OFFLINE"
            }
        );
    }
    console_print!("selftest: {online} of {expected} expected CPU(s) online\n");
    if online == expected {
        ExitCode::Success
    } else {
        ExitCode::Failure
    }
}

// ---- Coordination with the APs -------------------------------------------------------

/// What the APs should do next: they read it whenever an interrupt wakes them.
static STAGE: AtomicU32 = AtomicU32::new(STAGE_IDLE);
const STAGE_IDLE: u32 = 0;
const STAGE_TIMERS: u32 = 1;
const STAGE_AP_PANIC: u32 = 2;
const STAGE_SCHEDULER: u32 = 3;
/// APs that finished the current stage, and how many of them failed.
static STAGE_DONE: AtomicU32 = AtomicU32::new(0);
static STAGE_FAILED: AtomicU32 = AtomicU32::new(0);

/// An AP's part in the self tests: sleep until kicked, then do what the stage says.
pub fn ap_run(cpu: &'static PerCpu) -> ! {
    let mut seen = STAGE_IDLE;
    loop {
        x86_64::instructions::interrupts::disable();
        percpu::idle(cpu);
        let stage = STAGE.load(Ordering::Acquire);
        if stage == seen {
            continue;
        }
        seen = stage;
        match stage {
            STAGE_TIMERS => {
                if !timer_test(cpu) {
                    STAGE_FAILED.fetch_add(1, Ordering::AcqRel);
                }
                STAGE_DONE.fetch_add(1, Ordering::AcqRel);
            }
            STAGE_AP_PANIC if cpu.index + 1 == percpu::online_count() as u32 => deliberate_panic(),
            STAGE_SCHEDULER => crate::vmm::cpu_loop::run_this_cpu(),
            _ => {}
        }
    }
}

/// Sleeps (HLT with interrupts on) until `done` or `timeout_ns` passes; returns
/// `done()`. `done` always runs with interrupts off, so it may take locks that
/// interrupt handlers take too. A wakeup timer bounds every sleep.
fn sleep_until(timeout_ns: u64, mut done: impl FnMut() -> bool) -> bool {
    use x86_64::instructions::interrupts;
    let cpu = percpu::current();
    let end = time::now_ns() + timeout_ns;
    interrupts::disable();
    let mut wakeup = None;
    loop {
        if done() {
            break;
        }
        let now = time::now_ns();
        if now >= end {
            break;
        }
        if let Some(id) = wakeup.take() {
            time::cancel_timer(cpu, id);
        }
        wakeup = time::add_timer(cpu, end.min(now + 5_000_000), time::WAKEUP_TOKEN).ok();
        interrupts::enable_and_hlt();
        interrupts::disable();
    }
    if let Some(id) = wakeup {
        time::cancel_timer(cpu, id);
    }
    let result = done();
    interrupts::enable();
    result
}

// ---- Timers -----------------------------------------------------------------------

/// Intervals (µs) of the deadlines each CPU sets, deliberately out of order.
const TIMER_OFFSETS_US: [u64; 8] = [3000, 1000, 4000, 1500, 9000, 2600, 500, 7000];

/// Expiries seen by the timer interrupt: (cpu, token, time fired).
static TIMER_LOG: Mutex<Vec<(u32, u64, u64)>> = Mutex::new(Vec::new());

/// Called by the timer interrupt for each expired self-test timer.
pub fn on_timer_expired(cpu: &PerCpu, token: u64) {
    TIMER_LOG.lock().push((cpu.index, token, time::now_ns()));
}

fn timer_test_all_cpus() -> ExitCode {
    let aps = percpu::online_count() as u32 - 1;
    STAGE_DONE.store(0, Ordering::Release);
    STAGE.store(STAGE_TIMERS, Ordering::Release);
    if aps > 0 {
        smp::kick_all_but_self();
    }
    let mut ok = timer_test(percpu::current());
    if !sleep_until(20_000_000_000, || STAGE_DONE.load(Ordering::Acquire) >= aps) {
        console_print!(
            "selftest: only {} of {aps} AP(s) finished the timer test\n",
            STAGE_DONE.load(Ordering::Acquire)
        );
        ok = false;
    }
    ok &= STAGE_FAILED.load(Ordering::Acquire) == 0;
    console_print!("selftest: tsc frequency {} kHz\n", time::tsc_hz() / 1000);
    if ok {
        ExitCode::Success
    } else {
        ExitCode::Failure
    }
}

/// Sets every deadline on this CPU's timer queue and checks they all fire, in
/// deadline order, none before its deadline.
fn timer_test(cpu: &PerCpu) -> bool {
    // Insert every deadline in one critical section: otherwise an early deadline could
    // expire (and be logged) before a yet-earlier one is even inserted.
    let inserted = x86_64::instructions::interrupts::without_interrupts(|| {
        let start = time::now_ns();
        let deadlines: Vec<u64> = TIMER_OFFSETS_US
            .iter()
            .map(|us| start + us * 1000)
            .collect();
        for (token, &deadline) in deadlines.iter().enumerate() {
            time::add_timer(cpu, deadline, SELFTEST_TIMER_TOKEN_BASE + token as u64).ok()?;
        }
        Some(deadlines)
    });
    let Some(deadlines) = inserted else {
        console_print!("selftest: cpu {}: timer queue full\n", cpu.index);
        return false;
    };
    let mine = || TIMER_LOG.lock().iter().filter(|e| e.0 == cpu.index).count();
    let all_fired = sleep_until(10_000_000_000, || mine() >= deadlines.len());
    let log: Vec<(u64, u64)> = x86_64::instructions::interrupts::without_interrupts(|| {
        TIMER_LOG
            .lock()
            .iter()
            .filter(|e| e.0 == cpu.index)
            .map(|e| (e.1 - SELFTEST_TIMER_TOKEN_BASE, e.2))
            .collect()
    });
    let mut ok = all_fired;
    let mut previous_deadline = 0;
    for &(token, fired) in &log {
        let deadline = deadlines[token as usize];
        if fired < deadline {
            console_print!(
                "selftest: cpu {}: timer {token} fired {} ns early\n",
                cpu.index,
                deadline - fired
            );
            ok = false;
        }
        if deadline < previous_deadline {
            console_print!(
                "selftest: cpu {}: timer {token} fired out of order\n",
                cpu.index
            );
            ok = false;
        }
        previous_deadline = deadline;
    }
    let worst_late = log
        .iter()
        .map(|&(t, f)| f - deadlines[t as usize].min(f))
        .max()
        .unwrap_or(0);
    console_print!(
        "selftest: cpu {}: {} of {} timers fired in order, none early (latest {} us late): {}\n",
        cpu.index,
        log.len(),
        deadlines.len(),
        worst_late / 1000,
        if ok { "ok" } else { "FAILED" }
    );
    ok
}

/// Timer tokens at or above this belong to the self tests.
pub const SELFTEST_TIMER_TOKEN_BASE: u64 = 1 << 48;

// ---- IPIs ---------------------------------------------------------------------------

/// Hops the ring makes: each kick increments the counter and forwards to the next CPU.
const RING_HOPS: u64 = 300;
static RING_ACTIVE: AtomicBool = AtomicBool::new(false);
static RING_COUNT: AtomicU64 = AtomicU64::new(0);

/// Called by the kick IPI handler.
pub fn on_kick(cpu: &PerCpu) {
    if !RING_ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let count = RING_COUNT.fetch_add(1, Ordering::AcqRel) + 1;
    if count < RING_HOPS {
        let next = (cpu.index + 1) % percpu::online_count() as u32;
        smp::kick(next);
    }
}

fn ipi_test() -> ExitCode {
    let cpus = percpu::online_count() as u32;
    RING_COUNT.store(0, Ordering::Release);
    RING_ACTIVE.store(true, Ordering::Release);
    smp::kick(1 % cpus);
    let ring_ok = sleep_until(30_000_000_000, || {
        RING_COUNT.load(Ordering::Acquire) >= RING_HOPS
    });
    RING_ACTIVE.store(false, Ordering::Release);
    console_print!(
        "selftest: ipi ring over {cpus} CPU(s): {} of {RING_HOPS} hops\n",
        RING_COUNT.load(Ordering::Acquire)
    );

    let before: Vec<u64> = percpu::all()
        .map(|c| c.ipis_received.load(Ordering::Acquire))
        .collect();
    let me = percpu::current().index;
    if cpus > 1 {
        smp::kick_all_but_self();
    }
    let reached = || {
        percpu::all()
            .zip(&before)
            .filter(|(c, b)| c.index != me && c.ipis_received.load(Ordering::Acquire) > **b)
            .count()
    };
    let broadcast_ok = sleep_until(10_000_000_000, || reached() + 1 >= cpus as usize);
    console_print!(
        "selftest: broadcast reached {} of {} other CPU(s)\n",
        reached(),
        cpus - 1
    );
    if ring_ok && broadcast_ok {
        ExitCode::Success
    } else {
        ExitCode::Failure
    }
}

// ---- A panic on an AP -----------------------------------------------------------------

fn ap_panic_test() -> ! {
    let cpus = percpu::online_count() as u32;
    if cpus < 2 {
        console_print!("selftest: ap-panic needs at least 2 CPUs\n");
        verdict(ExitCode::Skip)
    }
    let victim = cpus - 1;
    let others: Vec<u32> = (0..cpus).filter(|&i| i != victim).collect();
    console_print!(
        "selftest: ap-panic victim={victim} others={}\n",
        Joined(&others)
    );
    STAGE.store(STAGE_AP_PANIC, Ordering::Release);
    smp::kick_all_but_self();
    // The victim's panic stops this CPU with an NMI; if it never comes, that is a failure.
    if !sleep_until(5_000_000_000, || false) {
        console_print!("selftest: the AP did not panic and stop this CPU within 5 s\n");
    }
    verdict(ExitCode::Failure)
}

struct Joined<'a>(&'a [u32]);

impl core::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{value}")?;
        }
        Ok(())
    }
}

/// Free memory before the domains of `run_domains` were built.
static FREE_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Runs the boot modules as domains under the scheduler on every online CPU:
/// `selftest=guests` (`one_per_cpu`) starts each PVH kernel module as a domain with
/// default settings, at most one per CPU at a time, in module order; `selftest=domains`
/// starts the domains the configuration modules describe, all at once. When the last
/// domain has ended, SUCCESS if all memory came back; each guest's own verdict, and
/// how its domain ended, are in the log for the harness to check.
fn run_domains(boot: &BootInfo, options: &Options, mode: Mode) -> ! {
    if boot.modules.is_empty() {
        console_print!("selftest: no guest modules\n");
        verdict(ExitCode::Error);
    }
    if crate::vmm::this_cpu().is_none() {
        console_print!("selftest: no usable virtualization on this CPU\n");
        verdict(ExitCode::Skip);
    }
    FREE_BEFORE.store(crate::memory::free_bytes(), Ordering::Release);
    let limit = if mode == Mode::OnePerCpu {
        percpu::online_count()
    } else {
        usize::MAX
    };
    let together = matches!(mode, Mode::Scheduler | Mode::Together);
    crate::vmm::manager::scheduler_cpus_up();
    crate::vmm::manager::configure(limit, together, Some(domains_ended));
    let dom0_mem = options.dom0_mem.as_ref().map(|s| s.as_str());
    let accepted = crate::vmm::boot_domains::submit(boot, dom0_mem);
    console_print!("selftest: {accepted} domain(s) accepted\n");
    STAGE.store(STAGE_SCHEDULER, Ordering::Release);
    if percpu::online_count() > 1 {
        smp::kick_all_but_self();
    }
    crate::vmm::manager::launch();
    if together {
        // Every domain starts at the same moment; the control actions follow a script
        // timed from here (`at_schedule_point`).
        crate::vmm::manager::unpause_all();
        if mode == Mode::Scheduler {
            SCRIPT_START.store(time::now_ns(), Ordering::Release);
        }
    }
    crate::vmm::cpu_loop::run_this_cpu()
}

/// How `run_domains` starts the boot-time domains.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `selftest=guests`: one domain per CPU at a time, in module order.
    OnePerCpu,
    /// `selftest=domains`: every configured domain at once.
    AllAtOnce,
    /// `selftest=together`: every configured domain built first, then all started at
    /// the same moment (so their measurements overlap exactly).
    Together,
    /// `selftest=sched`: every configured domain at once, started together, then the
    /// scheduler script: at 450 ms domain 3's weight becomes 256, domain 2 is paused
    /// from 750 to 850 ms (what `xl sched-credit2 -w` and `xl pause/unpause` do).
    Scheduler,
}

/// When the `sched` script started (0: no script).
static SCRIPT_START: AtomicU64 = AtomicU64::new(0);
/// Script steps done.
static SCRIPT_STEP: AtomicU32 = AtomicU32::new(0);
/// The step whose wake-up timer is armed, plus one (0: none).
static SCRIPT_ARMED: AtomicU32 = AtomicU32::new(0);

/// Called by the boot CPU at every scheduling point: runs the `sched` script's steps
/// that are due, in thread context (they take the scheduler's and manager's locks).
pub fn at_schedule_point() {
    let start = SCRIPT_START.load(Ordering::Acquire);
    if start == 0 || percpu::current().index != 0 {
        return;
    }
    let steps: [(u64, fn()); 3] = [
        (450, || {
            let params = ferrovisor::sched::SchedParams {
                weight: 256,
                cap_percent: 0,
            };
            if let Err(e) = crate::vmm::manager::set_sched_params(3, params) {
                console_print!("selftest: reweighting domain 3: {e}\n");
            }
        }),
        (750, || {
            if let Err(e) = crate::vmm::manager::pause(2) {
                console_print!("selftest: pausing domain 2: {e}\n");
            }
        }),
        (850, || {
            if let Err(e) = crate::vmm::manager::unpause(2) {
                console_print!("selftest: unpausing domain 2: {e}\n");
            }
        }),
    ];
    let step = SCRIPT_STEP.load(Ordering::Acquire) as usize;
    let Some(&(at_ms, action)) = steps.get(step) else {
        return;
    };
    let due = start + at_ms * 1_000_000;
    let now = time::now_ns();
    if now < due {
        // Make sure this CPU looks again by then even if it idles (one timer a step).
        if SCRIPT_ARMED.swap(step as u32 + 1, Ordering::AcqRel) != step as u32 + 1 {
            let _ = time::add_timer(percpu::current(), due, time::WAKEUP_TOKEN);
        }
        return;
    }
    SCRIPT_STEP.store(step as u32 + 1, Ordering::Release);
    action();
}

/// Every domain has ended: all memory must be back.
fn domains_ended() {
    crate::vmm::manager::destroy_preserved();
    let free_before = FREE_BEFORE.load(Ordering::Acquire);
    let free_after = crate::memory::free_bytes();
    console_print!(
        "selftest: all domains ended; free memory {} KiB before the domains, {} KiB after\n",
        free_before / 1024,
        free_after / 1024
    );
    if free_before != free_after {
        console_print!(
            "selftest: domains leaked {} bytes\n",
            free_before.abs_diff(free_after)
        );
        verdict(ExitCode::Failure);
    }
    verdict(ExitCode::Success)
}

/// Domains created and destroyed by `selftest=churn`.
const CHURN_DOMAINS: u32 = 500;
/// Their RAM.
const CHURN_RAM: u64 = 64 << 20;

/// Creates and destroys [`CHURN_DOMAINS`] domains of `ram` bytes from the first boot
/// module (built, vCPU created, never run): free memory must return to its baseline
/// exactly after every cycle. Prints the average TSC ticks per create+destroy (under
/// QEMU `-icount shift=0` those are instructions).
fn churn(boot: &BootInfo, ram: u64) -> ExitCode {
    let Some(kernel) = boot.modules.first() else {
        console_print!("selftest: churn needs a PVH kernel module\n");
        return ExitCode::Error;
    };
    if crate::vmm::this_cpu().is_none() {
        console_print!("selftest: no usable virtualization on this CPU\n");
        return ExitCode::Skip;
    }
    let baseline = crate::memory::free_bytes();
    let start = time::tsc();
    for cycle in 0..CHURN_DOMAINS {
        if !crate::vmm::create_and_destroy(1, "churn", kernel, ram) {
            console_print!("selftest: churn cycle {cycle}: the domain could not be created\n");
            return ExitCode::Failure;
        }
        let free = crate::memory::free_bytes();
        if free != baseline {
            console_print!(
                "selftest: churn cycle {cycle}: free memory {free} bytes, baseline {baseline}\n"
            );
            return ExitCode::Failure;
        }
    }
    let per_cycle = (time::tsc() - start) / u64::from(CHURN_DOMAINS);
    console_print!(
        "selftest: {CHURN_DOMAINS} domains of {} MiB created and destroyed; free memory back to {} KiB after every cycle\n",
        ram >> 20,
        baseline / 1024
    );
    console_print!(
        "bench: domain-create-destroy-{}mib {per_cycle} tsc-ticks\n",
        ram >> 20
    );
    ExitCode::Success
}
