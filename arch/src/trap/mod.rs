//! Traps: the frame the entry stubs build, exception names, and (on bare metal) the stubs.

mod frame;
#[cfg(target_os = "none")]
mod stubs;

pub use frame::{TrapFrame, exception_mnemonic, has_error_code};
#[cfg(target_os = "none")]
pub use stubs::{TRAP_STUB_STRIDE, trap_stub_address};

/// Vector of the double-fault exception (#DF), delivered on its own IST stack.
pub const VECTOR_DOUBLE_FAULT: u8 = 8;
/// Vector of the non-maskable interrupt, delivered on its own IST stack.
pub const VECTOR_NMI: u8 = 2;
/// Vector of the machine-check exception (#MC), delivered on its own IST stack.
pub const VECTOR_MACHINE_CHECK: u8 = 18;
/// Vector of the page-fault exception (#PF).
pub const VECTOR_PAGE_FAULT: u8 = 14;
