//! VM-exit information: exit reasons (SDM Vol. 3D Appendix C), the exit-reason word,
//! exit qualifications (SDM Vol. 3C §28.2.1), interruption information (SDM Vol. 3C
//! §25.9.2, §25.8.3) and VM-instruction error numbers (SDM Vol. 3C §31.4).
//!
//! Decoders are thin typed views over the raw VMCS values: they never fail, and bits the
//! SDM leaves undefined for a given exit are simply not exposed.

/// Basic exit reasons (SDM Vol. 3D Appendix C, Table C-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum BasicExitReason {
    /// Exception or NMI; details in the VM-exit interruption information.
    ExceptionOrNmi = 0,
    /// External interrupt.
    ExternalInterrupt = 1,
    /// Triple fault.
    TripleFault = 2,
    /// INIT signal.
    InitSignal = 3,
    /// Start-up IPI.
    StartupIpi = 4,
    /// I/O system-management interrupt.
    IoSmi = 5,
    /// Other SMI.
    OtherSmi = 6,
    /// Interrupt window.
    InterruptWindow = 7,
    /// NMI window.
    NmiWindow = 8,
    /// Task switch.
    TaskSwitch = 9,
    /// CPUID.
    Cpuid = 10,
    /// GETSEC.
    Getsec = 11,
    /// HLT.
    Hlt = 12,
    /// INVD.
    Invd = 13,
    /// INVLPG.
    Invlpg = 14,
    /// RDPMC.
    Rdpmc = 15,
    /// RDTSC.
    Rdtsc = 16,
    /// RSM in SMM.
    Rsm = 17,
    /// VMCALL.
    Vmcall = 18,
    /// VMCLEAR.
    Vmclear = 19,
    /// VMLAUNCH.
    Vmlaunch = 20,
    /// VMPTRLD.
    Vmptrld = 21,
    /// VMPTRST.
    Vmptrst = 22,
    /// VMREAD.
    Vmread = 23,
    /// VMRESUME.
    Vmresume = 24,
    /// VMWRITE.
    Vmwrite = 25,
    /// VMXOFF.
    Vmxoff = 26,
    /// VMXON.
    Vmxon = 27,
    /// Control-register access; see [`CrAccessQualification`].
    CrAccess = 28,
    /// MOV DR.
    DrAccess = 29,
    /// I/O instruction; see [`IoQualification`].
    IoInstruction = 30,
    /// RDMSR.
    Rdmsr = 31,
    /// WRMSR.
    Wrmsr = 32,
    /// VM-entry failure due to invalid guest state.
    EntryFailureGuestState = 33,
    /// VM-entry failure due to MSR loading.
    EntryFailureMsrLoading = 34,
    /// MWAIT.
    Mwait = 36,
    /// Monitor trap flag.
    MonitorTrapFlag = 37,
    /// MONITOR.
    Monitor = 39,
    /// PAUSE.
    Pause = 40,
    /// VM-entry failure due to a machine-check event.
    EntryFailureMachineCheck = 41,
    /// TPR below threshold.
    TprBelowThreshold = 43,
    /// APIC access.
    ApicAccess = 44,
    /// Virtualized EOI.
    VirtualizedEoi = 45,
    /// Access to GDTR or IDTR.
    GdtrIdtrAccess = 46,
    /// Access to LDTR or TR.
    LdtrTrAccess = 47,
    /// EPT violation; see [`EptViolationQualification`].
    EptViolation = 48,
    /// EPT misconfiguration.
    EptMisconfiguration = 49,
    /// INVEPT.
    Invept = 50,
    /// RDTSCP.
    Rdtscp = 51,
    /// VMX-preemption timer expired.
    PreemptionTimerExpired = 52,
    /// INVVPID.
    Invvpid = 53,
    /// WBINVD or WBNOINVD.
    Wbinvd = 54,
    /// XSETBV.
    Xsetbv = 55,
    /// APIC write.
    ApicWrite = 56,
    /// RDRAND.
    Rdrand = 57,
    /// INVPCID.
    Invpcid = 58,
    /// VMFUNC.
    Vmfunc = 59,
    /// ENCLS.
    Encls = 60,
    /// RDSEED.
    Rdseed = 61,
    /// Page-modification log full.
    PmlFull = 62,
    /// XSAVES.
    Xsaves = 63,
    /// XRSTORS.
    Xrstors = 64,
    /// PCONFIG.
    Pconfig = 65,
    /// SPP-related event.
    SppEvent = 66,
    /// UMWAIT.
    Umwait = 67,
    /// TPAUSE.
    Tpause = 68,
    /// LOADIWKEY.
    Loadiwkey = 69,
    /// ENCLV.
    Enclv = 70,
    /// ENQCMD PASID translation failure.
    EnqcmdPasidFailure = 72,
    /// ENQCMDS PASID translation failure.
    EnqcmdsPasidFailure = 73,
    /// Bus lock.
    BusLock = 74,
    /// Instruction timeout (notify window).
    InstructionTimeout = 75,
    /// SEAMCALL.
    Seamcall = 76,
    /// TDCALL.
    Tdcall = 77,
    /// RDMSRLIST.
    Rdmsrlist = 78,
    /// WRMSRLIST.
    Wrmsrlist = 79,
}

