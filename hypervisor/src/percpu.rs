//! Per-CPU state, reached through the GS base: `gs:[0]` holds a pointer to the running
//! CPU's [`PerCpu`], so finding it costs one load and never depends on reading the
//! APIC ID (STYLE.md: per-CPU data through GS base).
//!
//! Each `PerCpu` is allocated once, when its CPU is brought up, and lives forever.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use ferrovisor::timer::TimerQueue;
use ferrovisor_arch::apic::LocalApic;
use ferrovisor_arch::cpu::Virtualization;
use ferrovisor_arch::descriptors::IstStacks;
use spin::{Mutex, Once};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// Most CPUs Ferrovisor drives (xAPIC IDs are 8 bits; x2APIC systems beyond this are
/// capped and said so at boot).
pub const MAX_CPUS: usize = 256;

/// One CPU's state.
#[repr(C)]
pub struct PerCpu {
    /// Must stay the first field: `current()` loads it from `gs:[0]`.
    self_pointer: *const PerCpu,
    /// Dense index, 0 for the boot CPU, in bring-up order.
    pub index: u32,
    /// The APIC ID the firmware gave this CPU.
    pub apic_id: u32,
    /// The CPU's main stack (bottom..top; a guard page lies below).
    pub stack: Range<u64>,
    /// The #DF/NMI/#MC stacks.
    pub ist: IstStacks,
    /// This CPU's local APIC, once enabled.
    pub apic: Once<LocalApic>,
    /// The virtualization extension this CPU offers (recorded at bring-up).
    pub virtualization: Once<Virtualization>,
    /// VT-x/AMD-V turned on for this CPU at bring-up (`None`: not usable here).
    pub virt: Once<Option<crate::vmm::VirtCpu>>,
    /// Written by another CPU to wake this one from an MWAIT idle (see `idle`).
    pub wake: AtomicU64,
    /// Set by the CPU itself when it has finished bring-up.
    pub online: AtomicBool,
    /// Interrupts handled on this CPU, by kind (for tests and reports).
    pub ipis_received: AtomicU64,
    pub timer_interrupts: AtomicU64,
    /// Pending one-shot timers, earliest programmed into the APIC timer. Taken by the
    /// timer interrupt: hold it only with interrupts disabled.
    pub timers: Mutex<TimerQueue<TIMERS_PER_CPU>>,
    /// Set by the scheduler's timer and by kicks: the CPU must ask the scheduler what to
    /// run before it enters a guest again.
    pub need_resched: AtomicBool,
    /// The pending scheduler timer (only this CPU touches it, interrupts disabled).
    pub sched_timer: Mutex<Option<ferrovisor::timer::TimerId>>,
    /// Blocked vCPUs whose deadline passed, queued by the timer interrupt for this CPU's
    /// loop to wake (interrupts disabled while held).
    pub expired_wakes: Mutex<WakeList>,
}

/// A short list of vCPU ids, without allocation (filled in interrupt context).
pub struct WakeList {
    ids: [u32; TIMERS_PER_CPU],
    len: usize,
}

impl WakeList {
    pub const fn new() -> Self {
        Self {
            ids: [0; TIMERS_PER_CPU],
            len: 0,
        }
    }

