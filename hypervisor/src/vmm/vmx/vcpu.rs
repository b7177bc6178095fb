//! One VT-x vCPU: its VMCS and bitmaps, the run loop around the world switch, and the
//! translation of VM exits (SDM Vol. 3C §28.2, Vol. 3D Appendix C) into [`Exit`].
//!
//! A VMCS is active on at most one CPU at a time (§25.11.1). A vCPU's VMCS is made
//! current by [`VmxVcpu::load`] on the CPU that is about to run it and cleared by
//! [`VmxVcpu::put`] when that CPU stops running it, so between runs it is active nowhere
//! and any CPU may load it next; `load` rewrites the host-state area when the CPU
//! changed and drops translations a previous stay on that CPU may have left.

use ferrovisor::vcpu::{
    Exit, GuestRegisters, InvalidStateReason, IoAccess, IoSize, NestedFault, VcpuInitState,
};
use ferrovisor_arch::vmx::bitmaps::{IoBitmaps, MsrBitmap};
use ferrovisor_arch::vmx::controls::{
    CR0_PE, CR0_PG, CR4_VMXE, CrFixed, EntryControls, PrimaryControls,
};
use ferrovisor_arch::vmx::ept::{EptEntry, EptLevel, EptMemoryType, Eptp};
use ferrovisor_arch::vmx::exit::{
    BasicExitReason, CrAccessQualification, CrAccessType, EptViolationQualification, ExitReason,
    InterruptionInfo, InterruptionType, IoDirection, IoQualification,
};
use ferrovisor_arch::vmx::fields::{
    Control32, ControlNatural, Guest32, Guest64, GuestNatural, ReadOnly32, ReadOnly64,
    ReadOnlyNatural,
};

use super::host::HostState;
use super::instr::{self, InveptType, InvvpidType, VmcsError};
use super::switch::{SWITCH_EXITED, SWITCH_FAIL_INVALID, SWITCH_FAIL_VALID, vmx_world_switch};
use super::vmcs::{self, Setup};
use super::{VmxCpu, VmxError};
use crate::memory::{alloc_zeroed, free, phys_to_virt};
use crate::vmm::{PagingState, VcpuBackend, VcpuConfig};

const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// CS access rights bit 13: a 64-bit code segment.
const ACCESS_RIGHTS_L: u32 = 1 << 13;
/// Interruptibility state bits 1:0: blocking by STI and by MOV SS (§25.4.2).
const BLOCKING_BY_STI_OR_MOV_SS: u32 = 0b11;
/// PDPTE bits that must be 0 when the entry is present (SDM Vol. 3A §5.4.1, Table 5-8).
const PDPTE_RESERVED: u64 = 0x1E6;
/// The fields of the VM-entry interruption information (§25.8.3): valid, type, deliver
/// error code, vector. IDT-vectoring information has other bits in 30:12.
const ENTRY_INTERRUPTION_FIELDS: u32 = 0x8000_0FFF;
/// Exceptions that push an error code (SDM Vol. 3A §7.13, "Error Code"), which VM entry
/// insists be delivered, and only for them, in protected mode (§27.2.1.3).
const ERROR_CODE_VECTORS: [u8; 7] = [8, 10, 11, 12, 13, 14, 17];
const GP: u8 = 13;

/// One VT-x vCPU.
pub struct VmxVcpu {
    regs: GuestRegisters,
    vmcs: u64,
    msr_bitmap: u64,
    io_bitmaps: u64,
    /// The CPU whose host state the VMCS holds.
    host_cpu: u32,
    /// Current on `host_cpu` (between `load` and `put`).
    loaded: bool,
    /// VMLAUNCH has succeeded since the last VMCLEAR: later entries use VMRESUME (§27.1).
    launched: bool,
    vpid: u16,
    eptp: u64,
    nested_root: u64,
    invept_single: bool,
    invvpid_single: bool,
    /// Guest CR0/CR4 fixed bits (CR0 relaxed for unrestricted guest).
    cr0_fixed: CrFixed,
    cr4_fixed: CrFixed,
    /// Host-owned bits: forced to 1 or to 0 by the fixed MSRs (CR4.VMXE among them).
    cr0_mask: u64,
    cr4_mask: u64,
}

/// What emulating a control-register write did.
enum CrWrite {
    Done,
    /// The write faults on real hardware: #GP(0) is queued, RIP stays.
    Faulted,
}

