//! CPUID feature bits and the allow-lists built from a [`CpuidPolicy`].
//!
//! Bit positions: Intel SDM Vol. 2A, CPUID, Tables 3-8 to 3-10 and the leaf 07H/0DH/
//! 80000001H-80000008H descriptions; AMD APM Vol. 3, Appendix E.
//!
//! The policy is an allow-list: a host feature reaches the guest only if it is named
//! here, so a feature of a CPU newer than this code stays hidden until someone decides it
//! is safe. Features are allowed unconditionally when they need nothing from the
//! hypervisor (plain instructions whose state is already switched with the guest, or
//! informational bits), conditionally when they need emulation or state switching that a
//! [`CpuidPolicy`] flag vouches for, and never when Ferrovisor does not virtualize them.

use super::CpuidPolicy;

/// Leaf 1 ECX.
pub mod leaf1_ecx {
    /// SSE3.
    pub const SSE3: u32 = 1 << 0;
    /// PCLMULQDQ.
    pub const PCLMULQDQ: u32 = 1 << 1;
    /// DTES64: 64-bit debug store (needs DS MSRs: hidden).
    pub const DTES64: u32 = 1 << 2;
    /// MONITOR/MWAIT (not virtualized: hidden).
    pub const MONITOR: u32 = 1 << 3;
    /// DS-CPL: CPL-qualified debug store (hidden).
    pub const DS_CPL: u32 = 1 << 4;
    /// VMX (no nested virtualization: hidden).
    pub const VMX: u32 = 1 << 5;
    /// SMX: safer mode extensions, GETSEC (hidden).
    pub const SMX: u32 = 1 << 6;
    /// EIST: enhanced SpeedStep (power management belongs to the host: hidden).
    pub const EIST: u32 = 1 << 7;
    /// TM2: thermal monitor 2 (hidden).
    pub const TM2: u32 = 1 << 8;
    /// SSSE3.
    pub const SSSE3: u32 = 1 << 9;
    /// CNXT-ID: L1 context ID (hidden).
    pub const CNXT_ID: u32 = 1 << 10;
    /// SDBG: silicon debug MSR (hidden).
    pub const SDBG: u32 = 1 << 11;
    /// FMA (VEX-encoded: needs XSAVE/AVX state).
    pub const FMA: u32 = 1 << 12;
    /// CMPXCHG16B.
    pub const CX16: u32 = 1 << 13;
    /// xTPR update control (hidden).
    pub const XTPR: u32 = 1 << 14;
    /// PDCM: IA32_PERF_CAPABILITIES (no vPMU: hidden).
    pub const PDCM: u32 = 1 << 15;
    /// PCID.
    pub const PCID: u32 = 1 << 17;
    /// DCA: direct cache access (hidden).
    pub const DCA: u32 = 1 << 18;
    /// SSE4.1.
    pub const SSE4_1: u32 = 1 << 19;
    /// SSE4.2.
    pub const SSE4_2: u32 = 1 << 20;
    /// x2APIC.
    pub const X2APIC: u32 = 1 << 21;
    /// MOVBE.
    pub const MOVBE: u32 = 1 << 22;
    /// POPCNT.
    pub const POPCNT: u32 = 1 << 23;
    /// TSC-deadline mode of the local APIC timer.
    pub const TSC_DEADLINE: u32 = 1 << 24;
    /// AES-NI.
    pub const AES: u32 = 1 << 25;
    /// XSAVE/XRSTOR/XSETBV/XGETBV.
    pub const XSAVE: u32 = 1 << 26;
    /// OSXSAVE: a copy of CR4.OSXSAVE.
    pub const OSXSAVE: u32 = 1 << 27;
    /// AVX.
    pub const AVX: u32 = 1 << 28;
    /// F16C.
    pub const F16C: u32 = 1 << 29;
    /// RDRAND.
    pub const RDRAND: u32 = 1 << 30;
    /// Hypervisor present: always set for guests (reserved 0 on bare metal).
    pub const HYPERVISOR: u32 = 1 << 31;
}

