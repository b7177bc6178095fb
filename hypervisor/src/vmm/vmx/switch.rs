//! The VT-x world switch (SDM Vol. 3C §27 "VM Entries", §28 "VM Exits").
//!
//! VM entry loads the guest's control registers, segment registers, RIP, RSP, RFLAGS and
//! (with the entry controls we set) EFER and PAT from the VMCS; VM exit saves them and
//! loads the host-state area: CR0/CR3/CR4, RSP, RIP, every selector, FS/GS/TR/GDTR/IDTR
//! bases, SYSENTER MSRs, EFER and PAT (§28.5). The general registers other than RSP are
//! untouched either way, so this code moves them between the CPU and `GuestRegisters`.
//!
//! The stack at VM entry is the host RSP of the next exit: it is written to the VMCS on
//! every entry, right before VMLAUNCH/VMRESUME, with the `GuestRegisters` pointer on top
//! for the exit stub to find.
//!
//! Interrupts: a VM exit clears RFLAGS (only bit 1 stays set, §28.5.3), so the exit stub
//! and its caller run with IF = 0; with "acknowledge interrupt on exit" off the interrupt
//! that caused an exit stays pending at the local APIC until the host sets IF.
//!
//! Speculation: after a VM exit the return stack buffer holds guest-controlled entries;
//! it is overwritten with 32 benign entries before the first RET (as the AMD-V switch
//! does, and Linux's FILL_RETURN_BUFFER), and the guest values left in caller-saved
//! registers are cleared.
//!
//! Returns 0 after a VM exit (including a VM-entry failure exit, §27.8), 1 for
//! VMfailInvalid and 2 for VMfailValid (§31.2): VMLAUNCH/VMRESUME (or the VMWRITE of
//! the host RSP) failed and the guest never ran.

use ferrovisor::vcpu::GuestRegisters;
use ferrovisor_arch::vmx::fields::HostNatural;

/// [`vmx_world_switch`] results.
pub const SWITCH_EXITED: u64 = 0;
pub const SWITCH_FAIL_INVALID: u64 = 1;
pub const SWITCH_FAIL_VALID: u64 = 2;

core::arch::global_asm!(
    r#"
    .section .text.vmx_switch, "ax"
    .global vmx_world_switch
    /* u64 vmx_world_switch(regs: rdi, launched: rsi) */
vmx_world_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi                        /* [rsp]: regs, for the exit stub */
    mov eax, {host_rsp}
    vmwrite rax, rsp
    jbe 5f                          /* CF or ZF: VMfail */
    mov rax, rdi
    test rsi, rsi                   /* flags survive the loads below */
    mov rbx, [rax + 0x08]
    mov rcx, [rax + 0x10]
    mov rdx, [rax + 0x18]
    mov rsi, [rax + 0x20]
    mov rdi, [rax + 0x28]
    mov rbp, [rax + 0x30]
    mov r8,  [rax + 0x38]
    mov r9,  [rax + 0x40]
    mov r10, [rax + 0x48]
    mov r11, [rax + 0x50]
    mov r12, [rax + 0x58]
    mov r13, [rax + 0x60]
    mov r14, [rax + 0x68]
    mov r15, [rax + 0x70]
    mov rax, [rax]
    jnz 2f
    vmlaunch
    jmp 5f
2:  vmresume
    /* Falling through: VM entry did not happen. CF: VMfailInvalid, ZF: VMfailValid. */
5:  mov eax, 1
    jc 6f
    mov eax, 2
6:  add rsp, 8
    jmp 7f

    .global vmx_exit_stub
vmx_exit_stub:
    /* VM exit: RSP is the host RSP written above, so [rsp] is regs. */
    push rax
    mov rax, [rsp + 8]
    mov [rax + 0x08], rbx
    mov [rax + 0x10], rcx
    mov [rax + 0x18], rdx
    mov [rax + 0x20], rsi
    mov [rax + 0x28], rdi
    mov [rax + 0x30], rbp
    mov [rax + 0x38], r8
    mov [rax + 0x40], r9
    mov [rax + 0x48], r10
    mov [rax + 0x50], r11
    mov [rax + 0x58], r12
    mov [rax + 0x60], r13
    mov [rax + 0x68], r14
    mov [rax + 0x70], r15
    pop qword ptr [rax]             /* guest RAX */
    add rsp, 8
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor r8d, r8d
    xor r9d, r9d
    xor r10d, r10d
    xor r11d, r11d

    "#,
    rsb_fill!(),
    r#"

    xor eax, eax
7:  pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    "#,
    host_rsp = const HostNatural::Rsp.encoding(),
);

unsafe extern "C" {
    /// Enters the guest of the current VMCS (VMLAUNCH unless `launched`, else
    /// VMRESUME) and returns at its next VM exit. General registers other than RSP come
    /// from and go back to `regs`. Returns [`SWITCH_EXITED`], [`SWITCH_FAIL_INVALID`] or
    /// [`SWITCH_FAIL_VALID`].
    pub fn vmx_world_switch(regs: *mut GuestRegisters, launched: u64) -> u64;

    /// The VM-exit entry point: the host RIP of every VMCS.
    pub static vmx_exit_stub: u8;
}