impl VmxVcpu {
    /// A vCPU in `state`, created on the calling CPU (whose VMX state `cpu` is) and left
    /// loaded nowhere: VMCS and bitmaps allocated, every field written, VMCLEARed. The
    /// VMCS that was current on this CPU, if any, is current again afterwards.
    pub fn new(cpu: &VmxCpu, config: &VcpuConfig, state: &VcpuInitState) -> Result<Self, VmxError> {
        let here = crate::percpu::current().index;
        if here != cpu.cpu_index() {
            return Err(VmxError::WrongCpu {
                owner: cpu.cpu_index(),
                running: here,
            });
        }
        if config.tag == 0 {
            return Err(VmxError::Config("VPID 0 belongs to the host"));
        }
        let eptp = Eptp::new(config.nested_root, EptMemoryType::WriteBack, false)
            .map_err(|_| VmxError::Config("nested page-table root is not 4 KiB-aligned"))?;
        let host = HostState::capture()?;
        let caps = cpu.capabilities();

        let vmcs = alloc_zeroed(0).ok_or(VmxError::OutOfMemory)?;
        let Some(msr_bitmap) = alloc_zeroed(0) else {
            free(vmcs, 0);
            return Err(VmxError::OutOfMemory);
        };
        let Some(io_bitmaps) = alloc_zeroed(1) else {
            free(vmcs, 0);
            free(msr_bitmap, 0);
            return Err(VmxError::OutOfMemory);
        };
        // SAFETY: the three blocks were just allocated to us, are mapped by the direct
        // map and are at least as large and aligned as each type (4 KiB, 8 KiB).
        unsafe { (phys_to_virt(vmcs) as *mut u32).write(caps.revision_id) };
        // Copied from statics: 12 KiB of temporaries would otherwise sit on the stack.
        static MSR_BITMAP: MsrBitmap = MsrBitmap::intercept_all();
        static IO_BITMAPS: IoBitmaps = IoBitmaps::intercept_all();
        // SAFETY: see above; the statics do not overlap the frames.
        unsafe {
            core::ptr::copy_nonoverlapping(
                &MSR_BITMAP,
                phys_to_virt(msr_bitmap) as *mut MsrBitmap,
                1,
            )
        };
        // SAFETY: see above.
        unsafe {
            core::ptr::copy_nonoverlapping(
                &IO_BITMAPS,
                phys_to_virt(io_bitmaps) as *mut IoBitmaps,
                1,
            )
        };

        let cr0_fixed = caps.cr0.relaxed_for_unrestricted_guest();
        let cr4_fixed = caps.cr4;
        let mut vcpu = Self {
            regs: state.regs,
            vmcs,
            msr_bitmap,
            io_bitmaps,
            host_cpu: here,
            loaded: false,
            launched: false,
            vpid: config.tag,
            eptp: eptp.0,
            nested_root: config.nested_root,
            invept_single: caps.invept_single,
            invvpid_single: caps.invvpid_single,
            cr0_fixed,
            cr4_fixed,
            cr0_mask: cr0_fixed.must_be_one | !cr0_fixed.may_be_one,
            cr4_mask: cr4_fixed.must_be_one | !cr4_fixed.may_be_one,
        };
        // From here on, Drop frees the frames (the VMCS is never left active).
        let previous = instr::vmptrst();
        // SAFETY: a fresh VMCS region of ours with the revision identifier; VMCLEAR
        // initialises it and sets its launch state to clear (§25.11.3).
        unsafe { instr::vmclear(vmcs) }.map_err(|fail| VmxError::Instruction {
            instruction: "VMCLEAR",
            fail,
        })?;
        // SAFETY: the same region, clear, active on no other CPU.
        unsafe { instr::vmptrld(vmcs) }.map_err(|fail| VmxError::Instruction {
            instruction: "VMPTRLD",
            fail,
        })?;
        vcpu.loaded = true;
        let written = vmcs::initialise(&Setup {
            controls: &caps.controls,
            host: &host,
            vpid: config.tag,
            eptp: eptp.0,
            msr_bitmap,
            io_bitmaps,
            cr0_mask: vcpu.cr0_mask,
            cr4_mask: vcpu.cr4_mask,
        })
        .map_err(VmxError::from)
        .and_then(|()| vcpu.write_state(state));
        // Translations cached for this EPT root or VPID by an earlier user are stale
        // (§29.4.3.4); other CPUs drop theirs when they first load the vCPU.
        let flushed = written
            .and_then(|()| vcpu.flush_ept())
            .and_then(|()| vcpu.flush_vpid());
        vcpu.put();
        if previous != u64::MAX && previous != vmcs {
            // SAFETY: `previous` was the current VMCS of this CPU a moment ago, so it is
            // a valid VMCS active only here; making it current again changes nothing else.
            if let Err(fail) = unsafe { instr::vmptrld(previous) } {
                log::error!("vmx: could not make the previous VMCS current again: {fail}");
            }
        }
        flushed?;
        Ok(vcpu)
    }

    /// Makes the vCPU's VMCS current on the calling CPU so it can run here: VMPTRLD,
    /// and when it last ran elsewhere, this CPU's host state written and translations
    /// a previous stay here may have cached for its VPID and EPT root dropped.
    pub fn load(&mut self) -> Result<(), VmxError> {
        let here = crate::percpu::current().index;
        // SAFETY: our VMCS region, initialised by `new` and left clear by `new` or `put`,
        // so active on no CPU.
        unsafe { instr::vmptrld(self.vmcs) }.map_err(|fail| VmxError::Instruction {
            instruction: "VMPTRLD",
            fail,
        })?;
        self.loaded = true;
        if self.host_cpu != here {
            vmcs::write_host_state(&HostState::capture()?)?;
            self.host_cpu = here;
            self.flush_ept()?;
            self.flush_vpid()?;
        }
        Ok(())
    }

