//! What guests see from CPUID.
//!
//! [`guest_cpuid`] is a pure function from the host's CPUID values (through a callback,
//! so tests supply synthetic Intel-like and AMD-like hosts), the domain's
//! [`CpuidPolicy`] and the executing vCPU's state ([`VcpuCpuidContext`]) to the values a
//! guest CPUID instruction returns. It follows the shape of Xen's `guest_cpuid()`
//! (`xen/arch/x86/cpuid.c`): a static allow-listed view of the host, then dynamic
//! adjustments from vCPU state (APIC ID, CR4.OSXSAVE, CR4.PKE, XCR0, APIC enable, long
//! mode).
//!
//! Rules:
//!
//! - Leaf 1 ECX bit 31 (hypervisor present) is always set.
//! - Features are allow-listed per register ([`features`]): VMX, SVM, SMX, MONITOR/MWAIT,
//!   TSX, SGX, PT, debug store, thermal and power management, performance monitoring
//!   (leaf 0xA is all zero) and everything unknown are hidden; x2APIC, TSC-deadline,
//!   PCID/INVPCID, XSAVE (and with it AVX and friends), AVX-512, PKU, RDTSCP/RDPID,
//!   invariant TSC, MTRR, MCE/MCA, ARAT, 1 GiB pages and speculation controls follow the
//!   policy.
//! - OSXSAVE and OSPKE mirror the guest's CR4.OSXSAVE and CR4.PKE (SDM Vol. 2A CPUID);
//!   APIC mirrors IA32_APIC_BASE.EN, as Xen fast-forwards it.
//! - Topology is synthesized: one package holding `nr_vcpus` cores of one thread each,
//!   vCPU APIC IDs given by the caller ([`VcpuCpuidContext::apic_id`], normally the vCPU
//!   index). Leaf 1 EBX, leaf 4 `EAX[31:14]`, leaf 0xB and AMD's 0x80000008 ECX describe
//!   it; AMD's TopologyExtensions and CmpLegacy are hidden.
//! - The maximum basic and extended leaves are clamped to the policy; leaves above the
//!   maximum, unknown leaves and leaves outside the known ranges return all zeros. (Intel
//!   CPUs answer out-of-range basic leaves with the highest basic leaf; like Xen, the
//!   guest gets AMD's all-zero answer, which is well-defined on both.)
//! - `0x40000000..=0x400000FF` are the Xen leaves ([`crate::xen::cpuid::xen_leaf`]).
//! - XSAVE sizes in leaf 0xD are recomputed for the allowed state components and the
//!   guest's XCR0, from the host's per-component sizes and offsets.

pub mod features;
mod topology;
mod xsave;

#[cfg(test)]
mod tests;

pub use crate::xen::cpuid::CpuidResult;

use crate::xen::cpuid::{XEN_CPUID_FIRST_LEAF, xen_leaf};
use features::{ext1_edx, ext7_edx, leaf1_ecx, leaf1_edx, leaf6_eax, leaf7_ecx};

/// Which features a domain's guests may see. Fields named after a feature allow it when
/// the host has it and the hypervisor supports it for this domain; they never add a
/// feature the host lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidPolicy {
    /// Number of vCPUs of the domain: the synthesized topology's core count.
    pub nr_vcpus: u32,
    /// Highest basic leaf reported (clamped further to the host's).
    pub max_basic_leaf: u32,
    /// Highest extended leaf reported (clamped further to the host's).
    pub max_extended_leaf: u32,
    /// x2APIC mode of the emulated local APIC.
    pub x2apic: bool,
    /// TSC-deadline mode of the emulated APIC timer.
    pub tsc_deadline: bool,
    /// PCID (CR4.PCIDE is guest-controlled).
    pub pcid: bool,
    /// INVPCID executes natively.
    pub invpcid: bool,
    /// XSAVE: XCR0 and the extended state are switched per vCPU; implies AVX-class
    /// features (AVX, AVX2, FMA, F16C, VAES, VPCLMULQDQ, XOP, FMA4).
    pub xsave: bool,
    /// AVX-512 (needs `xsave`).
    pub avx512: bool,
    /// Protection keys (PKRU is switched; needs `xsave` for its XCR0 bit).
    pub pku: bool,
    /// RDTSCP and RDPID: IA32_TSC_AUX is switched per vCPU.
    pub rdtscp: bool,
    /// Invariant TSC (0x80000007 EDX bit 8): the guest TSC never stops or changes rate.
    pub invariant_tsc: bool,
    /// MTRRs are emulated.
    pub mtrr: bool,
    /// MCE/MCA: machine-check MSRs are emulated.
    pub machine_check: bool,
    /// ARAT: the emulated APIC timer keeps running in guest C-states.
    pub arat: bool,
    /// 1 GiB pages in the guest's page tables (second-level paging handles them).
    pub page_1gb: bool,
    /// Speculation-control MSRs (IA32_SPEC_CTRL, IA32_PRED_CMD, IA32_FLUSH_CMD) are
    /// virtualized.
    pub spec_ctrl: bool,
}

