//! Xen hypercall dispatch, written once for both vendors and tested on the host.
//!
//! The backend hands over the hypercall number and the five argument registers; every
//! guest pointer goes through [`GuestAccess`], which copies through the guest's own page
//! tables (the kernel's implementation) or a test double. Nothing here trusts an
//! argument: numbers, sub-ops, sizes and pointers are all checked, and every failure is
//! the errno Xen would return.

use crate::vcpu::VcpuInitState;
use crate::xen::XenErrno;
use crate::xen::features::HVM_DOMU_FEATURES;
use crate::xen::hypercall::{
    ConsoleIoOp, Hypercall, SchedOp, ShutdownReason, XenVersionOp, xen_version_word,
};
use crate::xen::poll::{PollAction, PortState, check_poll, parse_sched_poll};
use crate::xen::vcpu_op::{VCPU_HVM_CONTEXT_SIZE, VcpuOp, parse_hvm_context};

/// Longest console write taken in one call; longer ones are refused with -EINVAL so a
/// guest cannot make the hypervisor copy unbounded data with interrupts held off.
pub const CONSOLE_WRITE_MAX: usize = 4096;

/// `XENVER_extraversion`: what follows the version number.
pub const EXTRAVERSION: &[u8; 16] = b"-ferrovisor\0\0\0\0\0";

/// How the hypervisor reaches guest memory for a hypercall.
pub trait GuestAccess {
    /// Copies `buf.len()` bytes from guest-virtual `gva`; `Err(EFAULT)` if any byte is
    /// not mapped or not guest RAM.
    fn copy_from_guest(&self, gva: u64, buf: &mut [u8]) -> Result<(), XenErrno>;
    /// Copies `buf` to guest-virtual `gva`.
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> Result<(), XenErrno>;
}

/// What hypercalls need of the calling domain beyond its memory: its console and its
/// vCPUs. The kernel implements it over the real domain; tests over a model.
pub trait DomainEnv {
    /// Console output (`CONSOLEIO_write`), already copied in.
    fn console_write(&mut self, bytes: &[u8]);
    /// How many vCPUs the domain has (`max_vcpus`); ids are `0..count`.
    fn vcpu_count(&self) -> u32;
    /// Whether vCPU `vcpu` (< count) has been given its state (the first vCPU has).
    fn vcpu_initialised(&self, vcpu: u32) -> bool;
    /// Whether vCPU `vcpu` (< count) is up (runs, or may run).
    fn vcpu_is_up(&self, vcpu: u32) -> bool;
    /// Gives vCPU `vcpu` (< count, not initialised) its starting state. An error is
    /// returned to the guest (e.g. EEXIST when another vCPU won a race to initialise it).
    fn vcpu_initialise(&mut self, vcpu: u32, state: &VcpuInitState) -> Result<(), XenErrno>;
    /// Brings initialised vCPU `vcpu` up (a no-op if it is up).
    fn vcpu_up(&mut self, vcpu: u32) -> Result<(), XenErrno>;
    /// Takes vCPU `vcpu` (< count) down: it stops running and keeps its state, so
    /// `VCPUOP_up` resumes it (a no-op if it is down).
    fn vcpu_down(&mut self, vcpu: u32);
    /// The domain's handle (`xen_domain_handle_t`): its UUID, as `XENVER_guest_handle`
    /// returns it.
    fn handle(&self) -> [u8; 16];
    /// Records the guest-virtual address where vCPU `vcpu` (< count) wants its
    /// `vcpu_time_info` kept up to date (`VCPUOP_register_vcpu_time_memory_area`).
    fn register_time_area(&mut self, vcpu: u32, gva: u64) -> Result<(), XenErrno>;
}

/// What the caller does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Put this in RAX and resume after the VMCALL/VMMCALL.
    Return(i64),
    /// Return 0, and let the scheduler run someone else first if anyone is waiting
    /// (`SCHEDOP_yield`).
    Yield,
    /// Return 0 and block the vCPU until an event is pending for it or, with a
    /// deadline, until Xen system time (ns since boot) reaches it (`SCHEDOP_block`,
    /// `SCHEDOP_poll`; a spurious wake-up is allowed by the ABI).
    Block { deadline_ns: Option<u64> },
    /// The domain asked to shut down for this reason (it does not resume).
    Shutdown(ShutdownReason),
}

