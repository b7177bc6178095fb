//! Secondary vCPUs, the Xen way for HVM/PVH guests: `VCPUOP_initialise` with a
//! `vcpu_hvm_context` (64-bit mode, this vCPU's paging state), then `VCPUOP_up`. The new
//! vCPU enters `guest_ap_trampoline` on its own static stack, loads the guest's GDT,
//! segments and IDT, and calls the entry function registered for it.
//!
//! Also the timing helpers multi-vCPU and scheduling tests share: the TSC, its rate
//! from Xen's CPUID leaf base+3, and a bounded, yielding wait.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::abi::{self, VcpuHvmContext, VcpuHvmX86_64};
use crate::hypercall::{self, cpuid};
/// Reading `key=N` options such as `vcpus=4` (it lives with the start info, where host
/// unit tests reach it).
pub use crate::start_info::cmdline_value;

/// vCPUs this library can run (ids 0..MAX_VCPUS); Ferrovisor's tests use at most 4.
pub const MAX_VCPUS: u32 = 8;

/// Stack bytes per secondary vCPU.
const STACK_SIZE: usize = 64 * 1024;

/// Polls [`wait_until`] makes when the TSC rate is unknown: it has no clock to bound
/// the wait with, so it bounds the work instead.
const POLLS_WITHOUT_CLOCK: u64 = 50_000_000;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// One stack per secondary vCPU (id k uses index k - 1; vCPU 0 runs on the boot
/// stack). Only the owning vCPU touches its stack, through RSP.
static mut STACKS: [Stack; MAX_VCPUS as usize - 1] =
    [const { Stack([0; STACK_SIZE]) }; MAX_VCPUS as usize - 1];

/// The entry function each vCPU runs (`fn(u32) -> !` as an address; 0: none yet),
/// written by `start_vcpu` before the vCPU exists, read by the vCPU itself.
static ENTRIES: [AtomicUsize; MAX_VCPUS as usize] =
    [const { AtomicUsize::new(0) }; MAX_VCPUS as usize];

core::arch::global_asm!(
    r#"
    .section .text.guest_ap, "ax"
    .code64
    .global guest_ap_trampoline
guest_ap_trampoline:
    /* VCPUOP_initialise leaves GDTR unset: load ours before touching a segment. */
    lgdt [rip + guest_gdt_pointer]
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    /* CS is the hypervisor's flat 64-bit code segment: reload it from our GDT, so an
       IRETQ from an exception handler finds the selector it pushed. */
    push 0x08
    lea rax, [rip + 2f]
    push rax
    retfq
2:
    /* RDI = vCPU id, RSP = the top of its stack, 16-byte aligned: the call leaves the
       stack as the SysV ABI expects at a function's entry. */
    xor ebp, ebp
    call guest_ap_main
    ud2
    "#
);

unsafe extern "C" {
    static guest_ap_trampoline: u8;
}

/// Rust entry of a secondary vCPU, called by `guest_ap_trampoline` with its id.
#[unsafe(no_mangle)]
extern "C" fn guest_ap_main(id: u32) -> ! {
    // Before anything can fault: the IDT turns a fault into a report, not a
    // triple fault that would take the whole domain down silently.
    crate::exceptions::load();
    let entry = ENTRIES
        .get(id as usize)
        .map_or(0, |slot| slot.load(Ordering::Acquire));
    if entry == 0 {
        // Started by something other than `start_vcpu`: nothing to run.
        hypercall::halt_forever();
    }
    // SAFETY: only `start_vcpu` writes a non-zero value to ENTRIES, and it writes the
    // address of a `fn(u32) -> !`, so this turns it back into that same function.
    let entry = unsafe { core::mem::transmute::<usize, fn(u32) -> !>(entry) };
    entry(id)
}

/// `HYPERVISOR_vcpu_op(cmd, vcpu, arg)`: the hypervisor's result (negative errno on
/// failure).
///
/// # Safety
/// `arg` must be what `cmd` expects: NULL, or for `VCPUOP_initialise` the address of a
/// live `vcpu_hvm_context` (the hypervisor only reads it), or an address the
/// hypervisor must refuse.
pub unsafe fn vcpu_op(cmd: u64, vcpu: u32, arg: u64) -> i64 {
    // SAFETY: the caller vouches for `arg` (see above); vcpu_op writes no guest memory
    // for the commands this library uses.
    unsafe { hypercall::hypercall3(abi::HYPERVISOR_VCPU_OP, cmd, u64::from(vcpu), arg) }
}

/// `VCPUOP_is_up(vcpu)`: 1 up, 0 down, or a negative errno (`-ENOENT`: no such vCPU).
pub fn is_up(vcpu: u32) -> i64 {
    // SAFETY: VCPUOP_is_up takes no pointer.
    unsafe { vcpu_op(abi::VCPUOP_IS_UP, vcpu, 0) }
}

/// `VCPUOP_up(vcpu)`: 0 or a negative errno.
pub fn up(vcpu: u32) -> i64 {
    // SAFETY: VCPUOP_up takes no pointer.
    unsafe { vcpu_op(abi::VCPUOP_UP, vcpu, 0) }
}

/// `VCPUOP_down(vcpu)`: 0 or a negative errno. The vCPU stops, keeping its state, until
/// `up`; taking down the last vCPU that is up powers the domain off (Xen).
pub fn down(vcpu: u32) -> i64 {
    // SAFETY: VCPUOP_down takes no pointer.
    unsafe { vcpu_op(abi::VCPUOP_DOWN, vcpu, 0) }
}

