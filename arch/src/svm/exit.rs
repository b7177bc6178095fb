//! SVM exit codes (APM Vol. 2 Appendix C), EXITINFO decoders, event injection (APM Vol. 2
//! §15.20) and the intercept bits of the VMCB control area (APM Vol. 2 Table B-1;
//! instruction intercepts §15.9, IOIO §15.10, MSR §15.11).

use bitflags::bitflags;

/// EXITCODE values (APM Vol. 2 Appendix C, Table C-1). Ranges that differ only by a
/// register or vector number carry that number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SvmExitCode {
    /// 0x00-0x0F: read of CRn.
    CrRead(u8),
    /// 0x10-0x1F: write of CRn.
    CrWrite(u8),
    /// 0x20-0x2F: read of DRn.
    DrRead(u8),
    /// 0x30-0x3F: write of DRn.
    DrWrite(u8),
    /// 0x40-0x5F: exception vector 0-31.
    Exception(u8),
    /// 0x60: physical INTR.
    Intr,
    /// 0x61: physical NMI.
    Nmi,
    /// 0x62: physical SMI.
    Smi,
    /// 0x63: physical INIT.
    Init,
    /// 0x64: virtual INTR.
    Vintr,
    /// 0x65: write of CR0 changing bits other than TS or MP.
    Cr0SelectiveWrite,
    /// 0x66: IDTR read.
    IdtrRead,
    /// 0x67: GDTR read.
    GdtrRead,
    /// 0x68: LDTR read.
    LdtrRead,
    /// 0x69: TR read.
    TrRead,
    /// 0x6A: IDTR write.
    IdtrWrite,
    /// 0x6B: GDTR write.
    GdtrWrite,
    /// 0x6C: LDTR write.
    LdtrWrite,
    /// 0x6D: TR write.
    TrWrite,
    /// 0x6E: RDTSC.
    Rdtsc,
    /// 0x6F: RDPMC.
    Rdpmc,
    /// 0x70: PUSHF.
    Pushf,
    /// 0x71: POPF.
    Popf,
    /// 0x72: CPUID.
    Cpuid,
    /// 0x73: RSM.
    Rsm,
    /// 0x74: IRET.
    Iret,
    /// 0x75: INTn.
    Swint,
    /// 0x76: INVD.
    Invd,
    /// 0x77: PAUSE.
    Pause,
    /// 0x78: HLT.
    Hlt,
    /// 0x79: INVLPG.
    Invlpg,
    /// 0x7A: INVLPGA.
    Invlpga,
    /// 0x7B: IN/OUT/INS/OUTS; see [`IoioInfo`].
    Ioio,
    /// 0x7C: RDMSR (EXITINFO1 = 0) or WRMSR (EXITINFO1 = 1).
    Msr,
    /// 0x7D: task switch.
    TaskSwitch,
    /// 0x7E: FERR_FREEZE.
    FerrFreeze,
    /// 0x7F: shutdown (triple fault).
    Shutdown,
    /// 0x80: VMRUN.
    Vmrun,
    /// 0x81: VMMCALL.
    Vmmcall,
    /// 0x82: VMLOAD.
    Vmload,
    /// 0x83: VMSAVE.
    Vmsave,
    /// 0x84: STGI.
    Stgi,
    /// 0x85: CLGI.
    Clgi,
    /// 0x86: SKINIT.
    Skinit,
    /// 0x87: RDTSCP.
    Rdtscp,
    /// 0x88: ICEBP.
    Icebp,
    /// 0x89: WBINVD/WBNOINVD.
    Wbinvd,
    /// 0x8A: MONITOR/MONITORX.
    Monitor,
    /// 0x8B: MWAIT/MWAITX.
    Mwait,
    /// 0x8C: MWAIT/MWAITX with the monitor armed.
    MwaitConditional,
    /// 0x8D: XSETBV.
    Xsetbv,
    /// 0x8E: RDPRU.
    Rdpru,
    /// 0x8F: EFER write trap (after the write completed).
    EferWriteTrap,
    /// 0x90-0x9F: CRn write trap.
    CrWriteTrap(u8),
    /// 0xA0: INVLPGB.
    Invlpgb,
    /// 0xA1: illegally specified INVLPGB.
    InvlpgbIllegal,
    /// 0xA2: INVPCID.
    Invpcid,
    /// 0xA3: MCOMMIT.
    Mcommit,
    /// 0xA4: TLBSYNC.
    Tlbsync,
    /// 0x400: nested page fault; EXITINFO1 is an [`NpfErrorCode`], EXITINFO2 the
    /// guest-physical address.
    Npf,
    /// 0x401: AVIC incomplete IPI.
    AvicIncompleteIpi,
    /// 0x402: AVIC access to an unaccelerated APIC register.
    AvicNoAccel,
    /// 0x403: VMGEXIT (SEV-ES).
    Vmgexit,
    /// -1: VMRUN found invalid guest state in the VMCB.
    Invalid,
}