/// Leaf 1 EDX (bits 0-9, 12-17, 23 and 24 are mirrored in AMD's 0x80000001 EDX).
pub mod leaf1_edx {
    /// x87 FPU.
    pub const FPU: u32 = 1 << 0;
    /// Virtual-8086 mode extensions.
    pub const VME: u32 = 1 << 1;
    /// Debugging extensions (CR4.DE).
    pub const DE: u32 = 1 << 2;
    /// Page size extension (4 MiB pages in 32-bit paging).
    pub const PSE: u32 = 1 << 3;
    /// RDTSC.
    pub const TSC: u32 = 1 << 4;
    /// RDMSR/WRMSR.
    pub const MSR: u32 = 1 << 5;
    /// PAE.
    pub const PAE: u32 = 1 << 6;
    /// Machine check exception.
    pub const MCE: u32 = 1 << 7;
    /// CMPXCHG8B.
    pub const CX8: u32 = 1 << 8;
    /// On-chip APIC (the emulated local APIC).
    pub const APIC: u32 = 1 << 9;
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = 1 << 11;
    /// MTRRs.
    pub const MTRR: u32 = 1 << 12;
    /// Global pages.
    pub const PGE: u32 = 1 << 13;
    /// Machine check architecture.
    pub const MCA: u32 = 1 << 14;
    /// CMOV.
    pub const CMOV: u32 = 1 << 15;
    /// Page attribute table.
    pub const PAT: u32 = 1 << 16;
    /// 36-bit page size extension.
    pub const PSE36: u32 = 1 << 17;
    /// Processor serial number (hidden).
    pub const PSN: u32 = 1 << 18;
    /// CLFLUSH.
    pub const CLFSH: u32 = 1 << 19;
    /// Debug store (hidden).
    pub const DS: u32 = 1 << 21;
    /// Thermal monitor and clock control MSRs (hidden).
    pub const ACPI: u32 = 1 << 22;
    /// MMX.
    pub const MMX: u32 = 1 << 23;
    /// FXSAVE/FXRSTOR.
    pub const FXSR: u32 = 1 << 24;
    /// SSE.
    pub const SSE: u32 = 1 << 25;
    /// SSE2.
    pub const SSE2: u32 = 1 << 26;
    /// Self snoop (a cache property, informational).
    pub const SS: u32 = 1 << 27;
    /// Max APIC IDs field in leaf 1 EBX is valid (multi-threading).
    pub const HTT: u32 = 1 << 28;
    /// Thermal monitor (hidden).
    pub const TM: u32 = 1 << 29;
    /// Pending break enable (hidden).
    pub const PBE: u32 = 1 << 31;
}

/// Leaf 6 EAX.
pub mod leaf6_eax {
    /// ARAT: the APIC timer runs at a constant rate in all C-states.
    pub const ARAT: u32 = 1 << 2;
}

/// Leaf 7 sub-leaf 0 EBX.
pub mod leaf7_ebx {
    /// RDFSBASE and friends.
    pub const FSGSBASE: u32 = 1 << 0;
    /// IA32_TSC_ADJUST MSR (hidden).
    pub const TSC_ADJUST: u32 = 1 << 1;
    /// SGX (hidden).
    pub const SGX: u32 = 1 << 2;
    /// BMI1.
    pub const BMI1: u32 = 1 << 3;
    /// HLE: TSX (hidden).
    pub const HLE: u32 = 1 << 4;
    /// AVX2.
    pub const AVX2: u32 = 1 << 5;
    /// x87 FDP updated only on exceptions (informational).
    pub const FDP_EXCPTN_ONLY: u32 = 1 << 6;
    /// SMEP.
    pub const SMEP: u32 = 1 << 7;
    /// BMI2.
    pub const BMI2: u32 = 1 << 8;
    /// Enhanced REP MOVSB/STOSB.
    pub const ERMS: u32 = 1 << 9;
    /// INVPCID.
    pub const INVPCID: u32 = 1 << 10;
    /// RTM: TSX (hidden).
    pub const RTM: u32 = 1 << 11;
    /// RDT monitoring (hidden).
    pub const RDT_M: u32 = 1 << 12;
    /// FPU CS and DS deprecated (informational).
    pub const NO_FPU_SEL: u32 = 1 << 13;
    /// MPX (hidden).
    pub const MPX: u32 = 1 << 14;
    /// RDT allocation (hidden).
    pub const RDT_A: u32 = 1 << 15;
    /// AVX-512 Foundation.
    pub const AVX512F: u32 = 1 << 16;
    /// AVX-512 DQ.
    pub const AVX512DQ: u32 = 1 << 17;
    /// RDSEED.
    pub const RDSEED: u32 = 1 << 18;
    /// ADX.
    pub const ADX: u32 = 1 << 19;
    /// SMAP.
    pub const SMAP: u32 = 1 << 20;
    /// AVX-512 IFMA.
    pub const AVX512_IFMA: u32 = 1 << 21;
    /// CLFLUSHOPT.
    pub const CLFLUSHOPT: u32 = 1 << 23;
    /// CLWB.
    pub const CLWB: u32 = 1 << 24;
    /// Intel Processor Trace (hidden).
    pub const PT: u32 = 1 << 25;
    /// AVX-512 PF.
    pub const AVX512PF: u32 = 1 << 26;
    /// AVX-512 ER.
    pub const AVX512ER: u32 = 1 << 27;
    /// AVX-512 CD.
    pub const AVX512CD: u32 = 1 << 28;
    /// SHA extensions.
    pub const SHA: u32 = 1 << 29;
    /// AVX-512 BW.
    pub const AVX512BW: u32 = 1 << 30;
    /// AVX-512 VL.
    pub const AVX512VL: u32 = 1 << 31;
}

