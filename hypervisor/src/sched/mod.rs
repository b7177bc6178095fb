//! The vCPU scheduler: which vCPU each physical CPU runs, and until when.
//!
//! This is the pure-logic core (see `docs/scheduler.md`): it never touches hardware, reads no
//! clock and allocates nothing. The hypervisor drives it through a small interface and does
//! what it answers:
//!
//! - [`Scheduler::wake`], [`Scheduler::block`], [`Scheduler::sleep`]: a vCPU became runnable
//!   or stopped being runnable. `wake` names the CPU to kick (IPI) when it should reschedule.
//! - [`Scheduler::schedule`]: called on a CPU when its timer fires, when it was kicked, or after
//!   `block`; returns a [`Decision`]: the vCPU to run (or none: halt), the absolute time to
//!   program the timer for, and other CPUs to kick.
//! - [`Scheduler::set_params`] (a domain's weight and cap) and [`Scheduler::set_affinity`]
//!   (a vCPU's hard affinity) take effect at once.
//!
//! Every entry point takes `now_ns`, the hypervisor's monotonic clock in nanoseconds; CPU time
//! is accounted from these exact timestamps, never by sampling on ticks.
//!
//! The algorithm, in one paragraph: each vCPU has a *virtual time* that advances by its run
//! time divided by its weight, and a *virtual deadline* one request ahead of it. Each CPU runs
//! its queued vCPU with the earliest virtual deadline (EEVDF/WF2Q lineage, which gives exact
//! proportional share), keeps its queue in a hierarchical bucket wheel so a decision costs
//! O(1) whatever the queue length, and pulls lagging vCPUs from other CPUs so that all CPUs'
//! virtual clocks advance together (global, not just per-CPU, proportional share). Caps are
//! per-domain budgets replenished every period and enforced by the decision's timer.

mod cap;
pub mod cpumask;
mod scheduler;
mod vtime;
mod wheel;

#[cfg(test)]
mod tests;

use core::fmt;

pub use cpumask::CpuMask;
pub use scheduler::Scheduler;

/// A virtual CPU: a dense index below the scheduler's `MAX_VCPUS`, allocated by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuId(pub u32);

/// A physical CPU: a dense index below the scheduler's `MAX_CPUS` (at most
/// [`cpumask::MAX_CPUS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(pub u16);

/// A domain, the unit that weight and cap apply to: a dense index below `MAX_VCPUS` (every
/// domain has a vCPU, so this is never the binding limit). The domain layer maps Xen domain
/// ids to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u16);

/// Weight preset "low" (half of normal).
pub const WEIGHT_LOW: u16 = 128;
/// Weight preset "normal", and the default (as in Xen).
pub const WEIGHT_NORMAL: u16 = 256;
/// Weight preset "high" (twice normal).
pub const WEIGHT_HIGH: u16 = 512;

/// A domain's scheduling controls, with Xen's meaning (`xl sched-credit2 -w -c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Relative share of CPU for each of the domain's vCPUs, 1..=65535. Under contention a
    /// vCPU of weight 512 gets twice the CPU of a vCPU of weight 256.
    pub weight: u16,
    /// Upper bound on the CPU the whole domain may use, in percent of one physical CPU: 0 is
    /// no cap, 50 is half a CPU, 200 is two CPUs. Enforced even when CPUs are idle (that is
    /// what a cap is for); everything else is work-conserving.
    pub cap_percent: u16,
}

impl SchedParams {
    /// Weight 256, no cap.
    pub const DEFAULT: Self = Self {
        weight: WEIGHT_NORMAL,
        cap_percent: 0,
    };
}

