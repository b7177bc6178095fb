//! The image's first instructions: boot headers for three protocols and the 32-bit entry
//! that switches to long mode and calls `ferrovisor_main`.
//!
//! - Multiboot1 header with the a.out kludge (Multiboot 0.6.96 §3.1.1, flags bit 16), so
//!   QEMU's `-kernel` loads the ELF64 image without an ELF64 loader. The linker script keeps
//!   one PT_LOAD whose file offset and address differ by a constant, as the kludge needs.
//! - Multiboot2 header (Multiboot2 1.6 §3.1.1) for GRUB, the path real servers take.
//! - PVH ELF note `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h, type 18),
//!   entered in 32-bit protected mode with paging off and EBX = `hvm_start_info`.
//!
//! Both entry points run the same code. It records which entry ran plus EAX and EBX,
//! zeroes .bss (our own test shim and some loaders do not), checks for long mode and NX,
//! identity-maps the low 4 GiB with 2 MiB pages (every protocol places its structures
//! there), enables PAE, EFER.LME/NXE and paging, and calls
//! `ferrovisor_main(entry_path, eax, ebx)` on the boot stack. Rust does the rest.
//!
//! A CPU without long mode or NX cannot run Ferrovisor: a message goes straight to COM1
//! and the CPU halts, rather than triple-faulting into a reboot loop.

/// `ferrovisor_main`'s first argument when the multiboot entry ran (EAX tells mb1 from mb2).
pub const ENTRY_PATH_MULTIBOOT: u32 = 0;
/// `ferrovisor_main`'s first argument when the PVH note's entry ran.
pub const ENTRY_PATH_PVH: u32 = 1;

/// Size of the boot CPU's stack (below it lies an unmapped guard page).
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

