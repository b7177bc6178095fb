//! Who the CPU is and what virtualization it offers.

use core::fmt;

/// Vendor, family/model/stepping and brand string, from CPUID.
#[derive(Clone, Debug)]
pub struct CpuIdentity {
    vendor: [u8; 12],
    brand: [u8; 48],
    /// Display family (base + extended, SDM Vol. 2A CPUID leaf 01H).
    pub family: u8,
    /// Display model.
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

impl CpuIdentity {
    /// Reads CPUID on the current CPU.
    pub fn read() -> Self {
        let cpuid = raw_cpuid::CpuId::new();
        let mut identity = Self {
            vendor: [0; 12],
            brand: [0; 48],
            family: 0,
            model: 0,
            stepping: 0,
        };
        if let Some(vendor) = cpuid.get_vendor_info() {
            copy_str(&mut identity.vendor, vendor.as_str());
        }
        if let Some(brand) = cpuid.get_processor_brand_string() {
            copy_str(&mut identity.brand, brand.as_str().trim());
        }
        if let Some(features) = cpuid.get_feature_info() {
            identity.family = features.family_id();
            identity.model = features.model_id();
            identity.stepping = features.stepping_id();
        }
        identity
    }

    /// The 12-character vendor string (`GenuineIntel`, `AuthenticAMD`, ...).
    pub fn vendor(&self) -> &str {
        as_str(&self.vendor)
    }

    /// The brand string, or "" when the CPU has none.
    pub fn brand(&self) -> &str {
        as_str(&self.brand)
    }
}

fn copy_str(dst: &mut [u8], src: &str) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src.as_bytes()[..n]);
}

fn as_str(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).unwrap_or("?")
}

impl fmt::Display for CpuIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vendor={} family={:#x} model={:#x} stepping={:#x} brand=\"{}\"",
            self.vendor(),
            self.family,
            self.model,
            self.stepping,
            self.brand()
        )
    }
}

/// Intel VT-x features Ferrovisor's VMX backend cares about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmxFeatures {
    /// Extended page tables (secondary control bit 1).
    pub ept: bool,
    /// Unrestricted guest (secondary control bit 7).
    pub unrestricted_guest: bool,
    /// Virtual-processor identifiers (secondary control bit 5).
    pub vpid: bool,
    /// IA32_FEATURE_CONTROL is locked with VMXON disallowed: firmware turned VT-x off.
    pub disabled_by_firmware: bool,
}

/// AMD-V features Ferrovisor's SVM backend cares about (CPUID 8000_000Ah, APM Vol. 2 §15).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvmFeatures {
    /// Nested paging (EDX bit 0).
    pub npt: bool,
    /// Next-RIP saved on #VMEXIT (EDX bit 3).
    pub nrips: bool,
    /// Number of address-space identifiers (EBX).
    pub asids: u32,
    /// VM_CR.SVMDIS: firmware turned AMD-V off.
    pub disabled_by_firmware: bool,
}

/// The hardware virtualization extension present, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualization {
    /// Intel VT-x.
    Vmx(VmxFeatures),
    /// AMD-V.
    Svm(SvmFeatures),
    /// Neither: Ferrovisor can boot but run no guests.
    None,
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

impl fmt::Display for Virtualization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vmx(v) => {
                write!(
                    f,
                    "vmx ept={} unrestricted={} vpid={}",
                    yes_no(v.ept),
                    yes_no(v.unrestricted_guest),
                    yes_no(v.vpid)
                )?;
                if v.disabled_by_firmware {
                    f.write_str(" (disabled by firmware)")?;
                }
                Ok(())
            }
            Self::Svm(s) => {
                write!(
                    f,
                    "svm npt={} nrips={} asids={}",
                    yes_no(s.npt),
                    yes_no(s.nrips),
                    s.asids
                )?;
                if s.disabled_by_firmware {
                    f.write_str(" (disabled by firmware)")?;
                }
                Ok(())
            }
            Self::None => f.write_str("none"),
        }
    }
}

impl VmxFeatures {
    /// Decodes the capability MSRs: `feature_control` is IA32_FEATURE_CONTROL and
    /// `secondary` IA32_VMX_PROCBASED_CTLS2, whose high half holds the allowed-1 settings
    /// (SDM Vol. 3D §A.3.3).
    pub fn from_msrs(feature_control: u64, secondary: u64) -> Self {
        let allowed1 = secondary >> 32;
        let locked = feature_control & 1 != 0;
        let vmxon_outside_smx = feature_control & (1 << 2) != 0;
        Self {
            ept: allowed1 & (1 << 1) != 0,
            vpid: allowed1 & (1 << 5) != 0,
            unrestricted_guest: allowed1 & (1 << 7) != 0,
            disabled_by_firmware: locked && !vmxon_outside_smx,
        }
    }
}

/// Detects VT-x or AMD-V on the current CPU.
#[cfg(target_os = "none")]
pub fn detect_virtualization() -> Virtualization {
    use crate::msr::{SvmPresent, VmxMsr, VmxPresent, read_vm_cr, read_vmx};
    if let Some(vmx) = VmxPresent::detect() {
        return Virtualization::Vmx(VmxFeatures::from_msrs(
            read_vmx(vmx, VmxMsr::FeatureControl),
            read_vmx(vmx, VmxMsr::ProcBasedControls2),
        ));
    }
    if let Some(svm) = SvmPresent::detect() {
        let info = raw_cpuid::CpuId::new().get_svm_info();
        return Virtualization::Svm(SvmFeatures {
            npt: info.as_ref().is_some_and(|i| i.has_nested_paging()),
            nrips: info.as_ref().is_some_and(|i| i.has_nrip()),
            asids: info.as_ref().map_or(0, |i| i.supported_asids()),
            disabled_by_firmware: read_vm_cr(svm) & (1 << 4) != 0,
        });
    }
    Virtualization::None
}

/// Whether the CPU maps 1 GiB pages (CPUID 8000_0001h EDX bit 26).
pub fn has_1gib_pages() -> bool {
    raw_cpuid::CpuId::new()
        .get_extended_processor_and_feature_identifiers()
        .is_some_and(|f| f.has_1gib_pages())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_features_decode_allowed_one_bits() {
        // Bochs' Skylake-X: feature control 5 (locked, VMXON allowed).
        let v = VmxFeatures::from_msrs(5, ((1 << 1) | (1 << 5) | (1 << 7)) << 32);
        assert_eq!(
            v,
            VmxFeatures {
                ept: true,
                vpid: true,
                unrestricted_guest: true,
                disabled_by_firmware: false
            }
        );
        let off = VmxFeatures::from_msrs(1, 0);
        assert!(off.disabled_by_firmware && !off.ept);
        // Unlocked: the hypervisor may still enable VMXON itself.
        assert!(!VmxFeatures::from_msrs(0, 0).disabled_by_firmware);
    }

    #[test]
    fn banner_format() {
        let v = Virtualization::Vmx(VmxFeatures {
            ept: true,
            vpid: false,
            unrestricted_guest: true,
            disabled_by_firmware: false,
        });
        assert_eq!(v.to_string(), "vmx ept=yes unrestricted=yes vpid=no");
        let s = Virtualization::Svm(SvmFeatures {
            npt: true,
            nrips: false,
            asids: 16,
            disabled_by_firmware: false,
        });
        assert_eq!(s.to_string(), "svm npt=yes nrips=no asids=16");
        assert_eq!(Virtualization::None.to_string(), "none");
    }

    #[test]
    fn identity_reads_on_the_host() {
        let id = CpuIdentity::read();
        assert_eq!(id.vendor().len(), 12);
    }
}
