//! Finding Xen's CPUID leaves, installing the hypercall page, and calling through it
//! (x86-64 HVM ABI: number selects the 32-byte stub; arguments in RDI, RSI, RDX, R10,
//! R8; result in RAX; Xen may clobber the argument registers).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::abi;

/// The hypercall page: written by the hypervisor when we tell it our page's address.
#[repr(C, align(4096))]
struct HypercallPage([u8; 4096]);

static mut HYPERCALL_PAGE: HypercallPage = HypercallPage([0xC3; 4096]);
static XEN_CPUID_BASE: AtomicU32 = AtomicU32::new(0);

/// CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The base of Xen's CPUID leaves, searched as Xen documents (0x40000000 + n*0x100).
pub fn find_xen_leaves() -> Option<u32> {
    (abi::XEN_CPUID_FIRST_LEAF..0x4001_0000)
        .step_by(0x100)
        .find(|&base| {
            let [eax, ebx, ecx, edx] = cpuid(base, 0);
            let mut signature = [0u8; 12];
            signature[..4].copy_from_slice(&ebx.to_le_bytes());
            signature[4..8].copy_from_slice(&ecx.to_le_bytes());
            signature[8..].copy_from_slice(&edx.to_le_bytes());
            &signature == abi::XEN_CPUID_SIGNATURE && eax >= base + 2
        })
}

/// Base of Xen's leaves once `init` found them.
pub fn xen_cpuid_base() -> u32 {
    XEN_CPUID_BASE.load(Ordering::Relaxed)
}

fn page_address() -> u64 {
    (&raw const HYPERCALL_PAGE) as u64
}

/// The address of hypercall `number`'s stub, for assembly that must make a hypercall
/// without leaving its asm block (it calls the stub with the arguments in RDI, RSI,
/// RDX and treats RAX, RDI, RSI, RDX, R10 and R8 as clobbered).
pub fn stub_address(number: u32) -> u64 {
    page_address() + u64::from(number) * abi::HYPERCALL_STUB_SIZE
}

/// Finds Xen and installs the hypercall page through the MSR leaf base+2 names.
pub fn init() -> Result<(), &'static str> {
    let base = find_xen_leaves()
        .ok_or("no Xen CPUID leaves: not running on a Xen-compatible hypervisor")?;
    XEN_CPUID_BASE.store(base, Ordering::Relaxed);
    let [pages, msr, _, _] = cpuid(base + 2, 0);
    if pages < 1 {
        return Err("the hypervisor offers no hypercall page");
    }
    // SAFETY: writing the hypercall-page MSR Xen names (leaf base+2 EBX) with the
    // guest-physical address of our page asks the hypervisor to fill it (Xen ABI).
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") page_address() as u32, in("edx") (page_address() >> 32) as u32, options(nostack))
    };
    Ok(())
}

/// A hypercall with up to three arguments.
///
/// # Safety
/// Pointer arguments must be valid for what the hypercall does with them.
pub unsafe fn hypercall3(number: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let stub = stub_address(number);
    let ret: i64;
    // SAFETY: the stub is the hypervisor's code for `number` in our hypercall page; it
    // clobbers at most RAX and the argument registers, and returns with RET.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            lateout("r10") _,
            lateout("r8") _,
            lateout("rax") ret,
        )
    };
    ret
}

/// `SCHEDOP_shutdown` with `reason`; does not return (halts if it does).
pub fn shutdown(reason: u32) -> ! {
    let arg = reason;
    // SAFETY: sched_shutdown is one u32, read from a live local.
    unsafe {
        hypercall3(
            abi::HYPERVISOR_SCHED_OP,
            abi::SCHEDOP_SHUTDOWN,
            (&raw const arg) as u64,
            0,
        )
    };
    halt_forever()
}

/// `SCHEDOP_yield`: lets another vCPU run on this physical CPU.
pub fn sched_yield() -> i64 {
    // SAFETY: SCHEDOP_yield takes no pointer.
    unsafe { hypercall3(abi::HYPERVISOR_SCHED_OP, abi::SCHEDOP_YIELD, 0, 0) }
}

/// `SCHEDOP_block`: sleeps until an event; may return at once (spurious wake-ups are
/// allowed by the ABI), so callers re-check what they wait for.
pub fn sched_block() -> i64 {
    // SAFETY: SCHEDOP_block takes no pointer.
    unsafe { hypercall3(abi::HYPERVISOR_SCHED_OP, abi::SCHEDOP_BLOCK, 0, 0) }
}

/// `SCHEDOP_poll`: blocks until one of `poll.nr_ports` event channel ports at
/// `poll.ports` is pending or the system time reaches `poll.timeout` (0: no timeout);
/// 0 when woken, or a negative errno. Safe for any `poll`: the hypervisor only reads the
/// structure and the ports, and refuses a bad array with -EFAULT.
pub fn sched_poll(poll: &abi::SchedPoll) -> i64 {
    // SAFETY: the argument is a live reference; SCHEDOP_poll writes no guest memory.
    unsafe {
        hypercall3(
            abi::HYPERVISOR_SCHED_OP,
            abi::SCHEDOP_POLL,
            core::ptr::from_ref(poll) as u64,
            0,
        )
    }
}

/// Stops the vCPU.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI; HLT only stops this vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
