//! Exit handling written once for both vendors: CPUID policy, MSRs, I/O ports, Xen
//! hypercalls. Guest memory is only ever read by copying through the guest's own page
//! tables into hypervisor buffers, then validated.

use ferrovisor::cpuid_policy::{CpuidPolicy, VcpuCpuidContext, guest_cpuid as guest_cpuid_policy};
use ferrovisor::guest_memory::GuestMemory;
use ferrovisor::guest_memory::paging::{AccessRequest, PagingContext, read_virt, write_virt};
use ferrovisor::hypercalls::{GuestAccess, Outcome as HypercallOutcome, dispatch};
use ferrovisor::vcpu::Exit;
use ferrovisor::xen::XenErrno;
use ferrovisor::xen::hypercall_page::{
    HYPERCALL_PAGE_SIZE, Vendor as XenVendor, write_hypercall_page,
};

use super::domain::{Domain, GuestRam};
use super::{VcpuBackend, Vendor};

/// What the run loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Shutdown(u32),
    Crash(&'static str),
}

const MSR_EFER: u32 = 0xC000_0080;
/// Xen's hypercall-page MSR (CPUID 0x40000002 EBX).
const MSR_XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;

/// Handles one exit.
pub fn handle(
    domain: &mut Domain,
    vcpu: &mut impl VcpuBackend,
    exit: Exit,
    vendor: Vendor,
) -> Outcome {
    match exit {
        Exit::Cpuid => {
            let (leaf, subleaf) = (vcpu.regs().rax as u32, vcpu.regs().rcx as u32);
            let result = guest_cpuid(vcpu, leaf, subleaf, 0);
            vcpu.regs().set_cpuid_result(result);
            vcpu.skip_instruction(2);
            Outcome::Continue
        }
        Exit::Hypercall => match hypercall(domain, vcpu) {
            HypercallOutcome::Return(value) => {
                vcpu.regs().rax = value as u64;
                vcpu.skip_instruction(3);
                Outcome::Continue
            }
            HypercallOutcome::Shutdown(reason) => Outcome::Shutdown(reason as u32),
        },
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
                    if domain.ram.write(value & !0xfff, &page).is_err() {
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
                    domain.console.write(&[byte]);
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
            // No event sources yet: a HLT with nothing to wake it would be forever.
            vcpu.skip_instruction(1);
            Outcome::Crash("HLT with no event source (the guest would never wake)")
        }
        Exit::NestedPageFault(_) => Outcome::Crash("access outside the domain's memory"),
        Exit::Shutdown => Outcome::Crash("triple fault"),
        Exit::InvalidState(_) => Outcome::Crash("invalid guest state at VM entry"),
        Exit::Exception { .. } => Outcome::Crash("unexpected intercepted exception"),
        Exit::ExternalInterrupt | Exit::InterruptWindow => Outcome::Continue,
        Exit::Unhandled { .. } => Outcome::Crash("unhandled exit"),
    }
}

/// CPUID as a guest sees it: the domain's policy applied to the host's values
/// (`ferrovisor::cpuid_policy`), Xen's leaves at 0x40000000.
fn guest_cpuid(vcpu: &impl VcpuBackend, leaf: u32, subleaf: u32, vcpu_id: u32) -> [u32; 4] {
    // Xen's leaves are pure functions of (leaf, vCPU): answer them without consulting
    // the host (the hot path of PV-aware guests, and of the exit benchmark).
    if (0x4000_0000..0x4001_0000).contains(&leaf) {
        return ferrovisor::xen::cpuid::xen_leaf(leaf, subleaf, vcpu_id)
            .map_or([0; 4], |r| [r.eax, r.ebx, r.ecx, r.edx]);
    }
    // One vCPU per domain until domains grow several.
    const POLICY: CpuidPolicy = CpuidPolicy::new(1);
    let p = vcpu.paging_state();
    let context = VcpuCpuidContext {
        vcpu_id,
        apic_id: vcpu_id,
        cr4_osxsave: p.cr4 & (1 << 18) != 0,
        cr4_pke: p.cr4 & (1 << 22) != 0,
        xcr0: 1,
        // No virtual local APIC yet: the guest must not think it has one.
        apic_enabled: false,
        long_mode: p.efer & (1 << 10) != 0,
    };
    let host = |leaf, subleaf| core::arch::x86_64::__cpuid_count(leaf, subleaf);
    let r = guest_cpuid_policy(&POLICY, &host, leaf, subleaf, context);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Guest memory as a hypercall sees it: guest-virtual addresses translated through the
/// vCPU's own page tables, then copied (never mapped into the hypervisor). The paging
/// state is read only when a hypercall actually passes a pointer.
struct VcpuMemory<'a, V: VcpuBackend> {
    ram: &'a mut GuestRam,
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
            &*self.ram,
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
            &mut *self.ram,
            buf,
        )
        .map_err(|_| XenErrno::EFAULT)
    }
}

fn hypercall<V: VcpuBackend>(domain: &mut Domain, vcpu: &mut V) -> HypercallOutcome {
    let number = vcpu.regs().rax;
    let args = vcpu.regs().hypercall_args();
    let mut memory = VcpuMemory {
        ram: &mut domain.ram,
        vcpu: &*vcpu,
        context: core::cell::OnceCell::new(),
    };
    let console = &mut domain.console;
    dispatch(number, args, &mut memory, &mut |bytes: &[u8]| {
        console.write(bytes)
    })
}