/// Leaf 7 sub-leaf 0 ECX.
pub mod leaf7_ecx {
    /// PREFETCHWT1 (hidden).
    pub const PREFETCHWT1: u32 = 1 << 0;
    /// AVX-512 VBMI.
    pub const AVX512_VBMI: u32 = 1 << 1;
    /// UMIP (needs CR4.UMIP handling: hidden).
    pub const UMIP: u32 = 1 << 2;
    /// Protection keys for user pages.
    pub const PKU: u32 = 1 << 3;
    /// OSPKE: a copy of CR4.PKE.
    pub const OSPKE: u32 = 1 << 4;
    /// WAITPKG: UMONITOR/UMWAIT/TPAUSE (hidden).
    pub const WAITPKG: u32 = 1 << 5;
    /// AVX-512 VBMI2.
    pub const AVX512_VBMI2: u32 = 1 << 6;
    /// CET shadow stacks (hidden).
    pub const CET_SS: u32 = 1 << 7;
    /// GFNI (has a legacy SSE encoding).
    pub const GFNI: u32 = 1 << 8;
    /// VAES (VEX/EVEX only).
    pub const VAES: u32 = 1 << 9;
    /// VPCLMULQDQ (VEX/EVEX only).
    pub const VPCLMULQDQ: u32 = 1 << 10;
    /// AVX-512 VNNI.
    pub const AVX512_VNNI: u32 = 1 << 11;
    /// AVX-512 BITALG.
    pub const AVX512_BITALG: u32 = 1 << 12;
    /// Total memory encryption (hidden).
    pub const TME: u32 = 1 << 13;
    /// AVX-512 VPOPCNTDQ.
    pub const AVX512_VPOPCNTDQ: u32 = 1 << 14;
    /// 5-level paging (the walker supports 4 levels: hidden).
    pub const LA57: u32 = 1 << 16;
    /// RDPID (reads IA32_TSC_AUX).
    pub const RDPID: u32 = 1 << 22;
    /// Key Locker (hidden).
    pub const KL: u32 = 1 << 23;
    /// Bus lock debug exception (hidden).
    pub const BUS_LOCK_DETECT: u32 = 1 << 24;
    /// CLDEMOTE (a hint).
    pub const CLDEMOTE: u32 = 1 << 25;
    /// MOVDIRI.
    pub const MOVDIRI: u32 = 1 << 27;
    /// MOVDIR64B.
    pub const MOVDIR64B: u32 = 1 << 28;
    /// ENQCMD (hidden).
    pub const ENQCMD: u32 = 1 << 29;
    /// SGX launch configuration (hidden).
    pub const SGX_LC: u32 = 1 << 30;
    /// Protection keys for supervisor pages (hidden).
    pub const PKS: u32 = 1 << 31;
}

