//! Stopping the machine: halting, and (in self-test builds) telling the emulator the verdict.

/// Verdicts a self-test build reports to the test harness through QEMU's
/// `isa-debug-exit` device (QEMU exits with status `(code << 1) | 1`). See docs/testing.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(
    dead_code,
    reason = "the harness understands every verdict; not all are used yet"
)]
pub enum ExitCode {
    /// `Test result: SUCCESS`.
    Success = 0x10,
    /// `Test result: FAILURE`.
    Failure = 0x11,
    /// The hypervisor stopped after a fatal report (exception or panic).
    Fatal = 0x12,
    /// `Test result: SKIP`.
    Skip = 0x13,
    /// `Test result: ERROR`.
    Error = 0x14,
}

/// Stops this CPU for good: interrupts off, then HLT forever (an NMI would resume HLT,
/// hence the loop).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// Ends the run. Self-test builds power the emulator off with `code` so tests finish
/// promptly; production builds halt (an administrator reads the console).
pub fn stop(code: ExitCode) -> ! {
    #[cfg(feature = "selftest")]
    emulator_exit(code);
    #[cfg(not(feature = "selftest"))]
    let _ = code;
    halt_forever()
}

/// Self-test builds only run in emulators: QEMU's isa-debug-exit at port 0xf4 and Bochs'
/// shutdown port 0x8900. Each emulator ignores the other's port.
#[cfg(feature = "selftest")]
fn emulator_exit(code: ExitCode) {
    use x86_64::instructions::port::Port;
    let mut qemu_debug_exit: Port<u32> = Port::new(0xf4);
    // SAFETY: self-test images run only under QEMU (isa-debug-exit configured at 0xf4 by
    // the harness) or Bochs (no device at 0xf4; the write is dropped). Never shipped to
    // hardware: the `selftest` feature is for test builds.
    unsafe { qemu_debug_exit.write(u32::from(code as u8)) };
    let mut bochs_shutdown: Port<u8> = Port::new(0x8900);
    for &byte in b"Shutdown" {
        // SAFETY: Bochs' shutdown port; under QEMU nothing decodes 0x8900.
        unsafe { bochs_shutdown.write(byte) };
    }
}
