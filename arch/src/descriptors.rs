//! The boot CPU's GDT, TSS (with IST stacks) and IDT.
//!
//! #DF, NMI and #MC run on their own interrupt-stack-table stacks (SDM Vol. 3A §6.14.5),
//! so a kernel stack overflow (which faults again while pushing the #PF frame and so
//! becomes a #DF) still has a good stack to report from. Each IST stack has an unmapped
//! guard page below it; the hypervisor's page tables leave every page listed by
//! [`guard_pages`] unmapped.
//!
//! Per-CPU copies of these tables arrive with SMP bring-up; today only the boot CPU
//! loads them.

use core::ops::Range;

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;

use crate::trap::{VECTOR_DOUBLE_FAULT, VECTOR_MACHINE_CHECK, VECTOR_NMI, trap_stub_address};

/// Bytes in each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// Which stack a trap was delivered on, judged from its saved RSP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// The interrupted context's own stack.
    Kernel,
    /// The #DF IST stack.
    DoubleFault,
    /// The NMI IST stack.
    Nmi,
    /// The #MC IST stack.
    MachineCheck,
}

impl StackKind {
    /// Short name for reports (`df-ist`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::DoubleFault => "df-ist",
            Self::Nmi => "nmi-ist",
            Self::MachineCheck => "mc-ist",
        }
    }
}

// IST slots in the TSS (1-based in the IDT gate, 0-based in the x86_64 crate's array).
const IST_DOUBLE_FAULT: u16 = 0;
const IST_NMI: u16 = 1;
const IST_MACHINE_CHECK: u16 = 2;

core::arch::global_asm!(
    r#"
    .section .bss.stacks, "aw", @nobits
    .balign 4096
    .global ist_stacks_start
ist_stacks_start:
    .rept 3
    .skip 4096                  /* guard page, never mapped */
    .skip {size}
    .endr
    "#,
    size = const IST_STACK_SIZE,
);

unsafe extern "C" {
    static ist_stacks_start: u8;
}

const IST_SLOT_SIZE: u64 = 4096 + IST_STACK_SIZE as u64;

fn ist_slot_base(slot: u16) -> u64 {
    (&raw const ist_stacks_start) as u64 + u64::from(slot) * IST_SLOT_SIZE
}

/// `(bottom, top)` of an IST stack (its guard page is the 4 KiB just below `bottom`).
fn ist_stack(slot: u16) -> (u64, u64) {
    let bottom = ist_slot_base(slot) + 4096;
    (bottom, bottom + IST_STACK_SIZE as u64)
}

/// Guard pages of the IST stacks, which must stay unmapped.
pub fn guard_pages() -> [u64; 3] {
    [ist_slot_base(0), ist_slot_base(1), ist_slot_base(2)]
}

/// The three IST stacks of one CPU, each `bottom..top` with an unmapped guard page
/// just below `bottom`.
#[derive(Clone, Debug)]
pub struct IstStacks {
    pub double_fault: Range<u64>,
    pub nmi: Range<u64>,
    pub machine_check: Range<u64>,
}

impl IstStacks {
    /// The boot CPU's IST stacks, reserved in the image's `.bss`.
    pub fn boot_cpu() -> Self {
        let stack = |slot| {
            let (bottom, top) = ist_stack(slot);
            bottom..top
        };
        Self {
            double_fault: stack(IST_DOUBLE_FAULT),
            nmi: stack(IST_NMI),
            machine_check: stack(IST_MACHINE_CHECK),
        }
    }

    /// Which stack `rsp` lies on (a trap handler passes its own stack pointer).
    pub fn classify(&self, rsp: u64) -> StackKind {
        let within = |r: &Range<u64>| r.start <= rsp && rsp <= r.end;
        if within(&self.double_fault) {
            StackKind::DoubleFault
        } else if within(&self.nmi) {
            StackKind::Nmi
        } else if within(&self.machine_check) {
            StackKind::MachineCheck
        } else {
            StackKind::Kernel
        }
    }

    /// Whether `[addr, addr + len)` lies within one of these stacks.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len);
        [&self.double_fault, &self.nmi, &self.machine_check]
            .into_iter()
            .any(|r| addr >= r.start && end <= r.end)
    }
}

/// One CPU's GDT and TSS. The TSS cannot be shared: loading TR marks its descriptor
/// busy (SDM Vol. 3A §8.2.2), and each CPU needs its own IST stacks.
pub struct CpuDescriptors {
    tss: TaskStateSegment,
    gdt: GlobalDescriptorTable,
}

impl CpuDescriptors {
    /// A TSS pointing at `ist`'s stacks; the GDT is filled when loaded.
    pub fn new(ist: &IstStacks) -> Self {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[usize::from(IST_DOUBLE_FAULT)] =
            VirtAddr::new(ist.double_fault.end);
        tss.interrupt_stack_table[usize::from(IST_NMI)] = VirtAddr::new(ist.nmi.end);
        tss.interrupt_stack_table[usize::from(IST_MACHINE_CHECK)] =
            VirtAddr::new(ist.machine_check.end);
        Self {
            tss,
            gdt: GlobalDescriptorTable::new(),
        }
    }