/// Leaf 7 sub-leaf 0 EDX.
pub mod leaf7_edx {
    /// AVX-512 4VNNIW.
    pub const AVX512_4VNNIW: u32 = 1 << 2;
    /// AVX-512 4FMAPS.
    pub const AVX512_4FMAPS: u32 = 1 << 3;
    /// Fast short REP MOV.
    pub const FSRM: u32 = 1 << 4;
    /// User interrupts (hidden).
    pub const UINTR: u32 = 1 << 5;
    /// AVX-512 VP2INTERSECT.
    pub const AVX512_VP2INTERSECT: u32 = 1 << 8;
    /// SRBDS mitigation control MSR (hidden).
    pub const SRBDS_CTRL: u32 = 1 << 9;
    /// VERW clears CPU buffers (a mitigation hint; no MSR).
    pub const MD_CLEAR: u32 = 1 << 10;
    /// RTM always aborts (hidden with TSX).
    pub const RTM_ALWAYS_ABORT: u32 = 1 << 11;
    /// TSX_FORCE_ABORT MSR (hidden).
    pub const TSX_FORCE_ABORT: u32 = 1 << 13;
    /// SERIALIZE.
    pub const SERIALIZE: u32 = 1 << 14;
    /// Hybrid part (hidden: vCPUs are not pinned to core types).
    pub const HYBRID: u32 = 1 << 15;
    /// TSX suspend load address tracking (hidden).
    pub const TSXLDTRK: u32 = 1 << 16;
    /// PCONFIG (hidden).
    pub const PCONFIG: u32 = 1 << 18;
    /// Architectural LBRs (hidden).
    pub const ARCH_LBR: u32 = 1 << 19;
    /// CET indirect branch tracking (hidden).
    pub const CET_IBT: u32 = 1 << 20;
    /// AMX BF16 (hidden: needs XFD/AMX state).
    pub const AMX_BF16: u32 = 1 << 22;
    /// AVX-512 FP16.
    pub const AVX512_FP16: u32 = 1 << 23;
    /// AMX tiles (hidden).
    pub const AMX_TILE: u32 = 1 << 24;
    /// AMX INT8 (hidden).
    pub const AMX_INT8: u32 = 1 << 25;
    /// IBRS and IBPB (IA32_SPEC_CTRL, IA32_PRED_CMD).
    pub const IBRS_IBPB: u32 = 1 << 26;
    /// STIBP.
    pub const STIBP: u32 = 1 << 27;
    /// IA32_FLUSH_CMD.
    pub const L1D_FLUSH: u32 = 1 << 28;
    /// IA32_ARCH_CAPABILITIES (hidden until the MSR is virtualized).
    pub const ARCH_CAPABILITIES: u32 = 1 << 29;
    /// IA32_CORE_CAPABILITIES (hidden).
    pub const CORE_CAPABILITIES: u32 = 1 << 30;
    /// SSBD via IA32_SPEC_CTRL.
    pub const SSBD: u32 = 1 << 31;
}

/// Leaf 0xD sub-leaf 1 EAX.
pub mod xsave_eax1 {
    /// XSAVEOPT.
    pub const XSAVEOPT: u32 = 1 << 0;
    /// XSAVEC.
    pub const XSAVEC: u32 = 1 << 1;
    /// XGETBV with ECX = 1.
    pub const XGETBV1: u32 = 1 << 2;
    /// XSAVES/XRSTORS and IA32_XSS (hidden: no supervisor state is virtualized).
    pub const XSAVES: u32 = 1 << 3;
    /// Extended feature disable (hidden).
    pub const XFD: u32 = 1 << 4;
}

/// XCR0 state components (SDM Vol. 1 13.1).
pub mod xcr0 {
    /// x87 state.
    pub const X87: u64 = 1 << 0;
    /// SSE state (XMM registers, MXCSR).
    pub const SSE: u64 = 1 << 1;
    /// AVX state (upper halves of YMM).
    pub const AVX: u64 = 1 << 2;
    /// AVX-512 opmask registers.
    pub const OPMASK: u64 = 1 << 5;
    /// Upper halves of ZMM0-15.
    pub const ZMM_HI256: u64 = 1 << 6;
    /// ZMM16-31.
    pub const HI16_ZMM: u64 = 1 << 7;
    /// PKRU.
    pub const PKRU: u64 = 1 << 9;
}

