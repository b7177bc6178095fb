//! The AMD-V backend (APM Vol. 2 Chapter 15): per-CPU enabling, the VMCB of each vCPU,
//! and the translation of #VMEXIT codes into the vendor-neutral [`Exit`].

mod switch;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use ferrovisor::vcpu::{
    Exit, GuestRegisters, InvalidStateReason, IoAccess, IoSize, NestedFault, Segment, VcpuInitState,
};
use ferrovisor_arch::svm::exit::{
    EventInjection, Intercepts1, Intercepts2, IoioInfo, NpfErrorCode, SvmExitCode,
};
use ferrovisor_arch::svm::vmcb::{IntControl, NestedControl, Vmcb, VmcbSegment, tlb_control};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

use super::{PagingState, VcpuBackend, VcpuConfig};
use crate::memory::{alloc_zeroed, phys_to_virt};

/// VM_HSAVE_PA: where VMRUN saves host state (APM §15.30.4).
const VM_HSAVE_PA: u32 = 0xC001_0117;
/// EFER.SVME (APM §15.4): must stay set in the guest's EFER too (VMRUN checks it).
const EFER_SVME: u64 = 1 << 12;

/// Why AMD-V cannot be used on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    NotSupported,
    DisabledByFirmware,
    NoNestedPaging,
    OutOfMemory,
}

impl core::fmt::Display for SvmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotSupported => "the CPU has no AMD-V",
            Self::DisabledByFirmware => "AMD-V is disabled by firmware (VM_CR.SVMDIS)",
            Self::NoNestedPaging => "the CPU has no nested paging",
            Self::OutOfMemory => "no memory for the host save area",
        })
    }
}

/// AMD-V state of one physical CPU.
#[derive(Debug)]
pub struct SvmCpu {
    /// The host's VMLOAD/VMSAVE state (FS/GS/TR/LDTR, syscall MSRs, KernelGsBase).
    host_vmcb: u64,
    /// Whether #VMEXIT saves the next RIP (NRIPS).
    nrips: bool,
    /// ASIDs this CPU offers guests: 1..asid_count (CPUID 8000_000A EBX; 0 is the
    /// host's).
    asid_count: u32,
    /// The next ASID to hand out in this generation, and the generation: when the ASIDs
    /// run out, the generation advances and the whole TLB is flushed, so every vCPU that
    /// runs here next takes a fresh ASID (the scheme KVM uses). Only this CPU touches
    /// them, with interrupts disabled.
    next_asid: AtomicU32,
    asid_generation: AtomicU64,
}

impl SvmCpu {
    /// Whether #VMEXIT saves the next RIP (NRIPS).
    pub fn nrips(&self) -> bool {
        self.nrips
    }

    /// A fresh ASID on this CPU, and whether the TLB must be flushed for all ASIDs
    /// first (a new generation began).
    fn allocate_asid(&self) -> (u32, u64, bool) {
        let mut asid = self.next_asid.load(Ordering::Relaxed);
        let mut flush_all = false;
        if asid >= self.asid_count {
            self.asid_generation.fetch_add(1, Ordering::Relaxed);
            asid = 1;
            flush_all = true;
        }
        self.next_asid.store(asid + 1, Ordering::Relaxed);
        (
            asid,
            self.asid_generation.load(Ordering::Relaxed),
            flush_all,
        )
    }
}

/// Turns AMD-V on for the calling CPU: EFER.SVME, the host save area, and a host VMCB
/// holding the host's VMSAVE state.
pub fn enable_on_this_cpu() -> Result<SvmCpu, SvmError> {
    let present = ferrovisor_arch::msr::SvmPresent::detect().ok_or(SvmError::NotSupported)?;
    if ferrovisor_arch::msr::read_vm_cr(present) & (1 << 4) != 0 {
        return Err(SvmError::DisabledByFirmware);
    }
    let info = raw_cpuid::CpuId::new().get_svm_info();
    if !info.as_ref().is_some_and(|i| i.has_nested_paging()) {
        return Err(SvmError::NoNestedPaging);
    }
    let nrips = info.as_ref().is_some_and(|i| i.has_nrip());
    let asid_count = info.as_ref().map_or(1, |i| i.supported_asids()).max(2);
    let host_save = alloc_zeroed(0).ok_or(SvmError::OutOfMemory)?;
    let host_vmcb = alloc_zeroed(0).ok_or(SvmError::OutOfMemory)?;
    // SAFETY: CPUID and VM_CR say SVM exists and is allowed; setting EFER.SVME only
    // makes the SVM instructions available.
    unsafe { Efer::update(|flags| flags.insert(EferFlags::SECURE_VIRTUAL_MACHINE_ENABLE)) };
    // SAFETY: VM_HSAVE_PA exists with SVM; the page is ours, zeroed and 4 KiB-aligned.
    unsafe { Msr::new(VM_HSAVE_PA).write(host_save) };
    // SAFETY: VMSAVE stores this CPU's hidden state to a page we own (physical address
    // in RAX, 4 KiB-aligned), with SVME set.
    unsafe { core::arch::asm!("vmsave rax", in("rax") host_vmcb, options(nostack)) };
    Ok(SvmCpu {
        host_vmcb,
        nrips,
        asid_count,
        next_asid: AtomicU32::new(1),
        asid_generation: AtomicU64::new(1),
    })
}

