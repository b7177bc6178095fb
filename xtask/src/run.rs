//! `cargo xtask run`: boot an image interactively, serial on the terminal.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrovisor_tests::cmdline::{BochsSpec, QemuSpec, Serial, qemu_args};
use ferrovisor_tests::verdict::{bochs_message, code, qemu_code};
use ferrovisor_tests::{Boot, Emulator};

use crate::emu::{self, QEMU};
use crate::host::{self, Need};
use crate::image::{self, Module};
use crate::util::{self, BUILD};

/// Options of `cargo xtask run`.
pub struct Options {
    /// `--emu`.
    pub emulator: Emulator,
    /// `--boot`; `None` means the emulator's usual one.
    pub boot: Option<Boot>,
    /// `--cpus`.
    pub cpus: u32,
    /// `--mem` (MiB).
    pub mem_mib: u32,
    /// `--accel kvm`.
    pub kvm: bool,
    /// `--selftest`.
    pub selftest: bool,
    /// `--cpu-model`.
    pub cpu_model: Option<String>,
    /// The kernel command line (`--cmdline` plus the words after `--`).
    pub cmdline: String,
    /// `--module PATH[:ARGS]`.
    pub modules: Vec<Module>,
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs `cargo xtask run`; returns the exit code to leave with.
pub fn run(o: Options) -> Result<i32, String> {
    if o.kvm && o.emulator == Emulator::Bochs {
        return Err("--accel kvm needs --emu qemu".into());
    }
    if o.kvm {
        emu::require_kvm_device()?;
    }
    let boot = o.boot.unwrap_or(match o.emulator {
        Emulator::Qemu => Boot::Kernel,
        Emulator::Bochs => Boot::Grub,
    });
    if o.emulator == Emulator::Bochs && boot != Boot::Grub {
        return Err(format!(
            "Bochs boots the GRUB ISO only (--boot grub), not --boot {}",
            boot.name()
        ));
    }
    if boot == Boot::Pvh && !o.modules.is_empty() {
        return Err("--module is not supported with --boot pvh".into());
    }
    // The embedded default: with no --module, the demo PVH guest boots as a domain (it
    // greets on the console and powers off). PVH boots carry no modules.
    let mut o = o;
    if o.modules.is_empty() && boot != Boot::Pvh {
        let demo =
            image::build_guests(&["hello"]).map_err(|(why, output)| format!("{why}\n{output}"))?;
        o.modules = demo;
    }
    let mut needs = vec![match o.emulator {
        Emulator::Qemu => Need::Qemu,
        Emulator::Bochs => Need::Bochs,
    }];
    if boot == Boot::Grub {
        needs.push(Need::Grub);
    }
    host::ensure(&needs)?;
    let elf = image::build_interactive(o.selftest)?;
    let dir = Path::new(BUILD).join("run");
    util::fresh_dir(&util::root().join(&dir))?;
    let iso = dir.join("ferrovisor.iso");
    if boot == Boot::Grub {
        image::make_iso(&iso, &dir.join("iso"), &elf, &o.cmdline, &o.modules)?;
    }
    match o.emulator {
        Emulator::Qemu => run_qemu(&o, boot, &elf, &dir, &iso),
        Emulator::Bochs => run_bochs(&o, &dir, &iso),
    }
}

fn run_qemu(o: &Options, boot: Boot, elf: &Path, dir: &Path, iso: &Path) -> Result<i32, String> {
    let default_cpu = if o.kvm { "host" } else { "EPYC" };
    let mut spec = QemuSpec::new(
        o.cpu_model.as_deref().unwrap_or(default_cpu),
        o.mem_mib,
        o.cpus,
        Serial::Stdio,
    );
    spec.kvm = o.kvm;
    match boot {
        Boot::Kernel => {
            spec.kernel = Some(path(elf));
            spec.append = Some(o.cmdline.clone());
            spec.initrd = o.modules.iter().map(Module::initrd_entry).collect();
        }
        Boot::Grub => spec.cdrom = Some(path(iso)),
        Boot::Pvh => {
            let copy = dir.join("ferrovisor-pvh");
            image::pvh_copy(elf, &copy)?;
            spec.machine = "microvm";
            spec.kernel = Some(path(&copy));
            spec.append = Some(o.cmdline.clone());
        }
        Boot::Shim(_) => return Err("the shim is for tests only".into()),
    }
    let mut cmd = Command::new(QEMU);
    cmd.current_dir(util::root()).args(qemu_args(&spec)?);
    eprintln!("+ {}", emu::printable(&cmd));
    eprintln!("xtask: serial console below; Ctrl-A X quits QEMU");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {QEMU}: {e}"))?;
    let st = status.code().unwrap_or(1);
    match qemu_code(st) {
        Some(c) if st > 1 => eprintln!(
            "xtask: QEMU exited with status {st}: kernel exit code {c:#x} ({})",
            code::name(c)
        ),
        _ if st == 0 => {
            eprintln!("xtask: QEMU exited with status 0 (quit, power-off, triple fault or reset)")
        }
        _ => eprintln!("xtask: QEMU exited with status {st}"),
    }
    Ok(st)
}

fn run_bochs(o: &Options, dir: &Path, iso: &Path) -> Result<i32, String> {
    let root = util::root();
    let serial = dir.join("serial.log");
    let spec = BochsSpec {
        cpu_model: o
            .cpu_model
            .clone()
            .unwrap_or_else(|| "corei7_skylake_x".into()),
        cpus: o.cpus,
        ips: ferrovisor_tests::cmdline::BOCHS_IPS,
        mem_mib: o.mem_mib,
        iso: path(iso),
        serial: path(&serial),
        log: path(&dir.join("bochs.log")),
    };
    let mut cmd = emu::bochs_command(dir, &spec)?;
    cmd.current_dir(&root);
    eprintln!("+ {}", emu::printable(&cmd));
    eprintln!(
        "xtask: Bochs' screen goes to {0}/bochs.stdout and its messages to {0}/bochs.stderr; serial follows",
        dir.display()
    );
    let stdout =
        std::fs::File::create(root.join(dir.join("bochs.stdout"))).map_err(|e| e.to_string())?;
    let stderr_path: PathBuf = root.join(dir.join("bochs.stderr"));
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", emu::bochs_program()))?;
    let mut offset = 0u64;
    let mut follow = || {
        if let Ok(mut f) = std::fs::File::open(root.join(&serial)) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(offset)).is_ok()
                && f.read_to_end(&mut buf).is_ok()
                && !buf.is_empty()
            {
                offset += buf.len() as u64;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf);
                let _ = out.flush();
            }
        }
    };
    let status = loop {
        follow();
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for Bochs: {e}")),
        }
    };
    follow();
    let message = bochs_message(&util::read_lossy(&stderr_path));
    eprintln!("\nxtask: Bochs exited ({status}){message}");
    Ok(status.code().unwrap_or(1))
}