impl Default for SchedParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Tunables. The defaults are what the figures in `docs/scheduler.md` were measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedConfig {
    /// Longest request (slice) of a vCPU that does not block, in ns (default 3 ms).
    pub slice_ns: u64,
    /// Shortest request, for vCPUs that run in short bursts (default 100 µs). Requests
    /// follow twice a vCPU's average burst between these bounds.
    pub min_slice_ns: u64,
    /// A runnable vCPU runs at least this long once picked, unless it blocks or exhausts its
    /// cap (default 1 ms, Xen's `sched_ratelimit_us`). 0 disables the limit.
    pub ratelimit_ns: u64,
    /// Cap budgets are replenished every this many ns (default 10 ms, as credit2).
    pub cap_period_ns: u64,
    /// A busy CPU looks for vCPUs to pull at most this often (default 4 ms).
    pub balance_interval_ns: u64,
    /// A busy CPU pulls a waiting vCPU from another CPU when that vCPU is owed at least this
    /// much CPU time relative to the pulling CPU's vCPUs (default 4 ms).
    pub migrate_lag_ns: u64,
}

impl SchedConfig {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        slice_ns: 3_000_000,
        min_slice_ns: 100_000,
        ratelimit_ns: 1_000_000,
        cap_period_ns: 10_000_000,
        balance_interval_ns: 4_000_000,
        migrate_lag_ns: 4_000_000,
    };

    /// Whether the values are usable: slices and the cap period are positive, the minimum
    /// slice does not exceed the slice, and nothing is long enough to overflow the virtual
    /// time arithmetic (all at most 10 s).
    pub const fn is_valid(&self) -> bool {
        const LIMIT: u64 = 10_000_000_000;
        self.min_slice_ns > 0
            && self.min_slice_ns <= self.slice_ns
            && self.slice_ns <= LIMIT
            && self.ratelimit_ns <= LIMIT
            && self.cap_period_ns > 0
            && self.cap_period_ns <= LIMIT
            && self.balance_interval_ns <= LIMIT
            && self.migrate_lag_ns <= LIMIT
    }
}

impl Default for SchedConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a CPU should do after [`Scheduler::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU to run, or `None`: halt until the timer or a kick.
    pub run: Option<VcpuId>,
    /// Absolute time at which to call `schedule` again on this CPU; [`Decision::NEVER`] means
    /// no timer is needed (idle with nothing to wait for).
    pub until_ns: u64,
    /// Other CPUs to kick (IPI) so they call `schedule`: idle CPUs that can take waiting work.
    pub kick: CpuMask,
}

impl Decision {
    /// `until_ns` when no timer is needed.
    pub const NEVER: u64 = u64::MAX;
}

/// Where a vCPU is, as [`Scheduler::vcpu_state`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Not runnable (blocked, paused, or new).
    Blocked,
    /// Runnable, waiting in this CPU's queue.
    Queued(CpuId),
    /// Running on this CPU.
    Running(CpuId),
    /// Runnable but its domain has used its cap for this period; it waits on this CPU for
    /// the next replenishment.
    Parked(CpuId),
}

/// CPU time accounted to one physical CPU since it came online.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Time spent running vCPUs.
    pub busy_ns: u64,
    /// Time spent with nothing to run.
    pub idle_ns: u64,
}

/// Why a scheduler operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// The vCPU, CPU or domain id is at or beyond the capacity.
    OutOfRange,
    /// The id is already in use.
    Exists,
    /// The vCPU or domain does not exist.
    NoSuchId,
    /// Weight 0 (weights are 1..=65535).
    BadWeight,
    /// The affinity contains no online CPU.
    NoCpu,
    /// The CPU is not online (or already online, for `cpu_up`).
    CpuState,
    /// The vCPU must be blocked first (removal), or the domain still has vCPUs.
    Busy,
    /// The configuration is not [valid](SchedConfig::is_valid).
    BadConfig,
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "id beyond the scheduler's capacity",
            Self::Exists => "id already in use",
            Self::NoSuchId => "no such vCPU or domain",
            Self::BadWeight => "weight must be 1..=65535",
            Self::NoCpu => "affinity contains no online CPU",
            Self::CpuState => "CPU not in the required online state",
            Self::Busy => "vCPU not blocked, or domain still has vCPUs",
            Self::BadConfig => "invalid scheduler configuration",
        })
    }
}
