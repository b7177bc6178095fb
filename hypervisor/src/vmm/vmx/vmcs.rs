//! Filling a fresh VMCS: VM-execution, VM-exit and VM-entry controls (SDM Vol. 3C
//! §25.6-25.8), the host-state area (§25.5) and the guest-state area (§25.4) from a
//! vendor-neutral [`VcpuInitState`]. VM entry checks all of it (§27.2, §27.3).

use ferrovisor::vcpu::{Segment, VcpuInitState};
use ferrovisor_arch::vmx::controls::CrFixed;
use ferrovisor_arch::vmx::fields::{
    Control16, Control32, Control64, ControlNatural, Guest16, Guest32, Guest64, GuestNatural,
    Host16, Host32, Host64, HostNatural,
};

use super::caps::Controls;
use super::host::HostState;
use super::instr::{self, VmcsError};
use super::switch::vmx_exit_stub;

/// Access rights bit 16: the segment is unusable (§25.4.1, Table 25-2).
const UNUSABLE: u32 = 1 << 16;

/// A segment's access rights in the VMCS format (§25.4.1, Table 25-2: type 3:0, S 4,
/// DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15, unusable 16) from the packed form (AVL..G
/// in bits 11:8). Attributes 0 (a null selector) become "unusable".
fn access_rights(segment: &Segment) -> u32 {
    let packed = u32::from(segment.attributes);
    if packed == 0 {
        return UNUSABLE;
    }
    (packed & 0xFF) | ((packed & 0xF00) << 4)
}

/// IA32_PAT's power-on value (SDM Vol. 3A §12.12.4): WB, WT, UC-, UC, twice.
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;
/// DR7's reset value (bit 10 reads as 1).
const DR7_DEFAULT: u64 = 0x400;

/// Everything a VMCS needs that is not in the guest state.
pub struct Setup<'a> {
    pub controls: &'a Controls,
    pub host: &'a HostState,
    /// The vCPU's VPID (never 0).
    pub vpid: u16,
    pub eptp: u64,
    pub msr_bitmap: u64,
    pub io_bitmaps: u64,
    pub cr0_mask: u64,
    pub cr4_mask: u64,
}

/// Writes every field of the current VMCS that Ferrovisor uses except the guest's
/// architectural state ([`write_guest_state`]); the rest stay at the zero VMCLEAR left.
pub fn initialise(s: &Setup<'_>) -> Result<(), VmcsError> {
    write_controls(s)?;
    write_host_state(s.host)?;
    write_guest_machine_state()
}

fn write_controls(s: &Setup<'_>) -> Result<(), VmcsError> {
    let c = s.controls;
    let controls32 = [
        (Control32::PinBasedControls, c.pin.bits()),
        (Control32::PrimaryProcessorControls, c.primary.bits()),
        (Control32::SecondaryProcessorControls, c.secondary.bits()),
        (Control32::ExitControls, c.exit.bits()),
        (Control32::EntryControls, c.entry.bits()),
        // The guest handles its own exceptions (§25.6.3).
        (Control32::ExceptionBitmap, 0),
        (Control32::PageFaultErrorCodeMask, 0),
        (Control32::PageFaultErrorCodeMatch, 0),
        // No CR3-target values: if the CPU forces CR3-load exiting, every load exits.
        (Control32::Cr3TargetCount, 0),
        (Control32::ExitMsrStoreCount, 0),
        (Control32::ExitMsrLoadCount, 0),
        (Control32::EntryMsrLoadCount, 0),
        (Control32::EntryInterruptionInfo, 0),
    ];
    for (field, value) in controls32 {
        // SAFETY: the controls intercept external interrupts, NMIs, HLT, every port and
        // MSR, and confine the guest with EPT (see `caps::wanted`); the rest are zero.
        unsafe { instr::write(field, value) }?;
    }
    let controls64 = [
        (Control64::IoBitmapA, s.io_bitmaps),
        (Control64::IoBitmapB, s.io_bitmaps + 4096),
        (Control64::MsrBitmap, s.msr_bitmap),
        (Control64::Eptp, s.eptp),
    ];
    for (field, value) in controls64 {
        // SAFETY: the bitmaps are this vCPU's own all-ones frames (§25.6.4, §25.6.9);
        // the EPT pointer is the domain's nested page tables (§25.6.11), which map
        // only the domain's memory.
        unsafe { instr::write(field, value) }?;
    }
    // SAFETY: a non-zero VPID tags the guest's translations apart from the host's
    // (VPID 0) (§25.6.12); `new` refused 0.
    unsafe { instr::write(Control16::Vpid, s.vpid) }?;
    let natural = [
        // Host-owned CR bits (§25.6.6): the guest reads the shadow for them, and a MOV
        // that would change one exits.
        (ControlNatural::Cr0GuestHostMask, s.cr0_mask),
        (ControlNatural::Cr4GuestHostMask, s.cr4_mask),
    ];
    for (field, value) in natural {
        // SAFETY: the masks keep the VMX-required CR0/CR4 bits (CR4.VMXE among them)
        // under host control; shadows only change what the guest reads.
        unsafe { instr::write(field, value) }?;
    }
    Ok(())
}

