//! The local APIC, in x2APIC mode when the CPU has it and xAPIC (MMIO) mode otherwise
//! (SDM Vol. 3A Chapter 11; x2APIC: §11.12).
//!
//! Register access is typed: [`ApicRegister`] lists the registers Ferrovisor uses with
//! their xAPIC MMIO offsets; x2APIC MSR numbers derive from them (MSR 0x800 + offset/16,
//! §11.12.1.2). There is no way to touch an arbitrary offset or MSR.

use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (SDM Vol. 3A §11.4.4).
const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// IA32_TSC_DEADLINE (SDM Vol. 3A §11.5.4.1).
const IA32_TSC_DEADLINE: u32 = 0x6E0;

/// Local APIC registers used by Ferrovisor, as xAPIC MMIO offsets (SDM Vol. 3A Table 11-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ApicRegister {
    Id = 0x20,
    Version = 0x30,
    TaskPriority = 0x80,
    EndOfInterrupt = 0xB0,
    SpuriousVector = 0xF0,
    ErrorStatus = 0x280,
    InterruptCommand = 0x300,
    InterruptCommandHigh = 0x310,
    LvtTimer = 0x320,
    LvtLint0 = 0x350,
    LvtLint1 = 0x360,
    LvtError = 0x370,
    TimerInitialCount = 0x380,
    TimerCurrentCount = 0x390,
    TimerDivide = 0x3E0,
}

impl ApicRegister {
    /// The x2APIC MSR for this register (§11.12.1.2).
    pub const fn x2apic_msr(self) -> u32 {
        0x800 + (self as u32 >> 4)
    }
}

/// Interrupt-command delivery modes (§11.6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A fixed vector.
    Fixed(u8),
    /// Non-maskable interrupt.
    Nmi,
    /// INIT (assert).
    Init,
    /// Start-up IPI with the real-mode page number of the trampoline.
    Startup(u8),
}

/// Who receives an IPI (§11.6.1, destination shorthand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One CPU by APIC ID.
    Apic(u32),
    /// Every CPU but the sender.
    AllButSelf,
}

/// The ICR value for `delivery` to `destination`, in x2APIC layout (destination in bits
/// 63:32); xAPIC uses bits 31:0 plus the destination in bits 63:56.
pub const fn icr_value(delivery: Delivery, destination: Destination) -> u64 {
    const LEVEL_ASSERT: u64 = 1 << 14;
    let low = match delivery {
        Delivery::Fixed(vector) => vector as u64 | LEVEL_ASSERT,
        Delivery::Nmi => 0b100 << 8 | LEVEL_ASSERT,
        Delivery::Init => 0b101 << 8 | LEVEL_ASSERT,
        Delivery::Startup(page) => page as u64 | 0b110 << 8 | LEVEL_ASSERT,
    };
    match destination {
        Destination::Apic(id) => low | (id as u64) << 32,
        Destination::AllButSelf => low | 0b11 << 18,
    }
}

/// LVT timer modes (§11.5.4).
const LVT_TIMER_ONE_SHOT: u32 = 0;
const LVT_TIMER_TSC_DEADLINE: u32 = 0b10 << 17;
const LVT_MASKED: u32 = 1 << 16;
/// Delivery status in the xAPIC ICR: set while an IPI is pending (§11.6.1).
const ICR_SEND_PENDING: u32 = 1 << 12;

/// One CPU's local APIC, in the mode it was enabled in.
#[derive(Clone, Copy, Debug)]
pub enum LocalApic {
    /// x2APIC: registers are MSRs.
    X2Apic,
    /// xAPIC: registers at `mmio`, the (uncached) virtual address of the 4 KiB page.
    XApic { mmio: u64 },
}

/// Whether the CPU supports x2APIC (CPUID.1:ECX bit 21).
pub fn has_x2apic() -> bool {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_x2apic())
}

/// Whether the APIC timer has TSC-deadline mode (CPUID.1:ECX bit 24).
pub fn has_tsc_deadline() -> bool {
    raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_tsc_deadline())
}

/// Physical base of the xAPIC MMIO page, from IA32_APIC_BASE.
pub fn xapic_physical_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (all x86_64 CPUs);
    // reading it has no side effects.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() };
    base & 0x000f_ffff_ffff_f000
}