/// One AMD-V vCPU. Its VMCB is plain memory, so it may run on any CPU: [`SvmVcpu::load`]
/// gives it the CPU's host save state and an ASID valid there.
pub struct SvmVcpu {
    vmcb_pa: u64,
    iopm_pa: u64,
    msrpm_pa: u64,
    /// The host VMCB of the CPU it is loaded on (0 when not loaded).
    host_vmcb: u64,
    nrips: bool,
    regs: GuestRegisters,
    /// Bytes of the intercepted instruction, for CPUs without NRIPS.
    pending_skip: u64,
    /// Where its ASID is valid: (CPU index, that CPU's ASID generation).
    asid_owner: Option<(u32, u64)>,
}

impl SvmVcpu {
    /// A vCPU in `state`, not loaded on any CPU.
    pub fn new(nrips: bool, config: &VcpuConfig, state: &VcpuInitState) -> Result<Self, SvmError> {
        let vmcb_pa = alloc_zeroed(0).ok_or(SvmError::OutOfMemory)?;
        // All ports and MSRs intercepted: policy decides (unclaimed ports read all-ones).
        let iopm = alloc_zeroed(2).ok_or(SvmError::OutOfMemory)?; // 12 KiB used of 16
        let msrpm = alloc_zeroed(1).ok_or(SvmError::OutOfMemory)?; // 8 KiB
        // SAFETY: both blocks are ours, mapped by the direct map, and this large.
        unsafe { core::ptr::write_bytes(phys_to_virt(iopm) as *mut u8, 0xFF, 12 * 1024) };
        // SAFETY: see above.
        unsafe { core::ptr::write_bytes(phys_to_virt(msrpm) as *mut u8, 0xFF, 8 * 1024) };

        let mut vcpu = Self {
            vmcb_pa,
            iopm_pa: iopm,
            msrpm_pa: msrpm,
            host_vmcb: 0,
            nrips,
            regs: GuestRegisters::default(),
            pending_skip: 0,
            asid_owner: None,
        };
        let vmcb = vcpu.vmcb();
        let c = &mut vmcb.control;
        c.intercept_misc1 = (Intercepts1::INTR
            | Intercepts1::NMI
            | Intercepts1::SMI
            | Intercepts1::INIT
            | Intercepts1::CPUID
            | Intercepts1::HLT
            | Intercepts1::IOIO_PROT
            | Intercepts1::MSR_PROT
            | Intercepts1::SHUTDOWN)
            .bits();
        // VMRUN must be intercepted (APM §15.5.1 consistency checks); the other SVM
        // instructions would let a guest manipulate host state.
        c.intercept_misc2 = (Intercepts2::VMRUN
            | Intercepts2::VMMCALL
            | Intercepts2::VMLOAD
            | Intercepts2::VMSAVE
            | Intercepts2::STGI
            | Intercepts2::CLGI
            | Intercepts2::SKINIT
            // XCR0 is the vCPU's: a write is checked against the domain's policy.
            | Intercepts2::XSETBV)
            .bits();
        // Physical interrupts follow the host's IF, not the guest's (APM §15.21.1).
        c.int_control = IntControl::V_INTR_MASKING.bits();
        c.iopm_base_pa = iopm;
        c.msrpm_base_pa = msrpm;
        // A real ASID is assigned when a CPU first loads the vCPU.
        c.guest_asid = 1;
        c.tlb_control = tlb_control::FLUSH_GUEST;
        c.nested_control = NestedControl::NP_ENABLE.bits();
        c.n_cr3 = config.nested_root;
        let save = &mut vmcb.save;
        save.dr6 = 0xFFFF_0FF0;
        save.dr7 = 0x400;
        save.g_pat = 0x0007_0406_0007_0406;
        vcpu.write_state(state);
        Ok(vcpu)
    }

