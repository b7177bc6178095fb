//! Starting emulators: preparing a test case's files and command, running it under a time
//! limit, and probing KVM.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrovisor_tests::cmdline::{self, BOCHS_RC, BochsSpec, QemuSpec, Serial, bochsrc, qemu_args};
use ferrovisor_tests::{Boot, Case, Emulator, Exit, Outcome, Platform, serial, shim, verdict};

use crate::image::{self, Module};
use crate::util::{self, BUILD};

/// QEMU's program name.
pub const QEMU: &str = "qemu-system-x86_64";

/// How long an emulator may keep running after the kernel's last line.
pub const GRACE: Duration = Duration::from_secs(10);

/// The Bochs binary: Debian's `bochs-bin` (the `bochs` wrapper only adds `-q`).
pub fn bochs_program() -> String {
    if util::which("bochs-bin").is_some() {
        "bochs-bin".into()
    } else {
        "bochs".into()
    }
}

/// The terminal type given to Bochs' `term` display (it refuses to start without one).
pub const BOCHS_TERM: &str = "xterm";

/// An emulator command ready to run, with its artefact paths (relative to the root).
pub struct Prepared {
    /// The emulator.
    pub emulator: Emulator,
    /// The command (cwd = workspace root).
    pub command: Command,
    /// COM1 log.
    pub serial: PathBuf,
    /// Emulator stdout.
    pub stdout: PathBuf,
    /// Emulator stderr.
    pub stderr: PathBuf,
}

/// The artefact directory of a case, relative to the workspace root.
pub fn case_dir(case: &Case) -> PathBuf {
    Path::new(BUILD).join("tests").join(case.dir_name())
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Writes everything a case needs into its (fresh) artefact directory and builds the
/// emulator command. `modules` are the generated modules, by name.
pub fn prepare(case: &Case, elf: &Path, modules: &[Module]) -> Result<Prepared, String> {
    let dir = case_dir(case);
    let root = util::root();
    util::fresh_dir(&root.join(&dir))?;
    let serial = dir.join("serial.log");
    let names = case
        .modules()
        .iter()
        .map(|m| m.name)
        .chain(case.guests().iter().map(|g| g.name));
    let wanted: Vec<Module> = names
        .map(|name| {
            modules
                .iter()
                .find(|g| g.name == name)
                .cloned()
                .ok_or_else(|| format!("module {name} not generated"))
        })
        .collect::<Result<_, _>>()?;
    let test = case.test;
    let command = match case.platform.emulator() {
        Emulator::Qemu => {
            let mut spec = QemuSpec::new(
                case.platform.cpu_model(),
                test.mem_mib,
                case.cpus,
                Serial::File(s(&serial)),
            );
            spec.kvm = case.platform == Platform::Kvm;
            spec.icount = test.instruction_clock && !spec.kvm;
            match case.boot {
                Boot::Kernel => {
                    spec.kernel = Some(s(elf));
                    spec.append = Some(test.cmdline.to_string());
                    spec.initrd = wanted.iter().map(Module::initrd_entry).collect();
                }
                Boot::Grub => {
                    let iso = dir.join("ferrovisor.iso");
                    image::make_iso(&iso, &dir.join("iso"), elf, test.cmdline, &wanted)?;
                    spec.cdrom = Some(s(&iso));
                }
                Boot::Pvh => {
                    let copy = dir.join("ferrovisor-pvh");
                    image::pvh_copy(elf, &copy)?;
                    spec.machine = "microvm";
                    spec.kernel = Some(s(&copy));
                    spec.append = Some(test.cmdline.to_string());
                }
                Boot::Shim(bad) => {
                    let f = image::shim_files(elf, &dir, bad)?;
                    spec.kernel = Some(s(&f.shim));
                    spec.loaders = vec![
                        (s(&f.params), shim::PARAMS_ADDR),
                        (s(&f.kernel), f.kernel_addr),
                    ];
                }
            }
            let mut cmd = Command::new(QEMU);
            cmd.args(qemu_args(&spec)?);
            cmd
        }
        Emulator::Bochs => {
            if case.boot != Boot::Grub {
                return Err(format!("Bochs cannot boot by {}", case.boot.name()));
            }
            let iso = dir.join("ferrovisor.iso");
            image::make_iso(&iso, &dir.join("iso"), elf, test.cmdline, &wanted)?;
            bochs_command(
                &dir,
                &BochsSpec {
                    cpu_model: case.platform.cpu_model().into(),
                    cpus: case.cpus,
                    ips: case.bochs_ips().unwrap_or(cmdline::BOCHS_IPS),
                    mem_mib: test.mem_mib,
                    iso: s(&iso),
                    serial: s(&serial),
                    log: s(&dir.join("bochs.log")),
                },
            )?
        }
    };
    util::write(
        &root.join(dir.join("command.txt")),
        format!("{}\n", util::describe(&command)),
    )?;
    Ok(Prepared {
        emulator: case.platform.emulator(),
        command,
        serial,
        stdout: dir.join("emulator.stdout"),
        stderr: dir.join("emulator.stderr"),
    })
}

/// Writes `bochsrc` and the continue script into `dir` and returns the Bochs command.
pub fn bochs_command(dir: &Path, spec: &BochsSpec) -> Result<Command, String> {
    let root = util::root();
    let rc = dir.join("bochsrc");
    let cont = dir.join("cont.rc");
    util::write(&root.join(&rc), bochsrc(spec))?;
    util::write(&root.join(&cont), BOCHS_RC)?;
    let mut cmd = Command::new(bochs_program());
    cmd.env("TERM", BOCHS_TERM)
        .args(["-q", "-f", &s(&rc), "-rc", &s(&cont)]);
    Ok(cmd)
}

/// Runs a prepared emulator: output to files, killed at `timeout`, or `GRACE` after the
/// kernel's last line if it does not exit by itself.
pub fn run(mut p: Prepared, timeout: Duration) -> Outcome {
    let root = util::root();
    let outcome = |exit: Exit| Outcome {
        emulator: p.emulator,
        exit,
        serial: util::read_lossy(&root.join(&p.serial)),
        stderr: util::read_lossy(&root.join(&p.stderr)),
    };
    let files = File::create(root.join(&p.stdout))
        .and_then(|o| Ok((o, File::create(root.join(&p.stderr))?)));
    let (out, err) = match files {
        Ok(f) => f,
        Err(e) => {
            return outcome(Exit::LaunchFailed(format!(
                "cannot create output files: {e}"
            )));
        }
    };
    let spawned = p
        .command
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let program = p.command.get_program().to_string_lossy().into_owned();
            return outcome(Exit::LaunchFailed(format!("cannot start {program}: {e}")));
        }
    };
    let start = Instant::now();
    let mut last_look = start;
    let mut finished_at: Option<Instant> = None;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code().map_or(Exit::Signal, Exit::Status),
            Ok(None) => {}
            Err(e) => break Exit::LaunchFailed(format!("waiting for the emulator: {e}")),
        }
        let now = Instant::now();
        if now - start >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break Exit::Timeout(timeout);
        }
        if finished_at.is_none() && now - last_look >= Duration::from_millis(200) {
            last_look = now;
            if serial::finished(&util::read_lossy(&root.join(&p.serial))) {
                finished_at = Some(now);
            }
        }
        if finished_at.is_some_and(|t| now - t >= GRACE) {
            let _ = child.kill();
            let _ = child.wait();
            break Exit::StoppedAfterVerdict(GRACE);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    outcome(exit)
}

