//! VM-execution, VM-exit and VM-entry controls (SDM Vol. 3C §25.6-25.8) and the rules
//! for fitting them, and CR0/CR4, to what the processor allows (SDM Vol. 3D Appendix A).
//!
//! A control the CPU does not support must not be silently dropped: a missing "enable
//! EPT" or "use MSR bitmaps" changes what the guest can reach. [`adjust_controls`] therefore
//! fails, naming the bits, instead of clearing them.

use bitflags::bitflags;

bitflags! {
    /// Pin-based VM-execution controls (SDM Vol. 3C §25.6.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PinBasedControls: u32 {
        /// External interrupts cause VM exits.
        const EXTERNAL_INTERRUPT_EXITING = 1 << 0;
        /// NMIs cause VM exits.
        const NMI_EXITING = 1 << 3;
        /// NMIs are never blocked and virtual-NMI blocking is tracked.
        const VIRTUAL_NMIS = 1 << 5;
        /// Activate the VMX-preemption timer.
        const PREEMPTION_TIMER = 1 << 6;
        /// Process posted interrupts.
        const POSTED_INTERRUPTS = 1 << 7;
    }
}

bitflags! {
    /// Primary processor-based VM-execution controls (SDM Vol. 3C §25.6.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PrimaryControls: u32 {
        /// Exit at the start of any instruction when RFLAGS.IF = 1 and nothing blocks.
        const INTERRUPT_WINDOW_EXITING = 1 << 2;
        /// Apply the TSC offset to RDTSC/RDTSCP/RDMSR(TSC).
        const USE_TSC_OFFSETTING = 1 << 3;
        /// HLT exits.
        const HLT_EXITING = 1 << 7;
        /// INVLPG exits.
        const INVLPG_EXITING = 1 << 9;
        /// MWAIT exits.
        const MWAIT_EXITING = 1 << 10;
        /// RDPMC exits.
        const RDPMC_EXITING = 1 << 11;
        /// RDTSC/RDTSCP exit.
        const RDTSC_EXITING = 1 << 12;
        /// MOV to CR3 exits unless the value is a CR3-target value.
        const CR3_LOAD_EXITING = 1 << 15;
        /// MOV from CR3 exits.
        const CR3_STORE_EXITING = 1 << 16;
        /// Use the tertiary processor-based controls.
        const ACTIVATE_TERTIARY_CONTROLS = 1 << 17;
        /// MOV to CR8 exits.
        const CR8_LOAD_EXITING = 1 << 19;
        /// MOV from CR8 exits.
        const CR8_STORE_EXITING = 1 << 20;
        /// TPR virtualization through the virtual-APIC page.
        const USE_TPR_SHADOW = 1 << 21;
        /// Exit when there is no virtual-NMI blocking.
        const NMI_WINDOW_EXITING = 1 << 22;
        /// MOV DR exits.
        const MOV_DR_EXITING = 1 << 23;
        /// Every I/O instruction exits (ignored when I/O bitmaps are used).
        const UNCONDITIONAL_IO_EXITING = 1 << 24;
        /// I/O bitmaps decide which ports exit.
        const USE_IO_BITMAPS = 1 << 25;
        /// Monitor trap flag: exit after one instruction.
        const MONITOR_TRAP_FLAG = 1 << 27;
        /// MSR bitmaps decide which RDMSR/WRMSR exit; otherwise all do.
        const USE_MSR_BITMAPS = 1 << 28;
        /// MONITOR exits.
        const MONITOR_EXITING = 1 << 29;
        /// PAUSE exits.
        const PAUSE_EXITING = 1 << 30;
        /// Use the secondary processor-based controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
    }
}

