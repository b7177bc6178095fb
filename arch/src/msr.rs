//! Narrow, typed access to the model-specific registers Ferrovisor reads today.
//!
//! There is deliberately no "read any MSR" function: RDMSR of an unimplemented MSR raises
//! #GP, so each accessor is tied to proof (a token built from CPUID) that the MSR exists.

use x86_64::registers::model_specific::Msr;

/// Proof that CPUID.1:ECX.VMX\[bit 5\] is set, so the VMX capability MSRs exist
/// (SDM Vol. 3D Appendix A.1).
#[derive(Clone, Copy, Debug)]
pub struct VmxPresent(());

impl VmxPresent {
    /// Checks CPUID for VMX.
    pub fn detect() -> Option<Self> {
        let cpuid = raw_cpuid::CpuId::new();
        cpuid
            .get_feature_info()
            .filter(|f| f.has_vmx())
            .map(|_| Self(()))
    }
}

/// Proof that CPUID.80000001h:ECX.SVM\[bit 2\] is set, so VM_CR exists (APM Vol. 2 §15.30.1).
#[derive(Clone, Copy, Debug)]
pub struct SvmPresent(());

impl SvmPresent {
    /// Checks CPUID for SVM.
    pub fn detect() -> Option<Self> {
        let cpuid = raw_cpuid::CpuId::new();
        cpuid
            .get_extended_processor_and_feature_identifiers()
            .filter(|f| f.has_svm())
            .map(|_| Self(()))
    }
}

/// VMX capability and control MSRs (SDM Vol. 3D Appendix A; indices from Vol. 4 Table 2-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VmxMsr {
    /// IA32_FEATURE_CONTROL: lock bit and "VMXON outside SMX".
    FeatureControl = 0x3A,
    /// IA32_VMX_BASIC.
    Basic = 0x480,
    /// IA32_VMX_PROCBASED_CTLS: allowed settings of the primary processor-based controls.
    ProcBasedControls = 0x482,
    /// IA32_VMX_PROCBASED_CTLS2: allowed settings of the secondary controls. Exists only
    /// when bit 63 of [`VmxMsr::ProcBasedControls`] is set.
    ProcBasedControls2 = 0x48B,
    /// IA32_VMX_EPT_VPID_CAP.
    EptVpidCapabilities = 0x48C,
}

/// Reads a VMX capability MSR. `ProcBasedControls2` and `EptVpidCapabilities` read as 0
/// when the CPU does not advertise secondary controls, instead of faulting.
pub fn read_vmx(_proof: VmxPresent, msr: VmxMsr) -> u64 {
    if matches!(
        msr,
        VmxMsr::ProcBasedControls2 | VmxMsr::EptVpidCapabilities
    ) {
        let primary = read_vmx(_proof, VmxMsr::ProcBasedControls);
        if primary & (1 << 63) == 0 {
            return 0;
        }
    }
    // SAFETY: the token proves CPUID reports VMX, so these architectural MSRs exist
    // (the secondary ones were checked above); reading them has no side effects.
    unsafe { Msr::new(msr as u32).read() }
}

/// AMD's VM_CR MSR (APM Vol. 2 §15.30.1): bit 4 SVMDIS says firmware disabled SVM.
pub fn read_vm_cr(_proof: SvmPresent) -> u64 {
    const VM_CR: u32 = 0xC001_0114;
    // SAFETY: the token proves CPUID reports SVM, whose architecture defines VM_CR;
    // reading it has no side effects.
    unsafe { Msr::new(VM_CR).read() }
}