/// Whether KVM can run a guest here: /dev/kvm opens read-write and QEMU with `-accel kvm`
/// runs a probe image that writes the SUCCESS code to port 0xf4. `Err` says why not.
pub fn kvm_usable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm cannot be opened: {e}"))?;
    let dir = Path::new(BUILD).join("tests").join("kvm-probe");
    let root = util::root();
    util::fresh_dir(&root.join(&dir)).map_err(|e| e.to_string())?;
    let probe = dir.join("probe.bin");
    util::write(&root.join(&probe), shim::probe_image())?;
    let mut spec = QemuSpec::new("host", 128, 1, Serial::File(s(&dir.join("serial.log"))));
    spec.kvm = true;
    spec.kernel = Some(s(&probe));
    let mut cmd = Command::new(QEMU);
    cmd.args(qemu_args(&spec)?);
    let p = Prepared {
        emulator: Emulator::Qemu,
        command: cmd,
        serial: dir.join("serial.log"),
        stdout: dir.join("emulator.stdout"),
        stderr: dir.join("emulator.stderr"),
    };
    let o = run(p, Duration::from_secs(20));
    if o.exit == Exit::Status(verdict::qemu_status(verdict::code::SUCCESS)) {
        Ok(())
    } else {
        let why = o.abnormal_end().unwrap_or_else(|| format!("{:?}", o.exit));
        Err(format!("KVM probe guest did not run ({why})"))
    }
}

/// Checks that `--accel kvm` can work, with a clear error when it cannot.
pub fn require_kvm_device() -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("--accel kvm: /dev/kvm does not exist (no KVM on this machine)".into());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("--accel kvm: cannot open /dev/kvm: {e}"))
}

/// A printable command line (for `run`).
pub fn printable(cmd: &Command) -> String {
    let mut line = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            line.push_str(&format!(
                "{}={} ",
                k.to_string_lossy(),
                cmdline::shell_quote(&v.to_string_lossy())
            ));
        }
    }
    line + &util::describe(cmd)
}
