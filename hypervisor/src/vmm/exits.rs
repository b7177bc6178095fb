//! Exit handling written once for both vendors: CPUID policy, MSRs, I/O ports, Xen
//! hypercalls. Guest memory is only ever read by copying through the guest's own page
//! tables into hypervisor buffers, then validated.

use alloc::sync::Arc;

use ferrovisor::cpuid_policy::{VcpuCpuidContext, guest_cpuid as guest_cpuid_policy};
use ferrovisor::guest_memory::GuestAbi;
use ferrovisor::guest_memory::paging::{AccessRequest, PagingContext, read_virt, write_virt};
use ferrovisor::hypercalls::{DomainEnv, GuestAccess, Outcome as HypercallOutcome, dispatch};
use ferrovisor::vcpu::{Exit, VcpuInitState};
use ferrovisor::xen::XenErrno;
use ferrovisor::xen::hypercall_page::{
    HYPERCALL_PAGE_SIZE, Vendor as XenVendor, write_hypercall_page,
};

use super::domain::{Domain, SharedRam, VcpuLife};
use super::fpu::FpuState;
use super::{VcpuBackend, Vendor};

/// What the run loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// Let the scheduler decide (`SCHEDOP_yield`).
    Yield,
    /// The vCPU blocks until an event (HLT, `SCHEDOP_block`) or, with a deadline,
    /// until system time (ns since boot) reaches it (`SCHEDOP_poll`).
    Block {
        deadline_ns: Option<u64>,
    },
    Shutdown(u32),
    Crash(&'static str),
}

const MSR_EFER: u32 = 0xC000_0080;
/// Xen's hypercall-page MSR (CPUID 0x40000002 EBX).
const MSR_XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;

/// Handles one exit of vCPU `index` of `domain` (its backend and FPU state). Plain
/// parameters rather than a context structure: they stay in registers on the fast path.
pub fn handle<V: VcpuBackend>(
    domain: &Arc<Domain>,
    index: u32,
    vcpu: &mut V,
    fpu: &mut FpuState,
    exit: Exit,
) -> Outcome {
    let vendor = domain.vendor;
    match exit {
        Exit::Cpuid => {
            let (leaf, subleaf) = (vcpu.regs().rax as u32, vcpu.regs().rcx as u32);
            let result = guest_cpuid(vcpu, domain, index, fpu.xcr0, leaf, subleaf);
            vcpu.regs().set_cpuid_result(result);
            vcpu.skip_instruction(2);
            Outcome::Continue
        }
        Exit::Hypercall => {
            let outcome = hypercall(domain, index, &mut *vcpu);
            let resume = |vcpu: &mut V, value: i64| {
                vcpu.regs().rax = value as u64;
                vcpu.skip_instruction(3);
            };
            match outcome {
                HypercallOutcome::Return(value) => {
                    resume(vcpu, value);
                    Outcome::Continue
                }
                HypercallOutcome::Yield => {
                    resume(vcpu, 0);
                    Outcome::Yield
                }
                HypercallOutcome::Block { deadline_ns } => {
                    resume(vcpu, 0);
                    Outcome::Block { deadline_ns }
                }
                HypercallOutcome::Shutdown(reason) => Outcome::Shutdown(reason as u32),
            }
        }
        Exit::Xsetbv { xcr, value } => {
            let allowed = domain.cpuid_policy.xcr0_allowed();
            match super::fpu::checked_xcr0(xcr, value, allowed) {
                Some(xcr0) => {
                    fpu.set_xcr0(xcr0);
                    vcpu.skip_instruction(3);
                }
                // What the CPU does with a value it does not accept (SDM Vol. 2D XSETBV).
                None => vcpu.inject_exception(13, Some(0)),
            }
            Outcome::Continue
        }
        Exit::MsrWrite { msr, value } => {
            match msr {
                MSR_EFER => vcpu.write_efer(value),
                MSR_XEN_HYPERCALL_PAGE => {
                    let mut page = [0u8; HYPERCALL_PAGE_SIZE];
                    let xen_vendor = match vendor {
                        Vendor::Vmx => XenVendor::Intel,
                        Vendor::Svm => XenVendor::Amd,
                    };
                    write_hypercall_page(&mut page, xen_vendor);
                    if domain.ram.write_bytes(value & !0xfff, &page).is_err() {
                        vcpu.inject_exception(13, Some(0));
                        return Outcome::Continue;
                    }
                }
                // Everything else is refused the way hardware refuses an unknown MSR.
                _ => {
                    vcpu.inject_exception(13, Some(0));
                    return Outcome::Continue;
                }
            }
            vcpu.skip_instruction(2);
            Outcome::Continue
        }
        Exit::MsrRead { msr } => {
            let value = match msr {
                MSR_EFER => vcpu.paging_state().efer,
                _ => {
                    vcpu.inject_exception(13, Some(0));
                    return Outcome::Continue;
                }
            };
            let regs = vcpu.regs();
            regs.rax = value & 0xffff_ffff;
            regs.rdx = value >> 32;
            vcpu.skip_instruction(2);
            Outcome::Continue
        }
        Exit::Io(io) => {
            if io.string || io.rep {
                return Outcome::Crash("string I/O instructions are not emulated yet");
            }
            if io.write {
                if io.port == 0xE9 {
                    let byte = vcpu.regs().rax as u8;
                    domain.console.lock().write(&[byte]);
                }
            } else {
                // Unclaimed ports read all-ones, as on a PC bus with nothing there.
                let regs = vcpu.regs();
                regs.rax |= io.size.mask();
            }
            vcpu.skip_instruction(1);
            Outcome::Continue
        }
        Exit::Hlt => {
            // The vCPU waits for an event; it resumes after the HLT.
            vcpu.skip_instruction(1);
            Outcome::Block { deadline_ns: None }
        }
        Exit::NestedPageFault(fault) => {
            report_outside_access(domain.id, index, fault);
            Outcome::Crash("access outside the domain's memory")
        }
        Exit::Shutdown => Outcome::Crash("triple fault"),
        Exit::InvalidState(_) => Outcome::Crash("invalid guest state at VM entry"),
        Exit::Exception { .. } => Outcome::Crash("unexpected intercepted exception"),
        Exit::ExternalInterrupt | Exit::InterruptWindow => Outcome::Continue,
        Exit::Unhandled { .. } => Outcome::Crash("unhandled exit"),
    }
}

