//! `vcpu_op` (`public/vcpu.h`) and the HVM/PVH form of `VCPUOP_initialise`'s argument,
//! `struct vcpu_hvm_context` (`public/hvm/hvm_vcpu.h`), decoded from the guest's bytes
//! and validated the way Xen's `arch_set_info_hvm_guest()` does before anything is
//! loaded into a vCPU.

use crate::vcpu::GuestRegisters;
use crate::vcpu::init::{
    CR0_PE, CR0_PG, CR4_PAE, DescriptorTable, EFER_LMA, EFER_LME, Segment, VcpuInitState, attr,
};

/// `VCPUOP_*` commands (`public/vcpu.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum VcpuOp {
    /// `VCPUOP_initialise`: arg points to the initial state (`vcpu_hvm_context` for
    /// HVM/PVH domains); -EEXIST if the vCPU was already initialised.
    Initialise = 0,
    /// `VCPUOP_up`: arg NULL; runs an initialised vCPU (-EINVAL if it is not).
    Up = 1,
    /// `VCPUOP_down`: arg NULL; stops a vCPU.
    Down = 2,
    /// `VCPUOP_is_up`: arg NULL; returns 1 if the vCPU is up, else 0.
    IsUp = 3,
    /// `VCPUOP_get_runstate_info`.
    GetRunstateInfo = 4,
    /// `VCPUOP_register_runstate_memory_area`.
    RegisterRunstateMemoryArea = 5,
    /// `VCPUOP_set_periodic_timer`.
    SetPeriodicTimer = 6,
    /// `VCPUOP_stop_periodic_timer`.
    StopPeriodicTimer = 7,
    /// `VCPUOP_set_singleshot_timer`.
    SetSingleshotTimer = 8,
    /// `VCPUOP_stop_singleshot_timer`.
    StopSingleshotTimer = 9,
    /// `VCPUOP_register_vcpu_info`.
    RegisterVcpuInfo = 10,
    /// `VCPUOP_send_nmi`.
    SendNmi = 11,
    /// `VCPUOP_get_physid`.
    GetPhysid = 12,
    /// `VCPUOP_register_vcpu_time_memory_area`.
    RegisterVcpuTimeMemoryArea = 13,
}

impl VcpuOp {
    /// Decodes the command (an `int` in the C prototype, so 32 bits).
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Initialise,
            1 => Self::Up,
            2 => Self::Down,
            3 => Self::IsUp,
            4 => Self::GetRunstateInfo,
            5 => Self::RegisterRunstateMemoryArea,
            6 => Self::SetPeriodicTimer,
            7 => Self::StopPeriodicTimer,
            8 => Self::SetSingleshotTimer,
            9 => Self::StopSingleshotTimer,
            10 => Self::RegisterVcpuInfo,
            11 => Self::SendNmi,
            12 => Self::GetPhysid,
            13 => Self::RegisterVcpuTimeMemoryArea,
            _ => return None,
        })
    }
}

/// `sizeof(struct vcpu_hvm_context)`: `mode`, `pad`, then the register union (the
/// larger member, `vcpu_hvm_x86_32`, is 120 bytes) at offset 8.
pub const VCPU_HVM_CONTEXT_SIZE: usize = 128;
/// `VCPU_HVM_MODE_32B`: the union holds `vcpu_hvm_x86_32`.
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: the union holds `vcpu_hvm_x86_64`.
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// Why a `vcpu_hvm_context` is refused (Xen answers -EINVAL for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextError {
    /// `mode` is neither 32B nor 64B.
    Mode(u32),
    /// A padding field is not zero.
    Padding,
    /// A segment's attributes are not acceptable for it (name, reason).
    Segment(&'static str, &'static str),
    /// CR0, CR4 or EFER has a reserved bit set, or they contradict each other.
    ControlRegisters(&'static str),
    /// RIP is not canonical (64-bit mode).
    Rip,
}

impl core::fmt::Display for ContextError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Mode(mode) => write!(f, "mode {mode} is neither 32B (0) nor 64B (1)"),
            Self::Padding => f.write_str("a padding field is not zero"),
            Self::Segment(name, why) => write!(f, "{name}: {why}"),
            Self::ControlRegisters(why) => f.write_str(why),
            Self::Rip => f.write_str("RIP is not canonical"),
        }
    }
}

