//! PVH entry (Xen's `docs/misc/pvh.pandoc`: 32-bit protected mode, paging off, EBX =
//! `hvm_start_info`), the switch to long mode with the first GiB identity-mapped by
//! 2 MiB pages, then `guest_main(start_info)`.

core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", %note
    .balign 4
    .long 4, 4, 18              /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long guest_pvh_entry

    .section .rodata.guest_gdt, "a"
    .balign 8
guest_gdt:
    .quad 0
    .quad 0x00AF9B000000FFFF    /* 0x08: 64-bit code */
    .quad 0x00CF93000000FFFF    /* 0x10: data */
guest_gdt_end:
    .global guest_gdt_pointer    /* secondary vCPUs load it too (smp.rs) */
guest_gdt_pointer:
    .short guest_gdt_end - guest_gdt - 1
    .quad guest_gdt

    .section .bss.guest_boot, "aw", @nobits
    .balign 4096
    .global guest_pml4
guest_pml4: .skip 4096
guest_pdpt: .skip 4096
guest_pd:   .skip 4096
    .global guest_stack_bottom
guest_stack_bottom: .skip 65536
guest_stack_top:

    .section .text.entry, "ax"
    .code32
    .global guest_pvh_entry
guest_pvh_entry:
    cld
    mov esi, ebx
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    mov eax, offset guest_pdpt
    or eax, 0x3
    mov dword ptr [guest_pml4], eax
    mov eax, offset guest_pd
    or eax, 0x3
    mov dword ptr [guest_pdpt], eax
    mov eax, 0x83
    xor ecx, ecx
2:  mov dword ptr [guest_pd + ecx * 8], eax
    add eax, 0x200000
    inc ecx
    cmp ecx, 512
    jb 2b

    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)   /* PAE, OSFXSR, OSXMMEXCPT */
    mov cr4, eax
    mov eax, offset guest_pml4
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 1 << 8              /* EFER.LME */
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | 1       /* PG, PE */
    and eax, ~((1 << 30) | (1 << 29) | (1 << 2)) /* caches on (CD, NW clear), EM clear */
    or eax, 1 << 1              /* MP */
    mov cr0, eax
    lgdt [guest_gdt_pointer]
    .byte 0xEA                  /* jmp far 0x08:guest_long_mode */
    .long guest_long_mode
    .short 0x08

    .code64
guest_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + guest_stack_top]
    mov edi, esi
    xor ebp, ebp
    call guest_main
    ud2
    "#
);