bitflags! {
    /// Secondary processor-based VM-execution controls (SDM Vol. 3C §25.6.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SecondaryControls: u32 {
        /// Virtualize accesses to the APIC-access page.
        const VIRTUALIZE_APIC_ACCESSES = 1 << 0;
        /// Enable EPT.
        const ENABLE_EPT = 1 << 1;
        /// LGDT/LIDT/LLDT/LTR/SGDT/SIDT/SLDT/STR exit.
        const DESCRIPTOR_TABLE_EXITING = 1 << 2;
        /// RDTSCP does not #UD.
        const ENABLE_RDTSCP = 1 << 3;
        /// Virtualize x2APIC mode.
        const VIRTUALIZE_X2APIC_MODE = 1 << 4;
        /// Tag linear translations with the VPID.
        const ENABLE_VPID = 1 << 5;
        /// WBINVD/WBNOINVD exit.
        const WBINVD_EXITING = 1 << 6;
        /// The guest may run unpaged and in real mode (requires EPT).
        const UNRESTRICTED_GUEST = 1 << 7;
        /// APIC-register virtualization.
        const APIC_REGISTER_VIRTUALIZATION = 1 << 8;
        /// Virtual-interrupt delivery.
        const VIRTUAL_INTERRUPT_DELIVERY = 1 << 9;
        /// PAUSE-loop exiting.
        const PAUSE_LOOP_EXITING = 1 << 10;
        /// RDRAND exits.
        const RDRAND_EXITING = 1 << 11;
        /// INVPCID does not #UD.
        const ENABLE_INVPCID = 1 << 12;
        /// Enable VM functions.
        const ENABLE_VM_FUNCTIONS = 1 << 13;
        /// VMCS shadowing.
        const VMCS_SHADOWING = 1 << 14;
        /// ENCLS exiting.
        const ENABLE_ENCLS_EXITING = 1 << 15;
        /// RDSEED exits.
        const RDSEED_EXITING = 1 << 16;
        /// Page-modification logging.
        const ENABLE_PML = 1 << 17;
        /// EPT violations may become #VE.
        const EPT_VIOLATION_VE = 1 << 18;
        /// Conceal VMX from Intel PT.
        const CONCEAL_VMX_FROM_PT = 1 << 19;
        /// XSAVES/XRSTORS do not #UD.
        const ENABLE_XSAVES = 1 << 20;
        /// PASID translation.
        const PASID_TRANSLATION = 1 << 21;
        /// Mode-based execute control for EPT.
        const MODE_BASED_EPT_EXECUTE = 1 << 22;
        /// Sub-page write permissions for EPT.
        const EPT_SUBPAGE_WRITE = 1 << 23;
        /// Intel PT uses guest-physical addresses.
        const PT_USES_GUEST_PHYSICAL = 1 << 24;
        /// Use TSC scaling.
        const USE_TSC_SCALING = 1 << 25;
        /// UMWAIT/TPAUSE do not #UD.
        const ENABLE_USER_WAIT_PAUSE = 1 << 26;
        /// PCONFIG does not #UD.
        const ENABLE_PCONFIG = 1 << 27;
        /// ENCLV exiting.
        const ENABLE_ENCLV_EXITING = 1 << 28;
        /// VMM bus-lock detection.
        const BUS_LOCK_DETECTION = 1 << 30;
        /// Instruction timeout (notify window).
        const INSTRUCTION_TIMEOUT = 1 << 31;
    }
}

bitflags! {
    /// Primary VM-exit controls (SDM Vol. 3C §25.7.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ExitControls: u32 {
        /// Save DR7 and IA32_DEBUGCTL.
        const SAVE_DEBUG_CONTROLS = 1 << 2;
        /// The host runs in 64-bit mode after the exit.
        const HOST_ADDRESS_SPACE_SIZE = 1 << 9;
        /// Load host IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 12;
        /// Acknowledge the interrupt controller and store the vector on external-interrupt
        /// exits.
        const ACKNOWLEDGE_INTERRUPT_ON_EXIT = 1 << 15;
        /// Save guest IA32_PAT.
        const SAVE_PAT = 1 << 18;
        /// Load host IA32_PAT.
        const LOAD_PAT = 1 << 19;
        /// Save guest IA32_EFER.
        const SAVE_EFER = 1 << 20;
        /// Load host IA32_EFER.
        const LOAD_EFER = 1 << 21;
        /// Save the VMX-preemption timer value.
        const SAVE_PREEMPTION_TIMER = 1 << 22;
        /// Clear IA32_BNDCFGS.
        const CLEAR_BNDCFGS = 1 << 23;
        /// Conceal VMX from Intel PT.
        const CONCEAL_VMX_FROM_PT = 1 << 24;
        /// Clear IA32_RTIT_CTL.
        const CLEAR_RTIT_CTL = 1 << 25;
        /// Clear IA32_LBR_CTL.
        const CLEAR_LBR_CTL = 1 << 26;
        /// Clear UINV.
        const CLEAR_UINV = 1 << 27;
        /// Load host CET state.
        const LOAD_CET_STATE = 1 << 28;
        /// Load host PKRS.
        const LOAD_PKRS = 1 << 29;
        /// Save guest IA32_PERF_GLOBAL_CTL.
        const SAVE_PERF_GLOBAL_CTL = 1 << 30;
        /// Use the secondary VM-exit controls.
        const ACTIVATE_SECONDARY_CONTROLS = 1 << 31;
    }
}

