//! The Ferrovisor image. On the host this file builds a stub that says how to build the
//! real thing, so `cargo build`/`cargo test` of the whole workspace work on a workstation.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ferrovisor is a bare-metal image: build it with `cargo xtask build`");
    std::process::exit(1);
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
