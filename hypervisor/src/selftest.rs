//! In-hypervisor self tests for emulator runs, chosen with `selftest=NAME` (test builds
//! only). Each deliberate fault first prints what the fatal report must say, so the
//! harness compares the report against an expectation rather than a hard-coded value:
//!
//! | NAME             | what happens                                  | report must show |
//! |------------------|-----------------------------------------------|------------------|
//! | `boot` (default) | nothing: the boot itself is the test          | `Test result: SUCCESS` |
//! | `null-deref`     | reads virtual address 0                       | #PF, RIP of the load, CR2 0 |
//! | `ro-write`       | writes a `.rodata` object                     | #PF, RIP of the store, CR2 of the object |
//! | `stack-overflow` | recurses into the boot stack's guard page     | #DF on the #DF IST stack, CR2 in the guard |
//! | `panic`          | panics                                        | message and location |

use ferrovisor_boot::BootInfo;
use ferrovisor_boot::cmdline::Options;
use ferrovisor_drivers::console_print;

use crate::platform::{ExitCode, stop};

core::arch::global_asm!(
    r#"
    .section .text.selftest, "ax"
    .global selftest_read_null
selftest_read_null:
    xor eax, eax
    .global selftest_read_null_fault
selftest_read_null_fault:
    mov rax, qword ptr [rax]
    ret

    .global selftest_write_u64
selftest_write_u64:
    .global selftest_write_u64_fault
selftest_write_u64_fault:
    mov qword ptr [rdi], rsi
    ret
    "#
);

unsafe extern "C" {
    fn selftest_read_null() -> u64;
    static selftest_read_null_fault: u8;
    fn selftest_write_u64(address: *const u64, value: u64);
    static selftest_write_u64_fault: u8;
}

/// A read-only object for `ro-write` to hit: immutable statics live in `.rodata`.
static READ_ONLY_TARGET: u64 = 0x5afe_5afe;

pub fn run(_boot: &BootInfo, options: &Options) -> ! {
    let name = options.selftest.as_ref().map_or("boot", |s| s.as_str());
    console_print!("selftest: running '{name}'\n");
    match name {
        "boot" => verdict(ExitCode::Success),
        "null-deref" => {
            let rip = (&raw const selftest_read_null_fault) as u64;
            console_print!(
                "selftest: expect vector=14 rip={rip:#018x} cr2={:#018x}\n",
                0
            );
            // SAFETY: deliberately faults (virtual page 0 is unmapped); the fatal handler
            // reports and stops the machine, so nothing runs after the load.
            let value = unsafe { selftest_read_null() };
            console_print!("selftest: read {value:#x} from address 0: page 0 is mapped\n");
            verdict(ExitCode::Failure)
        }
        "ro-write" => {
            let rip = (&raw const selftest_write_u64_fault) as u64;
            let target = &raw const READ_ONLY_TARGET;
            console_print!(
                "selftest: expect vector=14 rip={rip:#018x} cr2={:#018x}\n",
                target as u64
            );
            // SAFETY: deliberately faults: the target is in .rodata, mapped read-only
            // with CR0.WP set, so the store never happens and the fatal handler stops
            // the machine.
            unsafe { selftest_write_u64(target, 0xbad) };
            console_print!("selftest: wrote to .rodata: it is writable\n");
            verdict(ExitCode::Failure)
        }
        "stack-overflow" => {
            let (guard, _, _) = ferrovisor_boot::entry::boot_stack();
            console_print!(
                "selftest: expect vector=8 cr2-min={guard:#018x} cr2-max={:#018x} stack=df-ist\n",
                guard + 4095
            );
            let depth = recurse(0);
            console_print!("selftest: recursed {depth} frames without a fault\n");
            verdict(ExitCode::Failure)
        }
        "panic" => deliberate_panic(),
        other => {
            console_print!("selftest: unknown self test '{other}'\n");
            verdict(ExitCode::Error)
        }
    }
}

#[track_caller]
fn deliberate_panic() -> ! {
    let here = core::panic::Location::caller();
    let message = "selftest: deliberate panic";
    console_print!(
        "selftest: expect panic=\"{message}\" location={}:{}\n",
        here.file(),
        here.line()
    );
    // In a #[track_caller] function the panic reports the caller's location too.
    panic!("{message}")
}

/// Recurses until the stack runs into its guard page. Each frame keeps a buffer alive
/// across the call so the recursion is neither a loop nor a tail call.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[0] = depth as u8;
    core::hint::black_box(&mut frame);
    if depth == u64::MAX {
        return depth;
    }
    recurse(depth + 1) + u64::from(core::hint::black_box(frame)[0])
}

fn verdict(code: ExitCode) -> ! {
    let word = match code {
        ExitCode::Success => "SUCCESS",
        ExitCode::Failure => "FAILURE",
        ExitCode::Skip => "SKIP",
        ExitCode::Error | ExitCode::Fatal => "ERROR",
    };
    console_print!("Test result: {word}\n");
    stop(code)
}

/// An AP's part in the self tests: idle with interrupts enabled.
pub fn ap_run(_cpu: &'static crate::percpu::PerCpu) -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
    }
}
