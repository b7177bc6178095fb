//! Guest FPU/SSE/AVX state and XCR0, per vCPU.
//!
//! The hypervisor itself never uses x87, SSE or AVX registers (the `x86_64-unknown-none`
//! target is soft-float), so a vCPU's vector state stays live in the registers across its
//! exits: nothing is saved on the exit fast path. It is saved when the vCPU stops running
//! on a CPU ([`FpuState::save`], from the scheduler's switch) and restored when a CPU
//! starts running it ([`FpuState::restore`]), so vCPUs sharing a CPU never see each
//! other's registers and a vCPU may move between CPUs.
//!
//! XCR0 belongs to the guest while it runs (it is not switched by VM entry or exit on
//! either vendor): it is set to the vCPU's value on restore and by an intercepted
//! XSETBV. Saving and restoring run with XCR0 = every component the CPU supports, so the
//! whole register state moves, including components the guest's XCR0 leaves out (legacy
//! SSE works with XCR0 = x87 alone).
//!
//! SDM Vol. 1 §13 (XSAVE feature set), Vol. 3A §2.6 (XCR0).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::memory::{alloc_zeroed, free, phys_to_virt};

/// XCR0 bit 0: x87 state (always set).
pub const XCR0_X87: u64 = 1 << 0;
/// XCR0 bit 1: SSE state (XMM registers, MXCSR).
pub const XCR0_SSE: u64 = 1 << 1;
/// XCR0 bit 2: AVX state (upper halves of YMM).
pub const XCR0_AVX: u64 = 1 << 2;
/// XCR0 bits 7:5: AVX-512 state (opmask, ZMM_Hi256, Hi16_ZMM), enabled together.
pub const XCR0_AVX512: u64 = 0b111 << 5;
/// The user state components Ferrovisor switches: x87, SSE, AVX, MPX (3-4), AVX-512
/// and PKRU (9). Larger ones (AMX tiles) stay disabled in the host's XCR0.
const XCR0_HANDLED: u64 = 0x2FF;

const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_OSXSAVE: u64 = 1 << 18;

/// Every component this machine's CPUs support and Ferrovisor switches (0 without
/// XSAVE: FXSAVE is used then). The same on every CPU; set by the first CPU enabled.
static HOST_XCR0: AtomicU64 = AtomicU64::new(0);
/// Bytes of the XSAVE area for [`HOST_XCR0`] (512 for FXSAVE).
static AREA_SIZE: AtomicU64 = AtomicU64::new(512);

/// The components a guest's XCR0 may contain on this machine (policy permitting).
pub fn host_xcr0() -> u64 {
    HOST_XCR0.load(Ordering::Relaxed)
}

/// XSETBV: sets XCR0.
///
/// # Safety
/// CR4.OSXSAVE is set and `value` is a valid XCR0 for this CPU (bit 0 set, supported
/// components only, dependent bits together), else it faults.
unsafe fn xsetbv(value: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "xsetbv",
            in("ecx") 0u32,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags),
        )
    };
}

/// XGETBV of XCR0 (CR4.OSXSAVE must be set).
fn xgetbv() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: only called after `enable_on_this_cpu` set CR4.OSXSAVE (HOST_XCR0 != 0);
    // XGETBV of XCR0 only reads it.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") high,
            options(nomem, nostack, preserves_flags))
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// Makes FXSAVE/XSAVE usable on the calling CPU: CR4.OSFXSR and OSXMMEXCPT (so FXSAVE
/// covers XMM), and with XSAVE, CR4.OSXSAVE and XCR0 = every handled component the CPU
/// supports. Call on every CPU before it runs a vCPU.
pub fn enable_on_this_cpu() {
    let has_xsave = raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_xsave());
    let mut cr4 = x86_64::registers::control::Cr4::read_raw();
    cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT;
    if has_xsave {
        cr4 |= CR4_OSXSAVE;
    }
    // SAFETY: OSFXSR/OSXMMEXCPT only let FXSAVE/FXRSTOR and SSE exceptions work as
    // architected; OSXSAVE is set only when CPUID reports XSAVE. The hypervisor's own
    // code uses no SSE, so nothing else changes.
    unsafe { x86_64::registers::control::Cr4::write_raw(cr4) };
    if !has_xsave {
        return;
    }
    // CPUID.(EAX=0DH, ECX=0): EDX:EAX = the XCR0 bits the CPU supports (SDM Vol. 1
    // §13.2); ECX = the area size for all of them, EBX for those enabled in XCR0.
    let leaf = core::arch::x86_64::__cpuid_count(0xD, 0);
    let supported = ((u64::from(leaf.edx) << 32) | u64::from(leaf.eax)) & XCR0_HANDLED;
    // MPX (bits 3-4) and AVX-512 (bits 5-7) are all-or-nothing; a CPU reports them so.
    // SAFETY: OSXSAVE is set; `supported` is what CPUID reports, which is a valid XCR0.
    unsafe { xsetbv(supported | XCR0_X87) };
    let size = u64::from(core::arch::x86_64::__cpuid_count(0xD, 0).ebx);
    HOST_XCR0.store(supported | XCR0_X87, Ordering::Relaxed);
    AREA_SIZE.fetch_max(size, Ordering::Relaxed);
}