    /// The calling CPU stops running the vCPU: VMCLEAR writes its VMCS back to memory
    /// and makes it inactive (§25.11.3), so another CPU may load it. The next entry is a
    /// VMLAUNCH.
    pub fn put(&mut self) {
        if !self.loaded {
            return;
        }
        // SAFETY: our VMCS, current on this CPU (loaded).
        if let Err(fail) = unsafe { instr::vmclear(self.vmcs) } {
            log::error!("vmx: VMCLEAR failed ({fail})");
        }
        self.loaded = false;
        self.launched = false;
    }

    /// Replaces the whole architectural state (VCPUOP_initialise). The vCPU must be
    /// loaded on this CPU.
    pub fn set_state(&mut self, state: &VcpuInitState) -> Result<(), VmxError> {
        self.make_current()?;
        self.write_state(state)?;
        Ok(())
    }

    /// Writes `state` into the current VMCS: segments, control registers (real values
    /// with the VMX-fixed bits, the guest's own in the read shadows), EFER with the
    /// matching "IA-32e mode guest" control, PDPTEs for PAE paging (§27.3.2.4).
    fn write_state(&mut self, state: &VcpuInitState) -> Result<(), VmxError> {
        self.regs = state.regs;
        vmcs::write_guest_state(state, self.cr0_fixed, self.cr4_fixed)?;
        // SAFETY: the shadows only change what the guest reads for host-owned bits.
        unsafe { instr::write(ControlNatural::Cr0ReadShadow, state.cr0) }?;
        // SAFETY: as above.
        unsafe { instr::write(ControlNatural::Cr4ReadShadow, state.cr4) }?;
        let cr0 = instr::read(GuestNatural::Cr0)?;
        self.set_efer(state.efer, cr0)?;
        if state.cr0 & CR0_PG != 0 && state.cr4 & CR4_PAE != 0 && !state.long_mode() {
            let pdptes = self.read_pdptes(state.cr3).ok_or(VmxError::Config(
                "PAE page-directory pointers are not valid guest RAM",
            ))?;
            self.write_pdptes(pdptes)?;
        }
        Ok(())
    }

    /// Drops cached guest-physical translations of this vCPU's EPT: call after the
    /// domain's nested page tables lose or weaken a mapping (SDM Vol. 3C §29.4.3.4).
    pub fn flush_ept(&self) -> Result<(), VmxError> {
        let result = if self.invept_single {
            instr::invept(InveptType::SingleContext, self.eptp)
        } else {
            instr::invept(InveptType::AllContext, 0)
        };
        result.map_err(|fail| VmxError::Instruction {
            instruction: "INVEPT",
            fail,
        })
    }

    /// Drops the guest's cached linear translations (its VPID's TLB entries, §29.4.3.3).
    fn flush_vpid(&self) -> Result<(), VmxError> {
        let result = if self.invvpid_single {
            instr::invvpid(InvvpidType::SingleContext, self.vpid)
        } else {
            instr::invvpid(InvvpidType::AllContext, 0)
        };
        result.map_err(|fail| VmxError::Instruction {
            instruction: "INVVPID",
            fail,
        })
    }

    /// Makes this vCPU's VMCS the current one on this CPU (it must be loaded here).
    fn make_current(&self) -> Result<(), VmxError> {
        let here = crate::percpu::current().index;
        if !self.loaded || here != self.host_cpu {
            return Err(VmxError::WrongCpu {
                owner: if self.loaded { self.host_cpu } else { u32::MAX },
                running: here,
            });
        }
        if instr::vmptrst() != self.vmcs {
            // SAFETY: our VMCS region, loaded on this CPU (checked above), so active
            // here and nowhere else.
            unsafe { instr::vmptrld(self.vmcs) }.map_err(|fail| VmxError::Instruction {
                instruction: "VMPTRLD",
                fail,
            })?;
        }
        Ok(())
    }

    /// For the trait methods that act between exits: `run` made this VMCS current on
    /// this CPU, and nothing loads another VMCS before the run loop comes back to `run`
    /// (a CPU runs one vCPU at a time between exits), so re-checking with VMPTRST on
    /// every call would only lengthen the exit path. Debug builds still check.
    fn current(&self, what: &str) -> bool {
        if cfg!(debug_assertions) {
            match self.make_current() {
                Ok(()) => true,
                Err(e) => {
                    log::error!("vmx: {what}: {e}");
                    false
                }
            }
        } else {
            true
        }
    }

    fn run_until_exit(&mut self) -> Result<Exit, VmxError> {
        loop {
            let regs: *mut GuestRegisters = &mut self.regs;
            // SAFETY: the current VMCS is ours and fully initialised (`new`), with this
            // CPU's host state and the exit stub as host RIP; `regs` is a live exclusive
            // borrow that the switch reads before entry and writes after the exit;
            // interrupts are disabled by `run`.
            let error = match unsafe { vmx_world_switch(regs, u64::from(self.launched)) } {
                SWITCH_EXITED => None,
                SWITCH_FAIL_VALID => Some(instr::instruction_error()),
                // VMfailInvalid: no current VMCS, so no error number.
                SWITCH_FAIL_INVALID => Some(0),
                other => {
                    log::error!("vmx: world switch returned {other}");
                    Some(0)
                }
            };
            if let Some(error) = error {
                return Ok(Exit::InvalidState(
                    InvalidStateReason::VmxInstructionError { error },
                ));
            }
            if let Some(exit) = self.decode()? {
                return Ok(exit);
            }
        }
    }