pub fn write_host_state(h: &HostState) -> Result<(), VmcsError> {
    let selectors = [
        (Host16::CsSelector, h.cs),
        (Host16::SsSelector, h.ss),
        (Host16::DsSelector, h.ds),
        (Host16::EsSelector, h.es),
        (Host16::FsSelector, h.fs),
        (Host16::GsSelector, h.gs),
        (Host16::TrSelector, h.tr),
    ];
    for (field, value) in selectors {
        // SAFETY: this CPU's live selectors (`HostState::capture`), reloaded by every
        // VM exit (§28.5.2).
        unsafe { instr::write(field, value) }?;
    }
    // SAFETY: this CPU's live IA32_SYSENTER_CS.
    unsafe { instr::write(Host32::Ia32SysenterCs, h.sysenter_cs) }?;
    for (field, value) in [(Host64::Ia32Efer, h.efer), (Host64::Ia32Pat, h.pat)] {
        // SAFETY: this CPU's live EFER and PAT, loaded by every VM exit (§28.5.1).
        unsafe { instr::write(field, value) }?;
    }
    let natural = [
        (HostNatural::Cr0, h.cr0),
        (HostNatural::Cr3, h.cr3),
        (HostNatural::Cr4, h.cr4),
        (HostNatural::FsBase, h.fs_base),
        (HostNatural::GsBase, h.gs_base),
        (HostNatural::TrBase, h.tr_base),
        (HostNatural::GdtrBase, h.gdtr_base),
        (HostNatural::IdtrBase, h.idtr_base),
        (HostNatural::Ia32SysenterEsp, h.sysenter_esp),
        (HostNatural::Ia32SysenterEip, h.sysenter_eip),
        // Host RSP is written by the world switch right before each entry.
        (HostNatural::Rip, (&raw const vmx_exit_stub) as u64),
    ];
    for (field, value) in natural {
        // SAFETY: this CPU's live control registers and descriptor-table bases (the
        // vCPU runs only here), and the exit stub as host RIP, which expects exactly the
        // stack the world switch leaves (§28.5.1).
        unsafe { instr::write(field, value) }?;
    }
    Ok(())
}

/// Guest-state fields that are not part of the architectural starting state: PAT, debug
/// registers, SYSENTER MSRs, activity and interruptibility, the VMCS link pointer.
fn write_guest_machine_state() -> Result<(), VmcsError> {
    instr::write_guest(Guest64::Ia32Pat, PAT_DEFAULT)?;
    instr::write_guest(Guest64::Ia32Debugctl, 0)?;
    instr::write_guest(GuestNatural::Dr7, DR7_DEFAULT)?;
    instr::write_guest(GuestNatural::PendingDebugExceptions, 0)?;
    instr::write_guest(Guest32::Ia32SysenterCs, 0)?;
    instr::write_guest(GuestNatural::Ia32SysenterEsp, 0)?;
    instr::write_guest(GuestNatural::Ia32SysenterEip, 0)?;
    // Active, nothing blocking (§25.4.2).
    instr::write_guest(Guest32::ActivityState, 0)?;
    instr::write_guest(Guest32::InterruptibilityState, 0)?;
    // No VMCS shadowing: the link pointer must be all ones (§27.3.1.5).
    instr::write_guest(Guest64::VmcsLinkPointer, u64::MAX)?;
    for pdpte in [
        Guest64::Pdpte0,
        Guest64::Pdpte1,
        Guest64::Pdpte2,
        Guest64::Pdpte3,
    ] {
        instr::write_guest(pdpte, 0)?;
    }
    Ok(())
}