impl SvmExitCode {
    /// Decodes EXITCODE; `None` for codes not listed in Appendix C.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        // Register and vector numbers fit in u8 in every range arm below.
        let low = raw as u8;
        Some(match raw {
            0x00..=0x0F => Self::CrRead(low),
            0x10..=0x1F => Self::CrWrite(low - 0x10),
            0x20..=0x2F => Self::DrRead(low - 0x20),
            0x30..=0x3F => Self::DrWrite(low - 0x30),
            0x40..=0x5F => Self::Exception(low - 0x40),
            0x60 => Self::Intr,
            0x61 => Self::Nmi,
            0x62 => Self::Smi,
            0x63 => Self::Init,
            0x64 => Self::Vintr,
            0x65 => Self::Cr0SelectiveWrite,
            0x66 => Self::IdtrRead,
            0x67 => Self::GdtrRead,
            0x68 => Self::LdtrRead,
            0x69 => Self::TrRead,
            0x6A => Self::IdtrWrite,
            0x6B => Self::GdtrWrite,
            0x6C => Self::LdtrWrite,
            0x6D => Self::TrWrite,
            0x6E => Self::Rdtsc,
            0x6F => Self::Rdpmc,
            0x70 => Self::Pushf,
            0x71 => Self::Popf,
            0x72 => Self::Cpuid,
            0x73 => Self::Rsm,
            0x74 => Self::Iret,
            0x75 => Self::Swint,
            0x76 => Self::Invd,
            0x77 => Self::Pause,
            0x78 => Self::Hlt,
            0x79 => Self::Invlpg,
            0x7A => Self::Invlpga,
            0x7B => Self::Ioio,
            0x7C => Self::Msr,
            0x7D => Self::TaskSwitch,
            0x7E => Self::FerrFreeze,
            0x7F => Self::Shutdown,
            0x80 => Self::Vmrun,
            0x81 => Self::Vmmcall,
            0x82 => Self::Vmload,
            0x83 => Self::Vmsave,
            0x84 => Self::Stgi,
            0x85 => Self::Clgi,
            0x86 => Self::Skinit,
            0x87 => Self::Rdtscp,
            0x88 => Self::Icebp,
            0x89 => Self::Wbinvd,
            0x8A => Self::Monitor,
            0x8B => Self::Mwait,
            0x8C => Self::MwaitConditional,
            0x8D => Self::Xsetbv,
            0x8E => Self::Rdpru,
            0x8F => Self::EferWriteTrap,
            0x90..=0x9F => Self::CrWriteTrap(low - 0x90),
            0xA0 => Self::Invlpgb,
            0xA1 => Self::InvlpgbIllegal,
            0xA2 => Self::Invpcid,
            0xA3 => Self::Mcommit,
            0xA4 => Self::Tlbsync,
            0x400 => Self::Npf,
            0x401 => Self::AvicIncompleteIpi,
            0x402 => Self::AvicNoAccel,
            0x403 => Self::Vmgexit,
            u64::MAX => Self::Invalid,
            _ => return None,
        })
    }

    /// The EXITCODE value. Register and vector numbers are masked to their range, so
    /// every value round-trips through [`SvmExitCode::from_raw`].
    pub const fn raw(self) -> u64 {
        match self {
            Self::CrRead(n) => (n & 0xF) as u64,
            Self::CrWrite(n) => 0x10 + (n & 0xF) as u64,
            Self::DrRead(n) => 0x20 + (n & 0xF) as u64,
            Self::DrWrite(n) => 0x30 + (n & 0xF) as u64,
            Self::Exception(v) => 0x40 + (v & 0x1F) as u64,
            Self::Intr => 0x60,
            Self::Nmi => 0x61,
            Self::Smi => 0x62,
            Self::Init => 0x63,
            Self::Vintr => 0x64,
            Self::Cr0SelectiveWrite => 0x65,
            Self::IdtrRead => 0x66,
            Self::GdtrRead => 0x67,
            Self::LdtrRead => 0x68,
            Self::TrRead => 0x69,
            Self::IdtrWrite => 0x6A,
            Self::GdtrWrite => 0x6B,
            Self::LdtrWrite => 0x6C,
            Self::TrWrite => 0x6D,
            Self::Rdtsc => 0x6E,
            Self::Rdpmc => 0x6F,
            Self::Pushf => 0x70,
            Self::Popf => 0x71,
            Self::Cpuid => 0x72,
            Self::Rsm => 0x73,
            Self::Iret => 0x74,
            Self::Swint => 0x75,
            Self::Invd => 0x76,
            Self::Pause => 0x77,
            Self::Hlt => 0x78,
            Self::Invlpg => 0x79,
            Self::Invlpga => 0x7A,
            Self::Ioio => 0x7B,
            Self::Msr => 0x7C,
            Self::TaskSwitch => 0x7D,
            Self::FerrFreeze => 0x7E,
            Self::Shutdown => 0x7F,
            Self::Vmrun => 0x80,
            Self::Vmmcall => 0x81,
            Self::Vmload => 0x82,
            Self::Vmsave => 0x83,
            Self::Stgi => 0x84,
            Self::Clgi => 0x85,
            Self::Skinit => 0x86,
            Self::Rdtscp => 0x87,
            Self::Icebp => 0x88,
            Self::Wbinvd => 0x89,
            Self::Monitor => 0x8A,
            Self::Mwait => 0x8B,
            Self::MwaitConditional => 0x8C,
            Self::Xsetbv => 0x8D,
            Self::Rdpru => 0x8E,
            Self::EferWriteTrap => 0x8F,
            Self::CrWriteTrap(n) => 0x90 + (n & 0xF) as u64,
            Self::Invlpgb => 0xA0,
            Self::InvlpgbIllegal => 0xA1,
            Self::Invpcid => 0xA2,
            Self::Mcommit => 0xA3,
            Self::Tlbsync => 0xA4,
            Self::Npf => 0x400,
            Self::AvicIncompleteIpi => 0x401,
            Self::AvicNoAccel => 0x402,
            Self::Vmgexit => 0x403,
            Self::Invalid => u64::MAX,
        }
    }
}