/// Says which access left the domain's memory (the crash report gives the rest). Out of
/// line and cold: it must not weigh on the exit fast path's code.
#[cold]
#[inline(never)]
fn report_outside_access(domain: u16, vcpu: u32, fault: ferrovisor::vcpu::NestedFault) {
    let access = if fault.fetch {
        "instruction fetch"
    } else if fault.write {
        "write"
    } else {
        "read"
    };
    log::warn!(
        "domain {domain}: vcpu {vcpu}: {access} of guest-physical {:#x}, which is not its RAM",
        fault.gpa
    );
}

/// CPUID as a guest sees it: the domain's policy applied to the host's values
/// (`ferrovisor::cpuid_policy`), Xen's leaves at 0x40000000.
fn guest_cpuid(
    vcpu: &impl VcpuBackend,
    domain: &Domain,
    vcpu_id: u32,
    xcr0: u64,
    leaf: u32,
    subleaf: u32,
) -> [u32; 4] {
    // Xen's leaves are pure functions of (leaf, vCPU): answer them without consulting
    // the host (the hot path of PV-aware guests, and of the exit benchmark).
    if (0x4000_0000..0x4001_0000).contains(&leaf) {
        return ferrovisor::xen::cpuid::xen_leaf(leaf, subleaf, vcpu_id, domain.tsc_khz)
            .map_or([0; 4], |r| [r.eax, r.ebx, r.ecx, r.edx]);
    }
    let p = vcpu.paging_state();
    let context = VcpuCpuidContext {
        vcpu_id,
        apic_id: vcpu_id,
        cr4_osxsave: p.cr4 & (1 << 18) != 0,
        cr4_pke: p.cr4 & (1 << 22) != 0,
        xcr0,
        // No virtual local APIC yet: the guest must not think it has one.
        apic_enabled: false,
        long_mode: p.efer & (1 << 10) != 0,
        tsc_khz: domain.tsc_khz,
    };
    let host = |leaf, subleaf| core::arch::x86_64::__cpuid_count(leaf, subleaf);
    let r = guest_cpuid_policy(&domain.cpuid_policy, &host, leaf, subleaf, context);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Guest memory as a hypercall sees it: guest-virtual addresses translated through the
/// vCPU's own page tables, then copied (never mapped into the hypervisor). The paging
/// state is read only when a hypercall actually passes a pointer.
struct VcpuMemory<'a, V: VcpuBackend> {
    ram: SharedRam<'a>,
    vcpu: &'a V,
    context: core::cell::OnceCell<Option<PagingContext>>,
}

impl<V: VcpuBackend> VcpuMemory<'_, V> {
    fn context(&self) -> Result<PagingContext, XenErrno> {
        let context = self.context.get_or_init(|| {
            let p = self.vcpu.paging_state();
            PagingContext::from_regs(p.cr0, p.cr3, p.cr4, p.efer, 52, true).ok()
        });
        context.ok_or(XenErrno::EFAULT)
    }
}

impl<V: VcpuBackend> GuestAccess for VcpuMemory<'_, V> {
    fn copy_from_guest(&self, gva: u64, buf: &mut [u8]) -> Result<(), XenErrno> {
        if buf.is_empty() {
            return Ok(());
        }
        let context = self.context()?;
        read_virt(
            gva,
            &context,
            AccessRequest::SUPERVISOR_READ,
            &self.ram,
            buf,
        )
        .map_err(|_| XenErrno::EFAULT)
    }

    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> Result<(), XenErrno> {
        if buf.is_empty() {
            return Ok(());
        }
        let context = self.context()?;
        write_virt(
            gva,
            &context,
            AccessRequest::SUPERVISOR_WRITE,
            &mut self.ram,
            buf,
        )
        .map_err(|_| XenErrno::EFAULT)
    }
}