bitflags! {
    /// VM-entry controls (SDM Vol. 3C §25.8.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct EntryControls: u32 {
        /// Load DR7 and IA32_DEBUGCTL.
        const LOAD_DEBUG_CONTROLS = 1 << 2;
        /// The guest is in IA-32e mode after entry (must match guest EFER.LMA).
        const IA32E_MODE_GUEST = 1 << 9;
        /// Entry to SMM.
        const ENTRY_TO_SMM = 1 << 10;
        /// Deactivate dual-monitor treatment.
        const DEACTIVATE_DUAL_MONITOR = 1 << 11;
        /// Load guest IA32_PERF_GLOBAL_CTRL.
        const LOAD_PERF_GLOBAL_CTRL = 1 << 13;
        /// Load guest IA32_PAT.
        const LOAD_PAT = 1 << 14;
        /// Load guest IA32_EFER.
        const LOAD_EFER = 1 << 15;
        /// Load guest IA32_BNDCFGS.
        const LOAD_BNDCFGS = 1 << 16;
        /// Conceal VMX from Intel PT.
        const CONCEAL_VMX_FROM_PT = 1 << 17;
        /// Load guest IA32_RTIT_CTL.
        const LOAD_RTIT_CTL = 1 << 18;
        /// Load UINV.
        const LOAD_UINV = 1 << 19;
        /// Load guest CET state.
        const LOAD_CET_STATE = 1 << 20;
        /// Load guest IA32_LBR_CTL.
        const LOAD_LBR_CTL = 1 << 21;
        /// Load guest PKRS.
        const LOAD_PKRS = 1 << 22;
    }
}

/// "Default1" controls (SDM Vol. 3D §A.2): reserved bits that are 1 in the non-TRUE
/// capability MSRs. When IA32_VMX_BASIC\[55\] is set, the TRUE MSRs may report some of them
/// as allowed-0; otherwise they must stay 1, which [`adjust_controls`] does by itself.
pub mod default1 {
    /// Pin-based: bits 1, 2, 4.
    pub const PIN_BASED: u32 = 0x0000_0016;
    /// Primary processor-based: bits 1, 4-6, 8, 13-16, 26.
    pub const PRIMARY: u32 = 0x0401_E172;
    /// VM-exit: bits 0-8, 10, 11, 13, 14, 16, 17.
    pub const EXIT: u32 = 0x0003_6DFF;
    /// VM-entry: bits 0-8, 12.
    pub const ENTRY: u32 = 0x0000_11FF;
}

/// Requested controls the processor cannot set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlsError {
    /// Bits that were requested but are 0 in the capability MSR's allowed-1 half.
    pub unsupported: u32,
}

impl core::fmt::Display for ControlsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unsupported VMX controls {:#010x}", self.unsupported)
    }
}

/// Fits `desired` to a VMX capability MSR (SDM Vol. 3D §A.3-A.5): bits 31:0 are the
/// allowed-0 settings (a 1 means the control must be 1) and bits 63:32 the allowed-1
/// settings (a 0 means the control must be 0).
///
/// Must-be-one bits are added; a requested bit the CPU cannot set is an error, because
/// dropping it would silently weaken isolation. Pass IA32_VMX_TRUE_*_CTLS when
/// IA32_VMX_BASIC\[55\] is set and the plain MSR otherwise; secondary controls have only
/// IA32_VMX_PROCBASED_CTLS2, which reports no must-be-one bits.
pub const fn adjust_controls(desired: u32, capability_msr: u64) -> Result<u32, ControlsError> {
    let must_be_one = capability_msr as u32;
    let may_be_one = (capability_msr >> 32) as u32;
    let unsupported = desired & !may_be_one;
    if unsupported != 0 {
        return Err(ControlsError { unsupported });
    }
    Ok(desired | must_be_one)
}

