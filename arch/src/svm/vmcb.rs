//! The virtual machine control block (APM Vol. 2 §15.5, Appendix B).
//!
//! One 4 KiB page: the control area (Table B-1) at offset 0 and the state-save area
//! (Table B-2) at 0x400. Every field carries its APM offset in a comment and in a
//! compile-time `offset_of!` assert, and every reserved gap is an explicitly sized array,
//! so an off-by-one in the layout does not build. Offsets in the state-save area are
//! relative to its start, as in Table B-2; add 0x400 for the VMCB offset.
//!
//! Fields that hold several architectural fields (the interrupt-control word, EVENTINJ,
//! ...) are kept as raw integers; the types in [`super::exit`] and the flag sets below
//! give them meaning.

use bitflags::bitflags;
use core::mem::offset_of;

/// A segment register in the state-save area (APM Vol. 2 §15.5.1, Table B-2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VmcbSegment {
    /// +0x0: selector.
    pub selector: u16,
    /// +0x2: attributes, the descriptor's bits 47:40 and 55:52 packed into 11:0; see
    /// [`attrib`].
    pub attrib: u16,
    /// +0x4: limit, expanded to bytes.
    pub limit: u32,
    /// +0x8: base (only the low 32 bits matter for ES/CS/SS/DS outside 64-bit mode).
    pub base: u64,
}

const _: () = {
    assert!(size_of::<VmcbSegment>() == 16);
    assert!(offset_of!(VmcbSegment, selector) == 0x0);
    assert!(offset_of!(VmcbSegment, attrib) == 0x2);
    assert!(offset_of!(VmcbSegment, limit) == 0x4);
    assert!(offset_of!(VmcbSegment, base) == 0x8);
};

impl VmcbSegment {
    /// An all-zero (null, unusable) segment.
    pub const NULL: Self = Self {
        selector: 0,
        attrib: 0,
        limit: 0,
        base: 0,
    };
}

/// Bits of [`VmcbSegment::attrib`]: descriptor bits 47:40 in 7:0 and 55:52 in 11:8.
pub mod attrib {
    /// Bits 3:0: segment type.
    pub const TYPE_MASK: u16 = 0xF;
    /// Bit 4: code/data (1) or system (0) descriptor.
    pub const S: u16 = 1 << 4;
    /// Bits 6:5: descriptor privilege level.
    pub const DPL_SHIFT: u16 = 5;
    /// Bit 7: present.
    pub const P: u16 = 1 << 7;
    /// Bit 8: available to software.
    pub const AVL: u16 = 1 << 8;
    /// Bit 9: 64-bit code segment.
    pub const L: u16 = 1 << 9;
    /// Bit 10: default operand size.
    pub const DB: u16 = 1 << 10;
    /// Bit 11: granularity.
    pub const G: u16 = 1 << 11;
}

