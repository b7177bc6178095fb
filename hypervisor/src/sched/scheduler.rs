//! The scheduler proper: per-CPU run queues, virtual-time accounting, placement, balancing.
//!
//! State kept per CPU: the running vCPU and when its current *stint* started, two deadline
//! wheels (vCPUs pinned to this CPU, and vCPUs that may run elsewhere: only the second is
//! searched by other CPUs looking for work), the vCPUs parked for lack of cap budget, and
//! the CPU's virtual clock: the weighted mean virtual time of its runnable vCPUs (running
//! included), kept as `vclock + lag_sum / load` so that joining, leaving and charging are
//! O(1) and exact.
//!
//! Rules (see `docs/scheduler.md` for why):
//! - Charging: the running vCPU's virtual time advances by `dt * 2^16 / weight` at every
//!   call that touches its CPU. When it reaches its deadline, a new request starts: the
//!   deadline moves one request ahead (twice the vCPU's average burst, within the
//!   configured slice bounds).
//! - Picking: the queued vCPU with the earliest deadline runs. The running vCPU is preempted
//!   when a queued one has an earlier deadline, but not before it has run `ratelimit_ns`
//!   in this stint.
//! - Joining a CPU (waking, unparking) clamps the vCPU's virtual time into
//!   `[clock, clock + one stint]`: no credit for having slept, and a vCPU that overran keeps
//!   its debt. An idle CPU has no clock and adopts the vCPU's.
//! - Waking: a vCPU that has not run ahead of the clock (it is *eligible*: it used no more
//!   than its share) gets its first request due at once, so it runs within the rate limit;
//!   one that ran ahead waits for a deadline one request after its virtual time.
//! - Balancing: an idle CPU takes the earliest-deadline movable vCPU from any CPU; a busy CPU
//!   takes one whose lag behind its own clock is worth `migrate_lag_ns` of CPU time. Moved
//!   vCPUs keep up to twice that much credit.

use super::cap::Domain;
use super::cpumask::{self, CpuMask};
use super::vtime::{self, VT_SHIFT};
use super::wheel::{self, Link, NIL, NO_SLOT, Wheel};
use super::{
    CpuId, CpuTimes, Decision, DomainId, SchedConfig, SchedError, SchedParams, VcpuId, VcpuState,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Blocked,
    Queued(u16),
    Running(u16),
    Parked(u16),
}

#[derive(Clone, Copy)]
struct Vcpu {
    state: State,
    dom: u16,
    /// As set by the caller; the effective affinity is this and the online CPUs.
    affinity: CpuMask,
    /// In its CPU's pinned wheel (effective affinity is one CPU) rather than the mobile one.
    in_pinned: bool,
    /// `sleep` was called while it ran: deschedule it at the next `schedule`.
    sleep_pending: bool,
    has_run: bool,
    weight: u16,
    inverse_weight: u64,
    vtime: u64,
    deadline: u64,
    last_cpu: u16,
    /// CPU time since it last woke.
    burst_ns: u64,
    /// Moving average of `burst_ns` at the times it blocked.
    burst_avg_ns: u64,
    runtime_ns: u64,
    /// Unused cap grant while running (0 when uncapped).
    grant_left: u64,
}

impl Vcpu {
    const FREE: Self = Self {
        state: State::Free,
        dom: 0,
        affinity: CpuMask::EMPTY,
        in_pinned: false,
        sleep_pending: false,
        has_run: false,
        weight: 0,
        inverse_weight: 0,
        vtime: 0,
        deadline: 0,
        last_cpu: 0,
        burst_ns: 0,
        burst_avg_ns: 0,
        runtime_ns: 0,
        grant_left: 0,
    };
}

struct Cpu {
    running: u32,
    stint_start: u64,
    last_ns: u64,
    busy_ns: u64,
    idle_ns: u64,
    pinned: Wheel,
    mobile: Wheel,
    /// Head of the list of vCPUs parked here (through `Scheduler::links`).
    parked: u32,
    /// When the parked vCPUs are due back (a cap period boundary).
    parked_until: u64,
    /// Sum of the weights of the runnable vCPUs here (queued and running).
    load: u64,
    /// `sum(weight * (vtime - vclock))` over those vCPUs; kept below `load` in magnitude.
    lag_sum: i128,
    vclock: u64,
    last_balance_ns: u64,
    /// The CPU whose waiting vCPUs this (idle) CPU was last kicked to take, or NIL.
    kicked_by: u32,
    /// Kicks decided outside `schedule` (in `block`), sent with this CPU's next decision.
    deferred_kick: CpuMask,
}

impl Cpu {
    const OFFLINE: Self = Self {
        running: NIL,
        stint_start: 0,
        last_ns: 0,
        busy_ns: 0,
        idle_ns: 0,
        pinned: Wheel::EMPTY,
        mobile: Wheel::EMPTY,
        parked: NIL,
        parked_until: 0,
        load: 0,
        lag_sum: 0,
        vclock: 0,
        last_balance_ns: 0,
        kicked_by: NIL,
        deferred_kick: CpuMask::EMPTY,
    };

    const fn queued(&self) -> u32 {
        self.pinned.len() + self.mobile.len()
    }

    /// Moves whole units of `lag_sum / load` into `vclock`.
    fn rebase(&mut self) {
        if self.load == 0 {
            self.lag_sum = 0;
            return;
        }
        let q = self.lag_sum / self.load as i128;
        if q != 0 {
            self.vclock = self.vclock.wrapping_add(q as i64 as u64);
            self.lag_sum -= q * self.load as i128;
        }
    }
}

/// How a vCPU joins a CPU's runnable set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Join {
    /// Woken: no credit; if it has not run ahead of the CPU's clock (it is *eligible*), its
    /// first request is due at once, else a fresh request from its virtual time.
    Wake,
    /// Unparked after a cap replenishment: no credit, a fresh request.
    Unpark,
    /// Moved from another CPU: bounded credit, the rest of its request.
    Migrate,
}

