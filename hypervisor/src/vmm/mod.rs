//! The virtualization core on the bare metal: per-CPU enabling of VT-x or AMD-V, the
//! vCPU backends behind one interface, and the run loop that hands every exit to the
//! vendor-neutral handlers.
//!
//! The vendor is chosen at run time from CPUID ([`Vendor::detect`]); one binary serves
//! both. Backends translate between hardware state and [`Exit`]; policy (CPUID, MSRs,
//! I/O, hypercalls) is written once, above them.

/// The return-stack-buffer fill every VM exit runs before its first RET: after an
/// exit the RSB holds guest-controlled entries, so 32 benign ones are pushed by 32 calls
/// whose return addresses are never used (each is followed by an INT3 that stops any
/// speculation that returns there), then dropped from the stack. Unrolled, as Linux's
/// `__FILL_RETURN_BUFFER` is on x86-64: 33 instructions instead of a 66-instruction loop.
/// One definition for both world switches.
macro_rules! rsb_fill {
    () => {
        r#"
    .rept 32
    call 2f
    int3
2:
    .endr
    add rsp, 32 * 8
"#
    };
}

pub mod boot_domains;
pub mod cpu_loop;
pub mod domain;
mod exits;
pub mod fpu;
pub mod manager;
#[cfg(feature = "selftest")]
pub mod smoke;
pub mod svm;
pub mod vcpu;
pub mod vmx;

use ferrovisor::nested_paging::TableMemory;
use ferrovisor::vcpu::{Exit, GuestRegisters};
use ferrovisor_arch::cpu::{Virtualization, detect_virtualization};

use crate::memory::{alloc_zeroed, free, phys_to_virt};

/// Which hardware virtualization the CPUs offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Intel VT-x with EPT and unrestricted guest.
    Vmx,
    /// AMD-V with nested paging.
    Svm,
}

impl Vendor {
    /// The usable extension on this CPU: VT-x needs EPT and unrestricted guest (PVH
    /// guests start in 32-bit protected mode without paging); AMD-V needs nested
    /// paging. `Err` says what is missing.
    pub fn detect() -> Result<Self, &'static str> {
        match detect_virtualization() {
            Virtualization::Vmx(v) if v.disabled_by_firmware => Err("VT-x is disabled by firmware"),
            Virtualization::Vmx(v) if !v.ept => Err("VT-x without EPT"),
            Virtualization::Vmx(v) if !v.unrestricted_guest => {
                Err("VT-x without unrestricted guest")
            }
            Virtualization::Vmx(_) => Ok(Self::Vmx),
            Virtualization::Svm(s) if s.disabled_by_firmware => {
                Err("AMD-V is disabled by firmware")
            }
            Virtualization::Svm(s) if !s.npt => Err("AMD-V without nested paging"),
            Virtualization::Svm(_) => Ok(Self::Svm),
            Virtualization::None => Err("no hardware virtualization (VT-x or AMD-V)"),
        }
    }
}

/// Nested page-table frames from the frame allocator, reached through the direct map.
#[derive(Debug, Default)]
pub struct HostTables;

impl TableMemory for HostTables {
    fn allocate_table(&mut self) -> Option<u64> {
        alloc_zeroed(0)
    }

    fn free_table(&mut self, paddr: u64) {
        free(paddr, 0);
    }

    fn table(&mut self, paddr: u64) -> &mut [u64; 512] {
        // SAFETY: table frames are allocated by `allocate_table` for one address space,
        // which edits them only through this borrow; the direct map covers them.
        unsafe { &mut *(phys_to_virt(paddr) as *mut [u64; 512]) }
    }
}

/// Control state the hypervisor needs to interpret guest-virtual addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// What a backend needs besides the vCPU's architectural state.
#[derive(Clone, Copy, Debug)]
pub struct VcpuConfig {
    /// Root of the domain's nested page tables (EPT PML4 / nCR3), physical.
    pub nested_root: u64,
    /// VPID (VT-x), never 0 (reserved for the host). AMD-V assigns ASIDs per CPU as
    /// vCPUs are loaded.
    pub tag: u16,
}