/// VMCB control area (APM Vol. 2 Table B-1), 0x400 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct VmcbControl {
    /// 0x000: bits 15:0 intercept reads of CR0-15, bits 31:16 writes; see
    /// [`super::exit::CrIntercepts`].
    pub intercept_cr: u32,
    /// 0x004: bits 15:0 intercept reads of DR0-15, bits 31:16 writes.
    pub intercept_dr: u32,
    /// 0x008: intercept exception vectors 0-31, one bit each.
    pub intercept_exceptions: u32,
    /// 0x00C: first miscellaneous intercept word; see [`super::exit::Intercepts1`].
    pub intercept_misc1: u32,
    /// 0x010: second miscellaneous intercept word; see [`super::exit::Intercepts2`].
    pub intercept_misc2: u32,
    /// 0x014: third intercept word; see [`super::exit::Intercepts3`].
    pub intercept_misc3: u32,
    /// 0x018-0x03B: reserved.
    _reserved_018: [u8; 0x24],
    /// 0x03C: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 0x03E: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 0x040: IOPM_BASE_PA, physical address of the I/O permissions map (4 KiB aligned).
    pub iopm_base_pa: u64,
    /// 0x048: MSRPM_BASE_PA, physical address of the MSR permissions map (4 KiB aligned).
    pub msrpm_base_pa: u64,
    /// 0x050: TSC_OFFSET added to the guest's view of the TSC.
    pub tsc_offset: u64,
    /// 0x058: guest ASID; 0 is the host's and is invalid for VMRUN.
    pub guest_asid: u32,
    /// 0x05C: TLB_CONTROL; see [`tlb_control`].
    pub tlb_control: u8,
    /// 0x05D-0x05F: reserved.
    _reserved_05d: [u8; 3],
    /// 0x060: V_TPR, V_IRQ, V_GIF, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, AVIC enable ...;
    /// see [`IntControl`].
    pub int_control: u32,
    /// 0x064: bits 7:0 V_INTR_VECTOR (VMCB bits 39:32); the rest reserved.
    pub int_vector: u32,
    /// 0x068: bit 0 INTERRUPT_SHADOW, bit 1 GUEST_INTERRUPT_MASK.
    pub int_state: u64,
    /// 0x070: EXITCODE; see [`super::exit::SvmExitCode`].
    pub exit_code: u64,
    /// 0x078: EXITINFO1.
    pub exit_info1: u64,
    /// 0x080: EXITINFO2.
    pub exit_info2: u64,
    /// 0x088: EXITINTINFO, an event being delivered when the exit happened (EVENTINJ
    /// format; see [`super::exit::EventInjection`]).
    pub exit_int_info: u64,
    /// 0x090: NP_ENABLE and related bits; see [`NestedControl`].
    pub nested_control: u64,
    /// 0x098: AVIC APIC_BAR.
    pub avic_apic_bar: u64,
    /// 0x0A0: guest physical address of the GHCB (SEV-ES).
    pub ghcb_pa: u64,
    /// 0x0A8: EVENTINJ, an event to inject on VMRUN; see [`super::exit::EventInjection`].
    pub event_inj: u64,
    /// 0x0B0: N_CR3, the nested page table root.
    pub n_cr3: u64,
    /// 0x0B8: LBR virtualization enable and virtual VMSAVE/VMLOAD; see
    /// [`VirtualizationExtensions`].
    pub virt_ext: u64,
    /// 0x0C0: VMCB clean bits; see [`CleanBits`].
    pub clean_bits: u32,
    /// 0x0C4: reserved.
    _reserved_0c4: u32,
    /// 0x0C8: nRIP, the next sequential instruction pointer (with NRIPS).
    pub next_rip: u64,
    /// 0x0D0: number of guest instruction bytes fetched (with decode assists).
    pub guest_instruction_len: u8,
    /// 0x0D1-0x0DF: the fetched guest instruction bytes.
    pub guest_instruction_bytes: [u8; 15],
    /// 0x0E0: AVIC APIC_BACKING_PAGE pointer.
    pub avic_backing_page: u64,
    /// 0x0E8: reserved.
    _reserved_0e8: u64,
    /// 0x0F0: AVIC LOGICAL_TABLE pointer.
    pub avic_logical_table: u64,
    /// 0x0F8: AVIC PHYSICAL_TABLE pointer and max index.
    pub avic_physical_table: u64,
    /// 0x100: reserved.
    _reserved_100: u64,
    /// 0x108: VMSA pointer (SEV-ES).
    pub vmsa_pa: u64,
    /// 0x110-0x3DF: reserved (SEV-ES VMGEXIT fields and future use).
    _reserved_110: [u8; 0x2D0],
    /// 0x3E0-0x3FF: reserved for host (hypervisor) use; the processor ignores it.
    pub reserved_for_host: [u8; 0x20],
}