fn ret(result: Result<i64, XenErrno>) -> Outcome {
    Outcome::Return(result.unwrap_or_else(|e| e.as_return()))
}

/// Dispatches hypercall `number` with `args` (RDI, RSI, RDX, R10, R8) for a vCPU of
/// the domain `env` describes.
pub fn dispatch(
    number: u64,
    args: [u64; 5],
    guest: &mut impl GuestAccess,
    env: &mut impl DomainEnv,
) -> Outcome {
    match Hypercall::from_raw(number) {
        Some(Hypercall::XenVersion) => ret(xen_version(args, guest, env)),
        Some(Hypercall::ConsoleIo) => ret(console_io(args, guest, env)),
        Some(Hypercall::SchedOp) => sched_op(args, guest),
        Some(Hypercall::VcpuOp) if sub_op(args[0]) == VcpuOp::Down as u32 => vcpu_down(args, env),
        Some(Hypercall::VcpuOp) => ret(vcpu_op(args, guest, env)),
        _ => ret(Err(XenErrno::ENOSYS)),
    }
}

/// Sub-op arguments are C `int`s: the upper half of the register is ignored, as Xen's
/// prototypes make it.
fn sub_op(arg: u64) -> u32 {
    arg as u32
}

fn xen_version(
    args: [u64; 5],
    guest: &mut impl GuestAccess,
    env: &impl DomainEnv,
) -> Result<i64, XenErrno> {
    match XenVersionOp::from_raw(sub_op(args[0])) {
        Some(XenVersionOp::Version) => Ok(i64::from(xen_version_word())),
        Some(XenVersionOp::Extraversion) => {
            guest.copy_to_guest(args[1], EXTRAVERSION)?;
            Ok(0)
        }
        Some(XenVersionOp::GetFeatures) => {
            // xen_feature_info { uint submap_idx; uint32 submap; } (version.h)
            let mut index = [0u8; 4];
            guest.copy_from_guest(args[1], &mut index)?;
            let submap = match u32::from_le_bytes(index) {
                0 => HVM_DOMU_FEATURES,
                _ => 0,
            };
            guest.copy_to_guest(args[1] + 4, &submap.to_le_bytes())?;
            Ok(0)
        }
        Some(XenVersionOp::GuestHandle) => {
            // xen_domain_handle_t: the domain's 16-byte UUID.
            guest.copy_to_guest(args[1], &env.handle())?;
            Ok(0)
        }
        // Other queries describe a Xen build we are not; refuse them plainly.
        _ => Err(XenErrno::ENOSYS),
    }
}

fn console_io(
    args: [u64; 5],
    guest: &mut impl GuestAccess,
    env: &mut impl DomainEnv,
) -> Result<i64, XenErrno> {
    match ConsoleIoOp::from_raw(sub_op(args[0])) {
        Some(ConsoleIoOp::Write) => {
            let count = usize::try_from(args[1]).map_err(|_| XenErrno::EINVAL)?;
            if count > CONSOLE_WRITE_MAX {
                return Err(XenErrno::EINVAL);
            }
            let mut buffer = [0u8; CONSOLE_WRITE_MAX];
            let bytes = &mut buffer[..count];
            guest.copy_from_guest(args[2], bytes)?;
            env.console_write(bytes);
            Ok(0)
        }
        // Console input arrives with the control domain; nothing to read yet.
        Some(ConsoleIoOp::Read) => Ok(0),
        None => Err(XenErrno::ENOSYS),
    }
}

fn sched_op(args: [u64; 5], guest: &mut impl GuestAccess) -> Outcome {
    match SchedOp::from_raw(sub_op(args[0])) {
        Some(SchedOp::Yield) => Outcome::Yield,
        Some(SchedOp::Block) => Outcome::Block { deadline_ns: None },
        Some(SchedOp::Poll) => match sched_poll(args, guest) {
            Ok(outcome) => outcome,
            Err(e) => ret(Err(e)),
        },
        Some(SchedOp::Shutdown) => {
            let mut reason = [0u8; 4];
            if let Err(e) = guest.copy_from_guest(args[1], &mut reason) {
                return ret(Err(e));
            }
            match ShutdownReason::from_raw(u32::from_le_bytes(reason)) {
                Some(reason) => Outcome::Shutdown(reason),
                None => ret(Err(XenErrno::EINVAL)),
            }
        }
        _ => ret(Err(XenErrno::ENOSYS)),
    }
}

