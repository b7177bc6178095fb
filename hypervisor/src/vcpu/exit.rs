//! Why the guest stopped running, decoded once by the backend.

/// Width of an I/O port access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSize {
    Byte,
    Word,
    Dword,
}

impl IoSize {
    /// Bytes accessed.
    pub const fn bytes(self) -> u32 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
        }
    }

    /// The mask of the bytes accessed in RAX.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xff,
            Self::Word => 0xffff,
            Self::Dword => 0xffff_ffff,
        }
    }
}

/// An I/O port access (IN/OUT; string and REP forms are reported as such).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    pub size: IoSize,
    /// OUT (true) or IN (false).
    pub write: bool,
    /// INS/OUTS.
    pub string: bool,
    /// With a REP prefix.
    pub rep: bool,
}

/// A nested page fault: a guest-physical access the EPT/NPT did not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedFault {
    pub gpa: u64,
    pub read: bool,
    pub write: bool,
    pub fetch: bool,
    /// The address was mapped (a permission fault) rather than absent.
    pub present: bool,
}

/// Why VM entry refused the guest state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidStateReason {
    /// VT-x: VM-entry failure with this basic exit reason (33 invalid guest state,
    /// 34 MSR loading, 41 machine-check).
    VmxEntryFailure {
        exit_reason: u32,
        qualification: u64,
    },
    /// VT-x: VMLAUNCH/VMRESUME failed with this VM-instruction error number.
    VmxInstructionError { error: u32 },
    /// AMD-V: VMRUN's consistency checks failed (VMEXIT_INVALID).
    SvmInvalid,
}

/// The vendor-neutral exit vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// CPUID with EAX/ECX as the leaf/subleaf.
    Cpuid,
    /// An I/O port access; for OUT the value is in RAX.
    Io(IoAccess),
    /// RDMSR of ECX.
    MsrRead { msr: u32 },
    /// WRMSR of ECX with EDX:EAX.
    MsrWrite { msr: u32, value: u64 },
    /// HLT.
    Hlt,
    /// XSETBV of extended control register ECX with EDX:EAX.
    Xsetbv { xcr: u32, value: u64 },
    /// VMCALL (VT-x) or VMMCALL (AMD-V): a Xen hypercall.
    Hypercall,
    /// A guest-physical access outside what the nested page tables allow.
    NestedPageFault(NestedFault),
    /// An exception the hypervisor intercepts (vector, error code if any).
    Exception { vector: u8, error_code: Option<u32> },
    /// A physical interrupt arrived while the guest ran; the host handles it.
    ExternalInterrupt,
    /// The guest can take an interrupt now (requested interrupt-window exit).
    InterruptWindow,
    /// The guest triple-faulted (VT-x triple fault, AMD-V shutdown).
    Shutdown,
    /// VM entry failed.
    InvalidState(InvalidStateReason),
    /// Anything else, with the vendor's raw exit code.
    Unhandled { code: u64 },
}
