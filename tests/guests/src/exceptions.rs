//! Guest exception handling: an IDT whose stubs record the exception and resume at a
//! fixup address, so a test can provoke #UD/#GP/#PF and check it was delivered (XTF's
//! exception-table pattern). An exception with no fixup armed ends the test with ERROR.
//!
//! Every vCPU uses the same IDT (secondary vCPUs load it with [`load`]), so an
//! unexpected exception on any vCPU ends the test. The fixup slot and the record of
//! the last exception are global, though: [`crate::probe!`] is for the boot vCPU only (or one
//! vCPU at a time), or two vCPUs' probes would take each other's fixups.

use core::sync::atomic::{AtomicU64, Ordering};

/// The last exception taken: vector, error code, faulting RIP.
static LAST_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_ERROR: AtomicU64 = AtomicU64::new(0);
static LAST_RIP: AtomicU64 = AtomicU64::new(0);
/// Where to resume after an expected exception (0: none expected).
static FIXUP: AtomicU64 = AtomicU64::new(0);

#[repr(C, align(16))]
struct Idt([u64; 512]);

static mut IDT: Idt = Idt([0; 512]);

core::arch::global_asm!(
    r#"
    .section .text.guest_exceptions, "ax"
    .balign 16
    .global guest_exception_stubs
guest_exception_stubs:
    .set vector, 0
    .rept 32
    .balign 16
    .if (vector == 8) || (vector == 10) || (vector == 11) || (vector == 12) || (vector == 13) || (vector == 14) || (vector == 17) || (vector == 21) || (vector == 29) || (vector == 30)
    .else
    push 0
    .endif
    push vector
    jmp guest_exception_common
    .set vector, vector + 1
    .endr

guest_exception_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov rdi, rsp
    call guest_exception
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
    "#
);

unsafe extern "C" {
    static guest_exception_stubs: u8;
}

/// The frame `guest_exception_common` builds.
#[repr(C)]
struct Frame {
    scratch: [u64; 9],
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

#[unsafe(no_mangle)]
extern "C" fn guest_exception(frame: &mut Frame) {
    LAST_VECTOR.store(frame.vector, Ordering::Release);
    LAST_ERROR.store(frame.error, Ordering::Release);
    LAST_RIP.store(frame.rip, Ordering::Release);
    let fixup = FIXUP.swap(0, Ordering::AcqRel);
    if fixup != 0 {
        frame.rip = fixup;
        return;
    }
    crate::console::print(format_args!(
        "unexpected exception vector {} error {:#x} at rip {:#x}\n",
        frame.vector, frame.error, frame.rip
    ));
    crate::finish(crate::Verdict::Error)
}

/// Builds the IDT (interrupt gates for vectors 0..32, code selector 0x08) and loads it
/// on this vCPU. Called once, by the boot vCPU, before any other vCPU starts.
pub fn init() {
    let base = (&raw const guest_exception_stubs) as u64;
    let idt = &raw mut IDT;
    for vector in 0..32u64 {
        let handler = base + vector * 16;
        let low =
            (handler & 0xffff) | (0x08 << 16) | (0x8E00 << 32) | ((handler >> 16) & 0xffff) << 48;
        let high = handler >> 32;
        // SAFETY: IDT is only written here, before interrupts or exceptions can use it,
        // by the single vCPU; the index is within the 512-quadword table.
        unsafe { (*idt).0[(vector * 2) as usize] = low };
        // SAFETY: as above.
        unsafe { (*idt).0[(vector * 2 + 1) as usize] = high };
    }
    load();
}

/// Loads the IDT `init` built into this vCPU's IDTR: each vCPU has its own IDTR, and
/// a vCPU started by `VCPUOP_initialise` begins without one.
pub fn load() {
    let pointer: [u16; 5] = {
        let address = (&raw const IDT) as u64;
        [
            4095,
            address as u16,
            (address >> 16) as u16,
            (address >> 32) as u16,
            (address >> 48) as u16,
        ]
    };
    // SAFETY: LIDT of a 10-byte pseudo-descriptor for our static, fully built IDT.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &pointer, options(nostack)) };
}

/// An exception the probe raised: vector and error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub vector: u8,
    pub error_code: u64,
}

/// Prepares for a probe: clears the last exception.
pub fn arm() {
    LAST_VECTOR.store(u64::MAX, Ordering::Release);
}

/// The address of the fixup slot a probe stores its resume address into.
pub fn fixup_slot() -> *const AtomicU64 {
    &FIXUP
}

/// Disarms the fixup and returns the exception taken since `arm`, if any.
pub fn take_exception() -> Option<Raised> {
    FIXUP.store(0, Ordering::Release);
    let vector = LAST_VECTOR.swap(u64::MAX, Ordering::AcqRel);
    (vector != u64::MAX).then(|| Raised {
        vector: vector as u8,
        error_code: LAST_ERROR.load(Ordering::Acquire),
    })
}

/// Runs one instruction that may fault and returns the exception it raised, if any:
/// `probe!("ud2")`. The instructions may clobber RAX, RCX and RDX. One vCPU at a time
/// (the fixup slot is global; see the module comment).
#[macro_export]
macro_rules! probe {
    ($($instruction:literal),+ $(,)?) => {{
        $crate::exceptions::arm();
        // SAFETY: stores the resume label's address in the fixup slot, runs the probe
        // instruction; if it faults the exception handler resumes at the label.
        unsafe {
            core::arch::asm!(
                "lea rax, [rip + 3f]",
                "mov qword ptr [{slot}], rax",
                $($instruction,)+
                "3:",
                slot = in(reg) $crate::exceptions::fixup_slot(),
                out("rax") _, out("rcx") _, out("rdx") _,
                options(nostack),
            )
        };
        $crate::exceptions::take_exception()
    }};
}