/// Why the running vCPU stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Block,
    Sleep,
    Requeue,
    Park,
    Migrate,
}

/// The scheduler for up to `MAX_VCPUS` vCPUs (and domains) on up to `MAX_CPUS` CPUs.
///
/// Everything is inline (no allocation); the size is about `200 * MAX_VCPUS + 5 KiB *
/// MAX_CPUS` bytes, so a kernel keeps it in a `static` (`new` is `const`). All calls are
/// O(1) in the number of vCPUs except `set_params` (a scan of the vCPU table: an
/// administrative operation) and `check`; placement and balancing scan the online CPUs.
///
/// Callers serialise access (one lock; see `docs/scheduler.md` for making it per-CPU).
pub struct Scheduler<const MAX_VCPUS: usize, const MAX_CPUS: usize> {
    config: SchedConfig,
    vcpus: [Vcpu; MAX_VCPUS],
    links: [Link; MAX_VCPUS],
    doms: [Domain; MAX_VCPUS],
    cpus: [Cpu; MAX_CPUS],
    online: CpuMask,
    idle: CpuMask,
    ops: u64,
    migrations: u64,
}

/// The request of a vCPU, in ns: twice its typical burst, within the configured bounds.
fn request_ns(config: &SchedConfig, v: &Vcpu) -> u64 {
    v.burst_avg_ns
        .max(v.burst_ns)
        .saturating_mul(2)
        .clamp(config.min_slice_ns, config.slice_ns)
}

fn request_vt(config: &SchedConfig, v: &Vcpu) -> u64 {
    vtime::to_virtual(request_ns(config, v), v.inverse_weight)
}

impl<const MAX_VCPUS: usize, const MAX_CPUS: usize> Scheduler<MAX_VCPUS, MAX_CPUS> {
    /// A scheduler with no CPU online and no vCPU. Panics if `config` is not
    /// [valid](SchedConfig::is_valid).
    pub const fn new(config: SchedConfig) -> Self {
        const {
            assert!(MAX_CPUS >= 1 && MAX_CPUS <= cpumask::MAX_CPUS);
            assert!(
                MAX_VCPUS < NIL as usize,
                "vCPU indices are u32 with u32::MAX reserved"
            );
        }
        assert!(config.is_valid(), "invalid scheduler configuration");
        Self {
            config,
            vcpus: [Vcpu::FREE; MAX_VCPUS],
            links: [Link::UNLINKED; MAX_VCPUS],
            doms: [Domain::ABSENT; MAX_VCPUS],
            cpus: [Cpu::OFFLINE; MAX_CPUS],
            online: CpuMask::EMPTY,
            idle: CpuMask::EMPTY,
            ops: 0,
            migrations: 0,
        }
    }

    /// The tunables in force.
    pub const fn config(&self) -> SchedConfig {
        self.config
    }

    /// Replaces the tunables (e.g. the rate limit); they apply from the next decision.
    pub fn set_config(&mut self, config: SchedConfig) -> Result<(), SchedError> {
        if !config.is_valid() {
            return Err(SchedError::BadConfig);
        }
        self.config = config;
        Ok(())
    }

    /// Operations performed so far on the hot paths: queue levels examined, list links and
    /// unlinks, entries cascaded, deadline comparisons, CPUs examined when placing or
    /// balancing. A deterministic measure of decision cost (see `docs/scheduler.md`).
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// How many times a vCPU started running on a different CPU than it last ran on.
    pub const fn migrations(&self) -> u64 {
        self.migrations
    }

    /// The online CPUs.
    pub const fn online(&self) -> CpuMask {
        self.online
    }

    /// The online CPUs with nothing running and nothing queued.
    pub const fn idle_cpus(&self) -> CpuMask {
        self.idle
    }

    /// Where a vCPU is; `None` if it does not exist.
    pub fn vcpu_state(&self, id: VcpuId) -> Option<VcpuState> {
        let v = self.vcpus.get(id.0 as usize)?;
        Some(match v.state {
            State::Free => return None,
            State::Blocked => VcpuState::Blocked,
            State::Queued(c) => VcpuState::Queued(CpuId(c)),
            State::Running(c) => VcpuState::Running(CpuId(c)),
            State::Parked(c) => VcpuState::Parked(CpuId(c)),
        })
    }

    /// CPU time a vCPU has been charged, up to the last call that touched its CPU.
    pub fn vcpu_runtime_ns(&self, id: VcpuId) -> u64 {
        self.vcpus.get(id.0 as usize).map_or(0, |v| v.runtime_ns)
    }

    /// The vCPU running on `cpu`.
    pub fn running(&self, cpu: CpuId) -> Option<VcpuId> {
        let r = self.cpus.get(cpu.0 as usize)?.running;
        (r != NIL).then_some(VcpuId(r))
    }

    /// Busy and idle time of `cpu` since it came online, up to the last call that touched it.
    pub fn cpu_times(&self, cpu: CpuId) -> CpuTimes {
        self.cpus
            .get(cpu.0 as usize)
            .map_or(CpuTimes::default(), |c| CpuTimes {
                busy_ns: c.busy_ns,
                idle_ns: c.idle_ns,
            })
    }

    /// Brings `cpu` online at `now_ns`; it starts idle. (CPUs do not go offline yet.)
    pub fn cpu_up(&mut self, cpu: CpuId, now_ns: u64) -> Result<(), SchedError> {
        let c = cpu.0 as usize;
        if c >= MAX_CPUS {
            return Err(SchedError::OutOfRange);
        }
        if self.online.contains(cpu) {
            return Err(SchedError::CpuState);
        }
        self.cpus[c] = Cpu::OFFLINE;
        self.cpus[c].last_ns = now_ns;
        self.cpus[c].last_balance_ns = now_ns;
        self.online.insert(cpu);
        self.idle.insert(cpu);
        Ok(())
    }