impl CpuidPolicy {
    /// The conservative starting policy for `nr_vcpus` vCPUs: only what needs no
    /// hypervisor support beyond the basic VMX/SVM setup, plus ARAT and 1 GiB pages (both
    /// true of an emulated APIC timer and of second-level paging). Basic leaves up to 0x16
    /// (TSC and core crystal frequencies) and extended leaves up to 0x80000008.
    pub const fn new(nr_vcpus: u32) -> Self {
        Self {
            nr_vcpus,
            max_basic_leaf: 0x16,
            max_extended_leaf: 0x8000_0008,
            x2apic: false,
            tsc_deadline: false,
            pcid: false,
            invpcid: false,
            xsave: false,
            avx512: false,
            pku: false,
            rdtscp: false,
            invariant_tsc: false,
            mtrr: false,
            machine_check: false,
            arat: true,
            page_1gb: true,
            spec_ctrl: false,
        }
    }
}

/// The state of the vCPU executing CPUID that the answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuCpuidContext {
    /// The vCPU's index in its domain (Xen leaf 0x40000004 EBX).
    pub vcpu_id: u32,
    /// The vCPU's (x2)APIC ID. Must be below `2^ceil(log2(nr_vcpus))` for the
    /// synthesized topology to be consistent; `vcpu_id` satisfies that.
    pub apic_id: u32,
    /// CR4.OSXSAVE.
    pub cr4_osxsave: bool,
    /// CR4.PKE.
    pub cr4_pke: bool,
    /// The guest's XCR0 (for leaf 0xD sub-leaf 0 EBX).
    pub xcr0: u64,
    /// IA32_APIC_BASE.EN: the local APIC is enabled.
    pub apic_enabled: bool,
    /// The guest TSC frequency in kHz (Xen leaf 0x40000003), 0 if unknown.
    pub tsc_khz: u32,
    /// EFER.LMA: long mode active.
    pub long_mode: bool,
}

/// The CPU vendor, read from the host's leaf 0 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuVendor {
    Intel,
    /// AMD or Hygon (same CPUID conventions).
    Amd,
    Other,
}

impl CpuVendor {
    fn from_leaf0(r: &CpuidResult) -> Self {
        match (r.ebx, r.edx, r.ecx) {
            // "GenuineIntel"
            (0x756e_6547, 0x4965_6e69, 0x6c65_746e) => Self::Intel,
            // "AuthenticAMD"
            (0x6874_7541, 0x6974_6e65, 0x444d_4163) => Self::Amd,
            // "HygonGenuine"
            (0x6f67_7948, 0x6e65_476e, 0x656e_6975) => Self::Amd,
            _ => Self::Other,
        }
    }
}

const EMPTY: CpuidResult = CpuidResult {
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
};

/// The values a guest's `CPUID` with EAX = `leaf`, ECX = `subleaf` returns. `host(leaf,
/// subleaf)` gives the host's raw values.
pub fn guest_cpuid(
    policy: &CpuidPolicy,
    host: &dyn Fn(u32, u32) -> CpuidResult,
    leaf: u32,
    subleaf: u32,
    vcpu: VcpuCpuidContext,
) -> CpuidResult {
    let host0 = host(0, 0);
    let q = Query {
        policy,
        host,
        vcpu,
        subleaf,
        host0,
        vendor: CpuVendor::from_leaf0(&host0),
    };
    match leaf {
        0..XEN_CPUID_FIRST_LEAF => q.basic(leaf),
        // Intel reserves 0x40000000-0x4FFFFFFF for hypervisors, AMD only up to
        // 0x400000FF; Xen's own leaves are the first 0x100.
        0x4000_0000..=0x4000_00FF => {
            xen_leaf(leaf, subleaf, vcpu.vcpu_id, vcpu.tsc_khz).unwrap_or(EMPTY)
        }
        0x8000_0000..=0x8000_FFFF => q.extended(leaf),
        _ => EMPTY,
    }
}

/// One CPUID query being answered.
struct Query<'a> {
    policy: &'a CpuidPolicy,
    host: &'a dyn Fn(u32, u32) -> CpuidResult,
    vcpu: VcpuCpuidContext,
    subleaf: u32,
    /// The host's leaf 0 (maximum basic leaf and vendor), read once per query.
    host0: CpuidResult,
    vendor: CpuVendor,
}

