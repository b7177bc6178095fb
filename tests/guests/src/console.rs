//! Console output through `HYPERVISOR_console_io(CONSOLEIO_write, len, buf)`.
//!
//! Several vCPUs may print at once, so each `print` holds a lock for the whole message
//! and hands the hypervisor one line per hypercall: lines from different vCPUs never
//! interleave mid-line, whatever the hypervisor does with partial lines.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::abi;
use crate::hypercall;

/// Bytes per `console_io` write (the hypervisor's per-call limit).
const CHUNK: usize = 256;

/// Who holds the console: 0 free, else the holder's vCPU id + 1. Knowing the holder
/// lets a vCPU that faults while printing still report the fault (the exception
/// handler prints) instead of waiting for itself forever.
static OWNER: AtomicU32 = AtomicU32::new(0);

/// Spins between yields while another vCPU holds the console: short enough that a
/// holder descheduled on our physical CPU gets it back soon.
const SPINS_PER_YIELD: u32 = 1024;

/// Takes the console for vCPU tag `me`; false if this vCPU already holds it (a nested
/// print from an exception or panic raised while printing).
fn lock(me: u32) -> bool {
    let mut spins = 0;
    loop {
        match OWNER.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(holder) if holder == me => return false,
            Err(_) => {}
        }
        spins += 1;
        if spins % SPINS_PER_YIELD == 0 {
            hypercall::sched_yield();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// Writes `bytes` with `console_io`; the caller keeps each call within `CHUNK`.
fn write_bytes(bytes: &[u8]) -> fmt::Result {
    if bytes.is_empty() {
        return Ok(());
    }
    // SAFETY: console_io reads `len` bytes at the guest pointer, which is a live slice in
    // identity-mapped guest memory.
    let ret = unsafe {
        hypercall::hypercall3(
            abi::HYPERVISOR_CONSOLE_IO,
            abi::CONSOLEIO_WRITE,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
        )
    };
    if ret < 0 { Err(fmt::Error) } else { Ok(()) }
}

/// Collects output and writes it a line at a time (or `CHUNK` bytes, for longer lines).
struct LineWriter {
    buffer: [u8; CHUNK],
    len: usize,
}

impl LineWriter {
    fn flush(&mut self) -> fmt::Result {
        let result = write_bytes(&self.buffer[..self.len]);
        self.len = 0;
        result
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &byte in s.as_bytes() {
            self.buffer[self.len] = byte;
            self.len += 1;
            if byte == b'\n' || self.len == CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }
}

/// Prints formatted text on the hypervisor console.
pub fn print(args: fmt::Arguments<'_>) {
    let me = crate::smp::current_vcpu() + 1;
    let locked = lock(me);
    let mut line = LineWriter {
        buffer: [0; CHUNK],
        len: 0,
    };
    let _ = line.write_fmt(args).and_then(|()| line.flush());
    if locked {
        OWNER.store(0, Ordering::Release);
    }
}

/// Before hypercalls work: the 0xE9 debug port (QEMU `-debugcon`, Bochs' port E9 hack)
/// or nothing. Only used to say why a guest cannot start.
pub fn early_print(message: &str) {
    for byte in message.bytes().chain(*b"\n") {
        // SAFETY: port 0xE9 is the emulators' debug console; in a guest an unclaimed
        // port write is dropped by the hypervisor.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0xE9u16, in("al") byte, options(nostack, nomem))
        };
    }
}

/// `println!` for guests.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
