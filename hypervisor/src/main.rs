//! The Ferrovisor image: boot sequence from the 32-bit entry's hand-off to an idle
//! hypervisor that owns every byte of memory.
//!
//! On the host this file builds a stub that says how to build the real thing, so
//! `cargo build`/`cargo test` of the whole workspace work on a workstation.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ferrovisor is a bare-metal image: build it with `cargo xtask build`");
    std::process::exit(1);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod fatal;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod percpu;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod platform_acpi;
#[cfg(all(target_os = "none", feature = "selftest"))]
mod selftest;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod start;
#[cfg(target_os = "none")]
mod time;
#[cfg(target_os = "none")]
#[cfg_attr(
    not(feature = "selftest"),
    allow(
        dead_code,
        reason = "domains are created by self tests until boot-time domain configurations land"
    )
)]
mod vmm;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fatal::panic(info)
}
