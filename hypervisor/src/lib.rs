//! Ferrovisor's host-testable core: everything here is pure logic that `cargo test` runs
//! on the development machine. The bare-metal boot sequence that uses it is in `main.rs`
//! and its modules.
#![cfg_attr(not(test), no_std)]

pub mod config;
pub mod cpuid_policy;
pub mod guest_memory;
pub mod hypercalls;
pub mod mm;
pub mod nested_paging;
pub mod pvh;
pub mod reservation;
pub mod sched;
#[cfg(test)]
mod test_rng;
pub mod timer;
pub mod vcpu;
pub mod xen;