/// Leaf 0x80000001 ECX.
pub mod ext1_ecx {
    /// LAHF/SAHF in 64-bit mode.
    pub const LAHF_LM: u32 = 1 << 0;
    /// CmpLegacy: legacy multi-core detection (hidden: topology is synthesized).
    pub const CMP_LEGACY: u32 = 1 << 1;
    /// SVM (no nested virtualization: hidden).
    pub const SVM: u32 = 1 << 2;
    /// Extended APIC register space (hidden).
    pub const EXT_APIC_SPACE: u32 = 1 << 3;
    /// LOCK MOV CR0 means MOV CR8 (hidden).
    pub const ALT_MOV_CR8: u32 = 1 << 4;
    /// LZCNT (AMD: ABM).
    pub const ABM: u32 = 1 << 5;
    /// SSE4A.
    pub const SSE4A: u32 = 1 << 6;
    /// Misaligned SSE mode.
    pub const MISALIGN_SSE: u32 = 1 << 7;
    /// PREFETCH/PREFETCHW.
    pub const PREFETCHW: u32 = 1 << 8;
    /// OS-visible workaround MSRs (hidden).
    pub const OSVW: u32 = 1 << 9;
    /// Instruction-based sampling (hidden).
    pub const IBS: u32 = 1 << 10;
    /// XOP (VEX-like, needs AVX state).
    pub const XOP: u32 = 1 << 11;
    /// SKINIT (hidden).
    pub const SKINIT: u32 = 1 << 12;
    /// Watchdog timer (hidden).
    pub const WDT: u32 = 1 << 13;
    /// Lightweight profiling (hidden).
    pub const LWP: u32 = 1 << 15;
    /// FMA4 (needs AVX state).
    pub const FMA4: u32 = 1 << 16;
    /// Translation cache extension (hidden).
    pub const TCE: u32 = 1 << 17;
    /// Trailing bit manipulation.
    pub const TBM: u32 = 1 << 21;
    /// Topology extensions, leaves 0x8000001D/E (hidden: topology is synthesized).
    pub const TOPOEXT: u32 = 1 << 22;
    /// Core performance counter extensions (hidden).
    pub const PERFCTR_CORE: u32 = 1 << 23;
    /// MONITORX/MWAITX (hidden).
    pub const MONITORX: u32 = 1 << 29;
}

/// Leaf 0x80000001 EDX (the non-mirrored bits).
pub mod ext1_edx {
    /// SYSCALL/SYSRET.
    pub const SYSCALL: u32 = 1 << 11;
    /// No-execute.
    pub const NX: u32 = 1 << 20;
    /// AMD MMX extensions.
    pub const MMXEXT: u32 = 1 << 22;
    /// FXSAVE/FXRSTOR optimizations, EFER.FFXSR (hidden).
    pub const FFXSR: u32 = 1 << 25;
    /// 1 GiB pages.
    pub const PAGE1GB: u32 = 1 << 26;
    /// RDTSCP (reads IA32_TSC_AUX).
    pub const RDTSCP: u32 = 1 << 27;
    /// Long mode.
    pub const LM: u32 = 1 << 29;
    /// 3DNow! extensions.
    pub const THREEDNOWEXT: u32 = 1 << 30;
    /// 3DNow!.
    pub const THREEDNOW: u32 = 1 << 31;
    /// Bits that repeat leaf 1 EDX on AMD: 0-9, 12-17, 23, 24.
    pub const LEAF1_MIRROR: u32 = 0x0183_F3FF;
}

/// Leaf 0x80000007 EDX.
pub mod ext7_edx {
    /// Invariant TSC.
    pub const ITSC: u32 = 1 << 8;
}

/// Leaf 0x80000008 EBX (AMD).
pub mod ext8_ebx {
    /// CLZERO.
    pub const CLZERO: u32 = 1 << 0;
    /// FXSAVE/XSAVE always save the x87 error pointers.
    pub const RSTR_FP_ERR_PTRS: u32 = 1 << 2;
    /// WBNOINVD.
    pub const WBNOINVD: u32 = 1 << 9;
    /// IBPB.
    pub const IBPB: u32 = 1 << 12;
    /// IBRS.
    pub const IBRS: u32 = 1 << 14;
    /// STIBP.
    pub const STIBP: u32 = 1 << 15;
    /// SSBD via IA32_SPEC_CTRL.
    pub const SSBD: u32 = 1 << 24;
}