fn hypercall<V: VcpuBackend>(domain: &Arc<Domain>, index: u32, vcpu: &mut V) -> HypercallOutcome {
    let number = vcpu.regs().rax;
    let args = vcpu.regs().hypercall_args();
    let mut memory = VcpuMemory {
        ram: SharedRam(&domain.ram),
        vcpu: &*vcpu,
        context: core::cell::OnceCell::new(),
    };
    let mut env = KernelDomain {
        domain,
        caller: index,
        vcpu: &*vcpu,
    };
    dispatch(number, args, &mut memory, &mut env)
}

/// Writes vCPU `index`'s `vcpu_time_info` (Xen's pvclock record) where it registered
/// it, through its own page tables: system time is ns since the hypervisor booted, the
/// guest TSC is the host's (no offset), so the record maps one to the other. Called
/// when the vCPU is about to run on a CPU and when it registers the area; the vCPU is
/// not running either time, so one copy with the next even version is a consistent
/// update. A record that cannot be written (bad address) is skipped, as Xen skips it.
pub fn update_time_area(domain: &Domain, index: u32, vcpu: &impl VcpuBackend) {
    let Some((gva, version)) = domain.next_time_record(index) else {
        return;
    };
    let tsc = crate::time::tsc();
    let record = ferrovisor::xen::time::time_info(
        version,
        tsc,
        crate::time::now_ns(),
        crate::time::tsc_hz(),
    );
    let mut memory = VcpuMemory {
        ram: SharedRam(&domain.ram),
        vcpu,
        context: core::cell::OnceCell::new(),
    };
    let _ = memory.copy_to_guest(gva, &record.to_bytes());
}

/// The calling vCPU's domain, as the hypercall layer sees it.
struct KernelDomain<'a, V: VcpuBackend> {
    domain: &'a Arc<Domain>,
    caller: u32,
    /// The calling vCPU (for writing into its address space).
    vcpu: &'a V,
}

impl<V: VcpuBackend> DomainEnv for KernelDomain<'_, V> {
    fn console_write(&mut self, bytes: &[u8]) {
        self.domain.console.lock().write(bytes);
    }

    fn vcpu_count(&self) -> u32 {
        self.domain.vcpu_count
    }

    fn vcpu_initialised(&self, vcpu: u32) -> bool {
        self.domain.life(vcpu) != VcpuLife::Down
    }

    fn vcpu_is_up(&self, vcpu: u32) -> bool {
        self.domain.life(vcpu) == VcpuLife::Up
    }

    fn vcpu_initialise(&mut self, vcpu: u32, state: &VcpuInitState) -> Result<(), XenErrno> {
        if vcpu == self.caller
            || !self
                .domain
                .change_life(vcpu, VcpuLife::Down, VcpuLife::Initialising)
        {
            return Err(XenErrno::EEXIST);
        }
        // A vCPU that is down was never woken, so no CPU holds its slot for long.
        let id = self.domain.vcpu_id(vcpu);
        let stored = match super::vcpu::SLOTS[id.0 as usize].lock().as_mut() {
            Some(target) => {
                target.pending_state = Some(*state);
                true
            }
            None => false,
        };
        if !stored {
            self.domain
                .change_life(vcpu, VcpuLife::Initialising, VcpuLife::Down);
            return Err(XenErrno::EINVAL);
        }
        self.domain
            .change_life(vcpu, VcpuLife::Initialising, VcpuLife::Initialised);
        log::info!(
            "domain {}: vcpu {vcpu} initialised by vcpu {}: rip {:#x}, {}",
            self.domain.id,
            self.caller,
            state.rip,
            if state.long_mode() {
                "64-bit"
            } else {
                "32-bit"
            }
        );
        Ok(())
    }

    fn handle(&self) -> [u8; 16] {
        self.domain.uuid.0
    }

    fn register_time_area(&mut self, vcpu: u32, gva: u64) -> Result<(), XenErrno> {
        // Xen keeps the address and checks nothing more (a bad one makes later updates
        // fail silently). The caller's record is written now, through its page tables;
        // another vCPU's when it next runs.
        self.domain.set_time_area(vcpu, gva);
        if vcpu == self.caller {
            update_time_area(self.domain, vcpu, self.vcpu);
        }
        Ok(())
    }

    fn vcpu_down(&mut self, vcpu: u32) {
        if self
            .domain
            .change_life(vcpu, VcpuLife::Up, VcpuLife::Initialised)
        {
            log::info!("domain {}: vcpu {vcpu} down", self.domain.id);
            // Off the run queue; if it runs (it may be the caller), its CPU is kicked
            // and stops it at the next decision.
            super::cpu_loop::sleep_vcpu(self.domain, vcpu);
        }
    }

    fn vcpu_up(&mut self, vcpu: u32) -> Result<(), XenErrno> {
        if self
            .domain
            .change_life(vcpu, VcpuLife::Initialised, VcpuLife::Up)
        {
            log::info!("domain {}: vcpu {vcpu} up", self.domain.id);
            super::cpu_loop::wake_if_runnable(self.domain, vcpu);
        }
        Ok(())
    }
}
