//! Console output through `HYPERVISOR_console_io(CONSOLEIO_write, len, buf)`.

use core::fmt::{self, Write};

use crate::abi;
use crate::hypercall;

struct XenConsole;

impl Write for XenConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(256) {
            // SAFETY: console_io reads `len` bytes at the guest pointer, which is a live
            // slice in identity-mapped guest memory.
            let ret = unsafe {
                hypercall::hypercall3(
                    abi::HYPERVISOR_CONSOLE_IO,
                    abi::CONSOLEIO_WRITE,
                    chunk.len() as u64,
                    chunk.as_ptr() as u64,
                )
            };
            if ret < 0 {
                return Err(fmt::Error);
            }
        }
        Ok(())
    }
}

/// Prints formatted text on the hypervisor console.
pub fn print(args: fmt::Arguments<'_>) {
    let _ = XenConsole.write_fmt(args);
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
