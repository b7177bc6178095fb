//! A vCPU's complete architectural starting state, vendor-neutral: what the PVH entry
//! (the first vCPU) and Xen's `VCPUOP_initialise` (secondary vCPUs) produce, and what
//! each backend loads into its VMCS or VMCB before the vCPU first runs.

use super::GuestRegisters;

/// Segment attribute bits in the packed form Xen's `segment_register.attr`, the
/// `vcpu_hvm_x86_32` `*_ar` fields and the AMD VMCB share (APM Vol. 2 §15.5.1): the
/// descriptor's type (bits 3:0), S (4), DPL (6:5) and P (7), then AVL (8), L (9), D/B
/// (10) and G (11). VT-x access rights put AVL/L/D/B/G at bits 12-15 instead; the VT-x
/// backend converts.
pub mod attr {
    /// Descriptor type, bits 3:0.
    pub const TYPE: u16 = 0xF;
    /// Type bit 3: code segment (with S = 1).
    pub const TYPE_CODE: u16 = 1 << 3;
    /// Type bit 1: readable (code) or writable (data).
    pub const TYPE_RW: u16 = 1 << 1;
    /// Type 0xB: 32/64-bit busy TSS (system descriptor, SDM Vol. 3A Table 3-2).
    pub const TYPE_TSS_BUSY: u16 = 0xB;
    /// S: code or data (not system) segment.
    pub const S: u16 = 1 << 4;
    /// P: present.
    pub const P: u16 = 1 << 7;
    /// L: 64-bit code segment.
    pub const L: u16 = 1 << 9;
    /// D/B: 32-bit default operand size.
    pub const DB: u16 = 1 << 10;
    /// G: limit in 4 KiB units.
    pub const G: u16 = 1 << 11;
    /// Bits 15:12 are not attributes; Xen refuses them set.
    pub const RESERVED: u16 = 0xF000;

    /// 32-bit flat code: accessed execute/read, S, P, D/B, G (0xC9B).
    pub const CODE32: u16 = 0xB | S | P | DB | G;
    /// 64-bit code: accessed execute/read, S, P, L, G (0xA9B, Xen's `VCPU_HVM_MODE_64B` CS).
    pub const CODE64: u16 = 0xB | S | P | L | G;
    /// Flat data: accessed read/write, S, P, D/B, G (0xC93).
    pub const DATA32: u16 = 0x3 | S | P | DB | G;
    /// Busy TSS, present (0x8B).
    pub const TSS_BUSY: u16 = TYPE_TSS_BUSY | P;
}

/// One segment register, hidden part included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    /// Packed attributes ([`attr`]); 0 means unusable (a null selector's state).
    pub attributes: u16,
    /// Byte-granular limit (the hidden part's, after G is applied).
    pub limit: u32,
    pub base: u64,
}

impl Segment {
    /// A flat (base 0, 4 GiB limit) segment with `attributes`.
    pub const fn flat(selector: u16, attributes: u16) -> Self {
        Self {
            selector,
            attributes,
            limit: 0xFFFF_FFFF,
            base: 0,
        }
    }

    /// An unusable segment (null selector).
    pub const NULL: Self = Self {
        selector: 0,
        attributes: 0,
        limit: 0,
        base: 0,
    };
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// Everything a vCPU starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInitState {
    pub regs: GuestRegisters,
    pub rsp: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// EFER with LMA consistent with LME and CR0.PG.
    pub efer: u64,
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub ss: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub tr: Segment,
    pub ldtr: Segment,
    pub gdtr: DescriptorTable,
    pub idtr: DescriptorTable,
}

/// CR0.PE, CR0.ET, CR0.PG.
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME, EFER.LMA.
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;

impl VcpuInitState {
    /// The PVH entry state (Xen `docs/misc/pvh.pandoc`): 32-bit protected mode, paging
    /// off, flat 4 GiB code and data segments, a busy TSS, EBX = the guest-physical
    /// address of `hvm_start_info`, EIP = the `XEN_ELFNOTE_PHYS32_ENTRY` address.
    pub const fn pvh_entry(entry: u32, start_info: u32) -> Self {
        let data = Segment::flat(0x10, attr::DATA32);
        Self {
            regs: GuestRegisters {
                rax: 0,
                rbx: start_info as u64,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                rbp: 0,
                r8: 0,
                r9: 0,
                r10: 0,
                r11: 0,
                r12: 0,
                r13: 0,
                r14: 0,
                r15: 0,
            },
            rsp: 0,
            rip: entry as u64,
            rflags: 0x2,
            cr0: CR0_PE | CR0_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            cs: Segment::flat(0x08, attr::CODE32),
            ds: data,
            es: data,
            ss: data,
            fs: data,
            gs: data,
            tr: Segment {
                selector: 0x18,
                attributes: attr::TSS_BUSY,
                limit: 0x67,
                base: 0,
            },
            ldtr: Segment::NULL,
            gdtr: DescriptorTable {
                base: 0,
                limit: 0xFFFF,
            },
            idtr: DescriptorTable {
                base: 0,
                limit: 0xFFFF,
            },
        }
    }

    /// Whether the vCPU starts in IA-32e mode.
    pub const fn long_mode(&self) -> bool {
        self.efer & EFER_LMA != 0
    }
}
