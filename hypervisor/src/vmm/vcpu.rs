//! The hypervisor's vCPU: a backend (VMCS or VMCB) with its domain, its FPU state and
//! a starting state waiting to be loaded, kept in a fixed table of slots indexed by the
//! scheduler's [`VcpuId`].
//!
//! A CPU holds a vCPU's slot lock from the moment it loads the vCPU until it has put it
//! back ([`Vcpu::put`]): that lock, not the scheduler's bookkeeping, is what guarantees a
//! vCPU never runs on two CPUs and that its state is written back before another CPU
//! loads it (the scheduler may already have picked it elsewhere; that CPU waits).

use alloc::sync::Arc;

use ferrovisor::sched::VcpuId;
use ferrovisor::vcpu::VcpuInitState;

use super::domain::Domain;
use super::fpu::FpuState;
use super::{VirtCpu, svm, vmx};

/// Most vCPUs, all domains together (the scheduler's capacity).
pub const MAX_VCPUS: usize = 256;

/// A backend.
pub enum Backend {
    Svm(svm::SvmVcpu),
    Vmx(vmx::VmxVcpu),
}

/// One vCPU of a domain.
pub struct Vcpu {
    pub domain: Arc<Domain>,
    /// Its index in the domain (Xen's vCPU id).
    pub index: u32,
    pub backend: Backend,
    pub fpu: FpuState,
    /// A state given by `VCPUOP_initialise`, loaded when a CPU next loads the vCPU
    /// (a VMCS can only be written where it is current). Only vCPUs that never ran are
    /// initialised, so the FPU state is still the reset one.
    pub pending_state: Option<VcpuInitState>,
}

/// Why a vCPU could not be created.
#[derive(Debug)]
pub enum CreateError {
    NoVirtualization,
    Backend,
    OutOfMemory,
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoVirtualization => "this CPU has no usable virtualization",
            Self::Backend => "the VMCS/VMCB could not be set up (logged above)",
            Self::OutOfMemory => "no memory for the FPU state",
        })
    }
}

impl Vcpu {
    /// Creates vCPU `index` of `domain` on the calling CPU, in `state` (not loaded on
    /// any CPU).
    pub fn create(
        domain: &Arc<Domain>,
        index: u32,
        id: VcpuId,
        state: &VcpuInitState,
    ) -> Result<Self, CreateError> {
        let config = super::VcpuConfig {
            nested_root: domain.nested_root,
            // VPIDs are per vCPU (the scheduler id is unique among live vCPUs); 0 is
            // the host's.
            tag: id.0 as u16 + 1,
        };
        let backend = match super::this_cpu() {
            Some(VirtCpu::Svm(cpu)) => svm::SvmVcpu::new(cpu.nrips(), &config, state)
                .map(Backend::Svm)
                .map_err(|e| {
                    log::warn!("svm: {e}");
                    CreateError::Backend
                })?,
            Some(VirtCpu::Vmx(cpu)) => vmx::VmxVcpu::new(cpu, &config, state)
                .map(Backend::Vmx)
                .map_err(|e| {
                    log::warn!("vmx: {e}");
                    CreateError::Backend
                })?,
            None => return Err(CreateError::NoVirtualization),
        };
        let fpu = FpuState::new().ok_or(CreateError::OutOfMemory)?;
        Ok(Self {
            domain: domain.clone(),
            index,
            backend,
            fpu,
            pending_state: None,
        })
    }

    /// Makes the vCPU ready to run on the calling CPU: its VMCS current (VT-x) or this
    /// CPU's host state and an ASID (AMD-V), a pending starting state written, its FPU
    /// registers and XCR0 loaded. `Err` when the backend failed (the domain must be
    /// crashed).
    pub fn load(&mut self) -> Result<(), &'static str> {
        let cpu = crate::percpu::current();
        match (&mut self.backend, super::this_cpu()) {
            (Backend::Svm(b), Some(VirtCpu::Svm(c))) => b.load(c, cpu.index),
            (Backend::Vmx(b), Some(VirtCpu::Vmx(_))) => b.load().map_err(|e| {
                log::error!("vmx: load: {e}");
                "the VMCS could not be loaded"
            })?,
            _ => return Err("this CPU cannot run the vCPU's backend"),
        }
        if let Some(state) = self.pending_state.take() {
            match &mut self.backend {
                Backend::Svm(b) => b.set_state(&state),
                Backend::Vmx(b) => b.set_state(&state).map_err(|e| {
                    log::warn!("vmx: initial state: {e}");
                    "its starting state could not be loaded"
                })?,
            }
        }
        self.fpu.restore();
        // The guest's pvclock record must describe this CPU's clock from now on.
        match &self.backend {
            Backend::Svm(b) => super::exits::update_time_area(&self.domain, self.index, b),
            Backend::Vmx(b) => super::exits::update_time_area(&self.domain, self.index, b),
        }
        Ok(())
    }

    /// Frames this vCPU holds (VMCS or VMCB, intercept bitmaps, FPU area), for the
    /// domain's accounting.
    pub fn frames(&self) -> u64 {
        let backend = match self.backend {
            // VMCB, IOPM (16 KiB block), MSRPM (8 KiB).
            Backend::Svm(_) => 1 + 4 + 2,
            // VMCS, MSR bitmap, I/O bitmaps A and B.
            Backend::Vmx(_) => 1 + 1 + 2,
        };
        backend + self.fpu.frames()
    }

    /// The calling CPU stops running the vCPU: FPU registers saved, VMCS cleared.
    pub fn put(&mut self) {
        self.fpu.save();
        match &mut self.backend {
            Backend::Svm(b) => b.put(),
            Backend::Vmx(b) => b.put(),
        }
    }
}

/// The vCPU table, indexed by scheduler id.
pub static SLOTS: [spin::Mutex<Option<Vcpu>>; MAX_VCPUS] =
    [const { spin::Mutex::new(None) }; MAX_VCPUS];

/// Which slots are taken (a slot is reserved before its vCPU is built and freed after
/// it is destroyed).
static TAKEN: spin::Mutex<[bool; MAX_VCPUS]> = spin::Mutex::new([false; MAX_VCPUS]);

/// Reserves `count` free slot ids; `None` if there are not that many.
pub fn reserve_ids(count: usize, out: &mut [VcpuId]) -> Option<()> {
    let mut taken = TAKEN.lock();
    let free: alloc::vec::Vec<usize> = (0..MAX_VCPUS).filter(|&i| !taken[i]).take(count).collect();
    if free.len() < count {
        return None;
    }
    for (slot, &i) in out.iter_mut().zip(&free) {
        taken[i] = true;
        *slot = VcpuId(i as u32);
    }
    Some(())
}

/// Returns slot ids reserved by [`reserve_ids`] (their vCPUs destroyed).
pub fn release_ids(ids: &[VcpuId]) {
    let mut taken = TAKEN.lock();
    for id in ids {
        taken[id.0 as usize] = false;
    }
}
