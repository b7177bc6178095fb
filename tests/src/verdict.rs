//! How an emulator run ended, and the verdict the harness reports.

use std::fmt;
use std::time::Duration;

use crate::platform::Emulator;
use crate::serial;

/// Exit codes the selftest kernel writes to the isa-debug-exit port (0xf4). QEMU exits
/// with `(code << 1) | 1`.
pub mod code {
    /// `Test result: SUCCESS`
    pub const SUCCESS: u32 = 0x10;
    /// `Test result: FAILURE`
    pub const FAILURE: u32 = 0x11;
    /// Fatal halt after an exception or panic report.
    pub const FATAL: u32 = 0x12;
    /// `Test result: SKIP`
    pub const SKIP: u32 = 0x13;
    /// `Test result: ERROR`
    pub const ERROR: u32 = 0x14;

    /// A readable name for a code.
    pub fn name(code: u32) -> &'static str {
        match code {
            SUCCESS => "SUCCESS",
            FAILURE => "FAILURE",
            FATAL => "fatal halt",
            SKIP => "SKIP",
            ERROR => "ERROR",
            _ => "unknown code",
        }
    }
}

/// QEMU's exit status for a code written to the debug-exit port.
pub fn qemu_status(code: u32) -> i32 {
    ((code << 1) | 1) as i32
}

/// The code the kernel wrote, from QEMU's exit status. Even statuses (0: triple fault,
/// reset or ACPI power-off with `-no-reboot`) are not deliberate verdicts.
pub fn qemu_code(status: i32) -> Option<u32> {
    (status > 0 && status & 1 == 1).then_some((status >> 1) as u32)
}

/// How the emulator process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited by itself with this status.
    Status(i32),
    /// It was killed by a signal it did not get from the harness.
    Signal,
    /// The harness killed it at the time limit.
    Timeout(Duration),
    /// The harness killed it because it kept running after the kernel's last line.
    StoppedAfterVerdict(Duration),
    /// It could not be started or prepared.
    LaunchFailed(String),
}

/// Everything a check looks at after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Which emulator ran.
    pub emulator: Emulator,
    /// How it ended.
    pub exit: Exit,
    /// The serial log (COM1).
    pub serial: String,
    /// The emulator's stderr (and Bochs' own exit message).
    pub stderr: String,
}

impl Outcome {
    /// The code the kernel wrote to port 0xf4 (QEMU only).
    pub fn code(&self) -> Option<u32> {
        match (self.emulator, &self.exit) {
            (Emulator::Qemu, Exit::Status(s)) => qemu_code(*s),
            _ => None,
        }
    }

    /// A failure reason for ends that are failures whatever the test expected: timeouts,
    /// launch failures, triple faults, QEMU errors and QEMU not exiting after the verdict.
    pub fn abnormal_end(&self) -> Option<String> {
        match (&self.exit, self.emulator) {
            (Exit::Timeout(d), _) => Some(format!("timeout after {}s", d.as_secs())),
            (Exit::LaunchFailed(why), _) => Some(why.clone()),
            (Exit::Signal, _) => Some("emulator killed by a signal".into()),
            (Exit::StoppedAfterVerdict(d), Emulator::Qemu) => Some(format!(
                "QEMU still running {}s after the kernel's last line (no write to port 0xf4?)",
                d.as_secs()
            )),
            (Exit::StoppedAfterVerdict(_), Emulator::Bochs) => None,
            (Exit::Status(0), Emulator::Qemu) => {
                Some("triple fault or reset (QEMU exit status 0)".into())
            }
            (Exit::Status(1), Emulator::Qemu) => Some(format!(
                "QEMU exit status 1 (QEMU error, or code 0 on port 0xf4){}",
                first_error(&self.stderr)
            )),
            (Exit::Status(s), Emulator::Qemu) if qemu_code(*s).is_none() => {
                Some(format!("QEMU exit status {s}{}", first_error(&self.stderr)))
            }
            (Exit::Status(_), Emulator::Bochs) if !serial::finished(&self.serial) => Some(format!(
                "Bochs exited before the kernel finished{}",
                bochs_message(&self.stderr)
            )),
            _ => None,
        }
    }
}

