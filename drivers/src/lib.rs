//! Platform devices the hypervisor itself drives.
//!
//! The serial console on COM1 behind the `log` crate, the ACPI platform description
//! (MADT, FADT, HPET; parsed and validated on the host in tests), and the I/O APICs.
//! PCI arrives with later work.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi;
pub mod console;
pub mod ioapic;