    /// Loads this GDT, the segment registers, TR and the shared IDT on the calling CPU.
    /// Needs `'static` because the CPU keeps pointers to all three.
    pub fn load(&'static mut self) {
        let Self { tss, gdt } = self;
        let tss: &'static TaskStateSegment = tss;
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss_selector = gdt.append(Descriptor::tss_segment(tss));
        let gdt: &'static GlobalDescriptorTable = gdt;
        gdt.load();
        // SAFETY: (for this and the three loads below) each selector indexes a descriptor
        // of the GDT just loaded: a 64-bit ring-0 code segment and a writable data
        // segment. Reloading them keeps executing the current code.
        unsafe { CS::set_reg(code) };
        // SAFETY: see above.
        unsafe { SS::set_reg(data) };
        // SAFETY: see above.
        unsafe { DS::set_reg(data) };
        // SAFETY: see above.
        unsafe { ES::set_reg(data) };
        // SAFETY: the descriptor is for this CPU's own 'static TSS and is not busy: each
        // CpuDescriptors is loaded once, by one CPU.
        unsafe { load_tss(tss_selector) };
        IDT.call_once(build_idt).load();
    }
}

static IDT: Once<InterruptDescriptorTable> = Once::new();
static BOOT_CPU_DESCRIPTORS: Once<()> = Once::new();
static mut BOOT_CPU_TABLES: Option<CpuDescriptors> = None;

/// Builds and loads the boot CPU's GDT, TSS and IDT, with the IST stacks in `.bss`.
/// Call once, early, on the boot CPU (before any heap exists).
pub fn init_boot_cpu() {
    BOOT_CPU_DESCRIPTORS.call_once(|| {
        let tables = CpuDescriptors::new(&IstStacks::boot_cpu());
        let pointer = &raw mut BOOT_CPU_TABLES;
        // SAFETY: the Once makes this the only access to BOOT_CPU_TABLES, ever, so the
        // 'static mutable reference handed to `load` is unique.
        let slot = unsafe { &mut *pointer };
        slot.insert(tables).load();
    });
}

fn build_idt() -> InterruptDescriptorTable {
    let mut idt = InterruptDescriptorTable::new();
    macro_rules! route {
        ($($field:ident = $vector:expr),* $(,)?) => {$(
            // SAFETY: the address is our entry stub for this vector, which saves the
            // full frame, handles the (pushed or synthesised) error code and returns
            // with iretq; the stub is in the image's text and never unmapped.
            unsafe { idt.$field.set_handler_addr(VirtAddr::new(trap_stub_address($vector))); }
        )*};
    }
    route!(
        divide_error = 0,
        debug = 1,
        breakpoint = 3,
        overflow = 4,
        bound_range_exceeded = 5,
        invalid_opcode = 6,
        device_not_available = 7,
        invalid_tss = 10,
        segment_not_present = 11,
        stack_segment_fault = 12,
        general_protection_fault = 13,
        page_fault = 14,
        x87_floating_point = 16,
        alignment_check = 17,
        simd_floating_point = 19,
        virtualization = 20,
        cp_protection_exception = 21,
        hv_injection_exception = 28,
        vmm_communication_exception = 29,
        security_exception = 30,
    );
    for vector in 32..=255u8 {
        // SAFETY: as above, for an external-interrupt vector (no error code pushed).
        unsafe {
            idt[vector].set_handler_addr(VirtAddr::new(trap_stub_address(vector)));
        }
    }
    // SAFETY: (for the three stack switches below) each index names a TSS slot set to
    // the top of a dedicated, guarded stack in `init_boot_cpu`, and the handler
    // addresses are the stubs set above.
    let double_fault = unsafe {
        idt.double_fault
            .set_handler_addr(VirtAddr::new(trap_stub_address(VECTOR_DOUBLE_FAULT)))
    };
    // SAFETY: see above.
    unsafe { double_fault.set_stack_index(IST_DOUBLE_FAULT) };
    // SAFETY: see above.
    let nmi = unsafe {
        idt.non_maskable_interrupt
            .set_handler_addr(VirtAddr::new(trap_stub_address(VECTOR_NMI)))
    };
    // SAFETY: see above.
    unsafe { nmi.set_stack_index(IST_NMI) };
    // SAFETY: see above.
    let machine_check = unsafe {
        idt.machine_check
            .set_handler_addr(VirtAddr::new(trap_stub_address(VECTOR_MACHINE_CHECK)))
    };
    // SAFETY: see above.
    unsafe { machine_check.set_stack_index(IST_MACHINE_CHECK) };
    idt
}