/// `VCPUOP_initialise(vcpu, context)`: 0 or a negative errno.
pub fn initialise(vcpu: u32, context: &VcpuHvmContext) -> i64 {
    let arg = core::ptr::from_ref(context) as u64;
    // SAFETY: the context is a live reference; the hypervisor only reads it.
    unsafe { vcpu_op(abi::VCPUOP_INITIALISE, vcpu, arg) }
}

/// The domain's vCPU count: `VCPUOP_is_up` for ids 0, 1, ... until it fails (Xen
/// answers `-ENOENT` past the last vCPU; any other error also ends the count, so a
/// hypervisor without vcpu_op yields 0), at most [`MAX_VCPUS`].
pub fn vcpu_count() -> u32 {
    (0..MAX_VCPUS)
        .find(|&id| is_up(id) < 0)
        .unwrap_or(MAX_VCPUS)
}

/// The running vCPU's id: Xen's CPUID leaf base+4 EBX when it says the id is there
/// (`XEN_HVM_CPUID_VCPU_ID_PRESENT`), else 0.
pub fn current_vcpu() -> u32 {
    let base = hypercall::xen_cpuid_base();
    if base == 0 {
        return 0;
    }
    let [flags, id, _, _] = cpuid(base + 4, 0);
    if flags & abi::XEN_HVM_CPUID_VCPU_ID_PRESENT != 0 {
        id
    } else {
        0
    }
}

/// CR0, CR3, CR4 and EFER of the running vCPU.
fn paging_state() -> [u64; 4] {
    let (cr0, cr3, cr4): (u64, u64, u64);
    // SAFETY: reading a control register has no side effects (CPL 0).
    unsafe { core::arch::asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack)) };
    // SAFETY: as above.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack)) };
    // SAFETY: as above.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
    let (low, high): (u32, u32);
    // SAFETY: RDMSR of IA32_EFER (0xC0000080), which every long-mode CPU has.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") 0xC000_0080u32, out("eax") low, out("edx") high, options(nomem, nostack))
    };
    [cr0, cr3, cr4, u64::from(high) << 32 | u64::from(low)]
}

/// A 64-bit `vcpu_hvm_context` that starts a vCPU at `rip` with `rsp` and `rdi`, in
/// the running vCPU's paging mode (its CR0, CR3, CR4 and EFER), interrupts off.
pub fn context_64(rip: u64, rsp: u64, rdi: u64) -> VcpuHvmContext {
    let [cr0, cr3, cr4, efer] = paging_state();
    VcpuHvmContext::new_64(VcpuHvmX86_64 {
        rsp,
        rdi,
        rip,
        // Only the always-one bit: IF clear (no interrupt handlers), DF clear.
        rflags: 0x2,
        cr0,
        cr3,
        cr4,
        efer,
        ..VcpuHvmX86_64::default()
    })
}

/// Starts vCPU `id` running `entry(id)` on its own stack, with this vCPU's paging
/// state, GDT and IDT. `Err` holds the hypervisor's errno (negative), or `-EINVAL`
/// for an id this library has no stack for (0, which is running, or >= MAX_VCPUS) and
/// `-EEXIST` for an id it already started.
pub fn start_vcpu(id: u32, entry: fn(u32) -> !) -> Result<(), i64> {
    if id == 0 || id >= MAX_VCPUS {
        return Err(abi::EINVAL);
    }
    // Registered before the vCPU can run, and only once: a vCPU already running must
    // never see its entry replaced.
    ENTRIES[id as usize]
        .compare_exchange(0, entry as usize, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| abi::EEXIST)?;
    let stack_top = (&raw mut STACKS) as u64 + u64::from(id) * STACK_SIZE as u64;
    let trampoline = (&raw const guest_ap_trampoline) as u64;
    let context = context_64(trampoline, stack_top, u64::from(id));
    let ret = initialise(id, &context);
    if ret < 0 {
        // Not initialised, so it never ran: the slot may be registered again.
        ENTRIES[id as usize].store(0, Ordering::Release);
        return Err(ret);
    }
    match up(id) {
        ret if ret < 0 => Err(ret),
        _ => Ok(()),
    }
}

/// The time-stamp counter (RDTSC, not serialising: for deadlines and intervals, not
/// for timing single instructions).
pub fn tsc() -> u64 {
    // SAFETY: RDTSC is allowed at CPL 0 in the guest and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The guest TSC rate in kHz, from Xen's CPUID leaf base+3 sub-leaf 0 ECX; `None` when
/// the leaf is missing or reports 0 (unknown).
pub fn tsc_khz() -> Option<u64> {
    let base = hypercall::xen_cpuid_base();
    if base == 0 || cpuid(base, 0)[0] < base + 3 {
        return None;
    }
    let [_, _, khz, _] = cpuid(base + 3, 0);
    (khz != 0).then_some(u64::from(khz))
}

/// Polls `done`, yielding the vCPU in between, until it holds or `timeout_ms` of TSC
/// time passed (TSC rate unknown: 50 million polls). Returns whether `done` held.
pub fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tsc_khz().map(|khz| tsc().saturating_add(timeout_ms.saturating_mul(khz)));
    let mut polls = 0u64;
    loop {
        if done() {
            return true;
        }
        polls += 1;
        let expired = match deadline {
            Some(deadline) => tsc() >= deadline,
            None => polls >= POLLS_WITHOUT_CLOCK,
        };
        if expired {
            return done();
        }
        hypercall::sched_yield();
    }
}
