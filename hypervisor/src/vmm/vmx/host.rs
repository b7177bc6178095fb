//! The host-state area (SDM Vol. 3C §25.5): what a VM exit loads so the hypervisor
//! resumes as it was, read from the running CPU. The checks VM entry applies to it are in
//! §27.2.3; what a VM exit does with it is in §28.5.

use x86_64::instructions::segmentation::{CS, DS, ES, FS, GS, SS, Segment};
use x86_64::instructions::tables::{sgdt, sidt};
use x86_64::registers::control::{Cr0, Cr3, Cr4};
use x86_64::registers::model_specific::{Efer, FsBase, GsBase, Msr};

use super::VmxError;

/// MSRs whose host values the VMCS holds (SDM Vol. 4 Table 2-2). Architectural on every
/// CPU with VMX, which postdates SYSENTER and PAT.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum HostMsr {
    SysenterCs = 0x174,
    SysenterEsp = 0x175,
    SysenterEip = 0x176,
    Pat = 0x277,
}

fn read_host_msr(msr: HostMsr) -> u64 {
    // SAFETY: these MSRs exist on every VMX-capable CPU (see `HostMsr`); reading them
    // has no side effects.
    unsafe { Msr::new(msr as u32).read() }
}

/// This CPU's host state, as VM exits must restore it.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cs: u16,
    pub ss: u16,
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
    pub tr: u16,
    pub fs_base: u64,
    /// IA32_GS_BASE: the per-CPU pointer (`percpu`).
    pub gs_base: u64,
    pub tr_base: u64,
    pub gdtr_base: u64,
    pub idtr_base: u64,
    pub sysenter_cs: u32,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub efer: u64,
    pub pat: u64,
}

/// The task register's selector (STR).
fn task_register() -> u16 {
    let selector: u16;
    // SAFETY: STR only reads TR into a register.
    unsafe {
        core::arch::asm!("str {0:x}", out(reg) selector, options(nomem, nostack, preserves_flags))
    };
    selector
}

/// Base of the 64-bit TSS descriptor `selector` names in the GDT at `gdt_base`
/// (a 16-byte system descriptor, SDM Vol. 3A §8.2.3).
fn tss_base(gdt_base: u64, gdt_limit: u16, selector: u16) -> Result<u64, VmxError> {
    let offset = u64::from(selector & !7);
    if offset + 15 > u64::from(gdt_limit) {
        return Err(VmxError::HostState("TR selector beyond the GDT limit"));
    }
    let descriptor = (gdt_base + offset) as *const [u64; 2];
    // SAFETY: GDTR points at this CPU's live GDT (a 'static allocation the CPU itself
    // uses), and the 16 bytes lie within its limit (checked above).
    let [low, high] = unsafe { descriptor.read_unaligned() };
    Ok(((low >> 16) & 0xFF_FFFF) | (((low >> 56) & 0xFF) << 24) | ((high & 0xFFFF_FFFF) << 32))
}

impl HostState {
    /// Reads the calling CPU's state. The selectors must have RPL = TI = 0 and CS/TR must
    /// not be null (SDM Vol. 3C §27.2.3).
    pub fn capture() -> Result<Self, VmxError> {
        let gdt = sgdt();
        let idt = sidt();
        let tr = task_register();
        if tr == 0 {
            return Err(VmxError::HostState("TR is null"));
        }
        let selectors = [
            CS::get_reg().0,
            SS::get_reg().0,
            DS::get_reg().0,
            ES::get_reg().0,
            FS::get_reg().0,
            GS::get_reg().0,
            tr,
        ];
        if selectors.iter().any(|s| s & 7 != 0) {
            return Err(VmxError::HostState("a host selector has RPL or TI set"));
        }
        let [cs, ss, ds, es, fs, gs, tr] = selectors;
        Ok(Self {
            cr0: Cr0::read_raw(),
            cr3: Cr3::read_raw().0.start_address().as_u64() | u64::from(Cr3::read_raw().1),
            cr4: Cr4::read_raw(),
            cs,
            ss,
            ds,
            es,
            fs,
            gs,
            tr,
            fs_base: FsBase::read().as_u64(),
            gs_base: GsBase::read().as_u64(),
            tr_base: tss_base(gdt.base.as_u64(), gdt.limit, tr)?,
            gdtr_base: gdt.base.as_u64(),
            idtr_base: idt.base.as_u64(),
            sysenter_cs: read_host_msr(HostMsr::SysenterCs) as u32,
            sysenter_esp: read_host_msr(HostMsr::SysenterEsp),
            sysenter_eip: read_host_msr(HostMsr::SysenterEip),
            efer: Efer::read_raw(),
            pat: read_host_msr(HostMsr::Pat),
        })
    }
}
