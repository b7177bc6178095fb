//! Domain configuration files in xl.cfg(5) syntax, the subset Ferrovisor implements.
//!
//! ```text
//! name = "web1"
//! type = "pvh"
//! memory = 512            # MiB
//! vcpus = 2
//! cpus = "2-3"
//! kernel = "vmlinuz-web"  # a boot module, by name
//! cmdline = 'console=hvc0 root=/dev/xvda1'
//! on_crash = "preserve"
//! ```
//!
//! [`parse`] turns one file into a [`DomainConfig`] that borrows strings from the text
//! (no heap). The grammar is libxlu's (`KEY = VALUE`, values are numbers, single- or
//! double-quoted strings or `[lists, of, atoms]`, `#` comments, statements end at a
//! newline or `;`). Everything else is stricter than xl, because boot-time configs are
//! read with nobody at a terminal: unknown keys, keys set twice, wrong types,
//! out-of-range values and missing required keys are errors, and the first one found
//! is returned with its file, line and key. `docs/domain-config.md` lists the keys.

mod cpus;
mod error;
mod lexer;
mod parse;
mod text;

#[cfg(test)]
mod tests;

pub use cpus::{CpuPinning, VcpuCpuLists};
pub use error::{ConfigError, ConfigErrorKind};
pub use parse::parse;
pub use text::ConfigStr;

use crate::sched::{CpuMask, SchedParams};

/// Most vCPUs a domain may have: Xen's `HVM_MAX_VCPUS`, which bounds PVH guests too.
pub const MAX_VCPUS: u32 = 128;

/// Largest `memory =` in MiB (16 TiB): far above any host this runs on, and low enough
/// that byte and page counts derived from it never overflow.
pub const MAX_MEMORY_MIB: u64 = 16 << 20;

/// Longest domain name in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// The keys of the supported subset, for error messages.
pub(crate) const SUPPORTED_KEYS: &str = "name, description, type, memory, vcpus, cpus, \
     cpu_weight, cap, kernel, ramdisk, cmdline, on_poweroff, on_reboot, on_crash, start_on_boot";

/// Kind of guest (`type =`). Only PVH is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainType {
    Pvh,
}

/// What to do when a domain stops for a given reason (`on_poweroff`, `on_reboot`,
/// `on_crash`): the xl actions that need no toolstack features beyond the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Destroy the domain and return its memory.
    Destroy,
    /// Destroy the domain, then create it again from the same configuration.
    Restart,
    /// Keep the domain (and its memory) as it stopped, for inspection.
    Preserve,
}

impl Action {
    /// The xl spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Restart => "restart",
            Self::Preserve => "preserve",
        }
    }
}

/// One domain's configuration. Strings borrow the configuration text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig<'a> {
    /// `name`: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_`, `-`; not all digits.
    pub name: &'a str,
    /// `description`: free text, for people.
    pub description: Option<ConfigStr<'a>>,
    /// `type`: `"pvh"`, the default.
    pub kind: DomainType,
    /// `memory`: guest RAM in MiB, `1..=MAX_MEMORY_MIB`. Claimed in full at creation.
    pub memory_mib: u64,
    /// `vcpus`: `1..=MAX_VCPUS`, default 1.
    pub vcpus: u32,
    /// `cpus`: hard affinity; `None` is no pinning (every CPU).
    pub cpus: Option<CpuPinning<'a>>,
    /// `cpu_weight`: `1..=65535`, default 256.
    pub cpu_weight: u16,
    /// `cap`: percent of one CPU for the whole domain, `0..=100 * vcpus`; 0 is no cap.
    pub cap: u16,
    /// `kernel`: the name of the boot module holding the PVH kernel.
    pub kernel: &'a str,
    /// `ramdisk`: the name of the boot module holding the initial ramdisk.
    pub ramdisk: Option<&'a str>,
    /// `cmdline`: the kernel's command line.
    pub cmdline: Option<ConfigStr<'a>>,
    /// `on_poweroff`: default [`Action::Destroy`].
    pub on_poweroff: Action,
    /// `on_reboot`: default [`Action::Restart`].
    pub on_reboot: Action,
    /// `on_crash`: default [`Action::Destroy`].
    pub on_crash: Action,
    /// `start_on_boot`: `1` (default) runs the domain once boot-time domains are built;
    /// `0` builds it (its memory claimed) and leaves it paused, like `xl create -p`.
    pub start_on_boot: bool,
}

impl DomainConfig<'_> {
    /// Guest RAM in bytes.
    pub const fn memory_bytes(&self) -> u64 {
        self.memory_mib << 20
    }

    /// The scheduler's weight and cap for this domain.
    pub const fn sched_params(&self) -> SchedParams {
        SchedParams {
            weight: self.cpu_weight,
            cap_percent: self.cap,
        }
    }

    /// The CPUs vCPU `vcpu` may run on.
    pub fn vcpu_affinity(&self, vcpu: u32) -> CpuMask {
        match self.cpus {
            None => CpuMask::ALL,
            Some(CpuPinning::Every(mask)) => mask,
            Some(CpuPinning::PerVcpu(lists)) => lists.get(vcpu).unwrap_or(CpuMask::ALL),
        }
    }
}
