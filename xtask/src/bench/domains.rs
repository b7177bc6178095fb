//! `cargo xtask bench domains`: the cost of creating and destroying a 64 MiB domain
//! (RAM claimed whole and zeroed, nested page tables, vCPU), averaged over the churn
//! self test's 500 cycles, in instructions (QEMU `-icount shift=0`). Run twice; the
//! figures must agree.

use std::time::Duration;

use ferrovisor_tests::catalogue::{Check, Online, Test, on, passes};
use ferrovisor_tests::{Boot, Emulator, Platform};

use crate::emu;

static BENCH: Test = Test {
    name: "bench-domains",
    about: "create+destroy cost of a 64 MiB domain",
    cmdline: "loglvl=info selftest=churn",
    modules: &[],
    guests: &[passes("hello")],
    runs: &[on(Platform::QemuSvm, Boot::Kernel)],
    mem_mib: 256,
    // Adds -icount itself, and keeps Bochs at the baseline's 4 MIPS.
    instruction_clock: false,
    check: Check::SelfTest {
        online: Online::All,
    },
};

/// Runs the bench; returns whether the two runs agreed.
pub fn run() -> bool {
    let (elf, modules) = match super::images(&["hello"], &[]) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("bench domains: {e}");
            return false;
        }
    };
    let case = super::case(&BENCH, BENCH.runs[0]);
    let mut figures = Vec::new();
    for _ in 0..2 {
        let mut prepared = match emu::prepare(&case, &elf, &modules) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("bench domains: {e}");
                return false;
            }
        };
        if prepared.emulator == Emulator::Qemu {
            prepared.command.args(["-icount", "shift=0"]);
        }
        let outcome = emu::run(prepared, Duration::from_secs(600));
        let value = outcome.serial.lines().find_map(|line| {
            let rest = line.split("bench: domain-create-destroy-64mib ").nth(1)?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        });
        match value {
            Some(v) => figures.push(v),
            None => {
                eprintln!(
                    "bench domains: no figure in {}",
                    emu::case_dir(&case).display()
                );
                return false;
            }
        }
    }
    println!(
        "bench: domain-create-destroy-64mib {} {} instructions",
        case.label(),
        figures[0]
    );
    if figures[0] != figures[1] {
        eprintln!("bench domains: runs disagree: {figures:?}");
        return false;
    }
    true
}
