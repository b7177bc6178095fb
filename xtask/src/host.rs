//! Host packages the emulator commands need, installed with apt-get when missing.

use std::process::Command;

use crate::util;

/// A group of host tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `qemu-system-x86_64`.
    Qemu,
    /// `grub-mkrescue` and what it needs for a BIOS ISO.
    Grub,
    /// Bochs with its BIOS, VGA BIOS and the `term` display plugin.
    Bochs,
}

impl Need {
    /// Debian packages.
    fn packages(self) -> &'static [&'static str] {
        match self {
            Need::Qemu => &["qemu-system-x86"],
            Need::Grub => &["grub-pc-bin", "grub-common", "xorriso", "mtools"],
            Need::Bochs => &["bochs", "bochsbios", "vgabios", "bochs-term"],
        }
    }

    /// A program that shows the group is there, for hosts without dpkg.
    fn program(self) -> &'static str {
        match self {
            Need::Qemu => "qemu-system-x86_64",
            Need::Grub => "grub-mkrescue",
            Need::Bochs => "bochs",
        }
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure the packages for `needs` are installed: installs the missing ones with
/// apt-get when running as root, otherwise says what to run.
pub fn ensure(needs: &[Need]) -> Result<(), String> {
    if util::which("dpkg-query").is_none() {
        let missing: Vec<&str> = needs
            .iter()
            .map(|n| n.program())
            .filter(|p| util::which(p).is_none())
            .collect();
        return if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing programs: {} (install QEMU, Bochs and GRUB's BIOS tools)",
                missing.join(", ")
            ))
        };
    }
    let mut missing: Vec<&str> = needs
        .iter()
        .flat_map(|n| n.packages().iter().copied())
        .filter(|p| !installed(p))
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() || util::which("apt-get").is_none() {
        return Err(format!(
            "missing packages: {}; install them with: sudo apt-get update && sudo {install}",
            missing.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        let out = util::run_captured(&mut cmd)?;
        if out.ok {
            Ok(())
        } else {
            Err(format!(
                "`{}` {}:\n{}",
                util::describe(&cmd),
                out.status,
                util::indented_tail(&out.output, 20)
            ))
        }
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)
}