/// `: <first qemu error line>`, or nothing.
fn first_error(stderr: &str) -> String {
    serial::lines(stderr)
        .find(|l| l.contains("qemu-system") && !l.contains("warning:"))
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// `: <Bochs' exit message>` (the line after "Bochs is exiting with the following
/// message:" on its stderr, or a PANIC line), or nothing.
pub fn bochs_message(stderr: &str) -> String {
    let all: Vec<&str> = serial::lines(stderr).collect();
    let exiting = all
        .iter()
        .position(|l| l.contains("Bochs is exiting with the following message"))
        .and_then(|i| {
            all[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty() && !l.starts_with("====="))
        });
    let panic = || all.iter().find(|l| l.contains("PANIC"));
    exiting
        .or_else(panic)
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// The harness's verdict on one test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// All checks held.
    Pass,
    /// A check failed; the reason.
    Fail(String),
    /// The case did not run or the kernel skipped it; the reason.
    Skip(String),
}

impl Verdict {
    /// The word that starts the result line.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail(_) => "FAIL",
            Self::Skip(_) => "SKIP",
        }
    }

    /// The result line for `title` (`<test> on <platform>`).
    pub fn line(&self, title: &str) -> String {
        match self {
            Self::Pass => format!("PASS {title}"),
            Self::Fail(why) => format!("FAIL {title}: {why}"),
            Self::Skip(why) => format!("SKIP {title}: {why}"),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The closing line: `N passed, N failed` with `, N skipped` when any were skipped.
pub fn summary(passed: usize, failed: usize, skipped: usize) -> String {
    if skipped > 0 {
        format!("{passed} passed, {failed} failed, {skipped} skipped")
    } else {
        format!("{passed} passed, {failed} failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu(exit: Exit, serial: &str) -> Outcome {
        Outcome {
            emulator: Emulator::Qemu,
            exit,
            serial: serial.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn status_mapping() {
        assert_eq!(qemu_status(code::SUCCESS), 33);
        assert_eq!(qemu_status(code::FAILURE), 35);
        assert_eq!(qemu_status(code::FATAL), 37);
        assert_eq!(qemu_status(code::SKIP), 39);
        assert_eq!(qemu_status(code::ERROR), 41);
        assert_eq!(qemu_code(37), Some(code::FATAL));
        assert_eq!(qemu_code(0), None);
        assert_eq!(qemu_code(2), None);
    }

    #[test]
    fn abnormal_ends() {
        assert_eq!(
            qemu(Exit::Status(0), "").abnormal_end().unwrap(),
            "triple fault or reset (QEMU exit status 0)"
        );
        assert_eq!(
            qemu(Exit::Timeout(Duration::from_secs(60)), "")
                .abnormal_end()
                .unwrap(),
            "timeout after 60s"
        );
        assert_eq!(
            qemu(Exit::Status(33), "Test result: SUCCESS").abnormal_end(),
            None
        );
        let mut o = qemu(Exit::Status(1), "");
        o.stderr =
            "qemu-system-x86_64: warning: x\nqemu-system-x86_64: -kernel x: No such file\n".into();
        assert_eq!(
            o.abnormal_end().unwrap(),
            "QEMU exit status 1 (QEMU error, or code 0 on port 0xf4): qemu-system-x86_64: -kernel x: No such file"
        );
        let bochs = Outcome {
            emulator: Emulator::Bochs,
            exit: Exit::Status(1),
            serial: "booting".into(),
            stderr: "=====\nBochs is exiting with the following message:\n[CPU0  ] exception(): 3rd (13) exception with no resolution\n=====\n".into(),
        };
        assert_eq!(
            bochs.abnormal_end().unwrap(),
            "Bochs exited before the kernel finished: [CPU0  ] exception(): 3rd (13) exception with no resolution"
        );
        let done = Outcome {
            serial: "Test result: SUCCESS".into(),
            ..bochs
        };
        assert_eq!(done.abnormal_end(), None);
    }

    #[test]
    fn lines_and_summary() {
        assert_eq!(
            Verdict::Pass.line("boot on qemu-svm"),
            "PASS boot on qemu-svm"
        );
        assert_eq!(Verdict::Fail("x".into()).line("t on p"), "FAIL t on p: x");
        assert_eq!(Verdict::Skip("y".into()).line("t on p"), "SKIP t on p: y");
        assert_eq!(summary(3, 1, 0), "3 passed, 1 failed");
        assert_eq!(summary(3, 0, 2), "3 passed, 0 failed, 2 skipped");
    }
}