impl BasicExitReason {
    /// Every reason, in numeric order.
    pub const ALL: &'static [Self] = &[
        Self::ExceptionOrNmi,
        Self::ExternalInterrupt,
        Self::TripleFault,
        Self::InitSignal,
        Self::StartupIpi,
        Self::IoSmi,
        Self::OtherSmi,
        Self::InterruptWindow,
        Self::NmiWindow,
        Self::TaskSwitch,
        Self::Cpuid,
        Self::Getsec,
        Self::Hlt,
        Self::Invd,
        Self::Invlpg,
        Self::Rdpmc,
        Self::Rdtsc,
        Self::Rsm,
        Self::Vmcall,
        Self::Vmclear,
        Self::Vmlaunch,
        Self::Vmptrld,
        Self::Vmptrst,
        Self::Vmread,
        Self::Vmresume,
        Self::Vmwrite,
        Self::Vmxoff,
        Self::Vmxon,
        Self::CrAccess,
        Self::DrAccess,
        Self::IoInstruction,
        Self::Rdmsr,
        Self::Wrmsr,
        Self::EntryFailureGuestState,
        Self::EntryFailureMsrLoading,
        Self::Mwait,
        Self::MonitorTrapFlag,
        Self::Monitor,
        Self::Pause,
        Self::EntryFailureMachineCheck,
        Self::TprBelowThreshold,
        Self::ApicAccess,
        Self::VirtualizedEoi,
        Self::GdtrIdtrAccess,
        Self::LdtrTrAccess,
        Self::EptViolation,
        Self::EptMisconfiguration,
        Self::Invept,
        Self::Rdtscp,
        Self::PreemptionTimerExpired,
        Self::Invvpid,
        Self::Wbinvd,
        Self::Xsetbv,
        Self::ApicWrite,
        Self::Rdrand,
        Self::Invpcid,
        Self::Vmfunc,
        Self::Encls,
        Self::Rdseed,
        Self::PmlFull,
        Self::Xsaves,
        Self::Xrstors,
        Self::Pconfig,
        Self::SppEvent,
        Self::Umwait,
        Self::Tpause,
        Self::Loadiwkey,
        Self::Enclv,
        Self::EnqcmdPasidFailure,
        Self::EnqcmdsPasidFailure,
        Self::BusLock,
        Self::InstructionTimeout,
        Self::Seamcall,
        Self::Tdcall,
        Self::Rdmsrlist,
        Self::Wrmsrlist,
    ];

    /// The reason with basic number `raw`, or `None` for numbers Appendix C does not
    /// define (35, 38, 42, 71, ...), which the caller should treat as fatal.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        // A table indexed by number: decoding is on every exit's path, so it must not
        // search.
        const TABLE: [Option<BasicExitReason>; 80] = {
            let mut table = [None; 80];
            let mut i = 0;
            while i < BasicExitReason::ALL.len() {
                table[BasicExitReason::ALL[i] as usize] = Some(BasicExitReason::ALL[i]);
                i += 1;
            }
            table
        };
        if (raw as usize) < TABLE.len() {
            TABLE[raw as usize]
        } else {
            None
        }
    }

    /// The basic exit-reason number.
    pub const fn raw(self) -> u16 {
        self as u16
    }
}