macro_rules! impl_adjust {
    ($($ty:ty),+) => {$(
        impl $ty {
            /// These controls with the capability MSR's must-be-one bits added; see
            /// [`adjust_controls`]. Reserved must-be-one bits are kept even though they
            /// have no name here.
            pub const fn adjust(self, capability_msr: u64) -> Result<Self, ControlsError> {
                match adjust_controls(self.bits(), capability_msr) {
                    Ok(bits) => Ok(Self::from_bits_retain(bits)),
                    Err(e) => Err(e),
                }
            }
        }
    )+};
}

impl_adjust!(
    PinBasedControls,
    PrimaryControls,
    SecondaryControls,
    ExitControls,
    EntryControls
);

/// CR0.PE.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.NE: fixed to 1 in VMX operation on every processor so far.
pub const CR0_NE: u64 = 1 << 5;
/// CR0.PG.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.VMXE: fixed to 1 in VMX operation.
pub const CR4_VMXE: u64 = 1 << 13;

/// A control register value that breaks the fixed-bit rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedBitsError {
    /// Bits that must be 1 but are 0.
    pub missing: u64,
    /// Bits that must be 0 but are 1.
    pub forbidden: u64,
}

/// The bits of CR0 or CR4 fixed in VMX operation, from IA32_VMX_CR0_FIXED0/1 (SDM Vol. 3D
/// §A.7) or IA32_VMX_CR4_FIXED0/1 (§A.8): a 1 in FIXED0 fixes the bit to 1, a 0 in FIXED1
/// fixes it to 0. The same rules apply to host CR0/CR4 at VMXON and VM entry and, with the
/// unrestricted-guest relaxation, to the guest fields (SDM Vol. 3C §27.2.2, §27.3.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrFixed {
    /// Bits that must be 1.
    pub must_be_one: u64,
    /// Bits that may be 1.
    pub may_be_one: u64,
}

impl CrFixed {
    /// From the FIXED0 and FIXED1 MSR values.
    pub const fn from_msrs(fixed0: u64, fixed1: u64) -> Self {
        Self {
            must_be_one: fixed0,
            may_be_one: fixed1,
        }
    }

    /// For a guest CR0 under "unrestricted guest": PE and PG are not checked, so real-mode
    /// and unpaged protected-mode guests can run directly (SDM Vol. 3C §27.3.1.1).
    pub const fn relaxed_for_unrestricted_guest(self) -> Self {
        Self {
            must_be_one: self.must_be_one & !(CR0_PE | CR0_PG),
            may_be_one: self.may_be_one,
        }
    }

    /// `value` with fixed-1 bits set and fixed-0 bits cleared.
    pub const fn adjust(self, value: u64) -> u64 {
        (value | self.must_be_one) & self.may_be_one
    }

    /// Whether `value` already obeys the fixed bits.
    pub const fn check(self, value: u64) -> Result<(), FixedBitsError> {
        let missing = self.must_be_one & !value;
        let forbidden = value & !self.may_be_one;
        if missing == 0 && forbidden == 0 {
            Ok(())
        } else {
            Err(FixedBitsError { missing, forbidden })
        }
    }
}

