//! Ferrovisor's developer tooling: `cargo xtask build|iso|run|test`.
//!
//! See `docs/testing.md`. Everything runs from the workspace root; outputs go to `build/`
//! (images, ISOs, test artefacts) and the kernel is built into the workspace's `target/`.

mod bench;
mod emu;
mod host;
mod image;
mod run;
mod test;
mod util;

use std::path::Path;
use std::process::ExitCode;

use ferrovisor_tests::{Boot, Emulator};

use crate::image::Module;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--selftest | --all]
      Build the kernel ELF (release) into build/ferrovisor (--selftest:
      build/ferrovisor-selftest; --all: both).
  iso [--selftest] [--cmdline \"...\"] [--module PATH[:ARGS]]...
      Build a GRUB ISO that boots the ELF by multiboot2: build/ferrovisor.iso
      (or build/ferrovisor-selftest.iso).
  run [--emu qemu|bochs] [--boot kernel|grub|pvh] [--cpus N] [--mem MiB]
      [--accel kvm] [--cpu-model MODEL] [--selftest] [--cmdline \"...\"]
      [--module PATH[:ARGS]]... [-- kernel command line words]
      Boot the image interactively with the serial console on the terminal.
      Default: QEMU -machine pc -cpu EPYC, multiboot1 -kernel, 1 CPU, 256 MiB.
      Bochs boots the GRUB ISO (cpu model corei7_skylake_x unless --cpu-model).
  test [FILTER] [--platform NAME] [--list] [--jobs N]
      Lints, host unit tests and the emulator test catalogue. FILTER selects
      the tests whose \"<test> on <platform>\" contains it (lints and unit tests
      are \"<step> on host\": FILTER=host runs only those).
  bench [NAME]
      Run benchmarks (exits: VM-exit round trips on qemu-svm/bochs-vmx/bochs-svm;
      domains: create+destroy of a 64 MiB domain on qemu-svm;
      sched: the scheduler simulator) and print
      \"bench: <name> <platform> <value> <unit>\" lines; all when no NAME.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Splits `--flag=value` and fetches the value of `--flag value`.
struct Args<'a> {
    rest: std::slice::Iter<'a, String>,
    pending: Option<String>,
}

impl<'a> Args<'a> {
    fn new(args: &'a [String]) -> Self {
        Self {
            rest: args.iter(),
            pending: None,
        }
    }

    /// The next argument; for `--flag=value`, returns `--flag` and keeps `value`.
    fn next(&mut self) -> Option<String> {
        let a = self.rest.next()?;
        if a.starts_with("--")
            && let Some((flag, value)) = a.split_once('=')
        {
            self.pending = Some(value.to_string());
            return Some(flag.to_string());
        }
        Some(a.clone())
    }

    fn value(&mut self, flag: &str) -> Result<String, String> {
        if let Some(v) = self.pending.take() {
            return Ok(v);
        }
        self.rest
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value"))
    }

    fn number(&mut self, flag: &str) -> Result<u32, String> {
        let v = self.value(flag)?;
        v.parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag}: {v:?} is not a positive number"))
    }

    fn no_value(&mut self, flag: &str) -> Result<(), String> {
        match self.pending.take() {
            Some(_) => Err(format!("{flag} takes no value")),
            None => Ok(()),
        }
    }

    fn remaining(&mut self) -> Vec<String> {
        self.rest.by_ref().cloned().collect()
    }
}

