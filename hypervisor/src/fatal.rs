//! Fatal reports: unexpected exceptions and panics print everything needed to debug them
//! (vector, error code, registers, control registers, which stack, a frame-pointer
//! backtrace), then every CPU stops.
//!
//! Output goes through [`console::emergency_write`], not `log`, so no `loglvl=` can hide
//! a crash and a fault inside the logger cannot deadlock the report.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use ferrovisor_arch::descriptors::{IstStacks, StackKind};
use ferrovisor_arch::trap::{TrapFrame, VECTOR_NMI, VECTOR_PAGE_FAULT, exception_mnemonic};
use ferrovisor_drivers::console;
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};

use crate::percpu;
use crate::platform::{ExitCode, halt_forever, stop};

/// Set by the first fatal report; a second one (a fault while reporting) only says so.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Deepest backtrace printed.
const MAX_FRAMES: usize = 32;

macro_rules! out {
    ($($arg:tt)*) => { console::emergency_write(format_args!($($arg)*)) };
}

/// CPUs that have stopped in response to the stop NMI.
static CPUS_STOPPED: AtomicU32 = AtomicU32::new(0);
/// Serialises whole multi-line reports from different CPUs (bounded wait, see `report_lock`).
static REPORT_LOCK: AtomicBool = AtomicBool::new(false);

/// Trap entry from the assembly stubs: interrupts go to their handlers; an NMI while
/// the machine is stopping stops this CPU; every other exception is fatal.
#[unsafe(no_mangle)]
extern "C" fn ferrovisor_trap(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector >= 32 {
        crate::smp::handle_interrupt(vector);
        return;
    }
    if vector == VECTOR_NMI && crate::smp::STOPPING.load(Ordering::Acquire) {
        stopped_by_nmi(frame);
    }
    exception(frame)
}

/// Takes the report lock for a while; proceeds without it if a wedged CPU holds it.
fn report_lock() -> bool {
    for _ in 0..(1u32 << 22) {
        if REPORT_LOCK
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

fn report_unlock(held: bool) {
    if held {
        REPORT_LOCK.store(false, Ordering::Release);
    }
}

/// Another CPU hit a fatal error and sent the stop NMI: report where this CPU was and
/// halt for good.
fn stopped_by_nmi(frame: &TrapFrame) -> ! {
    let held = report_lock();
    out!(
        "cpu {}: stopped by NMI: rip={:#018x} rsp={:#018x} rflags={:#018x}\n",
        current_cpu(),
        frame.rip,
        frame.rsp,
        frame.rflags
    );
    backtrace(frame.rip, frame.rbp);
    report_unlock(held);
    CPUS_STOPPED.fetch_add(1, Ordering::AcqRel);
    halt_forever()
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
    let held = report_lock();
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
    let on = cpu_ist_stacks().classify(here);
    out!("stack={}\n", on.name());
    if on != StackKind::Kernel {
        out!("  (interrupted context's rsp={:#018x})\n", frame.rsp);
    }
    backtrace(frame.rip, frame.rbp);
    finish(held)
}

/// The panic handler: message and location, a backtrace, then every CPU stops.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        out!("FATAL: panic while reporting: {}\n", info.message());
        halt_forever();
    }
    let held = report_lock();
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
    finish(held)
}

fn finish(held: bool) -> ! {
    report_unlock(held);
    // Stop every other CPU with an NMI (it cannot be masked, so a CPU spinning with
    // interrupts off stops too) and give each a moment to print where it was.
    let others = percpu::online_count().saturating_sub(1) as u32;
    if others > 0 {
        crate::smp::STOPPING.store(true, Ordering::Release);
        crate::smp::nmi_all_but_self();
        for _ in 0..(1u64 << 28) {
            if CPUS_STOPPED.load(Ordering::Acquire) >= others {
                break;
            }
            core::hint::spin_loop();
        }
        out!(
            "FATAL: {} of {others} other CPU(s) reported stopping\n",
            CPUS_STOPPED.load(Ordering::Acquire)
        );
    }
    out!("FATAL: halting all CPUs\n");
    stop(ExitCode::Fatal)
}

fn current_cpu() -> u32 {
    percpu::try_current().map_or(0, |cpu| cpu.index)
}

fn cpu_ist_stacks() -> IstStacks {
    percpu::try_current().map_or_else(IstStacks::boot_cpu, |cpu| cpu.ist.clone())
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
    let stack = percpu::try_current().map_or_else(
        || {
            let (_guard, bottom, top) = ferrovisor_boot::entry::boot_stack();
            bottom..top
        },
        |cpu| cpu.stack.clone(),
    );
    (addr >= stack.start && addr.saturating_add(len) <= stack.end)
        || cpu_ist_stacks().contains(addr, len)
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