/// Checks a guest CR0 for VM entry: the fixed bits (relaxed for PE/PG when `unrestricted`)
/// and, because paging without protection is never valid, PG = 1 requires PE = 1 (SDM Vol.
/// 3C §27.3.1.1).
pub const fn check_guest_cr0(
    fixed: CrFixed,
    cr0: u64,
    unrestricted: bool,
) -> Result<(), FixedBitsError> {
    let fixed = if unrestricted {
        fixed.relaxed_for_unrestricted_guest()
    } else {
        fixed
    };
    match fixed.check(cr0) {
        Err(e) => Err(e),
        Ok(()) if cr0 & CR0_PG != 0 && cr0 & CR0_PE == 0 => Err(FixedBitsError {
            missing: CR0_PE,
            forbidden: 0,
        }),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capability MSR value from must-be-one and may-be-one halves.
    fn cap(must: u32, may: u32) -> u64 {
        (u64::from(may) << 32) | u64::from(must)
    }

    #[test]
    fn bit_positions() {
        assert_eq!(PinBasedControls::VIRTUAL_NMIS.bits(), 0x20);
        assert_eq!(PrimaryControls::HLT_EXITING.bits(), 0x80);
        assert_eq!(PrimaryControls::USE_IO_BITMAPS.bits(), 0x0200_0000);
        assert_eq!(PrimaryControls::USE_MSR_BITMAPS.bits(), 0x1000_0000);
        assert_eq!(
            PrimaryControls::ACTIVATE_SECONDARY_CONTROLS.bits(),
            0x8000_0000
        );
        assert_eq!(SecondaryControls::ENABLE_EPT.bits(), 0x2);
        assert_eq!(SecondaryControls::ENABLE_VPID.bits(), 0x20);
        assert_eq!(SecondaryControls::UNRESTRICTED_GUEST.bits(), 0x80);
        assert_eq!(ExitControls::HOST_ADDRESS_SPACE_SIZE.bits(), 0x200);
        assert_eq!(ExitControls::LOAD_EFER.bits(), 0x0020_0000);
        assert_eq!(EntryControls::IA32E_MODE_GUEST.bits(), 0x200);
        assert_eq!(EntryControls::LOAD_EFER.bits(), 0x8000);
    }

    #[test]
    fn adds_must_be_one_bits() {
        let msr = cap(default1::PIN_BASED, 0x0000_007F);
        assert_eq!(
            adjust_controls(PinBasedControls::NMI_EXITING.bits(), msr),
            Ok(0x16 | 0x8)
        );
        let adjusted = (PinBasedControls::NMI_EXITING | PinBasedControls::VIRTUAL_NMIS)
            .adjust(msr)
            .unwrap();
        assert_eq!(adjusted.bits(), 0x16 | 0x8 | 0x20);
    }

    #[test]
    fn reports_unsupported_bits() {
        // CPU without unrestricted guest or VPID.
        let msr = cap(0, 0xFFFF_FF5F);
        let want = SecondaryControls::ENABLE_EPT
            | SecondaryControls::ENABLE_VPID
            | SecondaryControls::UNRESTRICTED_GUEST;
        assert_eq!(
            want.adjust(msr),
            Err(ControlsError {
                unsupported: (SecondaryControls::ENABLE_VPID
                    | SecondaryControls::UNRESTRICTED_GUEST)
                    .bits()
            })
        );
        assert!(
            SecondaryControls::ENABLE_EPT.adjust(msr).is_ok(),
            "supported subset adjusts"
        );
    }

    #[test]
    fn cr0_fixed_bits() {
        // Typical values: FIXED0 = PE | NE | PG, FIXED1 = all bits CR0 defines.
        let fixed = CrFixed::from_msrs(0x8000_0021, 0xFFFF_FFFF);
        assert_eq!(fixed.adjust(0), 0x8000_0021);
        assert_eq!(fixed.adjust(0x1_0000_0000), 0x8000_0021);
        assert_eq!(
            fixed.check(0x11),
            Err(FixedBitsError {
                missing: CR0_PG | CR0_NE,
                forbidden: 0
            })
        );
        // Unrestricted guest: real mode (PE = PG = 0) with NE is acceptable.
        let relaxed = fixed.relaxed_for_unrestricted_guest();
        assert_eq!(relaxed.adjust(0), CR0_NE);
        assert_eq!(check_guest_cr0(fixed, CR0_NE, true), Ok(()));
        assert!(check_guest_cr0(fixed, CR0_NE, false).is_err());
        // PG without PE is never valid.
        assert_eq!(
            check_guest_cr0(fixed, CR0_NE | CR0_PG, true),
            Err(FixedBitsError {
                missing: CR0_PE,
                forbidden: 0
            })
        );
    }

    #[test]
    fn cr4_fixed_bits() {
        let fixed = CrFixed::from_msrs(CR4_VMXE, 0x0037_67FF);
        assert_eq!(fixed.adjust(0x20), 0x20 | CR4_VMXE);
        assert_eq!(
            fixed.check(CR4_VMXE | (1 << 31)),
            Err(FixedBitsError {
                missing: 0,
                forbidden: 1 << 31
            })
        );
    }
}
