//! Fatal reports: unexpected exceptions and panics print everything needed to debug them
//! (vector, error code, registers, control registers, which stack, a frame-pointer
//! backtrace), then every CPU stops.
//!
//! Output goes through [`console::emergency_write`], not `log`, so no `loglvl=` can hide
//! a crash and a fault inside the logger cannot deadlock the report.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use ferrovisor_arch::descriptors::{StackKind, classify_stack, on_ist_stack};
use ferrovisor_arch::trap::{TrapFrame, VECTOR_PAGE_FAULT, exception_mnemonic};
use ferrovisor_drivers::console;
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};

use crate::platform::{ExitCode, halt_forever, stop};

/// Set by the first fatal report; a second one (a fault while reporting) only says so.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Deepest backtrace printed.
const MAX_FRAMES: usize = 32;

macro_rules! out {
    ($($arg:tt)*) => { console::emergency_write(format_args!($($arg)*)) };
}

/// Trap entry from the assembly stubs. Every trap is fatal until interrupts are in use.
#[unsafe(no_mangle)]
extern "C" fn ferrovisor_trap(frame: &mut TrapFrame) {
    exception(frame)
}

fn exception(frame: &TrapFrame) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        out!(
            "FATAL: nested exception vector={} rip={:#018x} while reporting\n",
            frame.vector,
            frame.rip
        );
        halt_forever();
    }
    let vector = frame.vector as u8;
    out!(
        "FATAL: exception {} vector={} error={:#x} cpu={}\n",
        exception_mnemonic(vector),
        vector,
        frame.error_code,
        current_cpu()
    );
    if vector == VECTOR_PAGE_FAULT {
        out!("  page fault: {}\n", PageFaultError(frame.error_code));
    }
    out!(
        "  rip={:#018x} cs={:#06x} rflags={:#018x}\n  rsp={:#018x} ss={:#06x}\n",
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss
    );
    out!(
        "  cr2={:#018x} cr3={:#018x}\n  cr0={:#018x} cr4={:#018x}\n",
        Cr2::read_raw(),
        Cr3::read_raw().0.start_address().as_u64(),
        Cr0::read_raw(),
        Cr4::read_raw()
    );
    let regs = [
        ("rax", frame.rax),
        ("rbx", frame.rbx),
        ("rcx", frame.rcx),
        ("rdx", frame.rdx),
        ("rsi", frame.rsi),
        ("rdi", frame.rdi),
        ("rbp", frame.rbp),
        ("r8", frame.r8),
        ("r9", frame.r9),
        ("r10", frame.r10),
        ("r11", frame.r11),
        ("r12", frame.r12),
        ("r13", frame.r13),
        ("r14", frame.r14),
        ("r15", frame.r15),
    ];
    for row in regs.chunks(4) {
        out!(" ");
        for (name, value) in row {
            out!(" {name:>3}={value:#018x}");
        }
        out!("\n");
    }
    // The handler runs on the stack the CPU switched to; our own frame's address tells
    // whether that was an IST stack.
    let here = current_stack_pointer();
    out!("stack={}\n", classify_stack(here).name());
    if classify_stack(here) != StackKind::Kernel {
        out!("  (interrupted context's rsp={:#018x})\n", frame.rsp);
    }
    backtrace(frame.rip, frame.rbp);
    finish()
}

/// The panic handler: message and location, a backtrace, then every CPU stops.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        out!("FATAL: panic while reporting: {}\n", info.message());
        halt_forever();
    }
    match info.location() {
        Some(location) => out!(
            "PANIC at {}:{}:{}: {}\n",
            location.file(),
            location.line(),
            location.column(),
            info.message()
        ),
        None => out!("PANIC at <unknown>: {}\n", info.message()),
    }
    out!("  cpu={}\n", current_cpu());
    backtrace(0, current_frame_pointer());
    finish()
}

fn finish() -> ! {
    // SMP bring-up adds an NMI to every other CPU here; today only the boot CPU runs.
    out!("FATAL: halting all CPUs\n");
    stop(ExitCode::Fatal)
}

fn current_cpu() -> u32 {
    // Per-CPU state arrives with SMP bring-up; until then only CPU 0 runs.
    0
}

/// Walks saved frame pointers (the image is built with `force-frame-pointers`): each
/// frame holds the caller's RBP at [rbp] and the return address at [rbp+8]. Only
/// addresses on a known hypervisor stack are followed, so a corrupt chain ends the walk
/// instead of faulting.
fn backtrace(rip: u64, mut rbp: u64) {
    out!("backtrace:\n");
    let mut depth = 0;
    if rip != 0 {
        out!("  #{depth:<2} {rip:#018x}\n");
        depth += 1;
    }
    // Deep recursion (a stack overflow) repeats one return address: print it once with
    // a count instead of filling the report with copies.
    let mut last = 0;
    let mut repeats = 0u64;
    while depth < MAX_FRAMES && rbp != 0 && rbp.is_multiple_of(8) && is_stack_range(rbp, 16) {
        // SAFETY: [rbp, rbp+16) was just checked to lie on a mapped hypervisor stack.
        let [next, ret] = unsafe { *(rbp as *const [u64; 2]) };
        if ret == 0 {
            break;
        }
        if ret == last {
            repeats += 1;
        } else {
            if repeats > 0 {
                out!("      ... {repeats} more frame(s) at {last:#018x}\n");
                repeats = 0;
            }
            out!("  #{depth:<2} {ret:#018x}\n");
            depth += 1;
            last = ret;
        }
        if next <= rbp {
            break; // stacks grow down: a caller's frame is always higher
        }
        rbp = next;
    }
    if repeats > 0 {
        out!("      ... {repeats} more frame(s) at {last:#018x}\n");
    }
}

fn is_stack_range(addr: u64, len: u64) -> bool {
    let (_guard, bottom, top) = ferrovisor_boot::entry::boot_stack();
    (addr >= bottom && addr.saturating_add(len) <= top)
        || (on_ist_stack(addr) && on_ist_stack(addr + len - 8))
}

fn current_stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads RSP into a register; no memory access, no side effects.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}

fn current_frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads RBP into a register; no memory access, no side effects.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags))
    };
    rbp
}

/// #PF error code bits (SDM Vol. 3A §4.7).
struct PageFaultError(u64);

impl fmt::Display for PageFaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(if e & 1 != 0 {
            "protection violation"
        } else {
            "not present"
        })?;
        f.write_str(if e & 2 != 0 { ", write" } else { ", read" })?;
        if e & 4 != 0 {
            f.write_str(", user")?;
        }
        if e & 8 != 0 {
            f.write_str(", reserved bit set")?;
        }
        if e & 16 != 0 {
            f.write_str(", instruction fetch")?;
        }
        Ok(())
    }
}