const _: () = {
    assert!(size_of::<VmcbControl>() == 0x400);
    assert!(offset_of!(VmcbControl, intercept_cr) == 0x000);
    assert!(offset_of!(VmcbControl, intercept_dr) == 0x004);
    assert!(offset_of!(VmcbControl, intercept_exceptions) == 0x008);
    assert!(offset_of!(VmcbControl, intercept_misc1) == 0x00C);
    assert!(offset_of!(VmcbControl, intercept_misc2) == 0x010);
    assert!(offset_of!(VmcbControl, intercept_misc3) == 0x014);
    assert!(offset_of!(VmcbControl, _reserved_018) == 0x018);
    assert!(offset_of!(VmcbControl, pause_filter_threshold) == 0x03C);
    assert!(offset_of!(VmcbControl, pause_filter_count) == 0x03E);
    assert!(offset_of!(VmcbControl, iopm_base_pa) == 0x040);
    assert!(offset_of!(VmcbControl, msrpm_base_pa) == 0x048);
    assert!(offset_of!(VmcbControl, tsc_offset) == 0x050);
    assert!(offset_of!(VmcbControl, guest_asid) == 0x058);
    assert!(offset_of!(VmcbControl, tlb_control) == 0x05C);
    assert!(offset_of!(VmcbControl, _reserved_05d) == 0x05D);
    assert!(offset_of!(VmcbControl, int_control) == 0x060);
    assert!(offset_of!(VmcbControl, int_vector) == 0x064);
    assert!(offset_of!(VmcbControl, int_state) == 0x068);
    assert!(offset_of!(VmcbControl, exit_code) == 0x070);
    assert!(offset_of!(VmcbControl, exit_info1) == 0x078);
    assert!(offset_of!(VmcbControl, exit_info2) == 0x080);
    assert!(offset_of!(VmcbControl, exit_int_info) == 0x088);
    assert!(offset_of!(VmcbControl, nested_control) == 0x090);
    assert!(offset_of!(VmcbControl, avic_apic_bar) == 0x098);
    assert!(offset_of!(VmcbControl, ghcb_pa) == 0x0A0);
    assert!(offset_of!(VmcbControl, event_inj) == 0x0A8);
    assert!(offset_of!(VmcbControl, n_cr3) == 0x0B0);
    assert!(offset_of!(VmcbControl, virt_ext) == 0x0B8);
    assert!(offset_of!(VmcbControl, clean_bits) == 0x0C0);
    assert!(offset_of!(VmcbControl, _reserved_0c4) == 0x0C4);
    assert!(offset_of!(VmcbControl, next_rip) == 0x0C8);
    assert!(offset_of!(VmcbControl, guest_instruction_len) == 0x0D0);
    assert!(offset_of!(VmcbControl, guest_instruction_bytes) == 0x0D1);
    assert!(offset_of!(VmcbControl, avic_backing_page) == 0x0E0);
    assert!(offset_of!(VmcbControl, _reserved_0e8) == 0x0E8);
    assert!(offset_of!(VmcbControl, avic_logical_table) == 0x0F0);
    assert!(offset_of!(VmcbControl, avic_physical_table) == 0x0F8);
    assert!(offset_of!(VmcbControl, _reserved_100) == 0x100);
    assert!(offset_of!(VmcbControl, vmsa_pa) == 0x108);
    assert!(offset_of!(VmcbControl, _reserved_110) == 0x110);
    assert!(offset_of!(VmcbControl, reserved_for_host) == 0x3E0);
};

impl VmcbControl {
    /// An all-zero control area: no intercepts (so VMRUN would fail until the VMRUN
    /// intercept is set, APM Vol. 2 §15.5.1), ASID 0.
    pub const fn zeroed() -> Self {
        Self {
            intercept_cr: 0,
            intercept_dr: 0,
            intercept_exceptions: 0,
            intercept_misc1: 0,
            intercept_misc2: 0,
            intercept_misc3: 0,
            _reserved_018: [0; 0x24],
            pause_filter_threshold: 0,
            pause_filter_count: 0,
            iopm_base_pa: 0,
            msrpm_base_pa: 0,
            tsc_offset: 0,
            guest_asid: 0,
            tlb_control: 0,
            _reserved_05d: [0; 3],
            int_control: 0,
            int_vector: 0,
            int_state: 0,
            exit_code: 0,
            exit_info1: 0,
            exit_info2: 0,
            exit_int_info: 0,
            nested_control: 0,
            avic_apic_bar: 0,
            ghcb_pa: 0,
            event_inj: 0,
            n_cr3: 0,
            virt_ext: 0,
            clean_bits: 0,
            _reserved_0c4: 0,
            next_rip: 0,
            guest_instruction_len: 0,
            guest_instruction_bytes: [0; 15],
            avic_backing_page: 0,
            _reserved_0e8: 0,
            avic_logical_table: 0,
            avic_physical_table: 0,
            _reserved_100: 0,
            vmsa_pa: 0,
            _reserved_110: [0; 0x2D0],
            reserved_for_host: [0; 0x20],
        }
    }
}