/// Writes the guest's architectural state: segments, descriptor tables, RIP, RSP,
/// RFLAGS, and CR0/CR3/CR4 with the bits VMX fixes applied (the caller writes the read
/// shadows and EFER with its entry control). Unrestricted guest lets any of the states
/// `VcpuInitState` allows pass VM entry (§27.3.1).
pub fn write_guest_state(
    state: &VcpuInitState,
    cr0_fixed: CrFixed,
    cr4_fixed: CrFixed,
) -> Result<(), VmcsError> {
    let segments = [
        (
            &state.cs,
            Guest16::CsSelector,
            Guest32::CsLimit,
            Guest32::CsAccessRights,
            GuestNatural::CsBase,
        ),
        (
            &state.ss,
            Guest16::SsSelector,
            Guest32::SsLimit,
            Guest32::SsAccessRights,
            GuestNatural::SsBase,
        ),
        (
            &state.ds,
            Guest16::DsSelector,
            Guest32::DsLimit,
            Guest32::DsAccessRights,
            GuestNatural::DsBase,
        ),
        (
            &state.es,
            Guest16::EsSelector,
            Guest32::EsLimit,
            Guest32::EsAccessRights,
            GuestNatural::EsBase,
        ),
        (
            &state.fs,
            Guest16::FsSelector,
            Guest32::FsLimit,
            Guest32::FsAccessRights,
            GuestNatural::FsBase,
        ),
        (
            &state.gs,
            Guest16::GsSelector,
            Guest32::GsLimit,
            Guest32::GsAccessRights,
            GuestNatural::GsBase,
        ),
        (
            &state.tr,
            Guest16::TrSelector,
            Guest32::TrLimit,
            Guest32::TrAccessRights,
            GuestNatural::TrBase,
        ),
        (
            &state.ldtr,
            Guest16::LdtrSelector,
            Guest32::LdtrLimit,
            Guest32::LdtrAccessRights,
            GuestNatural::LdtrBase,
        ),
    ];
    for (segment, selector, limit, access, base) in segments {
        instr::write_guest(selector, segment.selector)?;
        instr::write_guest(limit, segment.limit)?;
        instr::write_guest(access, access_rights(segment))?;
        instr::write_guest(base, segment.base)?;
    }
    for (table, limit, base) in [
        (&state.gdtr, Guest32::GdtrLimit, GuestNatural::GdtrBase),
        (&state.idtr, Guest32::IdtrLimit, GuestNatural::IdtrBase),
    ] {
        instr::write_guest(limit, u32::from(table.limit))?;
        instr::write_guest(base, table.base)?;
    }
    // The CPU holds the bits VMX forces (CR0.NE, CR4.VMXE), hidden from the guest by the
    // guest/host masks and read shadows (§25.6.6, §27.3.1.1).
    instr::write_guest(GuestNatural::Cr0, cr0_fixed.adjust(state.cr0))?;
    instr::write_guest(GuestNatural::Cr3, state.cr3)?;
    instr::write_guest(GuestNatural::Cr4, cr4_fixed.adjust(state.cr4))?;
    instr::write_guest(GuestNatural::Rflags, state.rflags)?;
    instr::write_guest(GuestNatural::Rip, state.rip)?;
    instr::write_guest(GuestNatural::Rsp, state.rsp)?;
    Ok(())
}
