//! What this CPU's VMX supports (SDM Vol. 3D Appendix A), read once per CPU, and the
//! controls every vCPU on it uses, fitted to those capabilities.
//!
//! Everything Ferrovisor needs is checked before VMXON, so a CPU that lacks it is left
//! untouched and says why.

use ferrovisor_arch::msr::{VmxMsr, VmxPresent, read_vmx};
use ferrovisor_arch::vmx::controls::{
    ControlsError, CrFixed, EntryControls, ExitControls, PinBasedControls, PrimaryControls,
    SecondaryControls,
};
use x86_64::registers::model_specific::Msr;

use super::VmxError;

/// VMX capability MSRs that `ferrovisor_arch::msr::VmxMsr` does not list (SDM Vol. 4
/// Table 2-2; meaning in Vol. 3D Appendix A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum CapabilityMsr {
    /// IA32_VMX_PINBASED_CTLS (§A.3.1).
    PinBased = 0x481,
    /// IA32_VMX_EXIT_CTLS (§A.4).
    Exit = 0x483,
    /// IA32_VMX_ENTRY_CTLS (§A.5).
    Entry = 0x484,
    /// IA32_VMX_MISC (§A.6).
    Misc = 0x485,
    /// IA32_VMX_CR0_FIXED0 (§A.7).
    Cr0Fixed0 = 0x486,
    /// IA32_VMX_CR0_FIXED1.
    Cr0Fixed1 = 0x487,
    /// IA32_VMX_CR4_FIXED0 (§A.8).
    Cr4Fixed0 = 0x488,
    /// IA32_VMX_CR4_FIXED1.
    Cr4Fixed1 = 0x489,
    /// IA32_VMX_TRUE_PINBASED_CTLS (§A.3.1); exists when IA32_VMX_BASIC\[55\] is set.
    TruePinBased = 0x48D,
    /// IA32_VMX_TRUE_PROCBASED_CTLS (§A.3.2).
    TrueProcBased = 0x48E,
    /// IA32_VMX_TRUE_EXIT_CTLS (§A.4).
    TrueExit = 0x48F,
    /// IA32_VMX_TRUE_ENTRY_CTLS (§A.5).
    TrueEntry = 0x490,
}

/// IA32_VMX_BASIC\[55\]: the TRUE control MSRs exist (SDM Vol. 3D §A.1).
const BASIC_TRUE_CONTROLS: u64 = 1 << 55;

/// Reads a capability MSR. The TRUE MSRs are read only when IA32_VMX_BASIC\[55\] says they
/// exist; otherwise the plain MSR is returned, which is what §A.2 says to use.
fn read_capability(proof: VmxPresent, msr: CapabilityMsr) -> u64 {
    let msr = if read_vmx(proof, VmxMsr::Basic) & BASIC_TRUE_CONTROLS == 0 {
        match msr {
            CapabilityMsr::TruePinBased => CapabilityMsr::PinBased,
            CapabilityMsr::TrueExit => CapabilityMsr::Exit,
            CapabilityMsr::TrueEntry => CapabilityMsr::Entry,
            CapabilityMsr::TrueProcBased => return read_vmx(proof, VmxMsr::ProcBasedControls),
            other => other,
        }
    } else {
        msr
    };
    // SAFETY: the token proves CPUID reports VMX, so the architectural capability MSRs
    // 481h-48Ah exist (§A.1); the TRUE ones are read only when BASIC[55] is set.
    // Reading them has no side effects.
    unsafe { Msr::new(msr as u32).read() }
}

/// The controls every vCPU on this CPU runs with, already fitted to the capability MSRs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controls {
    pub pin: PinBasedControls,
    pub primary: PrimaryControls,
    pub secondary: SecondaryControls,
    pub exit: ExitControls,
    /// Without "IA-32e mode guest": PVH guests start in 32-bit protected mode.
    pub entry: EntryControls,
}