/// VMCB state-save area (APM Vol. 2 Table B-2), at VMCB offset 0x400; offsets below are
/// relative to its start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct VmcbStateSave {
    /// 0x000: ES.
    pub es: VmcbSegment,
    /// 0x010: CS.
    pub cs: VmcbSegment,
    /// 0x020: SS.
    pub ss: VmcbSegment,
    /// 0x030: DS.
    pub ds: VmcbSegment,
    /// 0x040: FS.
    pub fs: VmcbSegment,
    /// 0x050: GS.
    pub gs: VmcbSegment,
    /// 0x060: GDTR (only limit and base are used).
    pub gdtr: VmcbSegment,
    /// 0x070: LDTR.
    pub ldtr: VmcbSegment,
    /// 0x080: IDTR (only limit and base are used).
    pub idtr: VmcbSegment,
    /// 0x090: TR.
    pub tr: VmcbSegment,
    /// 0x0A0-0x0CA: reserved.
    _reserved_0a0: [u8; 0x2B],
    /// 0x0CB: CPL. In real mode it must be 0 and in virtual-8086 mode 3 (APM Vol. 2
    /// §15.5.1).
    pub cpl: u8,
    /// 0x0CC: reserved.
    _reserved_0cc: u32,
    /// 0x0D0: EFER; SVME must be set or VMRUN fails.
    pub efer: u64,
    /// 0x0D8-0x147: reserved.
    _reserved_0d8: [u8; 0x70],
    /// 0x148: CR4.
    pub cr4: u64,
    /// 0x150: CR3.
    pub cr3: u64,
    /// 0x158: CR0.
    pub cr0: u64,
    /// 0x160: DR7.
    pub dr7: u64,
    /// 0x168: DR6.
    pub dr6: u64,
    /// 0x170: RFLAGS.
    pub rflags: u64,
    /// 0x178: RIP.
    pub rip: u64,
    /// 0x180-0x1D7: reserved.
    _reserved_180: [u8; 0x58],
    /// 0x1D8: RSP.
    pub rsp: u64,
    /// 0x1E0: S_CET.
    pub s_cet: u64,
    /// 0x1E8: SSP.
    pub ssp: u64,
    /// 0x1F0: ISST_ADDR.
    pub isst_addr: u64,
    /// 0x1F8: RAX. The other general-purpose registers are not in the VMCB: the world
    /// switch saves and restores them itself.
    pub rax: u64,
    /// 0x200: STAR.
    pub star: u64,
    /// 0x208: LSTAR.
    pub lstar: u64,
    /// 0x210: CSTAR.
    pub cstar: u64,
    /// 0x218: SFMASK.
    pub sfmask: u64,
    /// 0x220: KernelGsBase.
    pub kernel_gs_base: u64,
    /// 0x228: SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 0x230: SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 0x238: SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 0x240: CR2.
    pub cr2: u64,
    /// 0x248-0x267: reserved.
    _reserved_248: [u8; 0x20],
    /// 0x268: G_PAT, the guest PAT used with nested paging.
    pub g_pat: u64,
    /// 0x270: DBGCTL (with LBR virtualization).
    pub dbgctl: u64,
    /// 0x278: BR_FROM.
    pub br_from: u64,
    /// 0x280: BR_TO.
    pub br_to: u64,
    /// 0x288: LASTEXCPFROM.
    pub last_excp_from: u64,
    /// 0x290: LASTEXCPTO.
    pub last_excp_to: u64,
    /// 0x298-0x2DF: reserved.
    _reserved_298: [u8; 0x48],
    /// 0x2E0: SPEC_CTRL (with guest SPEC_CTRL virtualization).
    pub spec_ctrl: u64,
    /// 0x2E8-0xBFF: reserved to the end of the page.
    _reserved_2e8: [u8; 0x918],
}