/// CR0 bits an HVM guest may set: PE, MP, EM, TS, ET, NE, WP, AM, NW, CD, PG.
const CR0_DEFINED: u64 =
    0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | (1 << 16) | (1 << 18) | (0b111 << 29);
/// CR4 bits a starting vCPU may set: VME..OSXMMEXCPT (0-10), UMIP (11), FSGSBASE (16),
/// PCIDE (17), OSXSAVE (18), SMEP (20), SMAP (21), PKE (22). Not VMXE, SMXE, LA57 or
/// the CET/PKS bits (the guest enables those itself when CPUID offers them).
const CR4_ALLOWED: u64 = 0x7FF | (1 << 11) | (1 << 16) | (1 << 17) | (1 << 18) | (0b111 << 20);
/// EFER bits a starting vCPU may set: SCE, LME, LMA, NXE.
const EFER_ALLOWED: u64 = 1 | EFER_LME | EFER_LMA | (1 << 11);

struct Reader<'a> {
    bytes: &'a [u8; VCPU_HVM_CONTEXT_SIZE],
    at: usize,
}

impl Reader<'_> {
    fn u16(&mut self) -> u16 {
        let v = u16::from_le_bytes([self.bytes[self.at], self.bytes[self.at + 1]]);
        self.at += 2;
        v
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.bytes[self.at..self.at + 4]);
        self.at += 4;
        u32::from_le_bytes(b)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[self.at..self.at + 8]);
        self.at += 8;
        u64::from_le_bytes(b)
    }
}

/// Xen's `check_segment()`: what each segment register may hold at start.
fn check_segment(name: &'static str, s: &Segment) -> Result<(), ContextError> {
    let bad = |why| Err(ContextError::Segment(name, why));
    let a = s.attributes;
    if a & attr::RESERVED != 0 {
        return bad("attribute bits 15:12 are not zero");
    }
    if a == 0 {
        return match name {
            "ds" | "es" => Ok(()),
            _ => bad("null (attributes 0) for CS, SS or TR"),
        };
    }
    if name == "tr" {
        if a & attr::S != 0 {
            return bad("a code or data segment for TR");
        }
        if a & attr::TYPE != attr::TYPE_TSS_BUSY {
            return bad("not a busy 32-bit TSS");
        }
    } else if a & attr::S == 0 {
        return bad("a system segment for a code or data segment");
    }
    if a & attr::P == 0 {
        return bad("not present");
    }
    match name {
        "cs" if a & attr::TYPE_CODE == 0 => bad("not a code segment"),
        "ss" if a & attr::TYPE_CODE != 0 || a & attr::TYPE_RW == 0 => bad("not writable data"),
        "ds" | "es" if a & attr::TYPE_CODE != 0 && a & attr::TYPE_RW == 0 => {
            bad("execute-only code")
        }
        _ => Ok(()),
    }
}

fn check_control(cr0: u64, cr4: u64, efer: u64) -> Result<u64, ContextError> {
    let bad = |why| Err(ContextError::ControlRegisters(why));
    if cr0 & !CR0_DEFINED != 0 {
        return bad("CR0 has reserved bits set");
    }
    if cr0 & CR0_PE == 0 {
        return bad("CR0.PE is clear (a vCPU starts in protected mode)");
    }
    if cr0 & (1 << 29) != 0 && cr0 & (1 << 30) == 0 {
        return bad("CR0.NW without CR0.CD");
    }
    if cr4 & !CR4_ALLOWED != 0 {
        return bad("CR4 has bits set a starting vCPU may not have");
    }
    if efer & !EFER_ALLOWED != 0 {
        return bad("EFER has reserved bits set");
    }
    let lma = efer & EFER_LME != 0 && cr0 & CR0_PG != 0;
    if lma && cr4 & CR4_PAE == 0 {
        return bad("long mode paging without CR4.PAE");
    }
    if efer & EFER_LMA != 0 && !lma {
        return bad("EFER.LMA without EFER.LME and CR0.PG");
    }
    Ok(if lma {
        efer | EFER_LMA
    } else {
        efer & !EFER_LMA
    })
}

