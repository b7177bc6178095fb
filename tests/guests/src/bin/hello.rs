//! The smallest guest: finds Xen, prints through console_io, powers off with SUCCESS.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

fn test(_info: &StartInfo) -> Verdict {
    #[cfg(target_os = "none")]
    ferrovisor_test_guests::println!("Hello from a PVH guest on Ferrovisor");
    Verdict::Success
}

guest_test!("hello", test);
