//! Platform devices the hypervisor itself drives.
//!
//! Today: the serial console on COM1 behind the `log` crate. ACPI, timers and PCI
//! arrive with later work.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod console;
