//! Every CPU's life once it is up: ask the scheduler what to run, run that vCPU until
//! its stint ends, it blocks, or its domain stops, and switch. The scheduler core
//! (`ferrovisor::sched`, pure logic) decides; this module does what it says: the
//! one-shot timer for the decision's end, kicks to other CPUs, loading and putting
//! vCPUs, blocking and waking them, and destroying domains whose vCPUs have all stopped.
//!
//! Locks, in the order they may be taken: a vCPU's slot (held by the CPU running it),
//! then [`SCHED`]. The domain manager's lock is never held with either. Code holding
//! [`SCHED`] only ever `try_lock`s a slot.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ferrovisor::sched::{CpuId, Decision, SchedConfig, Scheduler, VcpuId, VcpuState};
use ferrovisor::vcpu::Exit;
use log::{info, warn};

use super::VcpuBackend;
use super::domain::{Blocked, Domain, Ending};
use super::exits::{self, Outcome};
use super::vcpu::{Backend, MAX_VCPUS, SLOTS, Vcpu};
use crate::percpu::{self, PerCpu};
use crate::time;

/// CPUs the scheduler manages.
const SCHED_CPUS: usize = percpu::MAX_CPUS;

/// The scheduler: one instance for the machine, behind one lock (decisions are O(1)
/// and short; see docs/scheduler.md for splitting it per CPU later).
pub static SCHED: spin::Mutex<Scheduler<MAX_VCPUS, SCHED_CPUS>> =
    spin::Mutex::new(Scheduler::new(SchedConfig::DEFAULT));

/// Domains that are dying and not yet destroyed.
static DYING: spin::Mutex<Vec<Arc<Domain>>> = spin::Mutex::new(Vec::new());
/// How many domains `DYING` holds, read without its lock on every scheduling pass.
static DYING_COUNT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Wakes vCPU `index` of `domain` if it should run (up, not blocked, domain running),
/// kicking the CPU the scheduler names. Checked under the scheduler lock, so it cannot
/// race with [`stop_domain`] putting the domain's vCPUs to sleep.
pub fn wake_if_runnable(domain: &Domain, index: u32) {
    let kick = {
        let mut sched = SCHED.lock();
        if !domain.runnable(index) {
            return;
        }
        sched.wake(domain.vcpu_id(index), time::now_ns())
    };
    if let Some(cpu) = kick {
        kick_cpu(cpu);
    }
}

/// Takes every vCPU of `domain` off the run queues (pause, or the start of dying); a
/// running one stops at its CPU's next decision, which is forced with a kick.
pub fn sleep_all(domain: &Domain) {
    let mut kicks = Vec::new();
    {
        let mut sched = SCHED.lock();
        let now = time::now_ns();
        for &id in domain.vcpu_ids() {
            if let Some(cpu) = sched.sleep(id, now) {
                kicks.push(cpu);
            }
        }
    }
    for cpu in kicks {
        kick_cpu(cpu);
    }
}

/// Takes vCPU `index` of `domain` off the run queues (`VCPUOP_down`); if it is running,
/// its CPU is kicked and stops it at its next decision.
pub fn sleep_vcpu(domain: &Domain, index: u32) {
    let kick = SCHED.lock().sleep(domain.vcpu_id(index), time::now_ns());
    if let Some(cpu) = kick {
        kick_cpu(cpu);
    }
}

/// Ends a domain: marks it dying with `ending` (the first ending wins), stops its vCPUs
/// and queues it for destruction, which happens once none of them is on a CPU.
pub fn stop_domain(domain: &Arc<Domain>, ending: Ending) {
    {
        // Under the scheduler lock, so no wake can slip in between.
        let _sched = SCHED.lock();
        if !domain.begin_dying(ending) {
            return;
        }
    }
    sleep_all(domain);
    DYING.lock().push(domain.clone());
    DYING_COUNT.fetch_add(1, core::sync::atomic::Ordering::Release);
}