core::arch::global_asm!(
    r#"
    .section .multiboot_headers, "a"

    /* Multiboot1, §3.1: magic, flags, checksum, then the a.out kludge addresses.
       Flags: bit 0 page-aligned modules, bit 1 memory map, bit 16 addresses valid. */
    .balign 4
multiboot1_header:
    .long 0x1BADB002
    .long 0x00010003
    .long -(0x1BADB002 + 0x00010003)
    .long multiboot1_header
    .long __image_start
    .long __load_end
    .long __image_end
    .long multiboot_entry

    /* Multiboot2, §3.1.1 and §3.1.12: header, module-alignment tag, end tag. */
    .balign 8
multiboot2_header:
    .long 0xE85250D6
    .long 0
    .long multiboot2_header_end - multiboot2_header
    .long -(0xE85250D6 + (multiboot2_header_end - multiboot2_header))
    .short 6, 0
    .long 8
    .short 0, 0
    .long 8
multiboot2_header_end:

    .section .note.Xen, "a", %note
    .balign 4
    .long 4
    .long 4
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_entry

    .section .data.boot_args, "aw"
    .balign 8
boot_arg_entry_path: .long 0
boot_arg_eax:        .long 0
boot_arg_ebx:        .long 0
    .balign 8
    .global ap_boot_parameters
ap_boot_parameters:              /* written by the boot CPU before each AP's SIPI */
ap_boot_cr3:        .quad 0
ap_boot_stack_top:  .quad 0
ap_boot_cpu_index:  .quad 0

    .section .rodata.boot32, "a"
    .balign 8
    /* Accessed bits are preset: APs load these selectors after paging is on, when
       this table is read-only and the CPU could not set them (SDM Vol. 3A §3.4.5). */
    .global early_gdt
early_gdt:
    .quad 0
    .quad 0x00AF9B000000FFFF    /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF93000000FFFF    /* 0x10: data */
    .quad 0x00CF9B000000FFFF    /* 0x18: 32-bit code (AP start-up) */
early_gdt_end:
early_gdt_pointer:
    .short early_gdt_end - early_gdt - 1
    .quad early_gdt
unsupported_cpu_message:
    .asciz "ferrovisor: this CPU lacks long mode or NX (execute-disable); cannot boot.\r\n"

    .section .bss.boot_page_tables, "aw", @nobits
    .balign 4096
early_pml4: .skip 4096
early_pdpt: .skip 4096
early_pd:   .skip 4096 * 4

    .section .bss.stacks, "aw", @nobits
    .balign 4096
    .global boot_stack_guard
boot_stack_guard:  .skip 4096
    .global boot_stack_bottom
boot_stack_bottom: .skip {boot_stack_size}
    .global boot_stack_top
boot_stack_top:

    .section .text.boot32, "ax"
    .code32
    .global multiboot_entry
multiboot_entry:
    cli
    cld
    mov ebp, eax
    mov esi, {entry_multiboot}
    jmp 2f

    .global pvh_entry
pvh_entry:
    cli
    cld
    mov ebp, eax
    mov esi, {entry_pvh}

2:  /* Zero .bss: rep stosb uses EDI, ECX and AL; EBP, ESI and EBX survive. */
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    xor eax, eax
    rep stosb

    mov dword ptr [boot_arg_entry_path], esi
    mov dword ptr [boot_arg_eax], ebp
    mov dword ptr [boot_arg_ebx], ebx
    mov esp, offset boot_stack_top

    /* Long mode (CPUID 0x80000001 EDX bit 29) and NX (bit 20) are required. */
    mov eax, 0x80000000
    cpuid
    cmp eax, 0x80000001
    jb 8f
    mov eax, 0x80000001
    cpuid
    test edx, 1 << 29
    jz 8f
    test edx, 1 << 20
    jz 8f

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories of 2 MiB pages = 0..4 GiB. */
    mov eax, offset early_pdpt
    or eax, 0x3
    mov dword ptr [early_pml4], eax
    mov eax, offset early_pd
    or eax, 0x3
    xor ecx, ecx
3:  mov dword ptr [early_pdpt + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 3b
    mov eax, 0x83               /* present, writable, 2 MiB page */
    xor ecx, ecx
4:  mov dword ptr [early_pd + ecx * 8], eax
    add eax, 0x200000
    inc ecx
    cmp ecx, 2048
    jb 4b

    mov eax, offset early_pml4
    mov cr3, eax
    mov eax, cr4
    or eax, 1 << 5              /* CR4.PAE */
    mov cr4, eax
    mov ecx, 0xC0000080         /* IA32_EFER */
    rdmsr
    or eax, (1 << 8) | (1 << 11) /* LME, NXE */
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1 /* PG, WP, PE */
    mov cr0, eax

    lgdt [early_gdt_pointer]
    push 0x08
    mov eax, offset long_mode_entry
    push eax
    retf

8:  /* Unsupported CPU: say so on COM1 (polling LSR.THRE) and halt. */
    mov esi, offset unsupported_cpu_message
9:  movzx ebx, byte ptr [esi]
    test ebx, ebx
    jz 7f
    mov dx, 0x3FD
6:  in al, dx
    test al, 0x20
    jz 6b
    mov dx, 0x3F8
    mov al, bl
    out dx, al
    inc esi
    jmp 9b
7:  cli
    hlt
    jmp 7b

    .code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + boot_stack_top]
    mov edi, dword ptr [rip + boot_arg_entry_path]
    mov esi, dword ptr [rip + boot_arg_eax]
    mov edx, dword ptr [rip + boot_arg_ebx]
    xor ebp, ebp                /* ends the frame-pointer chain for backtraces */
    call ferrovisor_main
    ud2

    /* Application processors arrive here from the real-mode trampoline (which the
       hypervisor copies below 1 MiB) in 32-bit protected mode through selector 0x18,
       paging off. They switch straight to the hypervisor's own page tables (whose
       PML4 lies below 4 GiB) and call ferrovisor_ap_main(cpu_index) on their stack. */
    .section .text.boot32, "ax"
    .code32
    .global ap_entry32
ap_entry32:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, dword ptr [ap_boot_cr3]
    mov cr3, eax
    mov eax, cr4
    or eax, (1 << 5) | (1 << 7)  /* PAE, PGE */
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 8) | (1 << 11)
    wrmsr
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1
    mov cr0, eax
    .byte 0xEA                  /* jmp far 0x08:ap_long_mode_entry (no stack yet) */
    .long ap_long_mode_entry
    .short 0x08

    .code64