impl Query<'_> {
    fn host(&self, leaf: u32) -> CpuidResult {
        (self.host)(leaf, self.subleaf)
    }

    fn basic(&self, leaf: u32) -> CpuidResult {
        let max = self.host0.eax.min(self.policy.max_basic_leaf);
        if leaf > max {
            return EMPTY;
        }
        let p = self.policy;
        match leaf {
            0 => CpuidResult {
                eax: max,
                ..self.host0
            },
            1 => self.leaf1(),
            // Legacy cache/TLB descriptors (Intel; zero on AMD): informational.
            2 => self.host(2),
            4 if self.vendor == CpuVendor::Intel => topology::leaf4(self.host(4), p.nr_vcpus),
            6 => {
                let eax = self.host(6).eax & if p.arat { leaf6_eax::ARAT } else { 0 };
                CpuidResult { eax, ..EMPTY }
            }
            7 => self.leaf7(),
            0xB => topology::leaf_0b(self.subleaf, p.nr_vcpus, self.vcpu.apic_id),
            0xD => xsave::leaf_0d(p, self.host, self.subleaf, self.vcpu.xcr0),
            // TSC/core crystal clock and processor frequencies: informational, and what
            // lets a guest calibrate its TSC without a PIT.
            0x15 | 0x16 => self.host(leaf),
            // 3 (serial number), 5 (MONITOR), 0xA (perfmon), 0xF/0x10 (RDT), 0x12 (SGX),
            // 0x14 (PT) and anything unknown.
            _ => EMPTY,
        }
    }

    fn leaf1(&self) -> CpuidResult {
        let p = self.policy;
        let host = self.host(1);
        let mut ecx = (host.ecx & p.leaf1_ecx_allowed()) | leaf1_ecx::HYPERVISOR;
        if ecx & leaf1_ecx::XSAVE != 0 && self.vcpu.cr4_osxsave {
            ecx |= leaf1_ecx::OSXSAVE;
        }
        let mut edx = host.edx & p.leaf1_edx_allowed();
        if !self.vcpu.apic_enabled {
            edx &= !leaf1_edx::APIC;
        }
        if p.nr_vcpus > 1 {
            edx |= leaf1_edx::HTT;
        }
        // EBX: brand index [7:0] and CLFLUSH line size [15:8] from the host; addressable
        // logical processor IDs per package [23:16]; initial APIC ID [31:24].
        let ebx = (host.ebx & 0xFFFF)
            | (topology::logical_ids_per_package(p.nr_vcpus) << 16)
            | ((self.vcpu.apic_id & 0xFF) << 24);
        CpuidResult {
            eax: host.eax,
            ebx,
            ecx,
            edx,
        }
    }

    fn leaf7(&self) -> CpuidResult {
        // Only sub-leaf 0 exists for the guest: EAX (the highest sub-leaf) is 0.
        if self.subleaf != 0 {
            return EMPTY;
        }
        let p = self.policy;
        let host = self.host(7);
        let mut ecx = host.ecx & p.leaf7_ecx_allowed();
        if ecx & leaf7_ecx::PKU != 0 && self.vcpu.cr4_pke {
            ecx |= leaf7_ecx::OSPKE;
        }
        CpuidResult {
            eax: 0,
            ebx: host.ebx & p.leaf7_ebx_allowed(),
            ecx,
            edx: host.edx & p.leaf7_edx_allowed(),
        }
    }

    fn extended(&self, leaf: u32) -> CpuidResult {
        let max = (self.host)(0x8000_0000, 0)
            .eax
            .min(self.policy.max_extended_leaf);
        if leaf > max {
            return EMPTY;
        }
        let p = self.policy;
        match leaf {
            // The vendor string is repeated here on AMD.
            0x8000_0000 => CpuidResult {
                eax: max,
                ..self.host(leaf)
            },
            0x8000_0001 => {
                let host = self.host(leaf);
                let mut edx = host.edx & p.ext1_edx_allowed();
                // The AMD mirror of leaf 1's APIC bit follows the APIC enable too.
                if !self.vcpu.apic_enabled {
                    edx &= !leaf1_edx::APIC;
                }
                // Intel CPUs report SYSCALL only in 64-bit mode (Xen does the same).
                if self.vendor == CpuVendor::Intel && !self.vcpu.long_mode {
                    edx &= !ext1_edx::SYSCALL;
                }
                CpuidResult {
                    eax: host.eax,
                    ebx: host.ebx,
                    ecx: host.ecx & p.ext1_ecx_allowed(),
                    edx,
                }
            }
            // Brand string, and AMD's L1/L2/L3 cache and TLB descriptions: informational.
            0x8000_0002..=0x8000_0006 => self.host(leaf),
            0x8000_0007 => {
                let itsc = if p.invariant_tsc { ext7_edx::ITSC } else { 0 };
                CpuidResult {
                    edx: self.host(leaf).edx & itsc,
                    ..EMPTY
                }
            }
            0x8000_0008 => {
                let host = self.host(leaf);
                CpuidResult {
                    // Physical [7:0] and linear [15:8] address widths; [23:16] (guest
                    // physical width, for nested paging) left 0: same as [7:0].
                    eax: host.eax & 0xFFFF,
                    ebx: host.ebx & p.ext8_ebx_allowed(),
                    ecx: if self.vendor == CpuVendor::Amd {
                        topology::amd_ext8_ecx(p.nr_vcpus)
                    } else {
                        0
                    },
                    edx: 0,
                }
            }
            // SVM (0x8000000A), topology extensions (0x8000001D/E), encryption
            // (0x8000001F) and the rest.
            _ => EMPTY,
        }
    }
}
