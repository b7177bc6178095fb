//! Software timers: the per-CPU queue of pending deadlines that the scheduler keeps and
//! programs the one hardware timer (local APIC TSC-deadline or one-shot) from.
//!
//! Deadlines are absolute nanoseconds on the hypervisor's monotonic clock; converting them to
//! timer ticks is the caller's business (see `ferrovisor_arch::tsc::TscScale`). The queue is
//! not synchronised: each CPU owns its own and touches it with interrupts disabled.

pub mod queue;

pub use queue::{TimerError, TimerId, TimerQueue};