    /// Loads an architectural state into the VMCB (APM §15.5.1: segment attributes are
    /// already in the VMCB's packed form). EFER keeps SVME, which VMRUN requires.
    fn write_state(&mut self, state: &VcpuInitState) {
        self.regs = state.regs;
        let save = &mut self.vmcb().save;
        let segment = |s: &Segment| VmcbSegment {
            selector: s.selector,
            attrib: s.attributes,
            limit: s.limit,
            base: s.base,
        };
        save.cs = segment(&state.cs);
        save.ds = segment(&state.ds);
        save.es = segment(&state.es);
        save.ss = segment(&state.ss);
        save.fs = segment(&state.fs);
        save.gs = segment(&state.gs);
        save.tr = segment(&state.tr);
        save.ldtr = segment(&state.ldtr);
        save.gdtr = VmcbSegment {
            selector: 0,
            attrib: 0,
            limit: u32::from(state.gdtr.limit),
            base: state.gdtr.base,
        };
        save.idtr = VmcbSegment {
            selector: 0,
            attrib: 0,
            limit: u32::from(state.idtr.limit),
            base: state.idtr.base,
        };
        save.cpl = 0;
        save.cr0 = state.cr0;
        save.cr3 = state.cr3;
        save.cr4 = state.cr4;
        save.efer = state.efer | EFER_SVME;
        save.rflags = state.rflags;
        save.rip = state.rip;
        save.rsp = state.rsp;
        save.rax = state.regs.rax;
        // Whatever the guest's TLB held for the old state is stale.
        self.vmcb().control.tlb_control = tlb_control::FLUSH_GUEST;
    }

    /// Makes the vCPU runnable on the calling CPU (`cpu` is that CPU's state): the
    /// CPU's host save VMCB, and an ASID valid on this CPU in its current generation
    /// (APM §15.16: a guest's TLB entries are tagged with its ASID, per CPU).
    pub fn load(&mut self, cpu: &SvmCpu, cpu_index: u32) {
        self.host_vmcb = cpu.host_vmcb;
        let generation = cpu.asid_generation.load(Ordering::Relaxed);
        if self.asid_owner != Some((cpu_index, generation)) {
            let (asid, generation, flush_all) = cpu.allocate_asid();
            self.asid_owner = Some((cpu_index, generation));
            let control = &mut self.vmcb().control;
            control.guest_asid = asid;
            // A fresh ASID in this generation has no entries; a new generation
            // starts from an empty TLB.
            if flush_all {
                control.tlb_control = tlb_control::FLUSH_ALL;
            }
        }
    }

    /// The vCPU stops running on this CPU; nothing is cached in the CPU but its ASID's
    /// TLB entries, which `load` accounts for.
    pub fn put(&mut self) {
        self.host_vmcb = 0;
    }

    /// Replaces the whole architectural state (VCPUOP_initialise).
    pub fn set_state(&mut self, state: &VcpuInitState) {
        self.write_state(state);
    }

    fn vmcb(&mut self) -> &mut Vmcb {
        // SAFETY: the VMCB page is this vCPU's own, 4 KiB-aligned, mapped by the direct
        // map, and only touched by the CPU running this vCPU (outside VMRUN).
        unsafe { &mut *(phys_to_virt(self.vmcb_pa) as *mut Vmcb) }
    }

    fn vmcb_ref(&self) -> &Vmcb {
        // SAFETY: as in `vmcb`.
        unsafe { &*(phys_to_virt(self.vmcb_pa) as *const Vmcb) }
    }

    fn decode(&mut self) -> Exit {
        let vmcb = self.vmcb_ref();
        let code = vmcb.control.exit_code;
        let (info1, info2, rip) = (
            vmcb.control.exit_info1,
            vmcb.control.exit_info2,
            vmcb.save.rip,
        );
        let Some(kind) = SvmExitCode::from_raw(code) else {
            return Exit::Unhandled { code };
        };
        self.pending_skip = 0;
        match kind {
            SvmExitCode::Cpuid => Exit::Cpuid,
            SvmExitCode::Hlt => Exit::Hlt,
            SvmExitCode::Xsetbv => Exit::Xsetbv {
                xcr: self.regs.rcx as u32,
                value: (self.regs.rdx << 32) | (self.regs.rax & 0xffff_ffff),
            },
            SvmExitCode::Vmmcall => Exit::Hypercall,
            SvmExitCode::Msr => {
                let msr = self.regs.rcx as u32;
                if info1 & 1 == 0 {
                    Exit::MsrRead { msr }
                } else {
                    Exit::MsrWrite {
                        msr,
                        value: (self.regs.rdx << 32) | (self.regs.rax & 0xffff_ffff),
                    }
                }
            }
            SvmExitCode::Ioio => {
                let io = IoioInfo(info1);
                let size = match io.size() {
                    Some(1) => IoSize::Byte,
                    Some(2) => IoSize::Word,
                    _ => IoSize::Dword,
                };
                // EXITINFO2 holds the next RIP for IOIO (APM §15.10.2).
                self.pending_skip = info2.wrapping_sub(rip);
                Exit::Io(IoAccess {
                    port: io.port(),
                    size,
                    write: !io.is_in(),
                    string: io.is_string(),
                    rep: io.is_rep(),
                })
            }
            SvmExitCode::Npf => {
                let error = NpfErrorCode(info1);
                Exit::NestedPageFault(NestedFault {
                    gpa: info2,
                    read: !error.write() && !error.fetch(),
                    write: error.write(),
                    fetch: error.fetch(),
                    present: error.present(),
                })
            }
            SvmExitCode::Exception(vector) => Exit::Exception {
                vector,
                error_code: Some(info1 as u32),
            },
            SvmExitCode::Intr | SvmExitCode::Nmi | SvmExitCode::Smi | SvmExitCode::Init => {
                Exit::ExternalInterrupt
            }
            SvmExitCode::Vintr => Exit::InterruptWindow,
            SvmExitCode::Shutdown => Exit::Shutdown,
            SvmExitCode::Invalid => Exit::InvalidState(InvalidStateReason::SvmInvalid),
            _ => Exit::Unhandled { code },
        }
    }
}