const _: () = {
    assert!(size_of::<VmcbStateSave>() == 0xC00);
    assert!(offset_of!(VmcbStateSave, es) == 0x000);
    assert!(offset_of!(VmcbStateSave, cs) == 0x010);
    assert!(offset_of!(VmcbStateSave, ss) == 0x020);
    assert!(offset_of!(VmcbStateSave, ds) == 0x030);
    assert!(offset_of!(VmcbStateSave, fs) == 0x040);
    assert!(offset_of!(VmcbStateSave, gs) == 0x050);
    assert!(offset_of!(VmcbStateSave, gdtr) == 0x060);
    assert!(offset_of!(VmcbStateSave, ldtr) == 0x070);
    assert!(offset_of!(VmcbStateSave, idtr) == 0x080);
    assert!(offset_of!(VmcbStateSave, tr) == 0x090);
    assert!(offset_of!(VmcbStateSave, _reserved_0a0) == 0x0A0);
    assert!(offset_of!(VmcbStateSave, cpl) == 0x0CB);
    assert!(offset_of!(VmcbStateSave, _reserved_0cc) == 0x0CC);
    assert!(offset_of!(VmcbStateSave, efer) == 0x0D0);
    assert!(offset_of!(VmcbStateSave, _reserved_0d8) == 0x0D8);
    assert!(offset_of!(VmcbStateSave, cr4) == 0x148);
    assert!(offset_of!(VmcbStateSave, cr3) == 0x150);
    assert!(offset_of!(VmcbStateSave, cr0) == 0x158);
    assert!(offset_of!(VmcbStateSave, dr7) == 0x160);
    assert!(offset_of!(VmcbStateSave, dr6) == 0x168);
    assert!(offset_of!(VmcbStateSave, rflags) == 0x170);
    assert!(offset_of!(VmcbStateSave, rip) == 0x178);
    assert!(offset_of!(VmcbStateSave, _reserved_180) == 0x180);
    assert!(offset_of!(VmcbStateSave, rsp) == 0x1D8);
    assert!(offset_of!(VmcbStateSave, s_cet) == 0x1E0);
    assert!(offset_of!(VmcbStateSave, ssp) == 0x1E8);
    assert!(offset_of!(VmcbStateSave, isst_addr) == 0x1F0);
    assert!(offset_of!(VmcbStateSave, rax) == 0x1F8);
    assert!(offset_of!(VmcbStateSave, star) == 0x200);
    assert!(offset_of!(VmcbStateSave, lstar) == 0x208);
    assert!(offset_of!(VmcbStateSave, cstar) == 0x210);
    assert!(offset_of!(VmcbStateSave, sfmask) == 0x218);
    assert!(offset_of!(VmcbStateSave, kernel_gs_base) == 0x220);
    assert!(offset_of!(VmcbStateSave, sysenter_cs) == 0x228);
    assert!(offset_of!(VmcbStateSave, sysenter_esp) == 0x230);
    assert!(offset_of!(VmcbStateSave, sysenter_eip) == 0x238);
    assert!(offset_of!(VmcbStateSave, cr2) == 0x240);
    assert!(offset_of!(VmcbStateSave, _reserved_248) == 0x248);
    assert!(offset_of!(VmcbStateSave, g_pat) == 0x268);
    assert!(offset_of!(VmcbStateSave, dbgctl) == 0x270);
    assert!(offset_of!(VmcbStateSave, br_from) == 0x278);
    assert!(offset_of!(VmcbStateSave, br_to) == 0x280);
    assert!(offset_of!(VmcbStateSave, last_excp_from) == 0x288);
    assert!(offset_of!(VmcbStateSave, last_excp_to) == 0x290);
    assert!(offset_of!(VmcbStateSave, _reserved_298) == 0x298);
    assert!(offset_of!(VmcbStateSave, spec_ctrl) == 0x2E0);
    assert!(offset_of!(VmcbStateSave, _reserved_2e8) == 0x2E8);
};

impl VmcbStateSave {
    /// An all-zero state-save area.
    pub const fn zeroed() -> Self {
        Self {
            es: VmcbSegment::NULL,
            cs: VmcbSegment::NULL,
            ss: VmcbSegment::NULL,
            ds: VmcbSegment::NULL,
            fs: VmcbSegment::NULL,
            gs: VmcbSegment::NULL,
            gdtr: VmcbSegment::NULL,
            ldtr: VmcbSegment::NULL,
            idtr: VmcbSegment::NULL,
            tr: VmcbSegment::NULL,
            _reserved_0a0: [0; 0x2B],
            cpl: 0,
            _reserved_0cc: 0,
            efer: 0,
            _reserved_0d8: [0; 0x70],
            cr4: 0,
            cr3: 0,
            cr0: 0,
            dr7: 0,
            dr6: 0,
            rflags: 0,
            rip: 0,
            _reserved_180: [0; 0x58],
            rsp: 0,
            s_cet: 0,
            ssp: 0,
            isst_addr: 0,
            rax: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            cr2: 0,
            _reserved_248: [0; 0x20],
            g_pat: 0,
            dbgctl: 0,
            br_from: 0,
            br_to: 0,
            last_excp_from: 0,
            last_excp_to: 0,
            _reserved_298: [0; 0x48],
            spec_ctrl: 0,
            _reserved_2e8: [0; 0x918],
        }
    }
}