impl LocalApic {
    /// Enables this CPU's APIC: x2APIC when `xapic_mmio` is `None` (the caller checked
    /// [`has_x2apic`]), else xAPIC at that virtual address. Software-enables it with the
    /// spurious vector, accepts all priorities, masks LINT0/LINT1 (the legacy PIC is
    /// not used) and routes APIC errors to `error_vector`.
    ///
    /// # Safety
    /// `xapic_mmio`, if given, must map this CPU's APIC page uncached; interrupts must be
    /// disabled, and the vectors must have handlers.
    pub unsafe fn enable(xapic_mmio: Option<u64>, spurious_vector: u8, error_vector: u8) -> Self {
        let mut base_msr = Msr::new(IA32_APIC_BASE);
        // SAFETY: see xapic_physical_base.
        let base = unsafe { base_msr.read() };
        let apic = match xapic_mmio {
            None => {
                // SDM §11.12.5: xAPIC must be enabled before x2APIC; setting both bits at
                // once from the enabled-xAPIC state is the documented transition.
                // SAFETY: sets only the global-enable and x2APIC bits the caller has
                // checked the CPU supports; the base address is unchanged.
                unsafe { base_msr.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC) };
                Self::X2Apic
            }
            Some(mmio) => {
                if base & APIC_BASE_ENABLE == 0 {
                    // SAFETY: sets the global-enable bit only.
                    unsafe { base_msr.write(base | APIC_BASE_ENABLE) };
                }
                Self::XApic { mmio }
            }
        };
        apic.write(ApicRegister::TaskPriority, 0);
        apic.write(ApicRegister::LvtLint0, LVT_MASKED);
        apic.write(ApicRegister::LvtLint1, LVT_MASKED);
        apic.write(ApicRegister::LvtTimer, LVT_MASKED);
        apic.write(ApicRegister::LvtError, u32::from(error_vector));
        apic.write(
            ApicRegister::SpuriousVector,
            (1 << 8) | u32::from(spurious_vector),
        );
        // The ESR is write-then-read (§11.5.3): clear stale errors.
        apic.write(ApicRegister::ErrorStatus, 0);
        apic
    }

    /// Reads a register.
    pub fn read(self, register: ApicRegister) -> u32 {
        match self {
            // SAFETY: the APIC is in x2APIC mode and `register` is an architectural
            // x2APIC register; reads have no side effects.
            Self::X2Apic => unsafe { Msr::new(register.x2apic_msr()).read() as u32 },
            Self::XApic { mmio } => {
                // SAFETY: `mmio` maps the APIC page uncached (see `enable`); the offset
                // is an architectural register, 16-byte aligned, inside the page.
                unsafe { core::ptr::read_volatile((mmio + register as u64) as *const u32) }
            }
        }
    }

    /// Writes a register.
    pub fn write(self, register: ApicRegister, value: u32) {
        match self {
            // SAFETY: as in `read`; writes to these registers affect only this CPU's
            // interrupt delivery, which the hypervisor owns.
            Self::X2Apic => unsafe { Msr::new(register.x2apic_msr()).write(u64::from(value)) },
            Self::XApic { mmio } => {
                // SAFETY: as in `read`.
                unsafe { core::ptr::write_volatile((mmio + register as u64) as *mut u32, value) }
            }
        }
    }

    /// This CPU's APIC ID (32 bits in x2APIC mode, 8 in xAPIC mode).
    pub fn id(self) -> u32 {
        match self {
            Self::X2Apic => self.read(ApicRegister::Id),
            Self::XApic { .. } => self.read(ApicRegister::Id) >> 24,
        }
    }

    /// Signals end of interrupt.
    pub fn eoi(self) {
        self.write(ApicRegister::EndOfInterrupt, 0);
    }

    /// Sends an IPI and waits until the local APIC has accepted it for delivery.
    pub fn send_ipi(self, delivery: Delivery, destination: Destination) {
        let icr = icr_value(delivery, destination);
        match self {
            Self::X2Apic => {
                // SAFETY: the ICR MSR (0x830) is written as one 64-bit value in x2APIC
                // mode (§11.12.9); delivery is to CPUs the hypervisor owns.
                unsafe { Msr::new(0x830).write(icr) };
            }
            Self::XApic { .. } => {
                let destination_field = match destination {
                    Destination::Apic(id) => id << 24,
                    Destination::AllButSelf => 0,
                };
                self.write(ApicRegister::InterruptCommandHigh, destination_field);
                self.write(ApicRegister::InterruptCommand, icr as u32);
                while self.read(ApicRegister::InterruptCommand) & ICR_SEND_PENDING != 0 {
                    core::hint::spin_loop();
                }
            }
        }
    }

    /// Arms a one-shot timer interrupt on `vector` when the TSC reaches `deadline`
    /// (TSC-deadline mode; the caller checked [`has_tsc_deadline`]).
    pub fn arm_tsc_deadline(self, vector: u8, deadline: u64) {
        self.write(
            ApicRegister::LvtTimer,
            LVT_TIMER_TSC_DEADLINE | u32::from(vector),
        );
        // SDM §11.5.4.1: a WRMSR to IA32_TSC_DEADLINE after the LVT write needs an
        // MFENCE in between on some CPUs so the mode switch is seen first.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: IA32_TSC_DEADLINE exists (CPUID checked by the caller) and only arms
        // this CPU's timer.
        unsafe { Msr::new(IA32_TSC_DEADLINE).write(deadline.max(1)) };
    }

    /// Arms a one-shot timer interrupt on `vector` after `ticks` APIC timer ticks at
    /// the divide-by-1 rate.
    pub fn arm_one_shot(self, vector: u8, ticks: u32) {
        self.write(ApicRegister::TimerDivide, 0b1011); // divide by 1
        self.write(
            ApicRegister::LvtTimer,
            LVT_TIMER_ONE_SHOT | u32::from(vector),
        );
        self.write(ApicRegister::TimerInitialCount, ticks.max(1));
    }

    /// Stops the APIC timer.
    pub fn disarm_timer(self) {
        self.write(ApicRegister::LvtTimer, LVT_MASKED);
        self.write(ApicRegister::TimerInitialCount, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x2apic_msr_numbers() {
        assert_eq!(ApicRegister::Id.x2apic_msr(), 0x802);
        assert_eq!(ApicRegister::EndOfInterrupt.x2apic_msr(), 0x80B);
        assert_eq!(ApicRegister::InterruptCommand.x2apic_msr(), 0x830);
        assert_eq!(ApicRegister::LvtTimer.x2apic_msr(), 0x832);
        assert_eq!(ApicRegister::TimerDivide.x2apic_msr(), 0x83E);
    }

    #[test]
    fn icr_encodings() {
        assert_eq!(
            icr_value(Delivery::Init, Destination::Apic(3)),
            3 << 32 | 0x4500
        );
        assert_eq!(
            icr_value(Delivery::Startup(8), Destination::Apic(1)),
            1 << 32 | 0x4608
        );
        assert_eq!(icr_value(Delivery::Nmi, Destination::AllButSelf), 0xC4400);
        assert_eq!(
            icr_value(Delivery::Fixed(0xF0), Destination::Apic(0)),
            0x40F0
        );
    }
}