    /// Adds an id; at most one timer per slot of the timer queue can expire, so the list
    /// cannot overflow (an overflowing id is dropped, costing only its wake-up).
    pub fn push(&mut self, id: u32) {
        if self.len < self.ids.len() {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }

    /// Takes every id out.
    pub fn take(&mut self) -> ([u32; TIMERS_PER_CPU], usize) {
        let taken = (self.ids, self.len);
        self.len = 0;
        taken
    }
}

/// Pending timers a CPU can hold.
pub const TIMERS_PER_CPU: usize = 64;

// SAFETY: `self_pointer` only ever points at the PerCpu itself (immutable after
// creation); every other field is Sync.
unsafe impl Sync for PerCpu {}
// SAFETY: see Sync; a PerCpu is handed from the boot CPU to the AP it describes once.
unsafe impl Send for PerCpu {}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static CPUS_REGISTERED: AtomicU32 = AtomicU32::new(0);

impl PerCpu {
    /// Allocates and registers the state for CPU `index` (not yet installed anywhere).
    pub fn create(index: u32, apic_id: u32, stack: Range<u64>, ist: IstStacks) -> &'static PerCpu {
        let percpu = alloc::boxed::Box::leak(alloc::boxed::Box::new(PerCpu {
            self_pointer: core::ptr::null(),
            index,
            apic_id,
            stack,
            ist,
            apic: Once::new(),
            virtualization: Once::new(),
            virt: Once::new(),
            wake: AtomicU64::new(0),
            online: AtomicBool::new(false),
            ipis_received: AtomicU64::new(0),
            timer_interrupts: AtomicU64::new(0),
            timers: Mutex::new(TimerQueue::new()),
            need_resched: AtomicBool::new(false),
            sched_timer: Mutex::new(None),
            expired_wakes: Mutex::new(WakeList::new()),
        }));
        percpu.self_pointer = percpu;
        let percpu: &'static PerCpu = percpu;
        CPUS[index as usize].store(percpu as *const _ as *mut _, Ordering::Release);
        CPUS_REGISTERED.fetch_max(index + 1, Ordering::AcqRel);
        percpu
    }

    /// Makes this the running CPU's state (sets GS base). Call once, on that CPU.
    pub fn install(&'static self) {
        GsBase::write(VirtAddr::from_ptr(self as *const PerCpu));
    }

    /// The running CPU's local APIC. Panics if called before the APIC is enabled,
    /// which is a bring-up ordering bug.
    pub fn local_apic(&self) -> LocalApic {
        *self
            .apic
            .get()
            .expect("local APIC used before it was enabled")
    }
}

/// The running CPU's state. Valid after `install` on this CPU.
pub fn current() -> &'static PerCpu {
    let pointer: *const PerCpu;
    // SAFETY: after `install`, gs:[0] is `self_pointer` of this CPU's PerCpu, a
    // 'static allocation; reading it has no side effects.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) pointer, options(nostack, readonly, preserves_flags))
    };
    // SAFETY: the pointer is a leaked, never-freed PerCpu (see `create`).
    unsafe { &*pointer }
}

/// The running CPU's state, or `None` this early in boot (fatal paths use this).
pub fn try_current() -> Option<&'static PerCpu> {
    if GsBase::read().as_u64() == 0 {
        None
    } else {
        Some(current())
    }
}

/// The state of CPU `index`, if it has been created.
pub fn get(index: u32) -> Option<&'static PerCpu> {
    let pointer = CPUS.get(index as usize)?.load(Ordering::Acquire);
    // SAFETY: non-null entries are leaked, never-freed PerCpu allocations.
    (!pointer.is_null()).then(|| unsafe { &*pointer })
}

/// Every created CPU, in index order.
pub fn all() -> impl Iterator<Item = &'static PerCpu> {
    (0..CPUS_REGISTERED.load(Ordering::Acquire)).filter_map(get)
}

/// How many CPUs are online.
pub fn online_count() -> usize {
    all()
        .filter(|cpu| cpu.online.load(Ordering::Acquire))
        .count()
}

/// Whether idle CPUs use MONITOR/MWAIT (decided once at boot).
static USE_MWAIT: spin::Once<bool> = spin::Once::new();

/// Idles the running CPU until an interrupt or a store to its wake word. Call with
/// interrupts disabled, after checking for work; returns with interrupts enabled.
pub fn idle(cpu: &PerCpu) {
    let mwait = *USE_MWAIT.call_once(ferrovisor_arch::idle::has_mwait);
    ferrovisor_arch::idle::wait_for_interrupt_or_store(&cpu.wake, mwait);
    cpu.wake.store(0, Ordering::Release);
}
