//! The 256 trap entry stubs and the common save/restore path.
//!
//! Each stub is `TRAP_STUB_STRIDE` bytes: it pushes a zero error code when the CPU pushes
//! none, pushes its vector, and jumps to the common path, which saves every general
//! register into a [`super::TrapFrame`] and calls `ferrovisor_trap(&mut TrapFrame)`
//! (defined by the hypervisor). On return it restores the registers and `iretq`s.
//!
//! Stack alignment: in 64-bit mode the CPU aligns RSP to 16 bytes before pushing the
//! exception frame (SDM Vol. 3A §6.14.2); the frame is 22 quadwords (176 bytes, a
//! multiple of 16), so RSP is 16-byte aligned at the `call`, as the SysV ABI requires.

/// Bytes between consecutive stubs.
pub const TRAP_STUB_STRIDE: u64 = 16;

core::arch::global_asm!(
    r#"
    .section .text.trap_stubs, "ax"
    .balign 16
    .global trap_stubs_start
trap_stubs_start:
    .set trap_vector, 0
    .rept 256
    .balign 16
    .if (trap_vector == 8) || (trap_vector == 10) || (trap_vector == 11) || (trap_vector == 12) || (trap_vector == 13) || (trap_vector == 14) || (trap_vector == 17) || (trap_vector == 21) || (trap_vector == 29) || (trap_vector == 30)
    .else
    push 0
    .endif
    push trap_vector
    jmp trap_common
    .set trap_vector, trap_vector + 1
    .endr
    .balign 16
    .global trap_stubs_end
trap_stubs_end:

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    call ferrovisor_trap
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
    "#
);

unsafe extern "C" {
    static trap_stubs_start: u8;
    static trap_stubs_end: u8;
}

// The stubs must fit their stride: if an assembler picked longer encodings, the table
// would no longer be a simple array. Checked at run time once (addresses are link-time).
/// The address of the entry stub for `vector`.
pub fn trap_stub_address(vector: u8) -> u64 {
    let start = (&raw const trap_stubs_start) as u64;
    let end = (&raw const trap_stubs_end) as u64;
    assert_eq!(
        end - start,
        256 * TRAP_STUB_STRIDE,
        "trap stubs do not fit their stride"
    );
    start + u64::from(vector) * TRAP_STUB_STRIDE
}