ap_long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, qword ptr [rip + ap_boot_stack_top]
    mov edi, dword ptr [rip + ap_boot_cpu_index]
    xor ebp, ebp
    call ferrovisor_ap_main
    ud2

    /* The real-mode trampoline: copied to a page below 1 MiB, entered by SIPI at
       CS:IP = page:0 (SDM Vol. 3A §9.4.4). It loads early_gdt (the copy's pointer is
       patched with its address), enables protection and jumps to ap_entry32. */
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
ap_trampoline_start:
    .byte 0xEB, 0x0E            /* jmp short to offset 16, over the GDT pointer */
    .balign 8
    .global ap_trampoline_gdt_pointer
ap_trampoline_gdt_pointer:       /* offset 8: patched in the copy */
    .short 0
    .long 0
    .balign 16
    cli
    cld
    mov ax, cs
    mov ds, ax
    .byte 0x66, 0x0F, 0x01, 0x16, 0x08, 0x00 /* lgdt [8] with a 32-bit base (o32) */
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    .byte 0x66, 0xEA            /* jmp far 0x18:ap_entry32 (32-bit offset) */
    .long ap_entry32
    .short 0x18
    .global ap_trampoline_end
ap_trampoline_end:
    .code64
    "#,
    boot_stack_size = const BOOT_STACK_SIZE,
    entry_multiboot = const ENTRY_PATH_MULTIBOOT,
    entry_pvh = const ENTRY_PATH_PVH,
);

unsafe extern "C" {
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// The boot CPU's stack as `(guard page, bottom, top)` addresses.
pub fn boot_stack() -> (u64, u64, u64) {
    (
        core::ptr::addr_of!(boot_stack_guard) as u64,
        core::ptr::addr_of!(boot_stack_bottom) as u64,
        core::ptr::addr_of!(boot_stack_top) as u64,
    )
}

unsafe extern "C" {
    static early_gdt: u8;
    static ap_boot_parameters: u8;
    static ap_trampoline_start: u8;
    static ap_trampoline_gdt_pointer: u8;
    static ap_trampoline_end: u8;
}

/// Bytes of the real-mode AP trampoline.
pub fn ap_trampoline() -> &'static [u8] {
    let start = &raw const ap_trampoline_start;
    let len = (&raw const ap_trampoline_end) as usize - start as usize;
    // SAFETY: both symbols bound the trampoline's bytes in the image's read-only data,
    // which is mapped for the hypervisor's whole life.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Offset in the trampoline of its 6-byte GDT pointer, and the value to patch into the
/// copy: `limit` (u16) then the 32-bit linear base of `early_gdt`.
pub fn ap_trampoline_gdt_patch() -> (usize, [u8; 6]) {
    let offset =
        (&raw const ap_trampoline_gdt_pointer) as usize - (&raw const ap_trampoline_start) as usize;
    let base = (&raw const early_gdt) as u64 as u32;
    let limit: u16 = 4 * 8 - 1;
    let mut patch = [0; 6];
    patch[..2].copy_from_slice(&limit.to_le_bytes());
    patch[2..].copy_from_slice(&base.to_le_bytes());
    (offset, patch)
}

/// Hands the next AP what `ap_entry32` needs: the page-table root (below 4 GiB), its
/// stack top and its CPU index.
///
/// # Safety
/// Only the boot CPU calls this, and only while no AP is between its SIPI and its
/// call into `ferrovisor_ap_main` (APs start one at a time).
pub unsafe fn set_ap_boot_parameters(cr3: u64, stack_top: u64, cpu_index: u32) {
    let slots = (&raw const ap_boot_parameters) as *mut u64;
    // SAFETY: `ap_boot_parameters` is three u64s in the image's writable .data; the
    // caller guarantees nobody else reads or writes them now.
    unsafe { slots.write_volatile(cr3) };
    // SAFETY: as above, second slot.
    unsafe { slots.wrapping_add(1).write_volatile(stack_top) };
    // SAFETY: as above, third slot.
    unsafe { slots.wrapping_add(2).write_volatile(u64::from(cpu_index)) };
}