/// `SCHEDOP_poll`: the `sched_poll` copied in whole, then Xen's `do_poll()` checks
/// (`crate::xen::poll`). There are no event channels yet: no event is ever waiting and
/// every port is unusable, so only `nr_ports = 0` blocks (until its timeout).
fn sched_poll(args: [u64; 5], guest: &mut impl GuestAccess) -> Result<Outcome, XenErrno> {
    let mut bytes = [0u8; 24];
    guest.copy_from_guest(args[1], &mut bytes)?;
    let poll = parse_sched_poll(&bytes);
    let action = check_poll(
        &poll,
        false,
        |index| {
            let mut port = [0u8; 4];
            let at = poll
                .ports
                .checked_add(u64::from(index) * 4)
                .ok_or(XenErrno::EFAULT)?;
            guest.copy_from_guest(at, &mut port)?;
            Ok(u32::from_le_bytes(port))
        },
        |_| PortState::Unusable,
    )?;
    Ok(match action {
        PollAction::Ready => Outcome::Return(0),
        PollAction::Block { deadline_ns, .. } => Outcome::Block { deadline_ns },
    })
}

/// `VCPUOP_down`, as Xen's `do_vcpu_op`: taking down the domain's last vCPU that is up
/// shuts the domain down (poweroff) instead; otherwise the vCPU stops, keeping its
/// state for `VCPUOP_up`. A vCPU may take itself down: it resumes after the call, with
/// 0, once brought up again.
fn vcpu_down(args: [u64; 5], env: &mut impl DomainEnv) -> Outcome {
    let vcpu = args[1] as u32;
    if vcpu >= env.vcpu_count() {
        return ret(Err(XenErrno::ENOENT));
    }
    let others_up = (0..env.vcpu_count()).any(|v| v != vcpu && env.vcpu_is_up(v));
    if !others_up {
        return Outcome::Shutdown(ShutdownReason::Poweroff);
    }
    env.vcpu_down(vcpu);
    Outcome::Return(0)
}

/// `vcpu_op(cmd, vcpuid, arg)` for the calling domain's own vCPUs (Xen's
/// `do_vcpu_op` and its HVM `arch_initialise_vcpu`): an id beyond the domain's vCPUs is
/// -ENOENT; initialising an initialised vCPU is -EEXIST; bringing up one that was
/// never initialised is -EINVAL; the context is copied in whole and validated before
/// anything changes.
fn vcpu_op(
    args: [u64; 5],
    guest: &mut impl GuestAccess,
    env: &mut impl DomainEnv,
) -> Result<i64, XenErrno> {
    let op = VcpuOp::from_raw(sub_op(args[0])).ok_or(XenErrno::ENOSYS)?;
    // vcpuid is an unsigned int in the prototype.
    let vcpu = args[1] as u32;
    if vcpu >= env.vcpu_count() {
        return Err(XenErrno::ENOENT);
    }
    match op {
        VcpuOp::Initialise => {
            if env.vcpu_initialised(vcpu) {
                return Err(XenErrno::EEXIST);
            }
            let mut bytes = [0u8; VCPU_HVM_CONTEXT_SIZE];
            guest.copy_from_guest(args[2], &mut bytes)?;
            let state = parse_hvm_context(&bytes).map_err(|_| XenErrno::EINVAL)?;
            env.vcpu_initialise(vcpu, &state)?;
            Ok(0)
        }
        VcpuOp::Up => {
            if !env.vcpu_initialised(vcpu) {
                return Err(XenErrno::EINVAL);
            }
            env.vcpu_up(vcpu)?;
            Ok(0)
        }
        VcpuOp::IsUp => Ok(i64::from(env.vcpu_is_up(vcpu))),
        VcpuOp::RegisterVcpuTimeMemoryArea => {
            // struct vcpu_register_time_memory_area: one guest address (a union of a
            // handle, a pointer and a uint64_t).
            let mut address = [0u8; 8];
            guest.copy_from_guest(args[2], &mut address)?;
            env.register_time_area(vcpu, u64::from_le_bytes(address))?;
            Ok(0)
        }
        // Timers, runstate areas and vcpu_info registration come with event channels;
        // taking a vCPU down with the domain's own vCPU hot-unplug later.
        _ => Err(XenErrno::ENOSYS),
    }
}

#[cfg(test)]
mod tests;