fn kick_cpu(cpu: CpuId) {
    if u32::from(cpu.0) == percpu::current().index {
        percpu::current()
            .need_resched
            .store(true, core::sync::atomic::Ordering::Release);
    } else {
        crate::smp::kick(u32::from(cpu.0));
    }
}

/// Programs this CPU's scheduler timer for `until_ns` (replacing the previous one).
fn arm_sched_timer(cpu: &PerCpu, until_ns: u64) {
    let mut slot = cpu.sched_timer.lock();
    if let Some(previous) = slot.take() {
        time::cancel_timer(cpu, previous);
    }
    if until_ns != Decision::NEVER {
        match time::add_timer(cpu, until_ns, time::SCHED_TOKEN) {
            Ok(id) => *slot = Some(id),
            Err(e) => warn!("cpu {}: scheduler timer: {e:?}", cpu.index),
        }
    }
}

/// Why a vCPU stopped running.
enum Stop {
    /// Its stint ended or the CPU was kicked: ask the scheduler.
    Resched,
    /// `SCHEDOP_yield`.
    Yield,
    /// HLT, `SCHEDOP_block`, `SCHEDOP_poll`: not runnable until an event or the
    /// deadline (system time, ns since boot).
    Block { deadline_ns: Option<u64> },
    /// Its domain is dying (this vCPU shut it down or crashed it, or another did).
    DomainStopped,
}