/// One vCPU, as each backend implements it.
pub trait VcpuBackend {
    /// Enters the guest and runs it until the next exit the hypervisor must handle.
    /// Called with interrupts disabled, on the CPU that loaded the vCPU.
    fn run(&mut self) -> Exit;
    /// The general registers (valid between runs).
    fn regs(&mut self) -> &mut GuestRegisters;
    /// The guest's RIP.
    fn rip(&self) -> u64;
    /// Skips the instruction that caused the current exit. `length` is what the
    /// decoder knows (CPUID 2, VMCALL 3, ...); backends use the hardware's own
    /// next-RIP or instruction-length field when they have one.
    fn skip_instruction(&mut self, length: u64);
    /// Queues an exception for the next entry.
    fn inject_exception(&mut self, vector: u8, error_code: Option<u32>);
    /// Queues an external interrupt with `vector` for the next entry. Only when the
    /// guest can take one (RFLAGS.IF set, no STI/MOV SS blocking): after an
    /// [`Exit::InterruptWindow`], or when the caller knows.
    fn inject_interrupt(&mut self, vector: u8);
    /// Asks for (or stops asking for) an [`Exit::InterruptWindow`] as soon as the guest
    /// can take an external interrupt.
    fn request_interrupt_window(&mut self, on: bool);
    /// Sets the offset the guest's TSC reads with (guest TSC = host TSC + offset,
    /// wrapping), so a domain's time can start at zero or survive migration.
    fn set_tsc_offset(&mut self, offset: u64);
    /// Guest paging state.
    fn paging_state(&self) -> PagingState;
    /// An intercepted WRMSR to IA32_EFER (backends keep their own invariants, e.g.
    /// AMD-V's EFER.SVME).
    fn write_efer(&mut self, value: u64);
}

/// One CPU's virtualization state, enabled once at bring-up (`smp::cpu_online_hook`).
pub enum VirtCpu {
    Svm(svm::SvmCpu),
    Vmx(vmx::VmxCpu),
}

/// Turns on VT-x or AMD-V on the calling CPU. `Err` says why not (the CPU then runs no
/// guests; the hypervisor goes on).
pub fn enable_on_this_cpu() -> Result<VirtCpu, &'static str> {
    let vendor = Vendor::detect()?;
    // Guest vector state is switched with XSAVE (or FXSAVE): enable it first, so the
    // host CR4 a VMCS records already has it.
    fpu::enable_on_this_cpu();
    match vendor {
        Vendor::Svm => svm::enable_on_this_cpu().map(VirtCpu::Svm).map_err(|e| {
            log::warn!("svm: {e}");
            "AMD-V could not be enabled"
        }),
        Vendor::Vmx => vmx::enable_on_this_cpu().map(VirtCpu::Vmx).map_err(|e| {
            log::warn!("vmx: {e}");
            "VT-x could not be enabled"
        }),
    }
}

/// The running CPU's virtualization state, if it could be enabled.
pub fn this_cpu() -> Option<&'static VirtCpu> {
    crate::percpu::try_current()?.virt.get()?.as_ref()
}

/// Builds a domain of `memory_bytes` from `kernel` with its vCPU, then destroys both
/// without running them (the churn test). Returns whether it was created.
#[cfg(feature = "selftest")]
pub fn create_and_destroy(
    id: u16,
    name: &str,
    kernel: &ferrovisor_boot::Module,
    memory_bytes: u64,
) -> bool {
    let spec = manager::DomainSpec::simple(id, name, *kernel, "", memory_bytes);
    match manager::build(&spec) {
        Some(built) => {
            let ids: alloc::vec::Vec<_> = built.domain.vcpu_ids().to_vec();
            drop(built);
            vcpu::release_ids(&ids);
            true
        }
        None => false,
    }
}