/// The 32-bit exit-reason field (SDM Vol. 3C §25.9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitReason(pub u32);

impl ExitReason {
    /// Bits 15:0, the basic exit reason number.
    pub const fn basic_raw(self) -> u16 {
        self.0 as u16
    }

    /// The decoded basic exit reason.
    pub const fn basic(self) -> Option<BasicExitReason> {
        BasicExitReason::from_raw(self.basic_raw() as u32)
    }

    /// Bit 27: the exit was incident to enclave mode.
    pub const fn from_enclave(self) -> bool {
        self.0 & (1 << 27) != 0
    }

    /// Bit 28: a monitor-trap-flag VM exit was pending (SMM VM exits).
    pub const fn pending_mtf(self) -> bool {
        self.0 & (1 << 28) != 0
    }

    /// Bit 29: the exit came from VMX root operation (SMM VM exits only).
    pub const fn from_vmx_root(self) -> bool {
        self.0 & (1 << 29) != 0
    }

    /// Bit 31: VM entry failed (reasons 33, 34, 41). Only the exit reason and exit
    /// qualification are then valid; guest state was not loaded (SDM Vol. 3C §27.8).
    pub const fn entry_failure(self) -> bool {
        self.0 & (1 << 31) != 0
    }
}

/// Size of an I/O access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSize {
    /// One byte.
    Byte,
    /// Two bytes.
    Word,
    /// Four bytes.
    Dword,
}

impl IoSize {
    /// Size in bytes.
    pub const fn bytes(self) -> u8 {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
        }
    }
}

/// Direction of an I/O access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDirection {
    /// OUT/OUTS: guest to device.
    Out,
    /// IN/INS: device to guest.
    In,
}

/// Exit qualification for I/O instructions (SDM Vol. 3C §28.2.1, Table 28-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoQualification(pub u64);

impl IoQualification {
    /// Bits 2:0: access size; `None` for the encodings the SDM says are not used.
    pub const fn size(self) -> Option<IoSize> {
        match self.0 & 0b111 {
            0 => Some(IoSize::Byte),
            1 => Some(IoSize::Word),
            3 => Some(IoSize::Dword),
            _ => None,
        }
    }

    /// Bit 3: 0 = OUT, 1 = IN.
    pub const fn direction(self) -> IoDirection {
        if self.0 & (1 << 3) != 0 {
            IoDirection::In
        } else {
            IoDirection::Out
        }
    }

    /// Bit 4: INS/OUTS.
    pub const fn is_string(self) -> bool {
        self.0 & (1 << 4) != 0
    }

    /// Bit 5: REP prefix.
    pub const fn is_rep(self) -> bool {
        self.0 & (1 << 5) != 0
    }

