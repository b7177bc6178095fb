//! The Intel VT-x backend (SDM Vol. 3C Chapters 24-31): per-CPU VMX operation
//! ([`enable_on_this_cpu`]), the VMCS of each vCPU ([`VmxVcpu`]), the world switch, and
//! the translation of VM exits into the vendor-neutral [`ferrovisor::vcpu::Exit`].
//!
//! Layout: `caps` reads what the CPU supports and fits the controls to it; `cpu` enters
//! VMX operation; `instr` wraps the VMX instructions; `host` reads the host-state area;
//! `vmcs` fills a fresh VMCS; `switch` is the assembly world switch; `vcpu` runs a vCPU and
//! decodes its exits.
//!
//! Guest model: unrestricted guest with EPT, so the PVH entry state (32-bit protected
//! mode, paging off) and the guest's own switch to long mode run natively. EFER is
//! switched by the CPU ("load/save IA32_EFER"); VM exits store EFER.LMA into the "IA-32e
//! mode guest" entry control (IA32_VMX_MISC\[5\], required), so a guest that sets
//! EFER.LME (intercepted, through `write_efer`) and then CR0.PG (not intercepted) is in
//! a consistent IA-32e state at its next entry. CR0/CR4 bits VMX fixes (CR0.NE, CR4.VMXE)
//! are host-owned: the guest reads its own value from the read shadows, and a MOV that
//! would change one exits and is emulated here without being reported.

mod caps;
mod cpu;
mod host;
mod instr;
#[cfg(feature = "selftest")]
pub mod selftest;
mod switch;
mod vcpu;
mod vmcs;

pub use cpu::{VmxCpu, enable_on_this_cpu};
pub use instr::{VmFail, VmcsError};
pub use vcpu::VmxVcpu;

/// Why VT-x cannot be used on this CPU, or a vCPU cannot be created or run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX is clear.
    NotSupported,
    /// IA32_FEATURE_CONTROL is locked without "VMXON outside SMX" (SDM Vol. 3C §24.7).
    DisabledByFirmware,
    /// VMX is already on here (CR4.VMXE is set).
    AlreadyEnabled,
    /// A feature Ferrovisor requires is missing.
    Unsupported(&'static str),
    /// Controls Ferrovisor requires that the capability MSRs do not allow.
    UnsupportedControls {
        which: &'static str,
        unsupported: u32,
    },
    /// The host's CR0/CR4 has bits VMX operation forbids (SDM Vol. 3C §24.8).
    HostControlRegister {
        register: &'static str,
        forbidden: u64,
    },
    /// The host state cannot go into a VMCS (SDM Vol. 3C §27.2.3).
    HostState(&'static str),
    /// No memory for a VMX structure.
    OutOfMemory,
    /// The vCPU configuration is unusable.
    Config(&'static str),
    /// A vCPU used on a CPU that has not loaded it (`owner`: the CPU whose host state
    /// its VMCS holds, `u32::MAX` for none).
    WrongCpu { owner: u32, running: u32 },
    /// VMXON, VMCLEAR, VMPTRLD, INVEPT or INVVPID failed.
    Instruction {
        instruction: &'static str,
        fail: VmFail,
    },
    /// VMREAD or VMWRITE failed.
    Vmcs(VmcsError),
}

impl VmxError {
    /// The VM-instruction error number behind this error, 0 if none.
    pub fn instruction_error(&self) -> u32 {
        match self {
            Self::Instruction { fail, .. } => fail.error_number(),
            Self::Vmcs(e) => e.fail.error_number(),
            _ => 0,
        }
    }
}

impl From<VmcsError> for VmxError {
    fn from(e: VmcsError) -> Self {
        Self::Vmcs(e)
    }
}

impl core::fmt::Display for VmxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotSupported => f.write_str("the CPU has no VT-x"),
            Self::DisabledByFirmware => f.write_str(
                "VT-x is disabled by firmware (IA32_FEATURE_CONTROL locked without VMXON outside SMX)",
            ),
            Self::AlreadyEnabled => f.write_str("VMX is already enabled on this CPU"),
            Self::Unsupported(what) => write!(f, "the CPU's VT-x lacks {what}"),
            Self::UnsupportedControls { which, unsupported } => write!(
                f,
                "the CPU does not allow the {which} controls {unsupported:#010x}"
            ),
            Self::HostControlRegister {
                register,
                forbidden,
            } => write!(
                f,
                "host {register} has bits {forbidden:#x} that VMX operation forbids"
            ),
            Self::HostState(what) => write!(f, "host state unusable for VMX: {what}"),
            Self::OutOfMemory => f.write_str("no memory for a VMX structure"),
            Self::Config(what) => write!(f, "bad vCPU configuration: {what}"),
            Self::WrongCpu { owner, running } => {
                write!(f, "vCPU loaded on cpu {owner} used on cpu {running}")
            }
            Self::Instruction { instruction, fail } => write!(f, "{instruction} failed: {fail}"),
            Self::Vmcs(e) => write!(f, "{e}"),
        }
    }
}