    /// Decodes the exit that just happened; `None` when it was handled here (CR access)
    /// and the guest should simply resume.
    fn decode(&mut self) -> Result<Option<Exit>, VmcsError> {
        let reason = ExitReason(instr::read_on_exit(ReadOnly32::ExitReason));
        if reason.entry_failure() {
            // Only the exit reason and qualification are valid (§27.8); the VMCS did
            // not launch.
            return Ok(Some(Exit::InvalidState(
                InvalidStateReason::VmxEntryFailure {
                    exit_reason: u32::from(reason.basic_raw()),
                    qualification: instr::read(ReadOnlyNatural::ExitQualification)?,
                },
            )));
        }
        self.launched = true;
        let Some(basic) = reason.basic() else {
            self.requeue_interrupted_event()?;
            return Ok(Some(Exit::Unhandled {
                code: u64::from(reason.0),
            }));
        };
        // Exits caused by an instruction the guest executed never happen while an event
        // is being delivered, so their IDT-vectoring information is never valid (SDM
        // Vol. 3C §28.2.4): skip reading it on those hot paths.
        if !matches!(
            basic,
            BasicExitReason::Cpuid
                | BasicExitReason::Vmcall
                | BasicExitReason::IoInstruction
                | BasicExitReason::Rdmsr
                | BasicExitReason::Wrmsr
                | BasicExitReason::Hlt
                | BasicExitReason::Xsetbv
        ) {
            self.requeue_interrupted_event()?;
        }
        let exit = match basic {
            BasicExitReason::ExceptionOrNmi => self.exception_or_nmi()?,
            BasicExitReason::ExternalInterrupt => Exit::ExternalInterrupt,
            BasicExitReason::TripleFault => Exit::Shutdown,
            BasicExitReason::InterruptWindow => Exit::InterruptWindow,
            BasicExitReason::Cpuid => Exit::Cpuid,
            BasicExitReason::Hlt => Exit::Hlt,
            BasicExitReason::Xsetbv => Exit::Xsetbv {
                xcr: self.regs.rcx as u32,
                value: (self.regs.rdx << 32) | (self.regs.rax & 0xFFFF_FFFF),
            },
            BasicExitReason::Vmcall => Exit::Hypercall,
            BasicExitReason::CrAccess => return self.cr_access(),
            BasicExitReason::IoInstruction => {
                let q = IoQualification(instr::read(ReadOnlyNatural::ExitQualification)?);
                let size = match q.size() {
                    Some(ferrovisor_arch::vmx::exit::IoSize::Byte) => IoSize::Byte,
                    Some(ferrovisor_arch::vmx::exit::IoSize::Word) => IoSize::Word,
                    Some(ferrovisor_arch::vmx::exit::IoSize::Dword) => IoSize::Dword,
                    None => {
                        return Ok(Some(Exit::Unhandled {
                            code: u64::from(reason.0),
                        }));
                    }
                };
                Exit::Io(IoAccess {
                    port: q.port(),
                    size,
                    write: q.direction() == IoDirection::Out,
                    string: q.is_string(),
                    rep: q.is_rep(),
                })
            }
            BasicExitReason::Rdmsr => Exit::MsrRead {
                msr: self.regs.rcx as u32,
            },
            BasicExitReason::Wrmsr => Exit::MsrWrite {
                msr: self.regs.rcx as u32,
                value: (self.regs.rdx << 32) | (self.regs.rax & 0xFFFF_FFFF),
            },
            BasicExitReason::EptViolation => {
                let q = EptViolationQualification(instr::read(ReadOnlyNatural::ExitQualification)?);
                Exit::NestedPageFault(NestedFault {
                    gpa: instr::read(ReadOnly64::GuestPhysicalAddress)?,
                    read: q.read(),
                    write: q.write(),
                    fetch: q.fetch(),
                    present: q.readable() || q.writable() || q.executable(),
                })
            }
            _ => Exit::Unhandled {
                code: u64::from(reason.0),
            },
        };
        Ok(Some(exit))
    }

    /// An exit in the middle of delivering an event through the guest's IDT (an EPT
    /// violation on the IDT or stack, an interrupt exit) would lose the event: queue it
    /// again for the next entry (SDM Vol. 3C §28.2.3, §27.6). `inject_exception` called
    /// for this exit replaces it.
    fn requeue_interrupted_event(&mut self) -> Result<(), VmcsError> {
        let info = InterruptionInfo(instr::read(ReadOnly32::IdtVectoringInfo)?);
        if !info.valid() {
            return Ok(());
        }
        // SAFETY: event injection only decides what the guest receives on entry.
        unsafe {
            instr::write(
                Control32::EntryInterruptionInfo,
                info.0 & ENTRY_INTERRUPTION_FIELDS,
            )
        }?;
        if info.error_code_valid() {
            let code = instr::read(ReadOnly32::IdtVectoringErrorCode)?;
            // SAFETY: as above.
            unsafe { instr::write(Control32::EntryExceptionErrorCode, code) }?;
        }
        if matches!(
            info.kind(),
            Some(
                InterruptionType::SoftwareInterrupt
                    | InterruptionType::SoftwareException
                    | InterruptionType::PrivilegedSoftwareException
            )
        ) {
            let length = instr::read(ReadOnly32::ExitInstructionLength)?;
            // SAFETY: as above; the length of the INT n/INT3/INTO/INT1 (§25.8.3).
            unsafe { instr::write(Control32::EntryInstructionLength, length) }?;
        }
        Ok(())
    }

