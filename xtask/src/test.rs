//! `cargo xtask test`: lints, host unit tests, then the emulator catalogue.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ferrovisor_tests::ModuleSpec;
use ferrovisor_tests::verdict::summary;
use ferrovisor_tests::{Boot, Case, Emulator, Platform, Verdict, cases};

use crate::emu;
use crate::host::{self, Need};
use crate::image::{self, Module, TARGET};
use crate::util;

/// Options of `cargo xtask test`.
#[derive(Default)]
pub struct Options {
    /// Substring of `<test> on <platform>`.
    pub filter: Option<String>,
    /// `--platform NAME` (a platform name or `host`).
    pub platform: Option<String>,
    /// `--list`.
    pub list: bool,
    /// `--jobs N`: emulator tests run at once.
    pub jobs: usize,
}

/// A host step: lint, format check or unit tests.
struct HostStep {
    name: &'static str,
    args: &'static [&'static str],
}

const HOST_STEPS: &[HostStep] = &[
    HostStep {
        name: "fmt",
        args: &["fmt", "--all", "--check"],
    },
    HostStep {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    },
    HostStep {
        name: "clippy-kernel",
        args: &[
            "clippy",
            "-p",
            "ferrovisor",
            "-p",
            "ferrovisor-test-guests",
            "--target",
            TARGET,
            "--release",
            "--features",
            "selftest",
            "--",
            "-D",
            "warnings",
        ],
    },
    HostStep {
        name: "clippy-kernel-production",
        args: &[
            "clippy",
            "-p",
            "ferrovisor",
            "--target",
            TARGET,
            "--release",
            "--",
            "-D",
            "warnings",
        ],
    },
    HostStep {
        name: "unit-tests",
        args: &["test", "--workspace"],
    },
];

/// Result counts and printing (one line per result, then a tail when it failed).
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn report(&mut self, title: &str, verdict: &Verdict, details: &str) {
        match verdict {
            Verdict::Pass => self.passed += 1,
            Verdict::Fail(_) => self.failed += 1,
            Verdict::Skip(_) => self.skipped += 1,
        }
        let mut text = verdict.line(title);
        text.push('\n');
        if matches!(verdict, Verdict::Fail(_)) {
            text.push_str(details);
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

fn progress(msg: &str) {
    eprintln!("xtask: {msg}");
}

fn host_title(name: &str) -> String {
    format!("{name} on host")
}

/// Runs `cargo xtask test`; returns the process exit code.
pub fn test(opts: Options) -> Result<i32, String> {
    let filter = opts.filter.as_deref();
    let host_platform = opts.platform.as_deref() == Some("host");
    let platform = match opts.platform.as_deref() {
        None | Some("host") => None,
        Some(name) => Some(Platform::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!(
                "unknown platform {name:?} (known: host, {})",
                names.join(", ")
            )
        })?),
    };
    let host_ok = opts.platform.is_none() || host_platform;
    let host_wanted = |name: &str| host_ok && filter.is_none_or(|f| host_title(name).contains(f));
    let host_steps: Vec<&HostStep> = HOST_STEPS.iter().filter(|s| host_wanted(s.name)).collect();
    let mut selected: Vec<Case> = if host_platform {
        Vec::new()
    } else {
        cases()
            .into_iter()
            .filter(|c| c.selected(filter, platform))
            .collect()
    };

    if opts.list {
        for s in &host_steps {
            println!("{}", host_title(s.name));
        }
        if host_wanted("build") {
            println!("{}", host_title("build"));
        }
        for c in &selected {
            println!("{}", c.title());
        }
        return Ok(0);
    }

    let mut tally = Tally::default();
    let root = util::root();
    for step in &host_steps {
        let title = host_title(step.name);
        progress(&format!("running {title}"));
        if step.args.contains(&TARGET)
            && let Err(e) = image::ensure_target()
        {
            tally.report(&title, &Verdict::Fail(e), "");
            continue;
        }
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&root).args(step.args);
        let (verdict, details) = match util::run_captured(&mut cmd) {
            Ok(out) if out.ok => (Verdict::Pass, String::new()),
            Ok(out) => (
                Verdict::Fail(format!("`{}` {}", util::describe(&cmd), out.status)),
                util::indented_tail(&out.output, 40),
            ),
            Err(e) => (Verdict::Fail(e), String::new()),
        };
        tally.report(&title, &verdict, &details);
    }
    // The production image must build too: it is what `cargo xtask run` boots.
    if host_wanted("build") {
        progress("building the production image");
        match image::build_captured(false) {
            Ok(_) => tally.report(&host_title("build"), &Verdict::Pass, ""),
            Err((why, output)) => tally.report(
                &host_title("build"),
                &Verdict::Fail(why),
                &util::indented_tail(&output, 40),
            ),
        }
    }

    // KVM: only when asked for, or when it works here and this is not CI.
    let kvm_asked = platform == Some(Platform::Kvm);
    let mut kvm_skip: Option<String> = None;
    if selected.iter().any(|c| c.platform == Platform::Kvm) {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
        if !kvm_asked && ci {
            selected.retain(|c| c.platform != Platform::Kvm);
        } else {
            progress("probing KVM");
            if let Err(why) = emu::kvm_usable() {
                if kvm_asked {
                    kvm_skip = Some(why);
                } else {
                    progress(&format!("not running the kvm platform: {why}"));
                    selected.retain(|c| c.platform != Platform::Kvm);
                }
            }
        }
    }

    if !selected.is_empty() {
        // (title of the failing step, reason, output)
        let ready = host::ensure(&needs(&selected))
            .map_err(|e| ("host-packages", e, String::new()))
            .and_then(|()| {
                progress("building the selftest image");
                image::build_captured(true).map_err(|(why, out)| ("build-selftest", why, out))
            })
            .and_then(|elf| {
                // Every plain module any selected test passes, each generated once.
                let mut specs: Vec<ModuleSpec> = Vec::new();
                for spec in selected.iter().flat_map(|c| c.test.modules.iter()) {
                    if !specs.iter().any(|s| s.name == spec.name) {
                        specs.push(*spec);
                    }
                }
                let mut modules = image::generated_modules(&specs)
                    .map_err(|e| ("build-selftest", e, String::new()))?;
                let mut guests: Vec<&str> = selected
                    .iter()
                    .flat_map(|c| c.test.guests.iter().map(|g| g.name))
                    .collect();
                guests.sort_unstable();
                guests.dedup();
                if !guests.is_empty() {
                    progress("building the test guests");
                    let built = image::build_guests(&guests)
                        .map_err(|(why, out)| ("build-guests", why, out))?;
                    modules.extend(built);
                }
                Ok((elf, modules))
            });
        match ready {
            Err((step, why, output)) => {
                tally.report(
                    &host_title(step),
                    &Verdict::Fail(why),
                    &util::indented_tail(&output, 40),
                );
                for c in &selected {
                    tally.report(&c.title(), &Verdict::Skip(format!("{step} failed")), "");
                }
            }
            Ok((elf, modules)) => {
                let runnable: Vec<Case> = selected
                    .into_iter()
                    .filter(|c| match (&kvm_skip, c.platform) {
                        (Some(why), Platform::Kvm) => {
                            tally.report(&c.title(), &Verdict::Skip(why.clone()), "");
                            false
                        }
                        _ => true,
                    })
                    .collect();
                run_cases(runnable, elf, modules, opts.jobs.max(1), &mut tally);
            }
        }
    }

    println!("{}", summary(tally.passed, tally.failed, tally.skipped));
    Ok(if tally.failed > 0 { 1 } else { 0 })
}

