//! Waiting for work: HLT, or MONITOR/MWAIT where the CPU has it (SDM Vol. 2B MWAIT,
//! Vol. 3A §10.10.4), so another CPU can wake an idle one with a plain store to its
//! wake word instead of an IPI.

use core::sync::atomic::{AtomicU64, Ordering};

/// Whether MONITOR/MWAIT is available (CPUID.1:ECX bit 3).
pub fn has_mwait() -> bool {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_monitor_mwait())
}

/// Sleeps until an interrupt arrives, or (with MWAIT) until `wake` is written.
/// Enables interrupts: the caller must have disabled them and checked for work first,
/// so a wake-up between that check and the sleep is not lost (STI's one-instruction
/// shadow covers the HLT/MWAIT that follows).
pub fn wait_for_interrupt_or_store(wake: &AtomicU64, use_mwait: bool) {
    if !use_mwait {
        x86_64::instructions::interrupts::enable_and_hlt();
        return;
    }
    let address = wake as *const AtomicU64;
    // SAFETY: MONITOR only arms address-range monitoring on a valid, mapped address
    // (a live reference); it has no other effect.
    unsafe {
        core::arch::asm!("monitor", in("rax") address, in("ecx") 0, in("edx") 0, options(nostack, preserves_flags))
    };
    if wake.load(Ordering::Acquire) != 0 {
        x86_64::instructions::interrupts::enable();
        return;
    }
    // SAFETY: MWAIT with hints 0 (C1) and extensions 0 waits for a store to the
    // monitored line or an interrupt; STI right before it makes the pair atomic with
    // respect to interrupts, as with STI; HLT.
    unsafe { core::arch::asm!("sti", "mwait", in("eax") 0, in("ecx") 0, options(nostack)) };
}
