//! A small library for test guests, in the shape of Xen's XTF (Xen Test Framework): each
//! guest is a tiny PVH kernel that checks one behaviour of the hypervisor and prints
//! `Test result: SUCCESS|FAILURE|SKIP|ERROR` through the Xen console hypercall, then
//! shuts itself down with `SCHEDOP_shutdown`.
//!
//! The guest side is written from Xen's public headers independently of the hypervisor's
//! own ABI module, so a test passing means two implementations agree.
//!
//! Environment: entered by PVH in 32-bit protected mode (`entry.rs`), the guest builds
//! an identity map of its first 1 GiB with 2 MiB pages and switches to long mode, so
//! guest-virtual = guest-physical for everything it touches. Secondary vCPUs (`smp.rs`)
//! start directly in long mode with the same page tables, GDT and IDT.
#![cfg_attr(not(test), no_std)]

pub mod abi;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
pub mod exceptions;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod smp;
pub mod start_info;
pub mod time;

/// What a test concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    Skip,
    Error,
}

impl Verdict {
    /// The word XTF prints.
    pub const fn word(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Skip => "SKIP",
            Self::Error => "ERROR",
        }
    }
}

/// Collects failures: a test calls `check` for each expectation and ends with
/// `verdict()`.
#[derive(Debug, Default)]
pub struct Checks {
    failures: u32,
}

impl Checks {
    /// Records one expectation; prints what failed.
    #[cfg(target_os = "none")]
    pub fn check(&mut self, ok: bool, what: core::fmt::Arguments<'_>) {
        if !ok {
            self.failures += 1;
            console::print(format_args!("FAIL: {what}\n"));
        }
    }

    /// Success when nothing failed.
    pub fn verdict(&self) -> Verdict {
        if self.failures == 0 {
            Verdict::Success
        } else {
            Verdict::Failure
        }
    }
}

/// Runs a test body: prints its name, the verdict, and shuts down. Called by
/// [`guest_test!`].
#[cfg(target_os = "none")]
pub fn run(name: &str, start_info: u64, body: fn(&start_info::StartInfo) -> Verdict) -> ! {
    exceptions::init();
    if let Err(why) = hypercall::init() {
        // Without the hypercall page there is no console: report through the
        // debug port QEMU and Bochs both print (0xe9), then stop.
        console::early_print(why);
        hypercall::halt_forever();
    }
    console::print(format_args!(
        "--- Xen Test Framework-style guest: {name} ---\n"
    ));
    let info = match start_info::StartInfo::from_identity_mapped(start_info) {
        Ok(info) => info,
        Err(why) => {
            console::print(format_args!("bad hvm_start_info: {why}\n"));
            finish(Verdict::Error)
        }
    };
    finish(body(&info))
}

/// Prints the verdict and powers the guest off (crash reason for ERROR).
#[cfg(target_os = "none")]
pub fn finish(verdict: Verdict) -> ! {
    let reason = match verdict {
        Verdict::Error => abi::SHUTDOWN_CRASH,
        _ => abi::SHUTDOWN_POWEROFF,
    };
    finish_with(verdict, reason)
}

/// Prints the verdict and shuts down with `reason` (`SHUTDOWN_*`).
#[cfg(target_os = "none")]
pub fn finish_with(verdict: Verdict, reason: u32) -> ! {
    console::print(format_args!("Test result: {}\n", verdict.word()));
    hypercall::shutdown(reason)
}

/// The panic handler guests use: report, ERROR, crash.
#[cfg(target_os = "none")]
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print(format_args!("guest panic: {info}\n"));
    finish(Verdict::Error)
}

/// Declares a test guest: `guest_test!("name", body)` where
/// `body: fn(&StartInfo) -> Verdict`. On the host it builds a stub binary.
#[macro_export]
macro_rules! guest_test {
    ($name:expr, $body:path) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        extern "C" fn guest_main(start_info: u64) -> ! {
            $crate::run($name, start_info, $body)
        }

        #[cfg(target_os = "none")]
        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::panic(info)
        }

        #[cfg(not(target_os = "none"))]
        fn main() {
            let _body: fn(&$crate::start_info::StartInfo) -> $crate::Verdict = $body;
            eprintln!(
                "{} is a test guest: it runs under Ferrovisor (cargo xtask test)",
                $name
            );
        }
    };
}