fn dispatch(args: &[String]) -> Result<i32, String> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(2);
    };
    match command.as_str() {
        "build" => build(rest),
        "iso" => iso(rest),
        "run" => run_cmd(rest),
        "test" => test_cmd(rest),
        "bench" => bench::bench(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn build(rest: &[String]) -> Result<i32, String> {
    let mut a = Args::new(rest);
    let (mut production, mut selftest) = (true, false);
    while let Some(arg) = a.next() {
        match arg.as_str() {
            "--selftest" => (production, selftest) = (false, true),
            "--all" => (production, selftest) = (true, true),
            other => return Err(format!("build: unknown argument {other:?}")),
        }
        a.no_value(&arg)?;
    }
    for (wanted, flavour) in [(production, false), (selftest, true)] {
        if wanted {
            let elf = image::build_interactive(flavour)?;
            eprintln!("xtask: built {}", elf.display());
        }
    }
    Ok(0)
}

fn iso(rest: &[String]) -> Result<i32, String> {
    let mut a = Args::new(rest);
    let mut selftest = false;
    let mut cmdline = String::new();
    let mut modules = Vec::new();
    while let Some(arg) = a.next() {
        match arg.as_str() {
            "--selftest" => {
                a.no_value(&arg)?;
                selftest = true;
            }
            "--cmdline" => cmdline = a.value(&arg)?,
            "--module" => modules.push(Module::parse(&a.value(&arg)?)?),
            other => return Err(format!("iso: unknown argument {other:?}")),
        }
    }
    host::ensure(&[host::Need::Grub])?;
    let elf = image::build_interactive(selftest)?;
    let name = if selftest {
        "ferrovisor-selftest"
    } else {
        "ferrovisor"
    };
    let iso = Path::new(util::BUILD).join(format!("{name}.iso"));
    let staging = Path::new(util::BUILD).join(format!("iso-{name}"));
    image::make_iso(&iso, &staging, &elf, &cmdline, &modules)?;
    eprintln!("xtask: built {}", iso.display());
    Ok(0)
}

fn run_cmd(rest: &[String]) -> Result<i32, String> {
    let mut a = Args::new(rest);
    let mut o = run::Options {
        emulator: Emulator::Qemu,
        boot: None,
        cpus: 1,
        mem_mib: 256,
        kvm: false,
        selftest: false,
        cpu_model: None,
        cmdline: String::new(),
        modules: Vec::new(),
    };
    let mut extra = Vec::new();
    while let Some(arg) = a.next() {
        match arg.as_str() {
            "--emu" => {
                o.emulator = match a.value(&arg)?.as_str() {
                    "qemu" => Emulator::Qemu,
                    "bochs" => Emulator::Bochs,
                    other => return Err(format!("--emu {other}: expected qemu or bochs")),
                }
            }
            "--boot" => {
                o.boot = Some(match a.value(&arg)?.as_str() {
                    "kernel" => Boot::Kernel,
                    "grub" => Boot::Grub,
                    "pvh" => Boot::Pvh,
                    other => return Err(format!("--boot {other}: expected kernel, grub or pvh")),
                })
            }
            "--cpus" => o.cpus = a.number(&arg)?,
            "--mem" => o.mem_mib = a.number(&arg)?,
            "--accel" => match a.value(&arg)?.as_str() {
                "kvm" => o.kvm = true,
                "tcg" => o.kvm = false,
                other => return Err(format!("--accel {other}: expected kvm")),
            },
            "--cpu-model" => o.cpu_model = Some(a.value(&arg)?),
            "--selftest" => {
                a.no_value(&arg)?;
                o.selftest = true;
            }
            "--cmdline" => o.cmdline = a.value(&arg)?,
            "--module" => o.modules.push(Module::parse(&a.value(&arg)?)?),
            "--" => extra = a.remaining(),
            other => {
                return Err(format!(
                    "run: unknown argument {other:?} (kernel words go after --)"
                ));
            }
        }
    }
    let words: Vec<&str> = std::iter::once(o.cmdline.as_str())
        .chain(extra.iter().map(String::as_str))
        .collect();
    o.cmdline = words
        .iter()
        .filter(|w| !w.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    run::run(o)
}

fn test_cmd(rest: &[String]) -> Result<i32, String> {
    let mut a = Args::new(rest);
    let mut o = test::Options {
        jobs: 2,
        ..test::Options::default()
    };
    while let Some(arg) = a.next() {
        match arg.as_str() {
            "--platform" => o.platform = Some(a.value(&arg)?),
            "--list" => {
                a.no_value(&arg)?;
                o.list = true;
            }
            "--jobs" => o.jobs = a.number(&arg)? as usize,
            f if f.starts_with('-') => return Err(format!("test: unknown option {f:?}")),
            f => {
                if o.filter.replace(f.to_string()).is_some() {
                    return Err("test: only one FILTER".into());
                }
            }
        }
    }
    test::test(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        let args: Vec<String> = ["--cpus=2", "--mem", "128", "--selftest", "--", "a", "b"]
            .map(String::from)
            .to_vec();
        let mut a = Args::new(&args);
        assert_eq!(a.next().as_deref(), Some("--cpus"));
        assert_eq!(a.number("--cpus"), Ok(2));
        assert_eq!(a.next().as_deref(), Some("--mem"));
        assert_eq!(a.number("--mem"), Ok(128));
        assert_eq!(a.next().as_deref(), Some("--selftest"));
        assert_eq!(a.no_value("--selftest"), Ok(()));
        assert_eq!(a.next().as_deref(), Some("--"));
        assert_eq!(a.remaining(), vec!["a", "b"]);
        let bad: Vec<String> = ["--cpus=0", "--list=x"].map(String::from).to_vec();
        let mut a = Args::new(&bad);
        a.next();
        assert!(a.number("--cpus").is_err());
        a.next();
        assert!(a.no_value("--list").is_err());
    }
}