/// The VMCB: one page, 4 KiB aligned, whose physical address VMRUN takes in RAX.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct Vmcb {
    /// 0x000: control area.
    pub control: VmcbControl,
    /// 0x400: state-save area.
    pub save: VmcbStateSave,
}

const _: () = {
    assert!(size_of::<Vmcb>() == 4096);
    assert!(align_of::<Vmcb>() == 4096);
    assert!(offset_of!(Vmcb, control) == 0x000);
    assert!(offset_of!(Vmcb, save) == 0x400);
    // Spot checks of absolute offsets, as Table B-2 lists them relative to 0x400.
    assert!(offset_of!(Vmcb, save) + offset_of!(VmcbStateSave, efer) == 0x4D0);
    assert!(offset_of!(Vmcb, save) + offset_of!(VmcbStateSave, rip) == 0x578);
    assert!(offset_of!(Vmcb, save) + offset_of!(VmcbStateSave, rax) == 0x5F8);
    assert!(offset_of!(Vmcb, save) + offset_of!(VmcbStateSave, g_pat) == 0x668);
};

impl Vmcb {
    /// An all-zero VMCB.
    pub const fn zeroed() -> Self {
        Self {
            control: VmcbControl::zeroed(),
            save: VmcbStateSave::zeroed(),
        }
    }
}

/// TLB_CONTROL values (APM Vol. 2 §15.16, Table B-1 offset 0x05C).
pub mod tlb_control {
    /// Do nothing.
    pub const DO_NOTHING: u8 = 0x00;
    /// Flush the entire TLB, all ASIDs and global entries (use sparingly).
    pub const FLUSH_ALL: u8 = 0x01;
    /// Flush this guest's TLB entries.
    pub const FLUSH_GUEST: u8 = 0x03;
    /// Flush this guest's non-global TLB entries.
    pub const FLUSH_GUEST_NON_GLOBAL: u8 = 0x07;
}

bitflags! {
    /// Interrupt-control word at offset 0x060 (APM Vol. 2 §15.21, Table B-1). V_TPR (bits
    /// 3:0) and V_INTR_PRIO (bits 19:16) are numbers: use [`IntControl::with_v_tpr`] and
    /// [`IntControl::with_v_intr_prio`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct IntControl: u32 {
        /// Bits 3:0: virtual TPR.
        const V_TPR = 0xF;
        /// Bit 8: a virtual interrupt is pending.
        const V_IRQ = 1 << 8;
        /// Bit 9: virtual GIF.
        const V_GIF = 1 << 9;
        /// Bit 11: a virtual NMI is pending.
        const V_NMI = 1 << 11;
        /// Bit 12: virtual NMIs are masked.
        const V_NMI_MASK = 1 << 12;
        /// Bits 19:16: priority of the pending virtual interrupt.
        const V_INTR_PRIO = 0xF << 16;
        /// Bit 20: the pending virtual interrupt ignores the virtual TPR.
        const V_IGN_TPR = 1 << 20;
        /// Bit 24: virtualize interrupt masking: guest RFLAGS.IF and TPR only affect
        /// virtual interrupts, host RFLAGS.IF keeps physical ones.
        const V_INTR_MASKING = 1 << 24;
        /// Bit 25: enable virtual GIF.
        const V_GIF_ENABLE = 1 << 25;
        /// Bit 26: enable virtual NMI.
        const V_NMI_ENABLE = 1 << 26;
        /// Bit 30: x2AVIC mode.
        const X2AVIC_ENABLE = 1 << 30;
        /// Bit 31: enable AVIC.
        const AVIC_ENABLE = 1 << 31;
    }
}

