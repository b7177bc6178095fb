//! The AMD-V world switch (APM Vol. 2 §15.5 VMRUN, §15.6 #VMEXIT, §15.5.2 VMSAVE/VMLOAD).
//!
//! VMRUN loads the guest's control registers, segment registers CS/DS/ES/SS, RIP, RSP,
//! RAX and EFER from the VMCB and saves the host's in the host save area; it does not
//! touch the other general registers, and it does not switch FS, GS, TR, LDTR, the
//! syscall MSRs or KernelGsBase: VMLOAD/VMSAVE do, so the guest's live in its VMCB and
//! the host's (our per-CPU GS base among them) in a per-CPU host VMCB.
//!
//! Interrupts: the caller has RFLAGS.IF clear; CLGI holds physical interrupts off
//! across the switch, VMRUN sets GIF for the guest, #VMEXIT clears it, STGI at the end
//! lets a pending interrupt (the reason for an INTR exit) reach the host once the
//! caller sets IF.
//!
//! Speculation: after #VMEXIT the return stack buffer holds guest-controlled entries;
//! it is overwritten with 32 benign entries before the first RET (the "RSB fill" real
//! CPUs need on VM exit, as Linux's FILL_RETURN_BUFFER does).

core::arch::global_asm!(
    r#"
    .section .text.svm_switch, "ax"
    .global svm_world_switch
    /* svm_world_switch(guest_vmcb_pa: rdi, regs: rsi, host_vmcb_pa: rdx) */
svm_world_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rsi                        /* [rsp+8]: regs */
    push rdx                        /* [rsp]:   host VMCB */
    mov rax, rdi
    clgi
    vmload rax                      /* guest FS, GS, TR, LDTR, syscall MSRs */
    mov rbx, [rsi + 0x08]
    mov rcx, [rsi + 0x10]
    mov rdx, [rsi + 0x18]
    mov rdi, [rsi + 0x28]
    mov rbp, [rsi + 0x30]
    mov r8,  [rsi + 0x38]
    mov r9,  [rsi + 0x40]
    mov r10, [rsi + 0x48]
    mov r11, [rsi + 0x50]
    mov r12, [rsi + 0x58]
    mov r13, [rsi + 0x60]
    mov r14, [rsi + 0x68]
    mov r15, [rsi + 0x70]
    mov rsi, [rsi + 0x20]
    /* IF = 1 with GIF = 0: no host interrupt is taken here, but with V_INTR_MASKING a
       physical interrupt during the guest exits (INTR intercept) whatever the guest's
       own IF, so a guest that never enables interrupts is still preempted (APM
       §15.21.1, §15.17). */
    sti
    vmrun rax
    cli
    vmsave rax                      /* RAX is the guest VMCB again after #VMEXIT */
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
    pop rax
    vmload rax                      /* the host's GS base (per-CPU pointer) and friends */

    "#,
    rsb_fill!(),
    r#"

    stgi
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    "#
);

unsafe extern "C" {
    /// Runs the guest whose VMCB is at physical `guest_vmcb` until the next #VMEXIT.
    /// General registers other than RAX/RSP come from and go back to `regs`.
    pub fn svm_world_switch(
        guest_vmcb: u64,
        regs: *mut ferrovisor::vcpu::GuestRegisters,
        host_vmcb: u64,
    );
}