/// Decodes and validates a `vcpu_hvm_context`. The result is a complete starting state:
/// fields Xen's structure does not carry (FS, GS, LDTR, GDTR, IDTR, selectors) are what
/// Xen gives them (zero selectors, FS/GS like DS, null LDTR, empty tables).
pub fn parse_hvm_context(
    bytes: &[u8; VCPU_HVM_CONTEXT_SIZE],
) -> Result<VcpuInitState, ContextError> {
    let mut r = Reader { bytes, at: 0 };
    let mode = r.u32();
    if r.u32() != 0 {
        return Err(ContextError::Padding);
    }
    let mut s = VcpuInitState {
        ldtr: Segment::NULL,
        gdtr: DescriptorTable::default(),
        idtr: DescriptorTable::default(),
        ..VcpuInitState::default()
    };
    match mode {
        VCPU_HVM_MODE_32B => {
            let [eax, ecx, edx, ebx, esp, ebp, esi, edi, eip, eflags] =
                core::array::from_fn(|_| u64::from(r.u32()));
            let (cr0, cr3, cr4) = (u64::from(r.u32()), u64::from(r.u32()), u64::from(r.u32()));
            if r.u32() != 0 {
                return Err(ContextError::Padding);
            }
            let efer = r.u64();
            let bases: [u32; 5] = core::array::from_fn(|_| r.u32());
            let limits: [u32; 5] = core::array::from_fn(|_| r.u32());
            let ars: [u16; 5] = core::array::from_fn(|_| r.u16());
            if (0..3).any(|_| r.u16() != 0) {
                return Err(ContextError::Padding);
            }
            let segment = |i: usize| Segment {
                selector: 0,
                attributes: ars[i],
                limit: limits[i],
                base: u64::from(bases[i]),
            };
            // Order in the structure: cs, ds, ss, es, tr.
            let (cs, ds, ss, es, tr) = (segment(0), segment(1), segment(2), segment(3), segment(4));
            for (name, seg) in [
                ("cs", &cs),
                ("ds", &ds),
                ("ss", &ss),
                ("es", &es),
                ("tr", &tr),
            ] {
                check_segment(name, seg)?;
            }
            if cs.attributes & attr::L != 0 {
                return Err(ContextError::Segment("cs", "64-bit code in 32B mode"));
            }
            s.efer = check_control(cr0, cr4, efer)?;
            s.regs = GuestRegisters {
                rax: eax,
                rbx: ebx,
                rcx: ecx,
                rdx: edx,
                rsi: esi,
                rdi: edi,
                rbp: ebp,
                ..GuestRegisters::default()
            };
            (s.rsp, s.rip, s.rflags) = (esp, eip, (eflags & 0x003F_7FD7) | 0x2);
            (s.cr0, s.cr3, s.cr4) = (cr0, cr3, cr4);
            (s.cs, s.ds, s.ss, s.es, s.tr) = (cs, ds, ss, es, tr);
            (s.fs, s.gs) = (ds, ds);
        }
        VCPU_HVM_MODE_64B => {
            let [
                rax,
                rcx,
                rdx,
                rbx,
                rsp,
                rbp,
                rsi,
                rdi,
                rip,
                rflags,
                cr0,
                cr3,
                cr4,
                efer,
            ] = core::array::from_fn(|_| r.u64());
            // The rest of the union is unused in 64B mode: it must be zero like padding.
            if bytes[r.at..].iter().any(|&b| b != 0) {
                return Err(ContextError::Padding);
            }
            if cr0 & CR0_PG == 0 || efer & EFER_LME == 0 {
                return Err(ContextError::ControlRegisters(
                    "64B mode needs CR0.PG and EFER.LME",
                ));
            }
            s.efer = check_control(cr0, cr4, efer)?;
            let canonical = ((rip as i64) << 16 >> 16) as u64 == rip;
            if !canonical {
                return Err(ContextError::Rip);
            }
            s.regs = GuestRegisters {
                rax,
                rbx,
                rcx,
                rdx,
                rsi,
                rdi,
                rbp,
                ..GuestRegisters::default()
            };
            (s.rsp, s.rip, s.rflags) = (rsp, rip, (rflags & 0x003F_7FD7) | 0x2);
            (s.cr0, s.cr3, s.cr4) = (cr0, cr3, cr4);
            let data = Segment {
                selector: 0,
                ..Segment::flat(0, attr::DATA32)
            };
            s.cs = Segment::flat(0, attr::CODE64);
            (s.ds, s.es, s.ss, s.fs, s.gs) = (data, data, data, data, data);
            s.tr = Segment {
                selector: 0,
                attributes: attr::TSS_BUSY,
                limit: 0x67,
                base: 0,
            };
        }
        other => return Err(ContextError::Mode(other)),
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_64(rip: u64, rsp: u64) -> [u8; VCPU_HVM_CONTEXT_SIZE] {
        let mut b = [0u8; VCPU_HVM_CONTEXT_SIZE];
        b[..4].copy_from_slice(&VCPU_HVM_MODE_64B.to_le_bytes());
        let regs: [u64; 14] = [
            1,
            2,
            3,
            4,
            rsp,
            6,
            7,
            8,
            rip,
            0x202,
            CR0_PE | CR0_PG | 0x10,
            0x1000,
            CR4_PAE,
            EFER_LME,
        ];
        for (i, v) in regs.iter().enumerate() {
            b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    struct Ctx32 {
        cr0: u32,
        cs_ar: u16,
        ss_ar: u16,
        tr_ar: u16,
        ds_ar: u16,
    }

    fn context_32(c: &Ctx32) -> [u8; VCPU_HVM_CONTEXT_SIZE] {
        let mut b = [0u8; VCPU_HVM_CONTEXT_SIZE];
        let mut at = 8;
        let mut put = |b: &mut [u8; 128], bytes: &[u8]| {
            b[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        // eax ecx edx ebx esp ebp esi edi eip eflags
        for v in [10u32, 11, 12, 13, 0x9000, 15, 16, 17, 0x10_0000, 0x2] {
            put(&mut b, &v.to_le_bytes());
        }
        for v in [c.cr0, 0, 0, 0] {
            put(&mut b, &v.to_le_bytes()); // cr0 cr3 cr4 pad1
        }
        put(&mut b, &0u64.to_le_bytes()); // efer
        for _ in 0..5 {
            put(&mut b, &0u32.to_le_bytes()); // bases
        }
        for v in [u32::MAX, u32::MAX, u32::MAX, u32::MAX, 0x67] {
            put(&mut b, &v.to_le_bytes());
        }
        for v in [c.cs_ar, c.ds_ar, c.ss_ar, c.ds_ar, c.tr_ar] {
            put(&mut b, &v.to_le_bytes());
        }
        b
    }

    const GOOD32: Ctx32 = Ctx32 {
        cr0: 0x11,
        cs_ar: attr::CODE32,
        ss_ar: attr::DATA32,
        tr_ar: attr::TSS_BUSY,
        ds_ar: attr::DATA32,
    };

    #[test]
    fn layout_offsets_match_the_c_structures() {
        // vcpu_hvm_x86_32: 10 GPRs + cr0/cr3/cr4/pad1 (56) + efer (8) + 5 bases + 5 limits
        // (40) + 5 ars (10) + pad2[3] (6) = 120; the union starts at 8.
        assert_eq!(8 + 56 + 8 + 40 + 10 + 6, VCPU_HVM_CONTEXT_SIZE);
        // vcpu_hvm_x86_64 (14 u64) fits the union: the 64B reader stops at byte 120.
        let mut b = [0u8; VCPU_HVM_CONTEXT_SIZE];
        b[0] = 1;
        b[120..].fill(1);
        assert_eq!(parse_hvm_context(&b), Err(ContextError::Padding));
    }

    #[test]
    fn a_64_bit_context_starts_in_long_mode_with_flat_segments() {
        let s = parse_hvm_context(&context_64(0xffff_8000_0010_0000, 0x8000)).unwrap();
        assert!(s.long_mode());
        assert_eq!(s.rip, 0xffff_8000_0010_0000);
        assert_eq!(s.rsp, 0x8000);
        assert_eq!(
            (s.regs.rax, s.regs.rcx, s.regs.rdx, s.regs.rbx),
            (1, 2, 3, 4)
        );
        assert_eq!((s.regs.rbp, s.regs.rsi, s.regs.rdi), (6, 7, 8));
        assert_eq!(s.cs.attributes, 0xA9B);
        assert_eq!(s.ss.attributes, 0xC93);
        assert_eq!(s.tr.attributes, 0x8B);
        assert_eq!(s.tr.limit, 0x67);
        assert_eq!(s.cr3, 0x1000);
    }

    #[test]
    fn a_32_bit_context_keeps_its_segments() {
        let s = parse_hvm_context(&context_32(&GOOD32)).unwrap();
        assert!(!s.long_mode());
        assert_eq!(s.rip, 0x10_0000);
        assert_eq!(s.rsp, 0x9000);
        assert_eq!(s.regs.rbx, 13);
        assert_eq!(s.cs.attributes, attr::CODE32);
        assert_eq!(s.fs, s.ds);
    }

    #[test]
    fn bad_modes_padding_and_registers_are_refused() {
        let mut b = context_64(0x1000, 0);
        b[0] = 7;
        assert_eq!(parse_hvm_context(&b), Err(ContextError::Mode(7)));
        let mut b = context_64(0x1000, 0);
        b[4] = 1;
        assert_eq!(parse_hvm_context(&b), Err(ContextError::Padding));
        let mut b = context_64(0x1000, 0);
        b[127] = 1;
        assert_eq!(parse_hvm_context(&b), Err(ContextError::Padding));
        assert_eq!(
            parse_hvm_context(&context_64(0x0000_8000_0000_0000, 0)),
            Err(ContextError::Rip)
        );
        // 64B mode without paging.
        let mut b = context_64(0x1000, 0);
        b[8 + 10 * 8..8 + 11 * 8].copy_from_slice(&CR0_PE.to_le_bytes());
        assert!(matches!(
            parse_hvm_context(&b),
            Err(ContextError::ControlRegisters(_))
        ));
        // VMXE in CR4.
        let mut b = context_64(0x1000, 0);
        b[8 + 12 * 8..8 + 13 * 8].copy_from_slice(&(CR4_PAE | (1 << 13)).to_le_bytes());
        assert!(matches!(
            parse_hvm_context(&b),
            Err(ContextError::ControlRegisters(_))
        ));
        // Real mode.
        let c = Ctx32 {
            cr0: 0x10,
            ..GOOD32
        };
        assert!(matches!(
            parse_hvm_context(&context_32(&c)),
            Err(ContextError::ControlRegisters(_))
        ));
    }

    #[test]
    fn segments_are_checked_like_xen() {
        let cases = [
            (
                Ctx32 {
                    cs_ar: attr::DATA32,
                    ..GOOD32
                },
                "cs",
            ),
            (Ctx32 { cs_ar: 0, ..GOOD32 }, "cs"),
            (
                Ctx32 {
                    ss_ar: attr::CODE32,
                    ..GOOD32
                },
                "ss",
            ),
            (
                Ctx32 {
                    ss_ar: attr::DATA32 & !attr::P,
                    ..GOOD32
                },
                "ss",
            ),
            (
                Ctx32 {
                    tr_ar: attr::DATA32,
                    ..GOOD32
                },
                "tr",
            ),
            (
                Ctx32 {
                    tr_ar: 0x89,
                    ..GOOD32
                },
                "tr",
            ),
            (
                Ctx32 {
                    cs_ar: attr::CODE64,
                    ..GOOD32
                },
                "cs",
            ),
            (
                Ctx32 {
                    ds_ar: 0x1000 | attr::DATA32,
                    ..GOOD32
                },
                "ds",
            ),
            (
                Ctx32 {
                    ds_ar: attr::CODE32 & !attr::TYPE_RW,
                    ..GOOD32
                },
                "ds",
            ),
        ];
        for (c, name) in cases {
            match parse_hvm_context(&context_32(&c)) {
                Err(ContextError::Segment(n, _)) => assert_eq!(n, name),
                other => panic!("expected a {name} refusal, got {other:?}"),
            }
        }
        // Null DS and ES are fine.
        let c = Ctx32 { ds_ar: 0, ..GOOD32 };
        assert!(parse_hvm_context(&context_32(&c)).is_ok());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = crate::test_rng::Rng(7);
        for _ in 0..2000 {
            let mut b = [0u8; VCPU_HVM_CONTEXT_SIZE];
            for byte in b.iter_mut() {
                *byte = rng.next() as u8;
            }
            b[0] = rng.below(3) as u8;
            b[1..8].fill(0);
            let _ = parse_hvm_context(&b);
        }
    }
}
