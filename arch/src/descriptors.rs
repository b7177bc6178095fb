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

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::segmentation::SegmentSelector;
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

/// Which stack `rsp` lies on.
pub fn classify_stack(rsp: u64) -> StackKind {
    let within = |slot| {
        let (bottom, top) = ist_stack(slot);
        (bottom..=top).contains(&rsp)
    };
    if within(IST_DOUBLE_FAULT) {
        StackKind::DoubleFault
    } else if within(IST_NMI) {
        StackKind::Nmi
    } else if within(IST_MACHINE_CHECK) {
        StackKind::MachineCheck
    } else {
        StackKind::Kernel
    }
}

/// Whether `[addr, addr+8)` lies on one of the IST stacks (for backtrace validation).
pub fn on_ist_stack(addr: u64) -> bool {
    [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
        .into_iter()
        .any(|slot| {
            let (bottom, top) = ist_stack(slot);
            addr >= bottom && addr.saturating_add(8) <= top
        })
}

struct Selectors {
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();
static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the boot CPU's GDT, TSS and IDT. Call once, early, on the boot CPU.
pub fn init_boot_cpu() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for slot in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK] {
            tss.interrupt_stack_table[usize::from(slot)] = VirtAddr::new(ist_stack(slot).1);
        }
        tss
    });
    let (gdt, selectors) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: (for this and the three loads below) each selector indexes a descriptor of the GDT
    // just loaded: a 64-bit ring-0 code segment, a writable data segment, and a TSS
    // descriptor for a 'static TSS. Reloading them keeps executing the current code.
    unsafe { CS::set_reg(selectors.code) };
    // SAFETY: see above.
    unsafe { SS::set_reg(selectors.data) };
    // SAFETY: see above.
    unsafe { DS::set_reg(selectors.data) };
    // SAFETY: see above.
    unsafe { ES::set_reg(selectors.data) };
    // SAFETY: see above; the TSS descriptor is not busy (loaded once, at boot).
    unsafe { load_tss(selectors.tss) };

    let idt = IDT.call_once(build_idt);
    idt.load();
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