impl IntControl {
    /// With V_TPR set to `tpr` (low four bits).
    pub const fn with_v_tpr(self, tpr: u8) -> Self {
        Self::from_bits_retain((self.bits() & !Self::V_TPR.bits()) | (tpr as u32 & 0xF))
    }

    /// With V_INTR_PRIO set to `prio` (low four bits).
    pub const fn with_v_intr_prio(self, prio: u8) -> Self {
        Self::from_bits_retain(
            (self.bits() & !Self::V_INTR_PRIO.bits()) | ((prio as u32 & 0xF) << 16),
        )
    }
}

bitflags! {
    /// Nested-control word at offset 0x090 (APM Vol. 2 Table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct NestedControl: u64 {
        /// Bit 0: nested paging (APM Vol. 2 §15.25.3).
        const NP_ENABLE = 1 << 0;
        /// Bit 1: SEV.
        const SEV_ENABLE = 1 << 1;
        /// Bit 2: SEV-ES.
        const SEV_ES_ENABLE = 1 << 2;
        /// Bit 3: guest-mode execute trap.
        const GMET_ENABLE = 1 << 3;
    }
}

bitflags! {
    /// Virtualization extensions at offset 0x0B8 (APM Vol. 2 Table B-1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VirtualizationExtensions: u64 {
        /// Bit 0: LBR virtualization.
        const LBR_VIRTUALIZATION = 1 << 0;
        /// Bit 1: virtualized VMSAVE/VMLOAD.
        const VIRTUAL_VMSAVE_VMLOAD = 1 << 1;
    }
}

bitflags! {
    /// VMCB clean bits at offset 0x0C0 (APM Vol. 2 §15.15.3): a set bit promises the CPU
    /// that the group is unchanged since the last VMRUN of this VMCB on this CPU, so it
    /// may use cached copies. Clear a group's bit after writing any of its fields, and
    /// clear all of them when the VMCB moves to another CPU.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct CleanBits: u32 {
        /// Intercept vectors, TSC_OFFSET, pause filter.
        const INTERCEPTS = 1 << 0;
        /// IOPM_BASE_PA, MSRPM_BASE_PA.
        const IOPM = 1 << 1;
        /// Guest ASID.
        const ASID = 1 << 2;
        /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR.
        const TPR = 1 << 3;
        /// N_CR3, G_PAT.
        const NP = 1 << 4;
        /// CR0, CR3, CR4, EFER.
        const CRX = 1 << 5;
        /// DR6, DR7.
        const DRX = 1 << 6;
        /// GDTR, IDTR.
        const DT = 1 << 7;
        /// CS, DS, SS, ES, CPL.
        const SEG = 1 << 8;
        /// CR2.
        const CR2 = 1 << 9;
        /// DBGCTL, BR_FROM/TO, LASTEXCP_FROM/TO.
        const LBR = 1 << 10;
        /// AVIC APIC_BAR and table pointers.
        const AVIC = 1 << 11;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_vmcb_is_all_zero_bytes() {
        let vmcb = Box::new(Vmcb::zeroed());
        assert_eq!(core::ptr::from_ref(&*vmcb).addr() % 4096, 0);
        assert_eq!(vmcb.control, VmcbControl::zeroed());
        assert_eq!(vmcb.save.rip, 0);
        assert_eq!(vmcb.save.es, VmcbSegment::default());
    }

    #[test]
    fn int_control_fields() {
        let c = (IntControl::V_IRQ | IntControl::V_INTR_MASKING)
            .with_v_tpr(0x1F)
            .with_v_intr_prio(0xA);
        assert_eq!(c.bits(), 0x010A_010F);
        assert_eq!(c.with_v_tpr(2).bits(), 0x010A_0102);
    }

    #[test]
    fn flag_positions() {
        assert_eq!(NestedControl::NP_ENABLE.bits(), 1);
        assert_eq!(CleanBits::SEG.bits(), 0x100);
        assert_eq!(CleanBits::all().bits(), 0xFFF);
        assert_eq!(VirtualizationExtensions::LBR_VIRTUALIZATION.bits(), 1);
        assert_eq!(attrib::P | attrib::S | 0xB | attrib::L, 0x29B);
    }
}