    fn exception_or_nmi(&mut self) -> Result<Exit, VmcsError> {
        let info = InterruptionInfo(instr::read(ReadOnly32::ExitInterruptionInfo)?);
        if info.kind() == Some(InterruptionType::Nmi) {
            // With "NMI exiting" the NMI was the host's, consumed by the exit (§26.2):
            // hand it to the host's own NMI handler through its IDT gate (vector 2, on
            // the NMI IST stack), whose IRET also ends any NMI blocking the exit left.
            // SAFETY: INT 2 runs the host's NMI handler exactly as a physical NMI would,
            // with interrupts disabled; the handler returns or stops the CPU.
            unsafe { core::arch::asm!("int 2") };
            return Ok(Exit::ExternalInterrupt);
        }
        let error_code = if info.error_code_valid() {
            Some(instr::read(ReadOnly32::ExitInterruptionErrorCode)?)
        } else {
            None
        };
        Ok(Exit::Exception {
            vector: info.vector(),
            error_code,
        })
    }

    /// Whether the guest runs 64-bit code (IA-32e mode and CS.L): MOV CR then uses
    /// 64-bit operands, else 32-bit ones.
    fn in_64bit_mode(&self) -> Result<bool, VmcsError> {
        Ok(instr::read(Guest64::Ia32Efer)? & EFER_LMA != 0
            && instr::read(Guest32::CsAccessRights)? & ACCESS_RIGHTS_L != 0)
    }

    /// General register `n` in the instruction encoding's order (SDM Vol. 3C §28.2.1,
    /// Table 28-3: 0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, ...).
    fn gpr(&self, n: u8) -> Result<u64, VmcsError> {
        let r = &self.regs;
        Ok(match n {
            0 => r.rax,
            1 => r.rcx,
            2 => r.rdx,
            3 => r.rbx,
            4 => instr::read(GuestNatural::Rsp)?,
            5 => r.rbp,
            6 => r.rsi,
            7 => r.rdi,
            8 => r.r8,
            9 => r.r9,
            10 => r.r10,
            11 => r.r11,
            12 => r.r12,
            13 => r.r13,
            14 => r.r14,
            _ => r.r15,
        })
    }

    fn set_gpr(&mut self, n: u8, value: u64) -> Result<(), VmcsError> {
        let r = &mut self.regs;
        let slot = match n {
            0 => &mut r.rax,
            1 => &mut r.rcx,
            2 => &mut r.rdx,
            3 => &mut r.rbx,
            4 => return instr::write_guest(GuestNatural::Rsp, value),
            5 => &mut r.rbp,
            6 => &mut r.rsi,
            7 => &mut r.rdi,
            8 => &mut r.r8,
            9 => &mut r.r9,
            10 => &mut r.r10,
            11 => &mut r.r11,
            12 => &mut r.r12,
            13 => &mut r.r13,
            14 => &mut r.r14,
            _ => &mut r.r15,
        };
        *slot = value;
        Ok(())
    }

    /// CR0 as the guest sees it: host-owned bits from the read shadow (§25.6.6).
    fn visible_cr0(&self) -> Result<u64, VmcsError> {
        let real = instr::read(GuestNatural::Cr0)?;
        let shadow = instr::read(ControlNatural::Cr0ReadShadow)?;
        Ok((real & !self.cr0_mask) | (shadow & self.cr0_mask))
    }

    fn visible_cr4(&self) -> Result<u64, VmcsError> {
        let real = instr::read(GuestNatural::Cr4)?;
        let shadow = instr::read(ControlNatural::Cr4ReadShadow)?;
        Ok((real & !self.cr4_mask) | (shadow & self.cr4_mask))
    }

    /// A control-register access that exited (a host-owned bit would change, or the
    /// CPU forces CR3 exiting): emulate it, then resume the guest (§28.2.1, Table 28-3).
    fn cr_access(&mut self) -> Result<Option<Exit>, VmcsError> {
        let raw = instr::read(ReadOnlyNatural::ExitQualification)?;
        let q = CrAccessQualification(raw);
        let operand_mask = if self.in_64bit_mode()? {
            u64::MAX
        } else {
            0xFFFF_FFFF
        };
        let outcome = match (q.access_type(), q.cr()) {
            (CrAccessType::MovToCr, cr @ (0 | 3 | 4)) => {
                let value = self.gpr(q.gpr())? & operand_mask;
                self.mov_to_cr(cr, value)?
            }
            (CrAccessType::MovFromCr, 3) => {
                let cr3 = instr::read(GuestNatural::Cr3)?;
                self.set_gpr(q.gpr(), cr3 & operand_mask)?;
                CrWrite::Done
            }
            (CrAccessType::Clts, _) => {
                let cr0 = self.visible_cr0()?;
                self.mov_to_cr(0, cr0 & !CR0_TS)?
            }
            (CrAccessType::Lmsw, _) => {
                // LMSW loads PE, MP, EM and TS, and can set PE but not clear it (SDM
                // Vol. 2A, LMSW).
                let cr0 = self.visible_cr0()?;
                let low = CR0_PE | CR0_MP | CR0_EM | CR0_TS;
                let source = u64::from(q.lmsw_source()) & low;
                self.mov_to_cr(0, (cr0 & !low) | source | (cr0 & CR0_PE))?
            }
            _ => {
                log::warn!("vmx: unexpected control-register exit, qualification {raw:#x}");
                return Ok(Some(Exit::Unhandled {
                    code: BasicExitReason::CrAccess.raw().into(),
                }));
            }
        };
        if let CrWrite::Done = outcome {
            self.skip(0)?;
        }
        Ok(None)
    }

