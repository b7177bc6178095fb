//! Exit handling written once for both vendors: CPUID policy, MSRs, I/O ports, Xen
//! hypercalls. Guest memory is only ever read by copying through the guest's own page
//! tables into hypervisor buffers, then validated.

use ferrovisor::cpuid_policy::{CpuidPolicy, VcpuCpuidContext, guest_cpuid as guest_cpuid_policy};
use ferrovisor::guest_memory::GuestMemory;
use ferrovisor::guest_memory::paging::{AccessRequest, PagingContext, translate};
use ferrovisor::vcpu::Exit;
use ferrovisor::xen::hypercall_page::{
    HYPERCALL_PAGE_SIZE, Vendor as XenVendor, write_hypercall_page,
};

use super::domain::Domain;
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

const HYPERCALL_XEN_VERSION: u64 = 17;
const HYPERCALL_CONSOLE_IO: u64 = 18;
const HYPERCALL_SCHED_OP: u64 = 29;
const CONSOLEIO_WRITE: u64 = 0;
const CONSOLEIO_READ: u64 = 1;
const SCHEDOP_YIELD: u64 = 0;
const SCHEDOP_BLOCK: u64 = 1;
const SCHEDOP_SHUTDOWN: u64 = 2;
const XENVER_VERSION: u64 = 0;
const ENOSYS: i64 = -38;
const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
/// Largest console write accepted in one hypercall (Xen copies in chunks; we cap).
const CONSOLE_WRITE_MAX: u64 = 4096;

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
        Exit::Hypercall => {
            let result = hypercall(domain, vcpu);
            match result {
                HypercallResult::Return(value) => {
                    vcpu.regs().rax = value as u64;
                    vcpu.skip_instruction(3);
                    Outcome::Continue
                }
                HypercallResult::Shutdown(reason) => Outcome::Shutdown(reason),
            }
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
                    domain.console_write(&[byte]);
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

enum HypercallResult {
    Return(i64),
    Shutdown(u32),
}

/// Copies `len` bytes at guest-virtual `gva` into `buf`, through the guest's page
/// tables (never trusting the pointer).
fn copy_from_guest(
    domain: &Domain,
    vcpu: &impl VcpuBackend,
    gva: u64,
    buf: &mut [u8],
) -> Result<(), ()> {
    let p = vcpu.paging_state();
    let context =
        PagingContext::from_regs(p.cr0, p.cr3, p.cr4, p.efer, 52, true).map_err(|_| ())?;
    let mut done = 0usize;
    while done < buf.len() {
        let address = gva.checked_add(done as u64).ok_or(())?;
        let page_left = 4096 - (address & 0xfff) as usize;
        let chunk = page_left.min(buf.len() - done);
        let t = translate(
            address,
            &context,
            AccessRequest::SUPERVISOR_READ,
            &domain.ram,
        )
        .map_err(|_| ())?;
        domain
            .ram
            .read(t.gpa, &mut buf[done..done + chunk])
            .map_err(|_| ())?;
        done += chunk;
    }
    Ok(())
}

fn hypercall(domain: &mut Domain, vcpu: &mut impl VcpuBackend) -> HypercallResult {
    let number = vcpu.regs().rax;
    let [a1, a2, a3, _, _] = vcpu.regs().hypercall_args();
    match number {
        HYPERCALL_CONSOLE_IO => match a1 {
            CONSOLEIO_WRITE => {
                if a2 > CONSOLE_WRITE_MAX {
                    return HypercallResult::Return(EINVAL);
                }
                let mut buf = [0u8; CONSOLE_WRITE_MAX as usize];
                let buf = &mut buf[..a2 as usize];
                if copy_from_guest(domain, vcpu, a3, buf).is_err() {
                    return HypercallResult::Return(EFAULT);
                }
                domain.console_write(buf);
                HypercallResult::Return(0)
            }
            // Nothing to read yet.
            CONSOLEIO_READ => HypercallResult::Return(0),
            _ => HypercallResult::Return(ENOSYS),
        },
        HYPERCALL_SCHED_OP => match a1 {
            SCHEDOP_YIELD => HypercallResult::Return(0),
            SCHEDOP_BLOCK => HypercallResult::Return(0),
            SCHEDOP_SHUTDOWN => {
                let mut reason = [0u8; 4];
                if copy_from_guest(domain, vcpu, a2, &mut reason).is_err() {
                    return HypercallResult::Return(EFAULT);
                }
                HypercallResult::Shutdown(u32::from_le_bytes(reason))
            }
            _ => HypercallResult::Return(ENOSYS),
        },
        HYPERCALL_XEN_VERSION => match a1 {
            XENVER_VERSION => HypercallResult::Return((4 << 16) | 17),
            _ => HypercallResult::Return(ENOSYS),
        },
        _ => HypercallResult::Return(ENOSYS),
    }
}