/// Capabilities of one CPU's VMX, as far as Ferrovisor uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// VMCS revision identifier (IA32_VMX_BASIC\[30:0\]).
    pub revision_id: u32,
    /// Whether the TRUE control MSRs were used (IA32_VMX_BASIC\[55\]).
    pub true_controls: bool,
    pub controls: Controls,
    /// Host CR0/CR4 in VMX operation (SDM Vol. 3D §A.7, §A.8).
    pub cr0: CrFixed,
    pub cr4: CrFixed,
    /// INVEPT/INVVPID single-context support (else all-context is used).
    pub invept_single: bool,
    pub invvpid_single: bool,
}

// IA32_VMX_BASIC fields (SDM Vol. 3D §A.1).
const BASIC_REGION_SIZE_SHIFT: u32 = 32;
const BASIC_32BIT_ADDRESSES: u64 = 1 << 48;
const BASIC_MEMORY_TYPE_SHIFT: u32 = 50;
const MEMORY_TYPE_WB: u64 = 6;

// IA32_VMX_MISC (SDM Vol. 3D §A.6): bit 5, VM exits store EFER.LMA into the "IA-32e mode
// guest" entry control (§28.2), which a guest entering long mode by itself relies on.
const MISC_STORES_LMA: u64 = 1 << 5;

// IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D §A.10).
const EPT_WALK_4: u64 = 1 << 6;
const EPT_WB: u64 = 1 << 14;
const INVEPT: u64 = 1 << 20;
const INVEPT_SINGLE: u64 = 1 << 25;
const INVEPT_ALL: u64 = 1 << 26;
const INVVPID: u64 = 1 << 32;
const INVVPID_SINGLE: u64 = 1 << 41;
const INVVPID_ALL: u64 = 1 << 42;

/// The controls Ferrovisor asks for (before the capability MSRs add must-be-one bits).
fn wanted() -> Controls {
    Controls {
        // Physical interrupts and NMIs belong to the host (SDM Vol. 3C §25.6.1).
        pin: PinBasedControls::EXTERNAL_INTERRUPT_EXITING | PinBasedControls::NMI_EXITING,
        // Every port and MSR exits through all-ones bitmaps; HLT exits so the host can
        // schedule (§25.6.2).
        primary: PrimaryControls::HLT_EXITING
            | PrimaryControls::USE_TSC_OFFSETTING
            | PrimaryControls::USE_IO_BITMAPS
            | PrimaryControls::USE_MSR_BITMAPS
            | PrimaryControls::ACTIVATE_SECONDARY_CONTROLS,
        // Unrestricted guest lets the PVH entry state (paging off) run natively; it
        // requires EPT (§27.2.1.1).
        secondary: SecondaryControls::ENABLE_EPT
            | SecondaryControls::ENABLE_VPID
            | SecondaryControls::UNRESTRICTED_GUEST,
        // A 64-bit host; EFER and PAT are switched by the CPU (§25.7.1). "Acknowledge
        // interrupt on exit" stays 0: the interrupt stays pending at the local APIC and
        // the host takes it through its IDT once it sets IF after the exit.
        exit: ExitControls::HOST_ADDRESS_SPACE_SIZE
            | ExitControls::SAVE_EFER
            | ExitControls::LOAD_EFER
            | ExitControls::SAVE_PAT
            | ExitControls::LOAD_PAT,
        entry: EntryControls::LOAD_EFER | EntryControls::LOAD_PAT,
    }
}

fn fit<T>(which: &'static str, result: Result<T, ControlsError>) -> Result<T, VmxError> {
    result.map_err(|e| VmxError::UnsupportedControls {
        which,
        unsupported: e.unsupported,
    })
}