/// EXITINFO1 of an IOIO intercept (APM Vol. 2 §15.10.2, Figure 15-2). EXITINFO2 holds
/// the rIP of the next instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoioInfo(pub u64);

impl IoioInfo {
    /// Builds EXITINFO1 for tests and emulation paths; `None` unless `size` is 1, 2 or 4
    /// bytes.
    pub const fn new(port: u16, size: u8, is_in: bool, string: bool, rep: bool) -> Option<Self> {
        let mut raw = (port as u64) << 16;
        raw |= match size {
            1 => 1 << 4,
            2 => 1 << 5,
            4 => 1 << 6,
            _ => return None,
        };
        if is_in {
            raw |= 1;
        }
        if string {
            raw |= 1 << 2;
        }
        if rep {
            raw |= 1 << 3;
        }
        Some(Self(raw))
    }

    /// Bit 0 (TYPE): 1 = IN/INS, 0 = OUT/OUTS.
    pub const fn is_in(self) -> bool {
        self.0 & 1 != 0
    }

    /// Bit 2 (STR): INS/OUTS.
    pub const fn is_string(self) -> bool {
        self.0 & (1 << 2) != 0
    }

    /// Bit 3 (REP): REP prefix.
    pub const fn is_rep(self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// Bits 6:4 (SZ32, SZ16, SZ8), one-hot: the operand size in bytes, or `None` if the
    /// bits are not exactly one of them.
    pub const fn size(self) -> Option<u8> {
        match (self.0 >> 4) & 0b111 {
            0b001 => Some(1),
            0b010 => Some(2),
            0b100 => Some(4),
            _ => None,
        }
    }

    /// Bits 9:7 (A64, A32, A16), one-hot: the address size in bits for string
    /// instructions.
    pub const fn address_size(self) -> Option<u8> {
        match (self.0 >> 7) & 0b111 {
            0b001 => Some(16),
            0b010 => Some(32),
            0b100 => Some(64),
            _ => None,
        }
    }

    /// Bits 12:10: effective segment of a string instruction (0 = ES ... 5 = GS), with
    /// decode assists.
    pub const fn segment(self) -> u8 {
        ((self.0 >> 10) & 0b111) as u8
    }

    /// Bits 31:16: port.
    pub const fn port(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// EXITINFO1 of a nested page fault: a page-fault error code describing the nested
/// walk, plus where in the guest's translation it happened (APM Vol. 2 §15.25.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpfErrorCode(pub u64);

impl NpfErrorCode {
    const fn bit(self, n: u32) -> bool {
        self.0 & (1 << n) != 0
    }

    /// Bit 0: the nested entry was present (a protection violation, not a missing page).
    pub const fn present(self) -> bool {
        self.bit(0)
    }

    /// Bit 1: the access was a write. Walks of guest page tables count as writes, since
    /// the CPU may set accessed/dirty bits.
    pub const fn write(self) -> bool {
        self.bit(1)
    }

    /// Bit 2: the access was a user access; nested walks are user accesses.
    pub const fn user(self) -> bool {
        self.bit(2)
    }

    /// Bit 3: a reserved bit was set in a nested entry (a hypervisor bug).
    pub const fn reserved_bit(self) -> bool {
        self.bit(3)
    }

    /// Bit 4: the access was an instruction fetch.
    pub const fn fetch(self) -> bool {
        self.bit(4)
    }

    /// Bit 32: the fault was on the final guest-physical address of the access.
    pub const fn final_translation(self) -> bool {
        self.bit(32)
    }

    /// Bit 33: the fault was on a guest page-table access during the guest's walk.
    pub const fn page_table_walk(self) -> bool {
        self.bit(33)
    }
}

/// Event type in EVENTINJ and EXITINTINFO (APM Vol. 2 §15.20).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EventType {
    /// External or virtual interrupt (INTR).
    Interrupt = 0,
    /// NMI.
    Nmi = 2,
    /// Exception (fault or trap).
    Exception = 3,
    /// Software interrupt (INTn).
    SoftwareInterrupt = 4,
}

/// EVENTINJ at VMCB offset 0x0A8, also the EXITINTINFO format (APM Vol. 2 §15.20,
/// §15.7.2): bits 7:0 vector, 10:8 type, 11 error code valid, 31 valid, 63:32 error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventInjection(pub u64);

impl EventInjection {
    const ERROR_CODE_VALID: u64 = 1 << 11;
    const VALID: u64 = 1 << 31;

    /// Nothing to inject.
    pub const NONE: Self = Self(0);

    const fn build(vector: u8, kind: EventType, error_code: Option<u32>) -> Self {
        let mut raw = Self::VALID | ((kind as u64) << 8) | vector as u64;
        if let Some(code) = error_code {
            raw |= Self::ERROR_CODE_VALID | ((code as u64) << 32);
        }
        Self(raw)
    }

    /// An exception that pushes no error code (#DE, #UD, #BP, ...). `vector` must be an
    /// exception vector (0-31) other than 2: NMIs have their own type.
    pub const fn exception(vector: u8) -> Self {
        Self::build(vector, EventType::Exception, None)
    }

    /// An exception that pushes `error_code` (#DF, #TS, #NP, #SS, #GP, #PF, #AC, ...).
    pub const fn exception_with_error(vector: u8, error_code: u32) -> Self {
        Self::build(vector, EventType::Exception, Some(error_code))
    }

    /// An external interrupt with `vector`.
    pub const fn external_interrupt(vector: u8) -> Self {
        Self::build(vector, EventType::Interrupt, None)
    }

    /// An NMI (the vector is ignored by the CPU; 2 is stored for readability).
    pub const fn nmi() -> Self {
        Self::build(2, EventType::Nmi, None)
    }

    /// A software interrupt (INTn) with `vector`; needs nRIP to resume correctly.
    pub const fn software_interrupt(vector: u8) -> Self {
        Self::build(vector, EventType::SoftwareInterrupt, None)
    }

    /// Bits 7:0.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }

    /// Bits 10:8; `None` for reserved types 1, 5, 6 and 7.
    pub const fn kind(self) -> Option<EventType> {
        match (self.0 >> 8) & 0b111 {
            0 => Some(EventType::Interrupt),
            2 => Some(EventType::Nmi),
            3 => Some(EventType::Exception),
            4 => Some(EventType::SoftwareInterrupt),
            _ => None,
        }
    }

    /// Bit 11.
    pub const fn error_code_valid(self) -> bool {
        self.0 & Self::ERROR_CODE_VALID != 0
    }

    /// Bit 31.
    pub const fn valid(self) -> bool {
        self.0 & Self::VALID != 0
    }

    /// Bits 63:32.
    pub const fn error_code(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

bitflags! {
    /// CR intercepts at VMCB offset 0x000: bits 15:0 reads of CR0-15, 31:16 writes
    /// (APM Vol. 2 Table B-1). Named for the registers a hypervisor usually intercepts;
    /// [`CrIntercepts::read`] and [`CrIntercepts::write`] cover the rest.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CrIntercepts: u32 {
        /// Read of CR0.
        const READ_CR0 = 1 << 0;
        /// Read of CR3.
        const READ_CR3 = 1 << 3;
        /// Read of CR4.
        const READ_CR4 = 1 << 4;
        /// Read of CR8.
        const READ_CR8 = 1 << 8;
        /// Write of CR0.
        const WRITE_CR0 = 1 << 16;
        /// Write of CR3.
        const WRITE_CR3 = 1 << 19;
        /// Write of CR4.
        const WRITE_CR4 = 1 << 20;
        /// Write of CR8.
        const WRITE_CR8 = 1 << 24;
        // Every bit is architectural.
        const _ = !0;
    }
}

impl CrIntercepts {
    /// The read intercept of CR`n` (0-15).
    pub const fn read(n: u8) -> Self {
        Self::from_bits_retain(1 << (n & 0xF))
    }

    /// The write intercept of CR`n` (0-15).
    pub const fn write(n: u8) -> Self {
        Self::from_bits_retain(1 << (16 + (n & 0xF)))
    }
}

/// DR intercepts at VMCB offset 0x004 (APM Vol. 2 Table B-1): the bit for reads of DR`n`.
pub const fn dr_read_intercept(n: u8) -> u32 {
    1 << (n & 0xF)
}

/// The bit for writes of DR`n` at VMCB offset 0x004.
pub const fn dr_write_intercept(n: u8) -> u32 {
    1 << (16 + (n & 0xF))
}

bitflags! {
    /// First miscellaneous intercept word, VMCB offset 0x00C (APM Vol. 2 Table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Intercepts1: u32 {
        /// Physical INTR.
        const INTR = 1 << 0;
        /// Physical NMI.
        const NMI = 1 << 1;
        /// Physical SMI.
        const SMI = 1 << 2;
        /// Physical INIT.
        const INIT = 1 << 3;
        /// Virtual INTR.
        const VINTR = 1 << 4;
        /// CR0 writes that change bits other than TS or MP.
        const CR0_SELECTIVE_WRITE = 1 << 5;
        /// IDTR reads.
        const IDTR_READ = 1 << 6;
        /// GDTR reads.
        const GDTR_READ = 1 << 7;
        /// LDTR reads.
        const LDTR_READ = 1 << 8;
        /// TR reads.
        const TR_READ = 1 << 9;
        /// IDTR writes.
        const IDTR_WRITE = 1 << 10;
        /// GDTR writes.
        const GDTR_WRITE = 1 << 11;
        /// LDTR writes.
        const LDTR_WRITE = 1 << 12;
        /// TR writes.
        const TR_WRITE = 1 << 13;
        /// RDTSC.
        const RDTSC = 1 << 14;
        /// RDPMC.
        const RDPMC = 1 << 15;
        /// PUSHF.
        const PUSHF = 1 << 16;
        /// POPF.
        const POPF = 1 << 17;
        /// CPUID.
        const CPUID = 1 << 18;
        /// RSM.
        const RSM = 1 << 19;
        /// IRET.
        const IRET = 1 << 20;
        /// INTn.
        const INTN = 1 << 21;
        /// INVD.
        const INVD = 1 << 22;
        /// PAUSE.
        const PAUSE = 1 << 23;
        /// HLT.
        const HLT = 1 << 24;
        /// INVLPG.
        const INVLPG = 1 << 25;
        /// INVLPGA.
        const INVLPGA = 1 << 26;
        /// IN/OUT through the I/O permissions map (APM Vol. 2 §15.10).
        const IOIO_PROT = 1 << 27;
        /// RDMSR/WRMSR through the MSR permissions map (APM Vol. 2 §15.11).
        const MSR_PROT = 1 << 28;
        /// Task switches.
        const TASK_SWITCH = 1 << 29;
        /// FERR_FREEZE.
        const FERR_FREEZE = 1 << 30;
        /// Shutdown.
        const SHUTDOWN = 1 << 31;
    }
}

bitflags! {
    /// Second miscellaneous intercept word, VMCB offset 0x010 (APM Vol. 2 Table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Intercepts2: u32 {
        /// VMRUN. Must be set: VMRUN with it clear exits with VMEXIT_INVALID
        /// (APM Vol. 2 §15.5.1).
        const VMRUN = 1 << 0;
        /// VMMCALL.
        const VMMCALL = 1 << 1;
        /// VMLOAD.
        const VMLOAD = 1 << 2;
        /// VMSAVE.
        const VMSAVE = 1 << 3;
        /// STGI.
        const STGI = 1 << 4;
        /// CLGI.
        const CLGI = 1 << 5;
        /// SKINIT.
        const SKINIT = 1 << 6;
        /// RDTSCP.
        const RDTSCP = 1 << 7;
        /// ICEBP.
        const ICEBP = 1 << 8;
        /// WBINVD/WBNOINVD.
        const WBINVD = 1 << 9;
        /// MONITOR/MONITORX.
        const MONITOR = 1 << 10;
        /// MWAIT/MWAITX unconditionally.
        const MWAIT = 1 << 11;
        /// MWAIT/MWAITX if the monitor is armed.
        const MWAIT_CONDITIONAL = 1 << 12;
        /// XSETBV.
        const XSETBV = 1 << 13;
        /// RDPRU.
        const RDPRU = 1 << 14;
        /// Trap after writes of EFER.
        const EFER_WRITE_TRAP = 1 << 15;
        /// Bits 31:16: trap after writes of CR0-15; see [`Intercepts2::cr_write_trap`].
        const _ = 0xFFFF_0000;
    }
}

impl Intercepts2 {
    /// The write-trap bit for CR`n` (0-15).
    pub const fn cr_write_trap(n: u8) -> Self {
        Self::from_bits_retain(1 << (16 + (n & 0xF)))
    }
}

bitflags! {
    /// Third intercept word, VMCB offset 0x014 (APM Vol. 2 Table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Intercepts3: u32 {
        /// All INVLPGB.
        const INVLPGB = 1 << 0;
        /// Illegally specified INVLPGB only.
        const INVLPGB_ILLEGAL = 1 << 1;
        /// INVPCID.
        const INVPCID = 1 << 2;
        /// MCOMMIT.
        const MCOMMIT = 1 << 3;
        /// TLBSYNC.
        const TLBSYNC = 1 << 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_from_appendix_c() {
        assert_eq!(SvmExitCode::from_raw(0x72), Some(SvmExitCode::Cpuid));
        assert_eq!(SvmExitCode::from_raw(0x78), Some(SvmExitCode::Hlt));
        assert_eq!(SvmExitCode::from_raw(0x7B), Some(SvmExitCode::Ioio));
        assert_eq!(SvmExitCode::from_raw(0x7C), Some(SvmExitCode::Msr));
        assert_eq!(SvmExitCode::from_raw(0x7F), Some(SvmExitCode::Shutdown));
        assert_eq!(SvmExitCode::from_raw(0x80), Some(SvmExitCode::Vmrun));
        assert_eq!(SvmExitCode::from_raw(0x81), Some(SvmExitCode::Vmmcall));
        assert_eq!(SvmExitCode::from_raw(0x400), Some(SvmExitCode::Npf));
        assert_eq!(SvmExitCode::from_raw(u64::MAX), Some(SvmExitCode::Invalid));
        assert_eq!(SvmExitCode::from_raw(0x03), Some(SvmExitCode::CrRead(3)));
        assert_eq!(SvmExitCode::from_raw(0x14), Some(SvmExitCode::CrWrite(4)));
        assert_eq!(SvmExitCode::from_raw(0x27), Some(SvmExitCode::DrRead(7)));
        assert_eq!(
            SvmExitCode::from_raw(0x4E),
            Some(SvmExitCode::Exception(14))
        );
        assert_eq!(
            SvmExitCode::from_raw(0x5F),
            Some(SvmExitCode::Exception(31))
        );
        assert_eq!(
            SvmExitCode::from_raw(0x98),
            Some(SvmExitCode::CrWriteTrap(8))
        );
        for unknown in [0xA5, 0xFF, 0x3FF, 0x404, 0x1_0000_0060, u64::MAX - 1] {
            assert_eq!(SvmExitCode::from_raw(unknown), None, "{unknown:#x}");
        }
    }

    #[test]
    fn exit_codes_round_trip() {
        let mut known = 0;
        for raw in (0..0x500).chain([u64::MAX]) {
            if let Some(code) = SvmExitCode::from_raw(raw) {
                assert_eq!(code.raw(), raw, "{code:?}");
                known += 1;
            }
        }
        // 0x00-0x8F, 0x90-0x9F, 0xA0-0xA4, 0x400-0x403, -1.
        assert_eq!(known, 0x90 + 0x10 + 5 + 4 + 1);
    }

    #[test]
    fn ioio_exit_info() {
        // `in al, dx` at port 0x3F8: TYPE=1, SZ8, A16 unset, port in 31:16.
        let info = IoioInfo(0x03F8_0011);
        assert!(info.is_in() && !info.is_string() && !info.is_rep());
        assert_eq!(info.size(), Some(1));
        assert_eq!(info.port(), 0x3F8);
        // `rep outsw` to port 0x1F0 with 64-bit addressing through DS (segment 3).
        let info = IoioInfo(0x01F0_0000 | (3 << 10) | (1 << 9) | (1 << 5) | 0b1100);
        assert!(!info.is_in() && info.is_string() && info.is_rep());
        assert_eq!(info.size(), Some(2));
        assert_eq!(info.address_size(), Some(64));
        assert_eq!(info.segment(), 3);
        assert_eq!(
            IoioInfo::new(0xCFC, 4, false, false, false),
            Some(IoioInfo(0x0CFC_0040))
        );
        assert_eq!(
            IoioInfo::new(0x3F8, 1, true, false, false),
            Some(IoioInfo(0x03F8_0011))
        );
        assert_eq!(IoioInfo::new(0x3F8, 3, true, false, false), None);
        assert_eq!(IoioInfo(0x30).size(), None);
    }

    #[test]
    fn npf_error_code() {
        // Write to a present but read-only final GPA.
        let e = NpfErrorCode((1 << 32) | 0b111);
        assert!(e.present() && e.write() && e.user());
        assert!(e.final_translation() && !e.page_table_walk());
        assert!(!e.fetch() && !e.reserved_bit());
        // Not-present entry hit while walking the guest's page tables.
        let e = NpfErrorCode((1 << 33) | 0b110);
        assert!(!e.present() && e.page_table_walk() && !e.final_translation());
        assert!(NpfErrorCode(1 << 4).fetch() && NpfErrorCode(1 << 3).reserved_bit());
    }

    #[test]
    fn event_injection_encoding() {
        // #GP(0x18): vector 13, type 3, EV, V, error code in 63:32.
        let gp = EventInjection::exception_with_error(13, 0x18);
        assert_eq!(gp.0, 0x0000_0018_8000_0B0D);
        assert_eq!(gp.vector(), 13);
        assert_eq!(gp.kind(), Some(EventType::Exception));
        assert!(gp.valid() && gp.error_code_valid());
        assert_eq!(gp.error_code(), 0x18);
        assert_eq!(EventInjection::exception(6).0, 0x8000_0306);
        assert_eq!(EventInjection::external_interrupt(0x20).0, 0x8000_0020);
        assert_eq!(EventInjection::nmi().0, 0x8000_0202);
        assert_eq!(EventInjection::software_interrupt(0x80).0, 0x8000_0480);
        assert!(!EventInjection::NONE.valid());
        assert_eq!(EventInjection(0x8000_0100).kind(), None);
    }

    #[test]
    fn intercept_bits() {
        assert_eq!(CrIntercepts::read(3), CrIntercepts::READ_CR3);
        assert_eq!(CrIntercepts::write(8), CrIntercepts::WRITE_CR8);
        assert_eq!(CrIntercepts::write(0).bits(), 0x1_0000);
        assert_eq!(dr_read_intercept(7), 0x80);
        assert_eq!(dr_write_intercept(7), 0x80_0000);
        assert_eq!(Intercepts1::CPUID.bits(), 1 << 18);
        assert_eq!(Intercepts1::IOIO_PROT.bits(), 1 << 27);
        assert_eq!(Intercepts1::MSR_PROT.bits(), 1 << 28);
        assert_eq!(Intercepts1::SHUTDOWN.bits(), 1 << 31);
        assert_eq!(Intercepts2::VMRUN.bits(), 1);
        assert_eq!(Intercepts2::VMMCALL.bits(), 2);
        assert_eq!(Intercepts2::cr_write_trap(4).bits(), 1 << 20);
        assert_eq!(Intercepts3::INVPCID.bits(), 4);
    }
}
