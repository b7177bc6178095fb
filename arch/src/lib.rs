//! x86_64 architecture support for Ferrovisor: CPU identification and virtualization
//! features, descriptor tables, the trap entry path, and narrow wrappers for privileged
//! instructions.
//!
//! Everything that executes privileged instructions or global assembly is compiled only
//! for the bare-metal target (`target_os = "none"`); the rest builds and is tested on the
//! host.
#![cfg_attr(not(test), no_std)]

pub mod apic;
pub mod cpu;
#[cfg(target_os = "none")]
pub mod descriptors;
pub mod idle;
#[cfg(target_os = "none")]
pub mod msr;
pub mod svm;
pub mod trap;
pub mod tsc;
pub mod vmx;