/// Joins the scheduler and runs vCPUs on the calling CPU forever.
pub fn run_this_cpu() -> ! {
    let cpu = percpu::current();
    let me = CpuId(cpu.index as u16);
    // Already online if `manager::scheduler_cpus_up` announced it.
    let _ = SCHED.lock().cpu_up(me, time::now_ns());
    let mut current: Option<(VcpuId, spin::MutexGuard<'static, Option<Vcpu>>)> = None;
    loop {
        #[cfg(feature = "selftest")]
        crate::selftest::at_schedule_point();
        // Dying domains are destroyed (and restarted) by whichever CPU passes here once
        // their vCPUs are off every CPU, busy or not: a host kept busy by other domains
        // must not hold a dead domain's memory.
        reap();
        x86_64::instructions::interrupts::disable();
        wake_expired(cpu);
        cpu.need_resched
            .store(false, core::sync::atomic::Ordering::Release);
        let decision = SCHED.lock().schedule(me, time::now_ns());
        arm_sched_timer(cpu, decision.until_ns);
        for other in decision.kick.iter() {
            kick_cpu(other);
        }
        if current.as_ref().map(|(id, _)| *id) != decision.run {
            if let Some((_, mut guard)) = current.take()
                && let Some(vcpu) = guard.as_mut()
            {
                vcpu.put();
            }
            if let Some(id) = decision.run {
                // The CPU that ran it last may still be putting it away: wait for it.
                let mut guard = SLOTS[id.0 as usize].lock();
                if let Some(vcpu) = guard.as_mut() {
                    match vcpu.load() {
                        Ok(()) => current = Some((id, guard)),
                        Err(why) => {
                            let domain = vcpu.domain.clone();
                            drop(guard);
                            crash(&domain, why, None);
                        }
                    }
                }
            }
        }
        let Some((id, guard)) = current.as_mut() else {
            // Nothing to run: destroy what this CPU just put away, then halt until the
            // timer or a kick.
            x86_64::instructions::interrupts::enable();
            reap();
            x86_64::instructions::interrupts::disable();
            if !cpu.need_resched.load(core::sync::atomic::Ordering::Acquire) {
                percpu::idle(cpu);
            }
            continue;
        };
        let Some(vcpu) = guard.as_mut() else {
            current = None;
            continue;
        };
        match run_vcpu(cpu, vcpu) {
            Stop::Resched | Stop::Yield | Stop::DomainStopped => {}
            Stop::Block { deadline_ns } => block(cpu, me, *id, vcpu, deadline_ns),
        }
    }
}

/// The vCPU blocked (HLT, `SCHEDOP_block`): off the run queue until an event. A domain
/// whose every vCPU is blocked can never run again (there are no event sources yet): it
/// is crashed with that reason rather than left holding its memory forever.
fn block(cpu: &PerCpu, me: CpuId, id: VcpuId, vcpu: &mut Vcpu, deadline_ns: Option<u64>) {
    let domain = vcpu.domain.clone();
    let kind = if deadline_ns.is_some() {
        Blocked::UntilDeadline
    } else {
        Blocked::UntilEvent
    };
    domain.set_blocked(vcpu.index, kind);
    if let Some(deadline) = deadline_ns {
        // The timer fires on this CPU; a wake-up that finds the vCPU no longer blocked
        // (or its slot reused) does nothing, as a spurious wake-up may.
        let token = time::VCPU_WAKE_TOKEN_BASE + u64::from(id.0);
        if let Err(e) = time::add_timer(cpu, deadline, token) {
            warn!(
                "cpu {}: no timer for a blocked vCPU: {e:?}; it wakes now",
                cpu.index
            );
            domain.set_blocked(vcpu.index, Blocked::No);
            return;
        }
    }
    {
        let mut sched = SCHED.lock();
        // Still the running vCPU here unless its domain was stopped meanwhile.
        if sched.running(me) == Some(id) {
            sched.block(me, time::now_ns());
        }
    }
    if domain.all_blocked() && !domain.is_dying() {
        crash(
            &domain,
            "every vCPU is halted or blocked and nothing can wake them (no event source)",
            None,
        );
    }
}

/// Wakes the blocked vCPUs whose deadlines this CPU's timer reported. Called with
/// interrupts disabled.
fn wake_expired(cpu: &PerCpu) {
    let (ids, count) = cpu.expired_wakes.lock().take();
    for &id in &ids[..count] {
        // A vCPU whose slot is held is on a CPU, so not blocked any more.
        let Some(slot) = SLOTS.get(id as usize).and_then(|s| s.try_lock()) else {
            continue;
        };
        let Some(vcpu) = slot.as_ref() else {
            continue;
        };
        let (domain, index) = (vcpu.domain.clone(), vcpu.index);
        drop(slot);
        if domain.timer_expired(index) {
            wake_if_runnable(&domain, index);
        }
    }
}

/// Runs `vcpu` on this CPU until it must stop. Never inlined into the scheduling loop:
/// the exit fast path is compiled on its own, so changes to the loop around it do not
/// change its code (docs/benchmarks.md).
#[inline(never)]
fn run_vcpu(cpu: &PerCpu, vcpu: &mut Vcpu) -> Stop {
    let Vcpu {
        domain,
        index,
        backend,
        fpu,
        ..
    } = vcpu;
    let domain: &Arc<Domain> = domain;
    match backend {
        Backend::Svm(b) => run_backend(cpu, domain, *index, b, fpu),
        Backend::Vmx(b) => run_backend(cpu, domain, *index, b, fpu),
    }
}

fn run_backend<V: VcpuBackend>(
    cpu: &PerCpu,
    domain: &Arc<Domain>,
    index: u32,
    backend: &mut V,
    fpu: &mut super::fpu::FpuState,
) -> Stop {
    // Pausing or stopping the domain from elsewhere kicks this CPU (`sleep_all`), which
    // the `need_resched` test below sees: the state is checked once, not per exit.
    if domain.state() != super::domain::DomainState::Running {
        return Stop::DomainStopped;
    }
    loop {
        x86_64::instructions::interrupts::disable();
        // Checked with interrupts off: a kick or timer after this point is pending at
        // the local APIC and makes the guest exit at once.
        if cpu.need_resched.load(core::sync::atomic::Ordering::Acquire) {
            return Stop::Resched;
        }
        let exit = backend.run();
        // A host interrupt that caused the exit is taken here.
        x86_64::instructions::interrupts::enable();
        if matches!(exit, Exit::ExternalInterrupt) {
            continue;
        }
        match exits::handle(domain, index, &mut *backend, &mut *fpu, exit) {
            Outcome::Continue => {}
            Outcome::Yield => return Stop::Yield,
            Outcome::Block { deadline_ns } => {
                // A deadline already passed wakes at once (Xen's set_timer in the past).
                if deadline_ns.is_some_and(|d| d <= time::now_ns()) {
                    continue;
                }
                return Stop::Block { deadline_ns };
            }
            Outcome::Shutdown(reason) => {
                if !domain.is_dying() {
                    domain.console.lock().flush();
                    info!(
                        "domain {} ({}): shutdown, reason {reason}",
                        domain.id,
                        domain.name.as_str()
                    );
                }
                stop_domain(domain, Ending::Shutdown(reason));
                return Stop::DomainStopped;
            }
            Outcome::Crash(why) => {
                let rip = backend.rip();
                let regs = *backend.regs();
                crash(domain, why, Some((index, rip, regs)));
                return Stop::DomainStopped;
            }
        }
    }
}

/// Crashes `domain` with a report (the vCPU, RIP and registers when known); the rest
/// of the machine goes on.
pub fn crash(
    domain: &Arc<Domain>,
    why: &str,
    at: Option<(u32, u64, ferrovisor::vcpu::GuestRegisters)>,
) {
    if domain.is_dying() {
        return;
    }
    domain.console.lock().flush();
    let (id, name) = (domain.id, domain.name.as_str());
    match at {
        Some((index, rip, r)) => {
            warn!("domain {id} ({name}): crashed: {why} at rip {rip:#x} (vcpu {index})");
            warn!(
                "domain {id}: rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}",
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp
            );
        }
        None => warn!("domain {id} ({name}): crashed: {why}"),
    }
    stop_domain(domain, Ending::Crashed);
}

/// Destroys dying domains whose vCPUs have all stopped: off every run queue (blocked in
/// the scheduler's view) and on no CPU (their slots are free). Then the domain manager
/// applies the domain's `on_*` action.
#[inline(never)]
pub fn reap() {
    if DYING_COUNT.load(core::sync::atomic::Ordering::Acquire) == 0 {
        return;
    }
    loop {
        // Lock order: DYING, then SCHED (in `take_stopped_vcpus`).
        let done = {
            let mut dying = DYING.lock();
            let found = dying
                .iter()
                .enumerate()
                .find_map(|(at, d)| take_stopped_vcpus(d).map(|v| (at, v)));
            found.map(|(at, vcpus)| {
                DYING_COUNT.fetch_sub(1, core::sync::atomic::Ordering::Release);
                (dying.swap_remove(at), vcpus)
            })
        };
        let Some((domain, vcpus)) = done else {
            return;
        };
        // Dropping the vCPUs frees their VMCS/VMCB and FPU areas (all put away).
        drop(vcpus);
        super::vcpu::release_ids(domain.vcpu_ids());
        // The manager holds the last reference to the domain now.
        super::manager::domain_stopped(domain);
    }
}

/// The vCPUs of a dying domain, taken out of their slots and the scheduler, if none is
/// on a CPU; `None` (nothing changed) otherwise.
fn take_stopped_vcpus(domain: &Domain) -> Option<Vec<Vcpu>> {
    let mut sched = SCHED.lock();
    if domain
        .vcpu_ids()
        .iter()
        .any(|&id| !matches!(sched.vcpu_state(id), Some(VcpuState::Blocked) | None))
    {
        return None;
    }
    let mut guards = Vec::new();
    for &id in domain.vcpu_ids() {
        guards.push(SLOTS[id.0 as usize].try_lock()?);
    }
    let mut vcpus = Vec::new();
    for (guard, &id) in guards.iter_mut().zip(domain.vcpu_ids()) {
        if let Err(e) = sched.remove_vcpu(id) {
            warn!("domain {}: scheduler: vcpu {}: {e}", domain.id, id.0);
        }
        if let Some(vcpu) = guard.take() {
            vcpus.push(vcpu);
        }
    }
    if let Err(e) = sched.remove_domain(ferrovisor::sched::DomainId(domain.id)) {
        warn!("domain {}: scheduler: {e}", domain.id);
    }
    Some(vcpus)
}