impl Drop for SvmVcpu {
    fn drop(&mut self) {
        crate::memory::free(self.vmcb_pa, 0);
        crate::memory::free(self.iopm_pa, 2);
        crate::memory::free(self.msrpm_pa, 1);
    }
}

impl VcpuBackend for SvmVcpu {
    fn run(&mut self) -> Exit {
        let rax = self.regs.rax;
        self.vmcb().save.rax = rax;
        let regs: *mut GuestRegisters = &mut self.regs;
        debug_assert!(self.host_vmcb != 0, "svm: run without load");
        // SAFETY: the VMCB is fully initialised and ours; `regs` is a live exclusive
        // borrow; `load` set `host_vmcb` to the host VMCB this CPU VMSAVEd in
        // `enable_on_this_cpu`; interrupts are disabled by the run loop around this call.
        unsafe { switch::svm_world_switch(self.vmcb_pa, regs, self.host_vmcb) };
        self.regs.rax = self.vmcb_ref().save.rax;
        // A requested TLB flush is done; later ones are explicit.
        self.vmcb().control.tlb_control = tlb_control::DO_NOTHING;
        self.decode()
    }

    fn regs(&mut self) -> &mut GuestRegisters {
        &mut self.regs
    }

    fn rip(&self) -> u64 {
        self.vmcb_ref().save.rip
    }

    fn skip_instruction(&mut self, length: u64) {
        let next = if self.nrips && self.vmcb_ref().control.next_rip != 0 {
            self.vmcb_ref().control.next_rip
        } else if self.pending_skip != 0 {
            self.vmcb_ref().save.rip + self.pending_skip
        } else {
            self.vmcb_ref().save.rip + length
        };
        self.vmcb().save.rip = next;
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        self.vmcb().control.event_inj = match error_code {
            Some(code) => EventInjection::exception_with_error(vector, code).0,
            None => EventInjection::exception(vector).0,
        };
    }

    fn inject_interrupt(&mut self, vector: u8) {
        self.vmcb().control.event_inj = EventInjection::external_interrupt(vector).0;
    }

    fn request_interrupt_window(&mut self, on: bool) {
        // APM §15.21.4: a virtual interrupt (V_IRQ, priority ignored) the guest takes
        // as soon as it can, with VINTR intercepted, exits right then: that is the
        // window. It is never delivered: the exit comes first, and `off` withdraws it.
        let control = &mut self.vmcb().control;
        let window = IntControl::V_IRQ | IntControl::V_IGN_TPR;
        let mut int_control = IntControl::from_bits_retain(control.int_control);
        int_control.set(window, on);
        control.int_control = int_control.bits();
        let mut intercepts = Intercepts1::from_bits_retain(control.intercept_misc1);
        intercepts.set(Intercepts1::VINTR, on);
        control.intercept_misc1 = intercepts.bits();
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        // APM §15.30.5: TSC_OFFSET is added to the TSC for the guest's RDTSC(P) and
        // TSC MSR reads; no clean-bit caching (we never mark the VMCB clean).
        self.vmcb().control.tsc_offset = offset;
    }

    fn paging_state(&self) -> PagingState {
        let s = &self.vmcb_ref().save;
        PagingState {
            cr0: s.cr0,
            cr3: s.cr3,
            cr4: s.cr4,
            efer: s.efer & !EFER_SVME,
        }
    }

    fn write_efer(&mut self, value: u64) {
        // The guest never sees or clears SVME; LMA follows from LME and CR0.PG.
        let save = &mut self.vmcb().save;
        let lma = if value & (1 << 8) != 0 && save.cr0 & (1 << 31) != 0 {
            1 << 10
        } else {
            0
        };
        save.efer = (value & !(1 << 10)) | lma | EFER_SVME;
    }
}