/// One vCPU's FPU/SSE/AVX registers while it is not on a CPU, and its XCR0.
pub struct FpuState {
    /// Physical address of the XSAVE (or FXSAVE) area, 64-byte aligned.
    area: u64,
    order: u8,
    /// The guest's XCR0 (1 at reset).
    pub xcr0: u64,
}

/// x87 control word at reset (SDM Vol. 1 §8.1.5), at offset 0 of the legacy area.
const FCW_RESET: u16 = 0x037F;
/// MXCSR at reset (SDM Vol. 1 §10.2.3), at offset 24 of the legacy area.
const MXCSR_RESET: u32 = 0x1F80;

impl FpuState {
    /// The reset state: x87 and SSE in their initial configuration, XCR0 = x87. `None`
    /// when no memory is left.
    pub fn new() -> Option<Self> {
        let size = AREA_SIZE.load(Ordering::Relaxed);
        let order = if size <= 4096 { 0 } else { 1 };
        let area = alloc_zeroed(order)?;
        let legacy = phys_to_virt(area) as *mut u8;
        // SAFETY: the area was just allocated to us, mapped by the direct map and at
        // least 512 bytes; FCW is at offset 0 and MXCSR at offset 24 (SDM Vol. 1 Table
        // 10-2). XSTATE_BV stays 0, so XRSTOR puts every component in its initial state
        // but loads MXCSR from here.
        unsafe { (legacy as *mut u16).write(FCW_RESET) };
        // SAFETY: as above.
        unsafe { (legacy.wrapping_add(24) as *mut u32).write(MXCSR_RESET) };
        Some(Self {
            area,
            order,
            xcr0: XCR0_X87,
        })
    }

    /// Frames the area takes.
    pub fn frames(&self) -> u64 {
        1 << self.order
    }

    /// Stores the calling CPU's FPU/vector registers here. Call when the vCPU stops
    /// running on this CPU, before any other vCPU's state is loaded.
    pub fn save(&mut self) {
        let target = phys_to_virt(self.area);
        let host = host_xcr0();
        if host == 0 {
            // SAFETY: a 512-byte, 16-byte-aligned area of ours; CR4.OSFXSR is set.
            unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) target, options(nostack)) };
            return;
        }
        // The guest's XCR0 as it is now: XSETBV is intercepted and tracked in
        // `set_xcr0`, but an implementation that does not honour the intercept (QEMU's
        // AMD-V emulation) lets the guest write XCR0 directly, and its value must
        // survive the switch all the same.
        self.xcr0 = xgetbv();
        if self.xcr0 != host {
            // SAFETY: OSXSAVE is set on every CPU that runs vCPUs; `host` is valid.
            unsafe { xsetbv(host) };
        }
        // SAFETY: the area is ours, 64-byte aligned and AREA_SIZE bytes, enough for
        // every component in XCR0 = `host`; EDX:EAX = all ones saves them all.
        unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) target, in("eax") u32::MAX,
                in("edx") u32::MAX, options(nostack))
        };
    }

    /// Loads this vCPU's registers and XCR0 on the calling CPU. Call when a CPU starts
    /// running the vCPU.
    pub fn restore(&self) {
        let source = phys_to_virt(self.area);
        let host = host_xcr0();
        if host == 0 {
            // SAFETY: our FXSAVE image (written by `new` or `save`); CR4.OSFXSR is set.
            unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) source, options(nostack)) };
            return;
        }
        if xgetbv() != host {
            // SAFETY: as in `save`.
            unsafe { xsetbv(host) };
        }
        // SAFETY: our XSAVE image in the standard format, written by `new` (zero header)
        // or by `save` under the same XCR0, so XRSTOR's checks pass.
        unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) source, in("eax") u32::MAX,
                in("edx") u32::MAX, options(nostack))
        };
        if self.xcr0 != host {
            // SAFETY: `xcr0` was validated against the CPU's support when the guest set
            // it (`set_xcr0`) or is the reset value.
            unsafe { xsetbv(self.xcr0) };
        }
    }

    /// A guest XSETBV of XCR0 to `value`, already checked against what the domain may
    /// enable (`checked_xcr0`). Takes effect at once: the vCPU is on this CPU.
    pub fn set_xcr0(&mut self, value: u64) {
        self.xcr0 = value;
        // SAFETY: `value` passed `checked_xcr0`, which only allows supported components
        // in valid combinations; OSXSAVE is set (XSETBV exits only when it is).
        unsafe { xsetbv(value) };
    }
}

/// Whether a guest may load `value` into XCR`xcr`, as the CPU would decide (SDM Vol. 2D
/// XSETBV: #GP(0) unless ECX = 0, bit 0 set, AVX only with SSE, AVX-512's three bits
/// together and only with AVX, MPX's two bits together) restricted to `allowed` (the
/// domain's CPUID policy and the host's support).
pub fn checked_xcr0(xcr: u32, value: u64, allowed: u64) -> Option<u64> {
    let valid = xcr == 0
        && value & XCR0_X87 != 0
        && value & !(allowed & host_xcr0()) == 0
        && (value & XCR0_AVX == 0 || value & XCR0_SSE != 0)
        && (value & XCR0_AVX512 == 0
            || (value & XCR0_AVX512 == XCR0_AVX512 && value & XCR0_AVX != 0))
        && (value & 0x18 == 0 || value & 0x18 == 0x18);
    valid.then_some(value)
}

impl Drop for FpuState {
    fn drop(&mut self) {
        free(self.area, self.order);
    }
}