/// Returns `mask` if `cond`, else 0.
const fn when(cond: bool, mask: u32) -> u32 {
    if cond { mask } else { 0 }
}

impl CpuidPolicy {
    /// Leaf 1 ECX bits the guest may see from the host (HYPERVISOR and OSXSAVE are
    /// computed, not passed through).
    pub const fn leaf1_ecx_allowed(&self) -> u32 {
        use leaf1_ecx::*;
        SSE3 | PCLMULQDQ
            | SSSE3
            | CX16
            | SSE4_1
            | SSE4_2
            | MOVBE
            | POPCNT
            | AES
            | RDRAND
            | when(self.xsave, XSAVE | AVX | FMA | F16C)
            | when(self.x2apic, X2APIC)
            | when(self.tsc_deadline, TSC_DEADLINE)
            | when(self.pcid, PCID)
    }

    /// Leaf 1 EDX bits the guest may see (HTT is computed).
    pub const fn leaf1_edx_allowed(&self) -> u32 {
        use leaf1_edx::*;
        FPU | VME
            | DE
            | PSE
            | TSC
            | MSR
            | PAE
            | CX8
            | APIC
            | SEP
            | PGE
            | CMOV
            | PAT
            | PSE36
            | CLFSH
            | MMX
            | FXSR
            | SSE
            | SSE2
            | SS
            | when(self.mtrr, MTRR)
            | when(self.machine_check, MCE | MCA)
    }

    /// Leaf 7 sub-leaf 0 EBX bits the guest may see.
    pub const fn leaf7_ebx_allowed(&self) -> u32 {
        use leaf7_ebx::*;
        FSGSBASE
            | BMI1
            | FDP_EXCPTN_ONLY
            | SMEP
            | BMI2
            | ERMS
            | NO_FPU_SEL
            | RDSEED
            | ADX
            | SMAP
            | CLFLUSHOPT
            | CLWB
            | SHA
            | when(self.xsave, AVX2)
            | when(self.invpcid, INVPCID)
            | when(
                self.xsave && self.avx512,
                AVX512F
                    | AVX512DQ
                    | AVX512_IFMA
                    | AVX512PF
                    | AVX512ER
                    | AVX512CD
                    | AVX512BW
                    | AVX512VL,
            )
    }

    /// Leaf 7 sub-leaf 0 ECX bits the guest may see (OSPKE is computed).
    pub const fn leaf7_ecx_allowed(&self) -> u32 {
        use leaf7_ecx::*;
        GFNI | CLDEMOTE
            | MOVDIRI
            | MOVDIR64B
            | when(self.xsave, VAES | VPCLMULQDQ)
            | when(self.rdtscp, RDPID)
            | when(self.pku, PKU)
            | when(
                self.xsave && self.avx512,
                AVX512_VBMI | AVX512_VBMI2 | AVX512_VNNI | AVX512_BITALG | AVX512_VPOPCNTDQ,
            )
    }

    /// Leaf 7 sub-leaf 0 EDX bits the guest may see.
    pub const fn leaf7_edx_allowed(&self) -> u32 {
        use leaf7_edx::*;
        FSRM | MD_CLEAR
            | SERIALIZE
            | when(
                self.xsave && self.avx512,
                AVX512_4VNNIW | AVX512_4FMAPS | AVX512_VP2INTERSECT | AVX512_FP16,
            )
            | when(self.spec_ctrl, IBRS_IBPB | STIBP | L1D_FLUSH | SSBD)
    }

    /// XCR0 components the guest may enable.
    pub const fn xcr0_allowed(&self) -> u64 {
        if !self.xsave {
            return 0;
        }
        let mut mask = xcr0::X87 | xcr0::SSE | xcr0::AVX;
        if self.avx512 {
            mask |= xcr0::OPMASK | xcr0::ZMM_HI256 | xcr0::HI16_ZMM;
        }
        if self.pku {
            mask |= xcr0::PKRU;
        }
        mask
    }

