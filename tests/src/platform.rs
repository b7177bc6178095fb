//! Test platforms (an emulator plus a CPU model) and boot methods.

use std::fmt;
use std::time::Duration;

/// Which emulator program runs a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Emulator {
    /// `qemu-system-x86_64`: verdict from the exit status (isa-debug-exit) and the log.
    Qemu,
    /// Bochs 2.7: always exits with status 1, so the verdict comes from the serial log.
    Bochs,
}

/// A platform: one emulator configuration the catalogue runs tests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// QEMU TCG, `-cpu EPYC`: AMD-V with NPT, no NRIPS.
    QemuSvm,
    /// Bochs, `corei7_skylake_x`: VT-x with EPT, unrestricted guest, VPID.
    BochsVmx,
    /// Bochs, `ryzen`: AMD-V with NPT and NRIPS.
    BochsSvm,
    /// QEMU with `-accel kvm -cpu host`: only where /dev/kvm is usable.
    Kvm,
}

/// What the `virt:` line must say on a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtExpect {
    /// `svm`, `vmx` or `none`.
    pub kind: &'static str,
    /// `key=value` facts that must appear on the line.
    pub facts: &'static [(&'static str, &'static str)],
}

impl Platform {
    /// Every platform, in catalogue order.
    pub const ALL: [Platform; 4] = [Self::QemuSvm, Self::BochsVmx, Self::BochsSvm, Self::Kvm];

    /// Bochs' instructions per second (= its TSC rate), or `None` for QEMU platforms.
    pub fn bochs_ips(self) -> Option<u64> {
        match self {
            Self::BochsVmx | Self::BochsSvm => Some(crate::cmdline::BOCHS_IPS),
            Self::QemuSvm | Self::Kvm => None,
        }
    }

    /// The platform's name as used in test titles and `--platform`.
    pub fn name(self) -> &'static str {
        match self {
            Self::QemuSvm => "qemu-svm",
            Self::BochsVmx => "bochs-vmx",
            Self::BochsSvm => "bochs-svm",
            Self::Kvm => "kvm",
        }
    }

    /// Looks a platform up by [`Platform::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The emulator that runs this platform.
    pub fn emulator(self) -> Emulator {
        match self {
            Self::QemuSvm | Self::Kvm => Emulator::Qemu,
            Self::BochsVmx | Self::BochsSvm => Emulator::Bochs,
        }
    }

    /// The CPU model: QEMU `-cpu` value or Bochs `cpu: model=` value.
    pub fn cpu_model(self) -> &'static str {
        match self {
            Self::QemuSvm => "EPYC",
            Self::BochsVmx => "corei7_skylake_x",
            Self::BochsSvm => "ryzen",
            Self::Kvm => "host",
        }
    }

    /// How long a run may take before the harness kills the emulator.
    pub fn timeout(self) -> Duration {
        match self.emulator() {
            Emulator::Qemu => Duration::from_secs(60),
            Emulator::Bochs => Duration::from_secs(180),
        }
    }

    /// The boot method used when a test does not name one in its title.
    pub fn default_boot(self) -> Boot {
        match self.emulator() {
            Emulator::Qemu => Boot::Kernel,
            Emulator::Bochs => Boot::Grub,
        }
    }

    /// Whether the platform can boot the image this way (Bochs only boots the GRUB ISO).
    pub fn supports(self, boot: Boot) -> bool {
        match self.emulator() {
            Emulator::Qemu => true,
            Emulator::Bochs => boot == Boot::Grub,
        }
    }

    /// The CPU vendor string the kernel must report, when the platform fixes it.
    pub fn expected_vendor(self) -> Option<&'static str> {
        match self {
            Self::QemuSvm | Self::BochsSvm => Some("AuthenticAMD"),
            Self::BochsVmx => Some("GenuineIntel"),
            Self::Kvm => None,
        }
    }

    /// The virtualization facts the kernel must report, when the platform fixes them.
    pub fn expected_virt(self) -> Option<VirtExpect> {
        match self {
            Self::QemuSvm => Some(VirtExpect {
                kind: "svm",
                facts: &[("npt", "yes"), ("nrips", "no")],
            }),
            Self::BochsSvm => Some(VirtExpect {
                kind: "svm",
                facts: &[("npt", "yes"), ("nrips", "yes")],
            }),
            Self::BochsVmx => Some(VirtExpect {
                kind: "vmx",
                facts: &[("ept", "yes"), ("unrestricted", "yes"), ("vpid", "yes")],
            }),
            Self::Kvm => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A deliberately broken boot, made by the shim (see [`crate::shim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadBoot {
    /// EAX = 0xDEADBEEF, EBX = 0.
    BadMagic,
    /// A multiboot1 information structure with a command line but no memory map.
    NoMemoryMap,
}

/// How the image reaches the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Boot {
    /// QEMU `-kernel` with the multiboot1 header (a.out kludge).
    Kernel,
    /// A GRUB 2 ISO that boots the image with `multiboot2`.
    Grub,
    /// QEMU `microvm` `-kernel` through the PVH ELF note.
    Pvh,
    /// The bad-boot shim: QEMU `-kernel` boots the shim, which enters the image with
    /// chosen registers.
    Shim(BadBoot),
}

impl Boot {
    /// The method's name, as in `--boot` and titles.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Grub => "grub",
            Self::Pvh => "pvh",
            Self::Shim(_) => "shim",
        }
    }

    /// The protocol the kernel must report in its `booted by` line.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Kernel | Self::Shim(_) => "multiboot1",
            Self::Grub => "multiboot2",
            Self::Pvh => "pvh",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Platform::ALL {
            assert_eq!(Platform::from_name(p.name()), Some(p));
        }
        assert_eq!(Platform::from_name("qemu"), None);
    }

    #[test]
    fn bochs_boots_grub_only() {
        assert!(Platform::BochsVmx.supports(Boot::Grub));
        assert!(!Platform::BochsSvm.supports(Boot::Kernel));
        assert!(Platform::QemuSvm.supports(Boot::Pvh));
        assert_eq!(Platform::BochsSvm.timeout(), Duration::from_secs(180));
        assert_eq!(Platform::QemuSvm.timeout(), Duration::from_secs(60));
    }
}
