//! `cargo xtask bench exits`: the hypervisor's exit round trips, in instructions, measured
//! by the `bench` test guest from inside a PVH domain (see docs/benchmarks.md). QEMU runs
//! with `-icount shift=0` (the TSC counts instructions); Bochs' TSC counts instructions
//! on its own. Each platform runs twice and the figures must agree (they are
//! deterministic); the CPUID round trip has a target of 250 instructions.

use std::time::Duration;

use ferrovisor_tests::catalogue::{Case, Check, Test, on, passes};
use ferrovisor_tests::{Boot, Emulator, Platform};

use crate::{emu, image};

/// The exit round trip a CPUID may cost, with the speculative mitigations included.
const CPUID_TARGET: u64 = 250;

static BENCH: Test = Test {
    name: "bench-exits",
    about: "exit round-trip costs measured from inside a guest",
    cmdline: "loglvl=info selftest=guests",
    modules: &[],
    guests: &[passes("bench")],
    runs: &[
        on(Platform::QemuSvm, Boot::Kernel),
        on(Platform::BochsVmx, Boot::Grub),
        on(Platform::BochsSvm, Boot::Grub),
    ],
    mem_mib: 256,
    // Adds -icount itself, and keeps Bochs at the baseline's 4 MIPS.
    instruction_clock: false,
    check: Check::Guests,
};

/// Runs the bench on every platform; returns whether the figures were repeatable and
/// the targets met.
pub fn run() -> bool {
    let (elf, modules) = match super::images(&["bench"], &[]) {
        Ok(built) => built,
        Err(e) => {
            eprintln!("bench exits: {e}");
            return false;
        }
    };
    let mut ok = true;
    for run in BENCH.runs {
        let case = super::case(&BENCH, *run);
        let mut runs = Vec::new();
        for _ in 0..2 {
            match measure(&case, &elf, &modules) {
                Ok(figures) => runs.push(figures),
                Err(e) => {
                    eprintln!("bench exits on {}: {e}", case.label());
                    ok = false;
                }
            }
        }
        let Some(first) = runs.first() else { continue };
        if runs.iter().any(|r| r != first) {
            eprintln!(
                "bench exits on {}: figures differ between runs: {runs:?}",
                case.label()
            );
            ok = false;
        }
        for (name, value) in first {
            println!("bench: {name} {} {value} instructions", case.label());
            if name == "cpuid-roundtrip" && *value > CPUID_TARGET {
                eprintln!(
                    "bench exits on {}: cpuid round trip {value} > target {CPUID_TARGET} instructions",
                    case.label()
                );
                ok = false;
            }
        }
    }
    ok
}

/// One boot of the bench guest; the `bench:` figures it printed.
fn measure(
    case: &Case,
    elf: &std::path::Path,
    modules: &[image::Module],
) -> Result<Vec<(String, u64)>, String> {
    let mut prepared = emu::prepare(case, elf, modules)?;
    if prepared.emulator == Emulator::Qemu {
        prepared.command.args(["-icount", "shift=0"]);
    }
    let outcome = emu::run(prepared, Duration::from_secs(300));
    let figures: Vec<(String, u64)> = outcome
        .serial
        .lines()
        .filter_map(|line| {
            let rest = line.split("bench: ").nth(1)?;
            let mut words = rest.split_whitespace();
            let name = words.next()?;
            let value = words.next()?.parse().ok()?;
            (name != "loop-overhead").then(|| (name.to_string(), value))
        })
        .collect();
    if figures.is_empty() {
        return Err(format!(
            "no figures in the serial log ({})",
            emu::case_dir(case).display()
        ));
    }
    Ok(figures)
}