    /// Leaf 0x80000001 ECX bits the guest may see.
    pub const fn ext1_ecx_allowed(&self) -> u32 {
        use ext1_ecx::*;
        LAHF_LM | ABM | SSE4A | MISALIGN_SSE | PREFETCHW | TBM | when(self.xsave, XOP | FMA4)
    }

    /// Leaf 0x80000001 EDX bits the guest may see: the leaf 1 mirror bits under the same
    /// rules, plus the extended ones.
    pub const fn ext1_edx_allowed(&self) -> u32 {
        use ext1_edx::*;
        (self.leaf1_edx_allowed() & LEAF1_MIRROR)
            | SYSCALL
            | NX
            | MMXEXT
            | LM
            | THREEDNOWEXT
            | THREEDNOW
            | when(self.page_1gb, PAGE1GB)
            | when(self.rdtscp, RDTSCP)
    }

    /// Leaf 0x80000008 EBX bits the guest may see.
    pub const fn ext8_ebx_allowed(&self) -> u32 {
        use ext8_ebx::*;
        CLZERO | RSTR_FP_ERR_PTRS | WBNOINVD | when(self.spec_ctrl, IBPB | IBRS | STIBP | SSBD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_allowed_bits_stay_hidden_with_everything_enabled() {
        let p = CpuidPolicy {
            x2apic: true,
            tsc_deadline: true,
            pcid: true,
            invpcid: true,
            xsave: true,
            avx512: true,
            pku: true,
            rdtscp: true,
            invariant_tsc: true,
            mtrr: true,
            machine_check: true,
            arat: true,
            page_1gb: true,
            spec_ctrl: true,
            ..CpuidPolicy::new(4)
        };
        use leaf1_ecx::*;
        let hidden1 = DTES64 | MONITOR | DS_CPL | VMX | SMX | EIST | TM2 | CNXT_ID | SDBG | XTPR;
        assert_eq!(
            p.leaf1_ecx_allowed() & (hidden1 | PDCM | DCA | OSXSAVE | HYPERVISOR),
            0
        );
        use leaf1_edx::{ACPI, DS, HTT, PBE, PSN, TM};
        assert_eq!(
            p.leaf1_edx_allowed() & (PSN | DS | ACPI | TM | PBE | HTT),
            0
        );
        use leaf7_ebx::{HLE, MPX, PT, RDT_A, RDT_M, RTM, SGX, TSC_ADJUST};
        let hidden7b = TSC_ADJUST | SGX | HLE | RTM | RDT_M | MPX | RDT_A | PT;
        assert_eq!(p.leaf7_ebx_allowed() & hidden7b, 0);
        use leaf7_ecx::{CET_SS, ENQCMD, KL, LA57, OSPKE, PKS, SGX_LC, TME, UMIP, WAITPKG};
        let hidden7c = UMIP | OSPKE | WAITPKG | CET_SS | TME | LA57 | KL | ENQCMD | SGX_LC | PKS;
        assert_eq!(p.leaf7_ecx_allowed() & hidden7c, 0);
        use leaf7_edx::{AMX_TILE, ARCH_CAPABILITIES, HYBRID, RTM_ALWAYS_ABORT, TSXLDTRK};
        let hidden7d = AMX_TILE | ARCH_CAPABILITIES | HYBRID | RTM_ALWAYS_ABORT | TSXLDTRK;
        assert_eq!(p.leaf7_edx_allowed() & hidden7d, 0);
        use ext1_ecx::{CMP_LEGACY, MONITORX, SVM, TOPOEXT};
        assert_eq!(
            p.ext1_ecx_allowed() & (SVM | CMP_LEGACY | TOPOEXT | MONITORX),
            0
        );
        assert_eq!(p.ext1_edx_allowed() & ext1_edx::FFXSR, 0);
    }

    #[test]
    fn mirror_mask_is_bits_0_to_9_12_to_17_23_24() {
        let bits: u32 = (0..=9)
            .chain(12..=17)
            .chain([23, 24])
            .map(|b| 1u32 << b)
            .sum();
        assert_eq!(ext1_edx::LEAF1_MIRROR, bits);
    }
}
