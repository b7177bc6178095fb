//! Entering VMX operation on one CPU (SDM Vol. 3C §24.6 "Discovering Support for VMX",
//! §24.7 "Enabling and Entering VMX Operation", §24.8 "Restrictions on VMX Operation").

use ferrovisor_arch::msr::{VmxMsr, VmxPresent, read_vmx};
use ferrovisor_arch::vmx::controls::{CR4_VMXE, CrFixed};
use x86_64::registers::control::{Cr0, Cr4};
use x86_64::registers::model_specific::Msr;

use super::caps::{self, Capabilities};
use super::{VmxError, instr};
use crate::memory::{alloc_zeroed, free, phys_to_virt};

/// IA32_FEATURE_CONTROL (SDM Vol. 3C §24.7): bit 0 locks the MSR until reset, bit 2
/// allows VMXON outside SMX operation.
const FEATURE_CONTROL: u32 = 0x3A;
const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
const FEATURE_CONTROL_VMXON_OUTSIDE_SMX: u64 = 1 << 2;

/// VMX operation on one physical CPU and what the CPU supports. VMX stays on for as
/// long as the CPU runs, so the VMXON region is never freed (the CPU may use it until
/// VMXOFF, SDM Vol. 3C §25.11.5).
#[derive(Debug)]
pub struct VmxCpu {
    cpu_index: u32,
    caps: Capabilities,
}

impl VmxCpu {
    /// The per-CPU index (see `percpu`) of the CPU this belongs to.
    pub fn cpu_index(&self) -> u32 {
        self.cpu_index
    }

    /// What the CPU supports and the controls its vCPUs use.
    pub(super) fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
}

/// Makes sure IA32_FEATURE_CONTROL allows VMXON outside SMX, locking it so if firmware
/// left it unlocked (as firmware itself would, §24.7).
fn allow_vmxon(proof: VmxPresent) -> Result<(), VmxError> {
    let value = read_vmx(proof, VmxMsr::FeatureControl);
    if value & FEATURE_CONTROL_LOCK != 0 {
        return if value & FEATURE_CONTROL_VMXON_OUTSIDE_SMX != 0 {
            Ok(())
        } else {
            Err(VmxError::DisabledByFirmware)
        };
    }
    // SAFETY: the token proves IA32_FEATURE_CONTROL exists; it is unlocked (checked
    // above), so the write cannot #GP; it only adds "VMXON outside SMX" and the lock,
    // leaving the other enables as they were.
    unsafe {
        Msr::new(FEATURE_CONTROL)
            .write(value | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMXON_OUTSIDE_SMX)
    };
    Ok(())
}

/// `value` with the fixed bits applied, refusing to clear bits the host uses.
fn apply_fixed(fixed: CrFixed, value: u64, register: &'static str) -> Result<u64, VmxError> {
    let forbidden = value & !fixed.may_be_one;
    if forbidden != 0 {
        return Err(VmxError::HostControlRegister {
            register,
            forbidden,
        });
    }
    Ok(fixed.adjust(value))
}

/// Enters VMX root operation on the calling CPU. Everything required (EPT with 4-level
/// walks and write-back tables, unrestricted guest, VPID, INVEPT/INVVPID, the controls
/// below) is checked first: on `Err` the CPU is left as it was and runs no guests.
pub fn enable_on_this_cpu() -> Result<VmxCpu, VmxError> {
    let proof = VmxPresent::detect().ok_or(VmxError::NotSupported)?;
    let cr0 = Cr0::read_raw();
    let cr4 = Cr4::read_raw();
    if cr4 & CR4_VMXE != 0 {
        return Err(VmxError::AlreadyEnabled);
    }
    let caps = caps::read(proof)?;
    // Host CR0/CR4 must obey IA32_VMX_CR{0,4}_FIXED{0,1} in VMX operation (§24.8).
    let new_cr0 = apply_fixed(caps.cr0, cr0, "CR0")?;
    let new_cr4 = apply_fixed(caps.cr4, cr4 | CR4_VMXE, "CR4")?;
    allow_vmxon(proof)?;

    // The VMXON region: 4 KiB, aligned, starting with the revision identifier (§25.11.5).
    let region = alloc_zeroed(0).ok_or(VmxError::OutOfMemory)?;
    // SAFETY: the frame was just allocated to us and the direct map covers it.
    unsafe { (phys_to_virt(region) as *mut u32).write(caps.revision_id) };

    if new_cr0 != cr0 {
        // SAFETY: only bits the fixed MSRs force to 1 are added (NE in practice), which
        // the running hypervisor tolerates; nothing the host relies on is cleared.
        unsafe { Cr0::write_raw(new_cr0) };
    }
    // SAFETY: as for CR0: VMXE (and any bit FIXED0 forces) is added, nothing cleared.
    unsafe { Cr4::write_raw(new_cr4) };
    // SAFETY: VMXE and the fixed bits are set, FEATURE_CONTROL allows VMXON, and the
    // region is ours for the lifetime of VMX operation (never freed once VMXON works).
    if let Err(fail) = unsafe { instr::vmxon(region) } {
        // SAFETY: restores the CR4 this function found; not in VMX operation.
        unsafe { Cr4::write_raw(cr4) };
        free(region, 0);
        return Err(VmxError::Instruction {
            instruction: "VMXON",
            fail,
        });
    }
    let cpu_index = crate::percpu::current().index;
    let c = &caps.controls;
    log::debug!(
        "vmx: cpu {cpu_index}: VMX on (revision {:#x}, {} controls): pin {:#x} primary {:#x} secondary {:#x} exit {:#x} entry {:#x}",
        caps.revision_id,
        if caps.true_controls {
            "true"
        } else {
            "default"
        },
        c.pin.bits(),
        c.primary.bits(),
        c.secondary.bits(),
        c.exit.bits(),
        c.entry.bits()
    );
    Ok(VmxCpu { cpu_index, caps })
}
