//! `cargo xtask bench [NAME]`: benchmarks that print `bench: <name> <platform> <value> <unit>`
//! lines on stdout. With no NAME, every bench runs. A bench that misses one of its targets
//! says which on stderr and makes the command exit with status 1.

mod domains;
mod exits;
mod sched;
mod sim;
mod wakeup;

/// A benchmark: its name and its entry point (returns whether every target was met).
struct Bench {
    name: &'static str,
    run: fn() -> bool,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "exits",
        run: exits::run,
    },
    Bench {
        name: "domains",
        run: domains::run,
    },
    Bench {
        name: "sched",
        run: sched::run,
    },
    Bench {
        name: "wakeup",
        run: wakeup::run,
    },
];

/// Runs `cargo xtask bench [NAME]`; returns the process exit code.
pub fn bench(rest: &[String]) -> Result<i32, String> {
    let selected: Vec<&Bench> = match rest {
        [] => BENCHES.iter().collect(),
        [name] => {
            let b = BENCHES.iter().find(|b| b.name == name.as_str());
            vec![b.ok_or_else(|| {
                let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
                format!("bench: unknown bench {name:?} (have: {})", names.join(", "))
            })?]
        }
        _ => return Err("bench: at most one NAME".into()),
    };
    let mut ok = true;
    for b in selected {
        let started = std::time::Instant::now();
        ok &= (b.run)();
        eprintln!(
            "xtask: bench {} took {:.1} s",
            b.name,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if ok { 0 } else { 1 })
}

/// The self-test image, the test guests `guests` and the generated modules `specs`,
/// built for a bench; `Err` says what failed to build.
fn images(
    guests: &[&str],
    specs: &[ferrovisor_tests::ModuleSpec],
) -> Result<(std::path::PathBuf, Vec<crate::image::Module>), String> {
    let describe = |(why, output): (String, String)| format!("{why}\n{output}");
    let elf = crate::image::build_captured(true).map_err(describe)?;
    let mut modules = crate::image::generated_modules(specs)?;
    modules.extend(crate::image::build_guests(guests).map_err(describe)?);
    Ok((elf, modules))
}

/// The case of `test` on `run` (benches take one run at a time).
fn case(
    test: &'static ferrovisor_tests::catalogue::Test,
    run: ferrovisor_tests::catalogue::Run,
) -> ferrovisor_tests::catalogue::Case {
    ferrovisor_tests::catalogue::Case {
        test,
        platform: run.platform,
        boot: run.boot,
        cpus: run.cpus,
    }
}

/// Prints one result line.
fn report(name: &str, value: f64, unit: &str) {
    let digits = if value.abs() >= 100.0 { 1 } else { 3 };
    println!("bench: {name} sim {value:.digits$} {unit}");
}