    /// Bit 6: the port came from an immediate rather than DX.
    pub const fn immediate_operand(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Bits 31:16: port number.
    pub const fn port(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Kind of control-register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccessType {
    /// MOV to CR.
    MovToCr,
    /// MOV from CR.
    MovFromCr,
    /// CLTS.
    Clts,
    /// LMSW.
    Lmsw,
}

/// Exit qualification for control-register accesses (SDM Vol. 3C §28.2.1, Table 28-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrAccessQualification(pub u64);

impl CrAccessQualification {
    /// Bits 3:0: the control register (0 for CLTS and LMSW).
    pub const fn cr(self) -> u8 {
        (self.0 & 0xF) as u8
    }

    /// Bits 5:4: access type.
    pub const fn access_type(self) -> CrAccessType {
        match (self.0 >> 4) & 0b11 {
            0 => CrAccessType::MovToCr,
            1 => CrAccessType::MovFromCr,
            2 => CrAccessType::Clts,
            _ => CrAccessType::Lmsw,
        }
    }

    /// Bit 6: the LMSW operand was in memory (0 = register).
    pub const fn lmsw_memory_operand(self) -> bool {
        self.0 & (1 << 6) != 0
    }

    /// Bits 11:8: general-purpose register of a MOV CR (0 = RAX ... 15 = R15).
    pub const fn gpr(self) -> u8 {
        ((self.0 >> 8) & 0xF) as u8
    }

    /// Bits 31:16: the LMSW source data.
    pub const fn lmsw_source(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Exit qualification for EPT violations (SDM Vol. 3C §28.2.1, Table 28-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolationQualification(pub u64);

impl EptViolationQualification {
    const fn bit(self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }

    /// Bit 0: the access was a data read.
    pub const fn read(self) -> bool {
        self.bit(0)
    }

    /// Bit 1: the access was a data write.
    pub const fn write(self) -> bool {
        self.bit(1)
    }

    /// Bit 2: the access was an instruction fetch.
    pub const fn fetch(self) -> bool {
        self.bit(2)
    }

    /// Bit 3: the guest-physical address was readable (AND of the walk's read bits).
    pub const fn readable(self) -> bool {
        self.bit(3)
    }

    /// Bit 4: the guest-physical address was writable.
    pub const fn writable(self) -> bool {
        self.bit(4)
    }

    /// Bit 5: the guest-physical address was executable (supervisor-executable with
    /// mode-based execute control).
    pub const fn executable(self) -> bool {
        self.bit(5)
    }

    /// Bit 6: user-mode executable (mode-based execute control only).
    pub const fn user_executable(self) -> bool {
        self.bit(6)
    }

    /// Bit 7: the guest-linear-address VMCS field is valid.
    pub const fn guest_linear_address_valid(self) -> bool {
        self.bit(7)
    }

    /// Bit 8 (meaningful when bit 7 is set): 1 = the access was to the translation of a
    /// linear address, 0 = to a guest paging-structure entry during the guest's walk.
    pub const fn linear_translation(self) -> bool {
        self.bit(8)
    }

    /// Bit 12: NMI unblocking due to IRET.
    pub const fn nmi_unblocking(self) -> bool {
        self.bit(12)
    }
}

/// Event type in interruption-information fields (SDM Vol. 3C §25.8.3, §25.9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum InterruptionType {
    /// External interrupt.
    ExternalInterrupt = 0,
    /// Non-maskable interrupt.
    Nmi = 2,
    /// Hardware exception (#PF, #GP, ...).
    HardwareException = 3,
    /// Software interrupt (INT n).
    SoftwareInterrupt = 4,
    /// Privileged software exception (INT1).
    PrivilegedSoftwareException = 5,
    /// Software exception (INT3, INTO).
    SoftwareException = 6,
    /// Other event (MTF injection).
    OtherEvent = 7,
}

/// VM-exit interruption information, IDT-vectoring information and VM-entry
/// interruption information, which share one format (SDM Vol. 3C §25.8.3, §25.9.2,
/// §25.9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptionInfo(pub u32);

impl InterruptionInfo {
    const ERROR_CODE_VALID: u32 = 1 << 11;
    const NMI_UNBLOCKING: u32 = 1 << 12;
    const VALID: u32 = 1 << 31;

    /// A valid event for VM-entry injection. `deliver_error_code` must match whether the
    /// vector pushes one, or VM entry fails (SDM Vol. 3C §27.2.1.3).
    pub const fn new(vector: u8, kind: InterruptionType, deliver_error_code: bool) -> Self {
        let mut raw = Self::VALID | ((kind as u32) << 8) | vector as u32;
        if deliver_error_code {
            raw |= Self::ERROR_CODE_VALID;
        }
        Self(raw)
    }

    /// Bits 7:0: vector.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }

    /// Bits 10:8: event type; `None` for the reserved value 1.
    pub const fn kind(self) -> Option<InterruptionType> {
        match (self.0 >> 8) & 0b111 {
            0 => Some(InterruptionType::ExternalInterrupt),
            2 => Some(InterruptionType::Nmi),
            3 => Some(InterruptionType::HardwareException),
            4 => Some(InterruptionType::SoftwareInterrupt),
            5 => Some(InterruptionType::PrivilegedSoftwareException),
            6 => Some(InterruptionType::SoftwareException),
            7 => Some(InterruptionType::OtherEvent),
            _ => None,
        }
    }

    /// Bit 11: an error code was (or is to be) delivered.
    pub const fn error_code_valid(self) -> bool {
        self.0 & Self::ERROR_CODE_VALID != 0
    }

    /// Bit 12: NMI unblocking due to IRET (exit interruption information only).
    pub const fn nmi_unblocking(self) -> bool {
        self.0 & Self::NMI_UNBLOCKING != 0
    }

    /// Bit 31: the field holds an event.
    pub const fn valid(self) -> bool {
        self.0 & Self::VALID != 0
    }
}

/// VM-instruction error numbers (SDM Vol. 3C §31.4, Table 31-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum VmInstructionError {
    /// VMCALL executed in VMX root operation.
    VmcallInRoot = 1,
    /// VMCLEAR with invalid physical address.
    VmclearInvalidAddress = 2,
    /// VMCLEAR with VMXON pointer.
    VmclearVmxonPointer = 3,
    /// VMLAUNCH with non-clear VMCS.
    VmlaunchNonClearVmcs = 4,
    /// VMRESUME with non-launched VMCS.
    VmresumeNonLaunchedVmcs = 5,
    /// VMRESUME after VMXOFF.
    VmresumeAfterVmxoff = 6,
    /// VM entry with invalid control field(s).
    EntryInvalidControlFields = 7,
    /// VM entry with invalid host-state field(s).
    EntryInvalidHostState = 8,
    /// VMPTRLD with invalid physical address.
    VmptrldInvalidAddress = 9,
    /// VMPTRLD with VMXON pointer.
    VmptrldVmxonPointer = 10,
    /// VMPTRLD with incorrect VMCS revision identifier.
    VmptrldBadRevision = 11,
    /// VMREAD/VMWRITE from/to unsupported VMCS component.
    UnsupportedVmcsComponent = 12,
    /// VMWRITE to read-only VMCS component.
    VmwriteReadOnlyComponent = 13,
    /// VMXON executed in VMX root operation.
    VmxonInRoot = 15,
    /// VM entry with invalid executive-VMCS pointer.
    EntryInvalidExecutiveVmcsPointer = 16,
    /// VM entry with non-launched executive VMCS.
    EntryNonLaunchedExecutiveVmcs = 17,
    /// VM entry with executive-VMCS pointer not VMXON pointer.
    EntryExecutiveVmcsPointerNotVmxon = 18,
    /// VMCALL with non-clear VMCS.
    VmcallNonClearVmcs = 19,
    /// VMCALL with invalid VM-exit control fields.
    VmcallInvalidExitControls = 20,
    /// VMCALL with incorrect MSEG revision identifier.
    VmcallBadMsegRevision = 22,
    /// VMXOFF under dual-monitor treatment of SMIs and SMM.
    VmxoffUnderDualMonitor = 23,
    /// VMCALL with invalid SMM-monitor features.
    VmcallInvalidSmmMonitorFeatures = 24,
    /// VM entry with invalid VM-execution control fields in executive VMCS.
    EntryInvalidExecutiveControls = 25,
    /// VM entry with events blocked by MOV SS.
    EntryEventsBlockedByMovSs = 26,
    /// Invalid operand to INVEPT/INVVPID.
    InvalidInveptInvvpidOperand = 28,
}

impl VmInstructionError {
    /// Every error number, in numeric order.
    pub const ALL: &'static [Self] = &[
        Self::VmcallInRoot,
        Self::VmclearInvalidAddress,
        Self::VmclearVmxonPointer,
        Self::VmlaunchNonClearVmcs,
        Self::VmresumeNonLaunchedVmcs,
        Self::VmresumeAfterVmxoff,
        Self::EntryInvalidControlFields,
        Self::EntryInvalidHostState,
        Self::VmptrldInvalidAddress,
        Self::VmptrldVmxonPointer,
        Self::VmptrldBadRevision,
        Self::UnsupportedVmcsComponent,
        Self::VmwriteReadOnlyComponent,
        Self::VmxonInRoot,
        Self::EntryInvalidExecutiveVmcsPointer,
        Self::EntryNonLaunchedExecutiveVmcs,
        Self::EntryExecutiveVmcsPointerNotVmxon,
        Self::VmcallNonClearVmcs,
        Self::VmcallInvalidExitControls,
        Self::VmcallBadMsegRevision,
        Self::VmxoffUnderDualMonitor,
        Self::VmcallInvalidSmmMonitorFeatures,
        Self::EntryInvalidExecutiveControls,
        Self::EntryEventsBlockedByMovSs,
        Self::InvalidInveptInvvpidOperand,
    ];

    /// The error with number `raw` (the VM-instruction error field), or `None` for 0 and
    /// numbers the SDM does not define.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i] as u32 == raw {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The SDM's description, for fatal-error reports.
    pub const fn description(self) -> &'static str {
        match self {
            Self::VmcallInRoot => "VMCALL executed in VMX root operation",
            Self::VmclearInvalidAddress => "VMCLEAR with invalid physical address",
            Self::VmclearVmxonPointer => "VMCLEAR with VMXON pointer",
            Self::VmlaunchNonClearVmcs => "VMLAUNCH with non-clear VMCS",
            Self::VmresumeNonLaunchedVmcs => "VMRESUME with non-launched VMCS",
            Self::VmresumeAfterVmxoff => "VMRESUME after VMXOFF",
            Self::EntryInvalidControlFields => "VM entry with invalid control field(s)",
            Self::EntryInvalidHostState => "VM entry with invalid host-state field(s)",
            Self::VmptrldInvalidAddress => "VMPTRLD with invalid physical address",
            Self::VmptrldVmxonPointer => "VMPTRLD with VMXON pointer",
            Self::VmptrldBadRevision => "VMPTRLD with incorrect VMCS revision identifier",
            Self::UnsupportedVmcsComponent => "VMREAD/VMWRITE from/to unsupported VMCS component",
            Self::VmwriteReadOnlyComponent => "VMWRITE to read-only VMCS component",
            Self::VmxonInRoot => "VMXON executed in VMX root operation",
            Self::EntryInvalidExecutiveVmcsPointer => {
                "VM entry with invalid executive-VMCS pointer"
            }
            Self::EntryNonLaunchedExecutiveVmcs => "VM entry with non-launched executive VMCS",
            Self::EntryExecutiveVmcsPointerNotVmxon => {
                "VM entry with executive-VMCS pointer not VMXON pointer"
            }
            Self::VmcallNonClearVmcs => "VMCALL with non-clear VMCS",
            Self::VmcallInvalidExitControls => "VMCALL with invalid VM-exit control fields",
            Self::VmcallBadMsegRevision => "VMCALL with incorrect MSEG revision identifier",
            Self::VmxoffUnderDualMonitor => "VMXOFF under dual-monitor treatment of SMIs and SMM",
            Self::VmcallInvalidSmmMonitorFeatures => "VMCALL with invalid SMM-monitor features",
            Self::EntryInvalidExecutiveControls => {
                "VM entry with invalid VM-execution control fields in executive VMCS"
            }
            Self::EntryEventsBlockedByMovSs => "VM entry with events blocked by MOV SS",
            Self::InvalidInveptInvvpidOperand => "Invalid operand to INVEPT/INVVPID",
        }
    }
}

impl core::fmt::Display for VmInstructionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "VM-instruction error {}: {}",
            *self as u32,
            self.description()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_reasons_round_trip_and_gaps_are_none() {
        for &r in BasicExitReason::ALL {
            assert_eq!(BasicExitReason::from_raw(r as u32), Some(r));
        }
        assert!(
            BasicExitReason::ALL
                .windows(2)
                .all(|w| (w[0] as u16) < (w[1] as u16))
        );
        for gap in [35, 38, 42, 71, 80, 0xFFFF, 0x1_0000] {
            assert_eq!(BasicExitReason::from_raw(gap), None);
        }
        assert_eq!(BasicExitReason::from_raw(10), Some(BasicExitReason::Cpuid));
        assert_eq!(
            BasicExitReason::from_raw(48),
            Some(BasicExitReason::EptViolation)
        );
    }

    #[test]
    fn exit_reason_word() {
        // VM-entry failure due to invalid guest state: bit 31 set, basic reason 33.
        let r = ExitReason(0x8000_0021);
        assert!(r.entry_failure());
        assert_eq!(r.basic(), Some(BasicExitReason::EntryFailureGuestState));
        let r = ExitReason(30);
        assert!(!r.entry_failure());
        assert_eq!(r.basic(), Some(BasicExitReason::IoInstruction));
        assert!(ExitReason(1 << 27).from_enclave());
        assert!(ExitReason(1 << 28).pending_mtf());
        assert!(ExitReason(1 << 29).from_vmx_root());
    }

    #[test]
    fn io_qualification() {
        // `in al, dx` from port 0x3F8.
        let q = IoQualification(0x03F8_0008);
        assert_eq!(q.size(), Some(IoSize::Byte));
        assert_eq!(q.direction(), IoDirection::In);
        assert!(!q.is_string() && !q.is_rep() && !q.immediate_operand());
        assert_eq!(q.port(), 0x3F8);
        // `rep outsd` to port 0xCFC.
        let q = IoQualification(0x0CFC_0033);
        assert_eq!(q.size(), Some(IoSize::Dword));
        assert_eq!(q.size().map(IoSize::bytes), Some(4));
        assert_eq!(q.direction(), IoDirection::Out);
        assert!(q.is_string() && q.is_rep());
        // `out 0x80, ax` (immediate).
        let q = IoQualification(0x0080_0041);
        assert_eq!(q.size(), Some(IoSize::Word));
        assert!(q.immediate_operand());
        assert_eq!(q.port(), 0x80);
        assert_eq!(IoQualification(2).size(), None);
    }

    #[test]
    fn cr_access_qualification() {
        // mov cr3, r9
        let q = CrAccessQualification(0x0903);
        assert_eq!(q.cr(), 3);
        assert_eq!(q.access_type(), CrAccessType::MovToCr);
        assert_eq!(q.gpr(), 9);
        // mov rax, cr8
        let q = CrAccessQualification(0x0018);
        assert_eq!(
            (q.cr(), q.access_type(), q.gpr()),
            (8, CrAccessType::MovFromCr, 0)
        );
        assert_eq!(
            CrAccessQualification(0x20).access_type(),
            CrAccessType::Clts
        );
        // lmsw from memory with source 0x0011
        let q = CrAccessQualification(0x0011_0070);
        assert_eq!(q.access_type(), CrAccessType::Lmsw);
        assert!(q.lmsw_memory_operand());
        assert_eq!(q.lmsw_source(), 0x11);
    }

    #[test]
    fn ept_violation_qualification() {
        // Write to a read-only, executable page through a linear address.
        let q = EptViolationQualification(0b1_1010_1010);
        assert!(!q.read() && q.write() && !q.fetch());
        assert!(q.readable() && !q.writable() && q.executable());
        assert!(q.guest_linear_address_valid() && q.linear_translation());
        assert!(!q.user_executable() && !q.nmi_unblocking());
        let q = EptViolationQualification(0b100 | (1 << 12));
        assert!(q.fetch() && q.nmi_unblocking());
        assert!(!q.guest_linear_address_valid());
    }

    #[test]
    fn interruption_info() {
        // #GP with error code: vector 13, type 3, bit 11, bit 31.
        let gp = InterruptionInfo::new(13, InterruptionType::HardwareException, true);
        assert_eq!(gp.0, 0x8000_0B0D);
        assert_eq!(gp.vector(), 13);
        assert_eq!(gp.kind(), Some(InterruptionType::HardwareException));
        assert!(gp.error_code_valid() && gp.valid() && !gp.nmi_unblocking());
        let ext = InterruptionInfo(0x8000_0030);
        assert_eq!(ext.kind(), Some(InterruptionType::ExternalInterrupt));
        assert_eq!(ext.vector(), 0x30);
        assert!(!ext.error_code_valid());
        assert_eq!(InterruptionInfo(0x100).kind(), None);
        assert!(!InterruptionInfo(0x100).valid());
        assert_eq!(
            InterruptionInfo::new(2, InterruptionType::Nmi, false).0,
            0x8000_0202
        );
    }

    #[test]
    fn vm_instruction_errors() {
        for &e in VmInstructionError::ALL {
            assert_eq!(VmInstructionError::from_raw(e as u32), Some(e));
            assert!(!e.description().is_empty());
        }
        for gap in [0, 14, 21, 27, 29] {
            assert_eq!(VmInstructionError::from_raw(gap), None);
        }
        assert_eq!(
            VmInstructionError::from_raw(7).map(|e| e.description()),
            Some("VM entry with invalid control field(s)")
        );
        assert_eq!(
            format!("{}", VmInstructionError::EntryInvalidHostState),
            "VM-instruction error 8: VM entry with invalid host-state field(s)"
        );
    }
}