    /// Creates a domain with its weight and cap.
    pub fn add_domain(
        &mut self,
        dom: DomainId,
        params: SchedParams,
        now_ns: u64,
    ) -> Result<(), SchedError> {
        let d = dom.0 as usize;
        if d >= MAX_VCPUS {
            return Err(SchedError::OutOfRange);
        }
        if self.doms[d].present {
            return Err(SchedError::Exists);
        }
        if params.weight == 0 {
            return Err(SchedError::BadWeight);
        }
        self.doms[d] = Domain::new(params, now_ns, self.config.cap_period_ns);
        Ok(())
    }

    /// Deletes a domain that has no vCPUs left.
    pub fn remove_domain(&mut self, dom: DomainId) -> Result<(), SchedError> {
        let d = self.dom_index(dom)?;
        if self.doms[d].nr_vcpus != 0 {
            return Err(SchedError::Busy);
        }
        self.doms[d] = Domain::ABSENT;
        Ok(())
    }

    /// Changes a domain's weight and cap, effective at once: runnable vCPUs are re-weighted
    /// in place, a new cap starts with a full budget, vCPUs parked under the old cap are
    /// queued again. Returns the CPUs to kick. Cost: a scan of the vCPU table.
    pub fn set_params(
        &mut self,
        dom: DomainId,
        params: SchedParams,
        now_ns: u64,
    ) -> Result<CpuMask, SchedError> {
        let d = self.dom_index(dom)?;
        if params.weight == 0 {
            return Err(SchedError::BadWeight);
        }
        let cap_changed = params.cap_percent != self.doms[d].cap_percent;
        self.doms[d].weight = params.weight;
        if cap_changed {
            self.doms[d].cap_percent = params.cap_percent;
            self.doms[d].reset_budget(now_ns, self.config.cap_period_ns);
        }
        let mut kick = CpuMask::EMPTY;
        for i in 0..MAX_VCPUS {
            let v = &self.vcpus[i];
            if v.state == State::Free || v.dom as usize != d {
                continue;
            }
            match v.state {
                State::Queued(c) | State::Running(c) => {
                    let c = c as usize;
                    self.update(c, now_ns);
                    self.reweight(c, i, params.weight);
                    if cap_changed && matches!(self.vcpus[i].state, State::Running(_)) {
                        kick.insert(CpuId(c as u16));
                    }
                }
                State::Parked(c) => {
                    self.set_weight(i, params.weight);
                    if cap_changed {
                        let c = c as usize;
                        wheel::list_remove(&mut self.cpus[c].parked, &mut self.links, i as u32);
                        if let Some(k) = self.make_runnable(i, Some(c), Join::Unpark, now_ns) {
                            kick.insert(k);
                        }
                    }
                }
                State::Blocked | State::Free => self.set_weight(i, params.weight),
            }
        }
        Ok(kick)
    }

    /// Creates a vCPU of `dom`, not runnable (call [`wake`](Self::wake) when it is), with
    /// hard affinity `affinity` (which must include an online CPU).
    pub fn add_vcpu(
        &mut self,
        id: VcpuId,
        dom: DomainId,
        affinity: CpuMask,
        _now_ns: u64,
    ) -> Result<(), SchedError> {
        let i = id.0 as usize;
        if i >= MAX_VCPUS {
            return Err(SchedError::OutOfRange);
        }
        if self.vcpus[i].state != State::Free {
            return Err(SchedError::Exists);
        }
        let d = self.dom_index(dom)?;
        let first = affinity
            .and(self.online)
            .lowest()
            .ok_or(SchedError::NoCpu)?;
        let weight = self.doms[d].weight;
        self.vcpus[i] = Vcpu {
            state: State::Blocked,
            dom: dom.0,
            affinity,
            weight,
            inverse_weight: self.doms[d].inverse_weight(),
            last_cpu: first.0,
            // New vCPUs are presumed CPU-bound until they show otherwise by blocking.
            burst_avg_ns: self.config.slice_ns,
            ..Vcpu::FREE
        };
        self.links[i] = Link::UNLINKED;
        self.doms[d].nr_vcpus += 1;
        Ok(())
    }

    /// Deletes a vCPU, which must be blocked ([`sleep`](Self::sleep) it first and let its
    /// CPU reschedule if it was running).
    pub fn remove_vcpu(&mut self, id: VcpuId) -> Result<(), SchedError> {
        let i = self.vcpu_index(id)?;
        if self.vcpus[i].state != State::Blocked {
            return Err(SchedError::Busy);
        }
        self.doms[self.vcpus[i].dom as usize].nr_vcpus -= 1;
        self.vcpus[i] = Vcpu::FREE;
        Ok(())
    }