    /// Emulates MOV to CR0/CR3/CR4 with the checks that would make it #GP on hardware
    /// (SDM Vol. 2B, MOV—Move to/from Control Registers), keeping the VMX-forced bits in
    /// the real register and the guest's value in the shadow, IA-32e mode consistent with
    /// EFER.LME and CR0.PG, and the PDPTEs loaded for PAE paging (§27.3.2.4).
    fn mov_to_cr(&mut self, cr: u8, value: u64) -> Result<CrWrite, VmcsError> {
        let efer = instr::read(Guest64::Ia32Efer)?;
        let old_cr0 = instr::read(GuestNatural::Cr0)?;
        let mut cr0 = old_cr0;
        let mut cr3 = instr::read(GuestNatural::Cr3)?;
        let mut cr4 = instr::read(GuestNatural::Cr4)?;
        let long_mode_code = self.in_64bit_mode()?;
        match cr {
            0 => {
                let faults = value & !self.cr0_fixed.may_be_one != 0
                    || (value & CR0_PG != 0 && value & CR0_PE == 0)
                    || (value & CR0_NW != 0 && value & CR0_CD == 0)
                    || (value & CR0_PG != 0 && efer & EFER_LME != 0 && cr4 & CR4_PAE == 0)
                    || (value & CR0_PG == 0 && long_mode_code);
                if faults {
                    return self.fault();
                }
                cr0 = self.cr0_fixed.adjust(value);
            }
            3 => cr3 = value & !(1 << 63),
            _ => {
                let faults = value & (CR4_VMXE | !self.cr4_fixed.may_be_one) != 0
                    || (efer & EFER_LMA != 0 && value & CR4_PAE == 0);
                if faults {
                    return self.fault();
                }
                cr4 = self.cr4_fixed.adjust(value);
            }
        }
        let lma = efer & EFER_LME != 0 && cr0 & CR0_PG != 0;
        let pdptes = if cr0 & CR0_PG != 0 && cr4 & CR4_PAE != 0 && !lma {
            match self.read_pdptes(cr3) {
                Some(pdptes) => Some(pdptes),
                None => return self.fault(),
            }
        } else {
            None
        };

        instr::write_guest(GuestNatural::Cr0, cr0)?;
        instr::write_guest(GuestNatural::Cr3, cr3)?;
        instr::write_guest(GuestNatural::Cr4, cr4)?;
        match cr {
            // SAFETY: the shadow only changes what the guest reads.
            0 => unsafe { instr::write(ControlNatural::Cr0ReadShadow, value) }?,
            // SAFETY: as above.
            4 => unsafe { instr::write(ControlNatural::Cr4ReadShadow, value) }?,
            _ => {}
        }
        if (old_cr0 ^ cr0) & CR0_PG != 0 {
            self.set_efer(efer, cr0)?;
        }
        if let Some(pdptes) = pdptes {
            self.write_pdptes(pdptes)?;
        }
        // The real MOV would have flushed the guest's TLB entries; the emulated one did
        // not, and they are tagged with the VPID, so flush them (§29.4.3.3).
        if let Err(e) = self.flush_vpid() {
            log::error!("vmx: {e}");
        }
        log::debug!(
            "vmx: emulated MOV to CR{cr} of {value:#x}: cr0 {cr0:#x} cr3 {cr3:#x} cr4 {cr4:#x}{}{}",
            if lma { ", IA-32e mode" } else { "" },
            if pdptes.is_some() {
                ", PDPTEs loaded"
            } else {
                ""
            }
        );
        Ok(CrWrite::Done)
    }

    /// Queues #GP(0) for the instruction that exited.
    fn fault(&mut self) -> Result<CrWrite, VmcsError> {
        log::debug!("vmx: emulated control-register write faults: #GP(0)");
        self.queue_exception(GP, Some(0))?;
        Ok(CrWrite::Faulted)
    }

    /// Writes guest EFER with LMA = LME && CR0.PG and the "IA-32e mode guest" entry
    /// control equal to LMA, as VM entry requires with "load IA32_EFER" (§27.3.1.1).
    fn set_efer(&mut self, value: u64, cr0: u64) -> Result<(), VmcsError> {
        let lma = value & EFER_LME != 0 && cr0 & CR0_PG != 0;
        let efer = if lma {
            value | EFER_LMA
        } else {
            value & !EFER_LMA
        };
        instr::write_guest(Guest64::Ia32Efer, efer)?;
        let mut entry = EntryControls::from_bits_retain(instr::read(Control32::EntryControls)?);
        entry.set(EntryControls::IA32E_MODE_GUEST, lma);
        // SAFETY: only "IA-32e mode guest" changes, in step with the guest's EFER.LMA.
        unsafe { instr::write(Control32::EntryControls, entry.bits()) }
    }