/// Reads and checks this CPU's VMX capabilities (SDM Vol. 3D Appendix A).
pub fn read(proof: VmxPresent) -> Result<Capabilities, VmxError> {
    let basic = read_vmx(proof, VmxMsr::Basic);
    // Bit 31 is always 0 (§A.1): the revision identifier is bits 30:0.
    let revision_id = (basic & 0x7FFF_FFFF) as u32;
    let region_size = (basic >> BASIC_REGION_SIZE_SHIFT) & 0x1FFF;
    if region_size == 0 || region_size > 4096 {
        return Err(VmxError::Unsupported(
            "VMXON/VMCS regions larger than 4 KiB",
        ));
    }
    if basic & BASIC_32BIT_ADDRESSES != 0 {
        return Err(VmxError::Unsupported(
            "VMX structures limited to 32-bit physical addresses",
        ));
    }
    if (basic >> BASIC_MEMORY_TYPE_SHIFT) & 0xF != MEMORY_TYPE_WB {
        return Err(VmxError::Unsupported(
            "VMCS memory type other than write-back",
        ));
    }
    let true_controls = basic & BASIC_TRUE_CONTROLS != 0;

    let primary_cap = read_capability(proof, CapabilityMsr::TrueProcBased);
    // Zero when the CPU has no secondary controls (then nothing below is allowed).
    let secondary_cap = read_vmx(proof, VmxMsr::ProcBasedControls2);
    let allowed2 = SecondaryControls::from_bits_retain((secondary_cap >> 32) as u32);
    if !allowed2.contains(SecondaryControls::ENABLE_EPT) {
        return Err(VmxError::Unsupported("EPT"));
    }
    if !allowed2.contains(SecondaryControls::UNRESTRICTED_GUEST) {
        return Err(VmxError::Unsupported("unrestricted guest"));
    }
    if !allowed2.contains(SecondaryControls::ENABLE_VPID) {
        return Err(VmxError::Unsupported("VPID"));
    }

    let ept_vpid = read_vmx(proof, VmxMsr::EptVpidCapabilities);
    if ept_vpid & EPT_WALK_4 == 0 {
        return Err(VmxError::Unsupported("4-level EPT page walks"));
    }
    if ept_vpid & EPT_WB == 0 {
        return Err(VmxError::Unsupported("write-back EPT paging structures"));
    }
    if ept_vpid & INVEPT == 0 || ept_vpid & (INVEPT_SINGLE | INVEPT_ALL) == 0 {
        return Err(VmxError::Unsupported("INVEPT"));
    }
    if ept_vpid & INVVPID == 0 || ept_vpid & (INVVPID_SINGLE | INVVPID_ALL) == 0 {
        return Err(VmxError::Unsupported("INVVPID"));
    }
    if read_capability(proof, CapabilityMsr::Misc) & MISC_STORES_LMA == 0 {
        return Err(VmxError::Unsupported(
            "VM exits storing EFER.LMA in the IA-32e mode guest control",
        ));
    }

    let want = wanted();
    let controls = Controls {
        pin: fit(
            "pin-based",
            want.pin
                .adjust(read_capability(proof, CapabilityMsr::TruePinBased)),
        )?,
        primary: fit("primary processor-based", want.primary.adjust(primary_cap))?,
        secondary: fit(
            "secondary processor-based",
            want.secondary.adjust(secondary_cap),
        )?,
        exit: fit(
            "VM-exit",
            want.exit
                .adjust(read_capability(proof, CapabilityMsr::TrueExit)),
        )?,
        entry: fit(
            "VM-entry",
            want.entry
                .adjust(read_capability(proof, CapabilityMsr::TrueEntry)),
        )?,
    };
    // A guest that enables long mode needs "IA-32e mode guest" (§25.8.1).
    fit(
        "VM-entry (IA-32e mode guest)",
        (controls.entry | EntryControls::IA32E_MODE_GUEST)
            .adjust(read_capability(proof, CapabilityMsr::TrueEntry)),
    )?;
    Ok(Capabilities {
        revision_id,
        true_controls,
        controls,
        cr0: CrFixed::from_msrs(
            read_capability(proof, CapabilityMsr::Cr0Fixed0),
            read_capability(proof, CapabilityMsr::Cr0Fixed1),
        ),
        cr4: CrFixed::from_msrs(
            read_capability(proof, CapabilityMsr::Cr4Fixed0),
            read_capability(proof, CapabilityMsr::Cr4Fixed1),
        ),
        invept_single: ept_vpid & INVEPT_SINGLE != 0,
        invvpid_single: ept_vpid & INVVPID_SINGLE != 0,
    })
}