    /// Sets a vCPU's hard affinity, effective at once: a queued vCPU moves to an allowed CPU,
    /// a running one is moved off by its CPU's next `schedule` (that CPU is in the returned
    /// kick set, with any CPU that received a vCPU and should reschedule).
    pub fn set_affinity(
        &mut self,
        id: VcpuId,
        affinity: CpuMask,
        now_ns: u64,
    ) -> Result<CpuMask, SchedError> {
        let i = self.vcpu_index(id)?;
        let allowed = affinity.and(self.online);
        if allowed.is_empty() {
            return Err(SchedError::NoCpu);
        }
        self.vcpus[i].affinity = affinity;
        let mut kick = CpuMask::EMPTY;
        match self.vcpus[i].state {
            State::Queued(c) => {
                let c = c as usize;
                self.update(c, now_ns);
                self.dequeue(c, i);
                if allowed.contains(CpuId(c as u16)) {
                    // Same CPU; possibly the other wheel, and now movable to an idle CPU.
                    self.enqueue(c, i);
                    kick = self.idle_takers(c, CpuId(c as u16));
                } else {
                    self.leave(c, i);
                    self.refresh_idle(c);
                    if let Some(k) = self.make_runnable(i, None, Join::Migrate, now_ns) {
                        kick.insert(k);
                    }
                }
            }
            State::Running(c) if !allowed.contains(CpuId(c)) => kick.insert(CpuId(c)),
            State::Parked(c) if !allowed.contains(CpuId(c)) => {
                wheel::list_remove(&mut self.cpus[c as usize].parked, &mut self.links, i as u32);
                let t = self.place(i);
                self.park(t, i, now_ns);
                // So that it programs its timer for the replenishment.
                kick.insert(CpuId(t as u16));
            }
            _ => {}
        }
        Ok(kick)
    }

    /// The vCPU became runnable. Returns the CPU to kick: the idle CPU it was queued on, or
    /// a busy one whose running vCPU it should preempt. Does nothing if it was runnable.
    pub fn wake(&mut self, id: VcpuId, now_ns: u64) -> Option<CpuId> {
        let i = self.vcpu_index(id).ok()?;
        match self.vcpus[i].state {
            State::Blocked => {}
            State::Running(_) => {
                self.vcpus[i].sleep_pending = false;
                return None;
            }
            _ => return None,
        }
        self.vcpus[i].burst_ns = 0;
        // No credit for sleeping, measured on the clock of the CPU it last ran on.
        let last = self.vcpus[i].last_cpu as usize;
        if self.cpus[last].load != 0 {
            self.update(last, now_ns);
            self.clamp_to(last, i, Join::Wake);
        }
        self.make_runnable(i, None, Join::Wake, now_ns)
    }

    /// The vCPU stopped being runnable (paused, or blocked as seen from another CPU). A
    /// running vCPU keeps running until its CPU, which is returned to be kicked, reschedules.
    pub fn sleep(&mut self, id: VcpuId, now_ns: u64) -> Option<CpuId> {
        let i = self.vcpu_index(id).ok()?;
        match self.vcpus[i].state {
            State::Queued(c) => {
                let c = c as usize;
                self.update(c, now_ns);
                self.dequeue(c, i);
                self.leave(c, i);
                self.vcpus[i].state = State::Blocked;
                self.refresh_idle(c);
                None
            }
            State::Parked(c) => {
                wheel::list_remove(&mut self.cpus[c as usize].parked, &mut self.links, i as u32);
                self.vcpus[i].state = State::Blocked;
                None
            }
            State::Running(c) => {
                self.vcpus[i].sleep_pending = true;
                Some(CpuId(c))
            }
            State::Blocked | State::Free => None,
        }
    }

    /// The vCPU running on `cpu` blocked (e.g. HLT with no pending event). Call
    /// [`schedule`](Self::schedule) next on that CPU.
    pub fn block(&mut self, cpu: CpuId, now_ns: u64) {
        let c = cpu.0 as usize;
        if !self.online.contains(cpu) || c >= MAX_CPUS {
            return;
        }
        let now = self.update(c, now_ns);
        let r = self.cpus[c].running;
        if r != NIL {
            self.stop(c, r as usize, now, Stop::Block);
        }
    }

    /// Decides what `cpu` runs next and until when. Call it when the CPU's timer reaches
    /// the last decision's `until_ns`, when the CPU is kicked, and after `block`.
    pub fn schedule(&mut self, cpu: CpuId, now_ns: u64) -> Decision {
        let c = cpu.0 as usize;
        if c >= MAX_CPUS || !self.online.contains(cpu) {
            return Decision {
                run: None,
                until_ns: Decision::NEVER,
                kick: CpuMask::EMPTY,
            };
        }
        let now = self.update(c, now_ns);
        let mut kick = CpuMask::EMPTY;
        self.unpark_due(c, now, &mut kick);

        // The running vCPU: must it stop, and may it be preempted yet?
        let mut protected = false;
        let prev = self.cpus[c].running;
        if prev != NIL {
            let p = prev as usize;
            if self.vcpus[p].sleep_pending {
                self.stop(c, p, now, Stop::Sleep);
            } else if !self.allowed(p).contains(cpu) {
                if let Some(k) = self.stop(c, p, now, Stop::Migrate) {
                    kick.insert(k);
                }
            } else if !self.has_budget(p, now) {
                self.stop(c, p, now, Stop::Park);
            } else {
                protected = now - self.cpus[c].stint_start < self.config.ratelimit_ns;
            }
        }

        if !protected {
            if now.saturating_sub(self.cpus[c].last_balance_ns) >= self.config.balance_interval_ns {
                self.cpus[c].last_balance_ns = now;
                self.pull(c, now, false);
            }
            let prev = self.cpus[c].running;
            if prev != NIL {
                let best = self.peek_best(c);
                self.ops += 1;
                if best.is_some_and(|(_, key, _)| {
                    vtime::before(key, self.vcpus[prev as usize].deadline)
                }) {
                    self.stop(c, prev as usize, now, Stop::Requeue);
                }
            }
            if self.cpus[c].running == NIL {
                self.pick(c, now);
            }
        }

        // Budget returned by the vCPU that stopped may unpark vCPUs here.
        self.unpark_due(c, now, &mut kick);
        let until_ns = self.program(c, now);
        kick = kick.or(core::mem::replace(
            &mut self.cpus[c].deferred_kick,
            CpuMask::EMPTY,
        ));
        kick = kick.or(self.idle_takers(c, cpu));
        // Kicked to take another CPU's work but found work of its own (or none it may run):
        // pass the kick on rather than leave that work waiting.
        let source = core::mem::replace(&mut self.cpus[c].kicked_by, NIL);
        if source != NIL && source as usize != c {
            kick = kick.or(self.idle_takers(source as usize, cpu));
        }
        let r = self.cpus[c].running;
        Decision {
            run: (r != NIL).then_some(VcpuId(r)),
            until_ns,
            kick: kick.without(cpu),
        }
    }