    /// Loads the PDPTE fields VM entry uses for PAE paging with EPT (§27.3.2.4).
    fn write_pdptes(&self, pdptes: [u64; 4]) -> Result<(), VmcsError> {
        for (field, value) in [
            Guest64::Pdpte0,
            Guest64::Pdpte1,
            Guest64::Pdpte2,
            Guest64::Pdpte3,
        ]
        .into_iter()
        .zip(pdptes)
        {
            instr::write_guest(field, value)?;
        }
        Ok(())
    }

    /// The four PDPTEs at guest-physical `cr3 & !0x1F` for PAE paging, or `None` when
    /// they are not in the guest's RAM or have reserved bits set (a #GP on hardware,
    /// SDM Vol. 3A §5.4.1).
    fn read_pdptes(&self, cr3: u64) -> Option<[u64; 4]> {
        let gpa = cr3 & 0xFFFF_FFE0;
        let hpa = self.guest_ram_address(gpa)?;
        // SAFETY: `guest_ram_address` found write-back guest RAM, which comes from the
        // frame allocator and is covered by the direct map; 32 aligned bytes stay in one
        // page. The guest cannot run meanwhile (this CPU is handling its exit).
        let pdptes = unsafe { (phys_to_virt(hpa) as *const [u64; 4]).read_volatile() };
        if pdptes.iter().any(|e| e & 1 != 0 && e & PDPTE_RESERVED != 0) {
            return None;
        }
        Some(pdptes)
    }

    /// The host-physical address of guest RAM at `gpa`, walking this vCPU's EPT (SDM
    /// Vol. 3C §29.3.2): `None` unless readable and write-back (device mappings are not
    /// in the direct map).
    fn guest_ram_address(&self, gpa: u64) -> Option<u64> {
        let mut table = self.nested_root;
        for level in [EptLevel::Pml4, EptLevel::Pdpt, EptLevel::Pd, EptLevel::Pt] {
            let shift = 12 + 9 * (level as u32 - 1);
            let index = ((gpa >> shift) & 0x1FF) as usize;
            let slot = (phys_to_virt(table) as *const u64).wrapping_add(index);
            // SAFETY: EPT tables are 4 KiB frames from the frame allocator, covered by
            // the direct map, and `index` < 512; the domain edits them only between runs
            // of its vCPUs.
            let entry = EptEntry(unsafe { slot.read_volatile() });
            if !entry.readable() {
                return None;
            }
            if entry.is_leaf(level) {
                if entry.memory_type() != Some(EptMemoryType::WriteBack) {
                    return None;
                }
                let size = level.page_size()?;
                return Some(entry.address(level) + (gpa & (size - 1)));
            }
            table = entry.address(level);
        }
        None
    }

    /// Advances RIP past the instruction that exited, by the VM-exit instruction length
    /// (§25.9.4) when the CPU gives one, and ends any STI/MOV SS blocking (which lasts
    /// one instruction).
    #[inline(always)]
    fn skip(&mut self, fallback: u64) -> Result<(), VmcsError> {
        let length = match instr::read_on_exit(ReadOnly32::ExitInstructionLength) {
            0 => fallback,
            n => u64::from(n),
        };
        let rip = instr::read_on_exit(GuestNatural::Rip) + length;
        // Outside 64-bit mode RIP wraps at 4 GiB; only a sum past that needs the mode
        // (two more VMREADs), so the common case skips the question.
        let rip = if rip <= 0xFFFF_FFFF || self.in_64bit_mode()? {
            rip
        } else {
            rip & 0xFFFF_FFFF
        };
        instr::write_guest_on_exit(GuestNatural::Rip, rip);
        let blocking = instr::read_on_exit(Guest32::InterruptibilityState);
        if blocking & BLOCKING_BY_STI_OR_MOV_SS != 0 {
            instr::write_guest_on_exit(
                Guest32::InterruptibilityState,
                blocking & !BLOCKING_BY_STI_OR_MOV_SS,
            );
        }
        Ok(())
    }

    /// Queues a hardware exception for the next entry (§25.8.3). VM entry requires the
    /// error code for exactly the vectors that push one, and never in real mode
    /// (§27.2.1.3), so it is supplied or dropped to match.
    fn queue_exception(&mut self, vector: u8, error_code: Option<u32>) -> Result<(), VmcsError> {
        let protected = instr::read(GuestNatural::Cr0)? & CR0_PE != 0;
        let kind = if vector == 2 {
            InterruptionType::Nmi
        } else {
            InterruptionType::HardwareException
        };
        let code = (protected
            && kind == InterruptionType::HardwareException
            && ERROR_CODE_VECTORS.contains(&vector))
        .then(|| error_code.unwrap_or(0));
        let info = InterruptionInfo::new(vector, kind, code.is_some());
        // SAFETY: event injection only decides what the guest receives on entry.
        unsafe { instr::write(Control32::EntryInterruptionInfo, info.0) }?;
        if let Some(code) = code {
            // SAFETY: as above.
            unsafe { instr::write(Control32::EntryExceptionErrorCode, code) }?;
        }
        Ok(())
    }
}

