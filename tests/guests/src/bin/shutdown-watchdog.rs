//! Shuts down with SHUTDOWN_watchdog (4): the hypervisor must see that reason (sched.h).
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
fn test(_info: &StartInfo) -> Verdict {
    ferrovisor_test_guests::println!("shutting down with reason 4 (watchdog)");
    ferrovisor_test_guests::finish_with(Verdict::Success, 4)
}

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("shutdown-watchdog", test);