    /// Checks the internal invariants; a debugging aid for tests and the simulator, O(all
    /// vCPUs and CPUs).
    pub fn check(&self) -> Result<(), &'static str> {
        for (c, cpu) in self.cpus.iter().enumerate() {
            let id = CpuId(c as u16);
            if !self.online.contains(id) {
                continue;
            }
            let (mut load, mut pinned, mut mobile, mut parked, mut lag) = (0u64, 0, 0, 0, 0i128);
            for v in &self.vcpus {
                match v.state {
                    State::Queued(q) if q as usize == c => {
                        if !v.affinity.contains(id) {
                            return Err("a queued vCPU is on a CPU outside its affinity");
                        }
                        if v.in_pinned {
                            pinned += 1;
                        } else {
                            mobile += 1;
                        }
                    }
                    State::Running(q) if q as usize == c => {}
                    State::Parked(q) if q as usize == c => {
                        parked += 1;
                        continue;
                    }
                    _ => continue,
                }
                load += v.weight as u64;
                lag += v.weight as i128 * vtime::diff(v.vtime, cpu.vclock) as i128;
            }
            if cpu.running != NIL
                && self.vcpus[cpu.running as usize].state != State::Running(c as u16)
            {
                return Err("a CPU's running vCPU is not in the running state");
            }
            if load != cpu.load || lag != cpu.lag_sum {
                return Err("a CPU's load or lag sum disagrees with its vCPUs");
            }
            if cpu.load != 0 && cpu.lag_sum.unsigned_abs() >= cpu.load as u128 {
                return Err("a CPU's virtual clock is not rebased");
            }
            if pinned != cpu.pinned.len() || mobile != cpu.mobile.len() {
                return Err("a CPU's queue lengths disagree with its vCPUs");
            }
            let mut n = 0;
            let mut i = cpu.parked;
            while i != NIL && n <= MAX_VCPUS {
                n += 1;
                i = self.links[i as usize].next;
                if i == cpu.parked {
                    break;
                }
            }
            if n != parked {
                return Err("a CPU's parked list disagrees with its vCPUs");
            }
            let idle = cpu.running == NIL && cpu.queued() == 0;
            if idle != self.idle.contains(id) {
                return Err("the idle mask is stale");
            }
        }
        for (d, dom) in self.doms.iter().enumerate() {
            let members = self
                .vcpus
                .iter()
                .filter(|v| v.state != State::Free && v.dom as usize == d);
            let (mut n, mut granted) = (0, 0);
            for v in members {
                n += 1;
                granted += v.grant_left;
                if v.grant_left != 0 && !matches!(v.state, State::Running(_)) {
                    return Err("a vCPU that is not running holds a cap grant");
                }
            }
            if n != dom.nr_vcpus || granted != dom.reserved() {
                return Err("a domain's vCPU count or reserved budget is wrong");
            }
        }
        for (i, v) in self.vcpus.iter().enumerate() {
            let queued = matches!(v.state, State::Queued(_));
            if queued != (self.links[i].slot != NO_SLOT) {
                return Err("a vCPU's queue link disagrees with its state");
            }
        }
        Ok(())
    }

    /// Test hook: sets the virtual time of a blocked vCPU (to exercise wrapping).
    #[cfg(test)]
    pub(super) fn set_vtime(&mut self, id: VcpuId, vtime: u64) {
        let v = &mut self.vcpus[id.0 as usize];
        assert_eq!(v.state, State::Blocked);
        v.vtime = vtime;
    }

    // ---- internals ----

    fn vcpu_index(&self, id: VcpuId) -> Result<usize, SchedError> {
        let i = id.0 as usize;
        if i >= MAX_VCPUS {
            return Err(SchedError::OutOfRange);
        }
        if self.vcpus[i].state == State::Free {
            return Err(SchedError::NoSuchId);
        }
        Ok(i)
    }

    fn dom_index(&self, dom: DomainId) -> Result<usize, SchedError> {
        let d = dom.0 as usize;
        if d >= MAX_VCPUS {
            return Err(SchedError::OutOfRange);
        }
        if !self.doms[d].present {
            return Err(SchedError::NoSuchId);
        }
        Ok(d)
    }

    /// The online CPUs the vCPU may run on (never empty: set_affinity refuses that and
    /// CPUs do not go offline).
    fn allowed(&self, i: usize) -> CpuMask {
        self.vcpus[i].affinity.and(self.online)
    }

    /// Brings `c`'s accounting up to `now`, charging its running vCPU; returns `now`
    /// (never earlier than the CPU's last update: clocks read on different CPUs may be
    /// slightly out of order).
    fn update(&mut self, c: usize, now: u64) -> u64 {
        let cpu = &mut self.cpus[c];
        let now = now.max(cpu.last_ns);
        let dt = now - cpu.last_ns;
        cpu.last_ns = now;
        let r = cpu.running;
        if r == NIL {
            cpu.idle_ns += dt;
        } else {
            cpu.busy_ns += dt;
            self.charge(c, r as usize, dt, now);
        }
        now
    }

    fn charge(&mut self, c: usize, i: usize, dt: u64, now: u64) {
        if dt == 0 {
            return;
        }
        let config = self.config;
        let v = &mut self.vcpus[i];
        let dv = vtime::to_virtual(dt, v.inverse_weight);
        v.vtime = v.vtime.wrapping_add(dv);
        v.runtime_ns += dt;
        v.burst_ns += dt;
        let cpu = &mut self.cpus[c];
        cpu.lag_sum += v.weight as i128 * dv as i128;
        cpu.rebase();
        if !vtime::before(v.vtime, v.deadline) {
            v.deadline = v.vtime.wrapping_add(request_vt(&config, v));
        }
        let dom = &mut self.doms[v.dom as usize];
        if dom.capped() {
            dom.charge(dt, &mut v.grant_left, now, config.cap_period_ns);
        }
    }

    fn set_weight(&mut self, i: usize, weight: u16) {
        let v = &mut self.vcpus[i];
        v.weight = weight;
        v.inverse_weight = vtime::inverse_weight(weight);
    }

    /// Changes the weight of a vCPU that is runnable on `c`, keeping its virtual time.
    fn reweight(&mut self, c: usize, i: usize, weight: u16) {
        let lag = vtime::diff(self.vcpus[i].vtime, self.cpus[c].vclock) as i128;
        let old = self.vcpus[i].weight;
        self.set_weight(i, weight);
        let cpu = &mut self.cpus[c];
        cpu.load = cpu.load - old as u64 + weight as u64;
        cpu.lag_sum += (weight as i128 - old as i128) * lag;
        cpu.rebase();
    }

    /// Clamps the vCPU's virtual time into what `c`'s clock allows for `how`.
    fn clamp_to(&mut self, c: usize, i: usize, how: Join) -> u64 {
        let config = self.config;
        let cpu = &self.cpus[c];
        let v = &mut self.vcpus[i];
        let lead =
            vtime::to_virtual(config.slice_ns + config.ratelimit_ns, v.inverse_weight) as i64;
        let credit = match how {
            Join::Wake | Join::Unpark => 0,
            Join::Migrate => vtime::to_virtual(2 * config.migrate_lag_ns, v.inverse_weight) as i64,
        };
        let old = v.vtime;
        let lag = vtime::diff(v.vtime, cpu.vclock).clamp(-credit, lead);
        v.vtime = cpu.vclock.wrapping_add(lag as u64);
        old
    }

    /// Adds a vCPU to `c`'s runnable set (not to its queue).
    fn join(&mut self, c: usize, i: usize, how: Join) {
        let config = self.config;
        let eligible =
            self.cpus[c].load == 0 || vtime::diff(self.vcpus[i].vtime, self.cpus[c].vclock) <= 0;
        let old = if self.cpus[c].load == 0 {
            // An idle CPU has no clock of its own: it adopts the vCPU's.
            self.cpus[c].vclock = self.vcpus[i].vtime;
            self.cpus[c].lag_sum = 0;
            self.vcpus[i].vtime
        } else {
            self.clamp_to(c, i, how)
        };
        let cpu = &mut self.cpus[c];
        let v = &mut self.vcpus[i];
        cpu.load += v.weight as u64;
        cpu.lag_sum += v.weight as i128 * vtime::diff(v.vtime, cpu.vclock) as i128;
        cpu.rebase();
        let request = request_vt(&config, v);
        let rest = match how {
            // Due now: ahead of every vCPU that is not behind the clock, so an eligible
            // waker runs within the rate limit. It cannot gain CPU time by this: it only
            // applies while it has used no more than its share (see docs/scheduler.md).
            Join::Wake if eligible => 0,
            Join::Wake | Join::Unpark => request,
            Join::Migrate => vtime::diff(v.deadline, old).clamp(0, request as i64) as u64,
        };
        v.deadline = v.vtime.wrapping_add(rest);
    }

    /// Removes a vCPU from `c`'s runnable set.
    fn leave(&mut self, c: usize, i: usize) {
        let cpu = &mut self.cpus[c];
        let v = &self.vcpus[i];
        cpu.lag_sum -= v.weight as i128 * vtime::diff(v.vtime, cpu.vclock) as i128;
        cpu.load -= v.weight as u64;
        cpu.rebase();
    }

    fn refresh_idle(&mut self, c: usize) {
        let cpu = &self.cpus[c];
        let id = CpuId(c as u16);
        if cpu.running == NIL && cpu.queued() == 0 {
            self.idle.insert(id);
        } else {
            self.idle.remove(id);
        }
    }

    /// Queues a vCPU that has joined `c`.
    fn enqueue(&mut self, c: usize, i: usize) {
        let pinned = self.allowed(i).count() == 1;
        let v = &mut self.vcpus[i];
        v.in_pinned = pinned;
        v.state = State::Queued(c as u16);
        let key = v.deadline;
        let cpu = &mut self.cpus[c];
        let wheel = if pinned {
            &mut cpu.pinned
        } else {
            &mut cpu.mobile
        };
        wheel.insert(&mut self.links, i as u32, key, &mut self.ops);
        self.idle.remove(CpuId(c as u16));
    }

    /// Takes a queued vCPU off `c`'s queue (it stays in the runnable set).
    fn dequeue(&mut self, c: usize, i: usize) {
        let cpu = &mut self.cpus[c];
        let wheel = if self.vcpus[i].in_pinned {
            &mut cpu.pinned
        } else {
            &mut cpu.mobile
        };
        wheel.remove(&mut self.links, i as u32, &mut self.ops);
    }

    /// The queued vCPU with the earliest deadline on `c`: (index, deadline).
    fn peek_best(&mut self, c: usize) -> Option<(u32, u64, bool)> {
        let cpu = &mut self.cpus[c];
        let a = cpu.pinned.peek(&mut self.links, &mut self.ops);
        let b = cpu.mobile.peek(&mut self.links, &mut self.ops);
        match (a, b) {
            (Some(a), Some(b)) => {
                self.ops += 1;
                Some(if vtime::before(b.1, a.1) {
                    (b.0, b.1, false)
                } else {
                    (a.0, a.1, true)
                })
            }
            (Some(a), None) => Some((a.0, a.1, true)),
            (None, Some(b)) => Some((b.0, b.1, false)),
            (None, None) => None,
        }
    }

    /// Chooses a CPU for a vCPU that is becoming runnable: its last CPU if idle, else an
    /// idle CPU, else the least loaded (by weight), staying on the last CPU unless moving
    /// makes a real difference.
    fn place(&mut self, i: usize) -> usize {
        let allowed = self.allowed(i);
        let last = CpuId(self.vcpus[i].last_cpu);
        if allowed.contains(last) && self.idle.contains(last) {
            return last.0 as usize;
        }
        let next = CpuId(last.0.wrapping_add(1));
        if let Some(t) = self.idle.and(allowed).next_from(next) {
            return t.0 as usize;
        }
        let mut best: Option<(usize, u64)> = None;
        for t in allowed.iter() {
            self.ops += 1;
            let load = self.cpus[t.0 as usize].load;
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((t.0 as usize, load));
            }
        }
        let (t, least) = best.unwrap_or((last.0 as usize, 0));
        if allowed.contains(last)
            && self.cpus[last.0 as usize].load <= least + self.vcpus[i].weight as u64
        {
            last.0 as usize
        } else {
            t
        }
    }

    /// Joins and queues a vCPU that is not on any CPU, on `prefer` if allowed, else where
    /// [`place`](Self::place) says; returns the CPU to kick, if any.
    fn make_runnable(
        &mut self,
        i: usize,
        prefer: Option<usize>,
        how: Join,
        now: u64,
    ) -> Option<CpuId> {
        let t = match prefer {
            Some(c) if self.allowed(i).contains(CpuId(c as u16)) => c,
            _ => self.place(i),
        };
        self.update(t, now);
        self.join(t, i, how);
        self.enqueue(t, i);
        self.kick_for(t, i)
    }

    /// Whether `c` should reschedule now that `i` is queued there.
    fn kick_for(&mut self, c: usize, i: usize) -> Option<CpuId> {
        let r = self.cpus[c].running;
        self.ops += 1;
        let preempt =
            r == NIL || vtime::before(self.vcpus[i].deadline, self.vcpus[r as usize].deadline);
        preempt.then_some(CpuId(c as u16))
    }

    /// Whether a vCPU may run now as far as its domain's cap is concerned.
    fn has_budget(&mut self, i: usize, now: u64) -> bool {
        let v = &self.vcpus[i];
        let dom = &mut self.doms[v.dom as usize];
        !dom.capped() || v.grant_left > 0 || dom.available(now, self.config.cap_period_ns) > 0
    }

    /// Parks a vCPU (not in `c`'s runnable set) until the next cap period, or, when its
    /// domain's budget is not spent but only granted to vCPUs running elsewhere (which may
    /// give some back), for one rate-limit interval.
    fn park(&mut self, c: usize, i: usize, now: u64) {
        let period = self.config.cap_period_ns;
        let dom = &mut self.doms[self.vcpus[i].dom as usize];
        let due = if dom.unspent(now, period) > 0 {
            // Woken early when a grant comes back (see `stop`); else retry after a while.
            dom.waiting_cpus.insert(CpuId(c as u16));
            now + self.config.ratelimit_ns.max(self.config.min_slice_ns)
        } else {
            (now / period + 1) * period
        };
        let cpu = &mut self.cpus[c];
        cpu.parked_until = if cpu.parked == NIL {
            due
        } else {
            cpu.parked_until.min(due)
        };
        wheel::list_push(&mut cpu.parked, &mut self.links, i as u32);
        self.vcpus[i].state = State::Parked(c as u16);
    }

    /// Queues again the vCPUs parked on `c` once their replenishment is due.
    fn unpark_due(&mut self, c: usize, now: u64, kick: &mut CpuMask) {
        if self.cpus[c].parked == NIL || now < self.cpus[c].parked_until {
            return;
        }
        loop {
            let i = self.cpus[c].parked;
            if i == NIL {
                break;
            }
            wheel::list_remove(&mut self.cpus[c].parked, &mut self.links, i);
            self.ops += 1;
            if let Some(k) = self.make_runnable(i as usize, Some(c), Join::Unpark, now) {
                kick.insert(k);
            }
        }
    }

    /// Stops the vCPU running on `c`; for `Stop::Migrate`, returns the CPU to kick.
    fn stop(&mut self, c: usize, i: usize, now: u64, how: Stop) -> Option<CpuId> {
        let v = &mut self.vcpus[i];
        let dom = &mut self.doms[v.dom as usize];
        if dom.release(&mut v.grant_left) && !dom.waiting_cpus.is_empty() {
            // Budget came back: the domain's vCPUs parked for want of it may run now.
            let waiting = core::mem::replace(&mut dom.waiting_cpus, CpuMask::EMPTY);
            for t in waiting.iter() {
                self.cpus[t.0 as usize].parked_until = now;
            }
            self.cpus[c].deferred_kick = self.cpus[c].deferred_kick.or(waiting);
        }
        let v = &mut self.vcpus[i];
        v.last_cpu = c as u16;
        self.cpus[c].running = NIL;
        let mut kick = None;
        match how {
            Stop::Block | Stop::Sleep => {
                let v = &mut self.vcpus[i];
                if how == Stop::Block {
                    v.burst_avg_ns = (3 * v.burst_avg_ns + v.burst_ns.min(1 << 40)) / 4;
                }
                v.burst_ns = 0;
                v.sleep_pending = false;
                v.state = State::Blocked;
                self.leave(c, i);
            }
            Stop::Requeue => self.enqueue(c, i),
            Stop::Park => {
                self.leave(c, i);
                self.park(c, i, now);
            }
            Stop::Migrate => {
                self.leave(c, i);
                kick = self.make_runnable(i, None, Join::Migrate, now);
            }
        }
        self.refresh_idle(c);
        kick
    }

    fn start(&mut self, c: usize, i: usize, now: u64) {
        let v = &mut self.vcpus[i];
        if v.has_run && v.last_cpu as usize != c {
            self.migrations += 1;
        }
        v.has_run = true;
        v.last_cpu = c as u16;
        v.state = State::Running(c as u16);
        self.cpus[c].running = i as u32;
        self.cpus[c].stint_start = now;
        self.refresh_idle(c);
    }

    /// Runs the earliest-deadline queued vCPU with budget on the idle CPU `c`, pulling work
    /// from other CPUs if it has none.
    fn pick(&mut self, c: usize, now: u64) {
        loop {
            let Some((j, _, pinned)) = self.peek_best(c) else {
                if self.pull(c, now, true) {
                    continue;
                }
                return;
            };
            let j = j as usize;
            let cpu = &mut self.cpus[c];
            let wheel = if pinned {
                &mut cpu.pinned
            } else {
                &mut cpu.mobile
            };
            wheel.remove(&mut self.links, j as u32, &mut self.ops);
            if self.has_budget(j, now) {
                self.start(c, j, now);
                return;
            }
            self.leave(c, j);
            self.park(c, j, now);
            self.refresh_idle(c);
        }
    }

    /// Moves one vCPU from another CPU's mobile queue to `c`'s. When `idle`, any vCPU that
    /// may run on `c`; else the one furthest behind `c`'s clock, if it is owed at least
    /// `migrate_lag_ns` of CPU time. Each CPU offers only its earliest-deadline movable vCPU
    /// (so a vCPU whose affinity excludes `c` can hide others behind it: see the docs).
    fn pull(&mut self, c: usize, now: u64, idle: bool) -> bool {
        let clock = self.cpus[c].vclock;
        let threshold = self.config.migrate_lag_ns as i128;
        let me = CpuId(c as u16);
        let others = self.online.without(me);
        let start = CpuId(((c + 1) % MAX_CPUS) as u16);
        let mut best: Option<(usize, u32, i128)> = None;
        for o in others.iter_from(start) {
            self.ops += 1;
            let o = o.0 as usize;
            let cpu = &mut self.cpus[o];
            if cpu.mobile.is_empty() {
                continue;
            }
            let Some((j, _)) = cpu.mobile.peek(&mut self.links, &mut self.ops) else {
                continue;
            };
            if !self.allowed(j as usize).contains(me) {
                continue;
            }
            if idle {
                best = Some((o, j, 0));
                break;
            }
            let v = &self.vcpus[j as usize];
            let owed = (vtime::diff(clock, v.vtime) as i128 * v.weight as i128) >> VT_SHIFT;
            if owed >= threshold && best.is_none_or(|b| owed > b.2) {
                best = Some((o, j, owed));
            }
        }
        let Some((o, j, _)) = best else {
            return false;
        };
        let j = j as usize;
        self.update(o, now);
        self.dequeue(o, j);
        self.leave(o, j);
        self.refresh_idle(o);
        self.join(c, j, Join::Migrate);
        self.enqueue(c, j);
        true
    }

    /// The timer for `c`'s current decision; grants cap budget to its running vCPU.
    fn program(&mut self, c: usize, now: u64) -> u64 {
        let parked = if self.cpus[c].parked != NIL {
            self.cpus[c].parked_until
        } else {
            Decision::NEVER
        };
        let r = self.cpus[c].running;
        if r == NIL {
            return parked;
        }
        let r = r as usize;
        let limit_end = self.cpus[c].stint_start + self.config.ratelimit_ns;
        let left = vtime::diff(self.vcpus[r].deadline, self.vcpus[r].vtime).max(1) as u64;
        let mut end = (now + vtime::to_real(left, self.vcpus[r].weight)).max(limit_end);
        // A queued vCPU with an earlier deadline preempts as soon as the rate limit allows.
        let best = self.peek_best(c);
        self.ops += 1;
        if best.is_some_and(|(_, key, _)| vtime::before(key, self.vcpus[r].deadline)) {
            end = end.min(limit_end);
        }
        end = end.max(now + 1);
        let period = self.config.cap_period_ns;
        let v = &mut self.vcpus[r];
        let dom = &mut self.doms[v.dom as usize];
        if dom.capped() {
            let want = end - now;
            if v.grant_left < want {
                v.grant_left += dom.grant(want - v.grant_left, now, period);
            }
            end = end.min(now + v.grant_left.max(1));
        }
        end.min(parked)
    }

    /// Idle CPUs that could take the movable vCPUs waiting on `c`: as many as there are
    /// such vCPUs, among the CPUs the earliest of them may use (a kicked CPU that finds
    /// nothing it may run goes back to sleep).
    fn idle_takers(&mut self, c: usize, not: CpuId) -> CpuMask {
        let waiting = self.cpus[c].mobile.len();
        if self.idle.is_empty() || waiting == 0 {
            return CpuMask::EMPTY;
        }
        let cpu = &mut self.cpus[c];
        let Some((j, _)) = cpu.mobile.peek(&mut self.links, &mut self.ops) else {
            return CpuMask::EMPTY;
        };
        let me = CpuId(c as u16);
        let candidates = self
            .idle
            .and(self.allowed(j as usize))
            .without(me)
            .without(not);
        let mut kick = CpuMask::EMPTY;
        for t in candidates
            .iter_from(CpuId(me.0.wrapping_add(1)))
            .take(waiting as usize)
        {
            self.ops += 1;
            self.cpus[t.0 as usize].kicked_by = c as u32;
            kick.insert(t);
        }
        kick
    }
}