/// The host packages the selected cases need.
fn needs(cases: &[Case]) -> Vec<Need> {
    let mut needs = Vec::new();
    if cases
        .iter()
        .any(|c| c.platform.emulator() == Emulator::Qemu)
    {
        needs.push(Need::Qemu);
    }
    if cases.iter().any(|c| c.boot == Boot::Grub) {
        needs.push(Need::Grub);
    }
    if cases
        .iter()
        .any(|c| c.platform.emulator() == Emulator::Bochs)
    {
        needs.push(Need::Bochs);
    }
    needs
}

/// Runs emulator cases on `jobs` worker threads.
fn run_cases(cases: Vec<Case>, elf: PathBuf, modules: Vec<Module>, jobs: usize, tally: &mut Tally) {
    let n = cases.len();
    progress(&format!(
        "running {n} emulator test{} ({jobs} at a time)",
        if n == 1 { "" } else { "s" }
    ));
    let queue = Arc::new(Mutex::new(cases.into_iter().collect::<VecDeque<Case>>()));
    let shared = Arc::new(Mutex::new(std::mem::take(tally)));
    let workers: Vec<_> = (0..jobs.min(n.max(1)))
        .map(|_| {
            let queue = Arc::clone(&queue);
            let shared = Arc::clone(&shared);
            let elf = elf.clone();
            let modules = modules.clone();
            std::thread::spawn(move || {
                // `pop` takes the lock only while it pops, not while the case runs.
                while let Some(case) = pop(&queue) {
                    let (verdict, details) = run_case(&case, &elf, &modules);
                    if let Ok(mut t) = shared.lock() {
                        t.report(&case.title(), &verdict, &details);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if w.join().is_err()
            && let Ok(mut t) = shared.lock()
        {
            t.report(
                "harness worker",
                &Verdict::Fail("a worker thread panicked".into()),
                "",
            );
        }
    }
    if let Ok(mut t) = shared.lock() {
        *tally = std::mem::take(&mut *t);
    }
}

fn pop(queue: &Mutex<VecDeque<Case>>) -> Option<Case> {
    queue.lock().ok()?.pop_front()
}

/// Prepares, runs and judges one case; the details are the serial tail for failures.
fn run_case(case: &Case, elf: &std::path::Path, modules: &[Module]) -> (Verdict, String) {
    let dir = emu::case_dir(case);
    let where_ = format!("    (artefacts: {}/)\n", dir.display());
    let prepared = match emu::prepare(case, elf, modules) {
        Ok(p) => p,
        Err(why) => {
            return (
                Verdict::Fail(format!("cannot prepare the run: {why}")),
                where_,
            );
        }
    };
    let outcome = emu::run(prepared, case.platform.timeout());
    let verdict = case.check(&outcome);
    let mut details = util::indented_tail(&outcome.serial, 40);
    if details.is_empty() {
        details = "    (the serial log is empty)\n".into();
    }
    details.push_str(&where_);
    (verdict, details)
}