impl Drop for VmxVcpu {
    fn drop(&mut self) {
        let here = crate::percpu::current().index;
        if self.loaded && here != self.host_cpu {
            // The VMCS is active on another CPU, which may still write it back: freeing
            // it here could hand that page to someone else.
            log::error!(
                "vmx: vCPU loaded on cpu {} dropped on cpu {here}: its frames are leaked",
                self.host_cpu
            );
            return;
        }
        self.put();
        free(self.vmcs, 0);
        free(self.msr_bitmap, 0);
        free(self.io_bitmaps, 1);
    }
}

impl VcpuBackend for VmxVcpu {
    fn run(&mut self) -> Exit {
        // The caller runs this with interrupts disabled (`VcpuBackend::run`), and
        // `load` made the VMCS current: the checks are for debug builds.
        debug_assert!(!x86_64::instructions::interrupts::are_enabled());
        let result = if cfg!(debug_assertions) {
            self.make_current().and_then(|()| self.run_until_exit())
        } else {
            self.run_until_exit()
        };
        result.unwrap_or_else(|e| {
            log::error!("vmx: run: {e}");
            Exit::InvalidState(InvalidStateReason::VmxInstructionError {
                error: e.instruction_error(),
            })
        })
    }

    fn regs(&mut self) -> &mut GuestRegisters {
        &mut self.regs
    }

    fn rip(&self) -> u64 {
        if !self.current("rip") {
            return 0;
        }
        instr::read(GuestNatural::Rip).unwrap_or_else(|e| {
            log::error!("vmx: {e}");
            0
        })
    }

    // On every instruction exit's path: inlined into the handlers.
    #[inline(always)]
    fn skip_instruction(&mut self, length: u64) {
        if self.current("skip_instruction")
            && let Err(e) = self.skip(length)
        {
            log::error!("vmx: skip_instruction: {e}");
        }
    }

    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>) {
        if self.current("inject_exception")
            && let Err(e) = self.queue_exception(vector, error_code)
        {
            log::error!("vmx: inject_exception: {e}");
        }
    }

    fn inject_interrupt(&mut self, vector: u8) {
        if !self.current("inject_interrupt") {
            return;
        }
        let info = InterruptionInfo::new(vector, InterruptionType::ExternalInterrupt, false);
        // SAFETY: event injection only decides what the guest receives on entry (§25.8.3).
        if let Err(e) = unsafe { instr::write(Control32::EntryInterruptionInfo, info.0) } {
            log::error!("vmx: inject_interrupt: {e}");
        }
    }

    fn request_interrupt_window(&mut self, on: bool) {
        if !self.current("request_interrupt_window") {
            return;
        }
        // "Interrupt-window exiting" (§25.6.2): an exit at the first instruction boundary
        // where RFLAGS.IF = 1 and nothing blocks interrupts (§26.7.5).
        let result = instr::read(Control32::PrimaryProcessorControls).and_then(|raw| {
            let mut controls = PrimaryControls::from_bits_retain(raw);
            controls.set(PrimaryControls::INTERRUPT_WINDOW_EXITING, on);
            // SAFETY: only interrupt-window exiting changes, an exit the run loop decodes.
            unsafe { instr::write(Control32::PrimaryProcessorControls, controls.bits()) }
        });
        if let Err(e) = result {
            log::error!("vmx: request_interrupt_window: {e}");
        }
    }

    fn set_tsc_offset(&mut self, offset: u64) {
        if !self.current("set_tsc_offset") {
            return;
        }
        let field = ferrovisor_arch::vmx::fields::Control64::TscOffset;
        // SAFETY: with "use TSC offsetting" set, the offset only changes what the guest's
        // RDTSC returns (SDM Vol. 3C §26.6.5).
        let written = unsafe { instr::write(field, offset) };
        if let Err(e) = written {
            log::error!("vmx: set_tsc_offset: {e}");
        }
    }

    fn paging_state(&self) -> PagingState {
        if !self.current("paging_state") {
            return PagingState::default();
        }
        let state = || -> Result<PagingState, VmcsError> {
            Ok(PagingState {
                cr0: self.visible_cr0()?,
                cr3: instr::read(GuestNatural::Cr3)?,
                cr4: self.visible_cr4()?,
                efer: instr::read(Guest64::Ia32Efer)?,
            })
        };
        state().unwrap_or_else(|e| {
            log::error!("vmx: paging_state: {e}");
            PagingState::default()
        })
    }

    fn write_efer(&mut self, value: u64) {
        if !self.current("write_efer") {
            return;
        }
        // LMA is read-only to WRMSR: it follows LME and CR0.PG (SDM Vol. 3A §10.8.5).
        let result = instr::read(GuestNatural::Cr0).and_then(|cr0| self.set_efer(value, cr0));
        if let Err(e) = result {
            log::error!("vmx: write_efer: {e}");
        }
    }
}
