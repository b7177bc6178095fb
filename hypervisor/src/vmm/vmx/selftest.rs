//! A VT-x-specific self test (test builds only): a guest that walks through the paging
//! modes a PVH kernel may use, so that both the paths the CPU runs natively and the ones
//! the backend emulates are exercised. Exit by exit:
//!
//! 1. CPUID (leaf in EAX); 2. OUT to port 0x80 (value in AL);
//! 3. (after CR0.PG|NE in one MOV: NE is host-owned, so the write is emulated, entering
//!    32-bit PAE paging with the PDPTEs loaded by the backend) VMCALL: CR0 as the guest
//!    reads it, EFER still 0; then paging off natively;
//! 4. RDMSR EFER; 5. WRMSR EFER.LME (→ `write_efer`); then CR0.PG with NE cleared (an
//!    emulated entry to IA-32e mode), the far jump to 64-bit code, and CR0.NE set again
//!    in 64-bit mode (emulated, 64-bit operand);
//! 6. VMCALL: CR0/CR4 as the guest reads them (NE set, VMXE clear), EFER.LMA set;
//! 7. HLT; 8. an EPT violation at 4 MiB, which the test maps and the guest retries;
//! 9. VMCALL with the value read there; 10. MOV to CR4 with VMXE: #GP, and with no guest
//!    IDT a triple fault (→ `Shutdown`).
//!
//! The test guests in `tests/guests` cover the native path to long mode (CR0.PG without
//! touching NE).

use ferrovisor::nested_paging::{Access, AddressSpace, Ept, MemoryType};
use ferrovisor::vcpu::{Exit, IoAccess, IoSize, NestedFault};

use super::{VmxCpu, VmxVcpu};
use crate::memory::{alloc_zeroed, free, phys_to_virt};
use crate::vmm::{HostTables, VcpuBackend, VcpuConfig};

core::arch::global_asm!(
    r#"
    .section .rodata.vmx_selftest_guest, "a"
    .global vmx_selftest_guest_start
    .global vmx_selftest_guest_end
vmx_selftest_guest_start:
    .code32
    mov eax, 0x40000000
    cpuid
    mov al, 0x5a
    out 0x80, al
    mov eax, cr4
    or eax, 0x20                        /* PAE */
    mov cr4, eax
    mov eax, 0x13000                    /* PAE PDPT */
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000021                  /* PG, NE, PE: emulated (NE), PAE paging */
    mov cr0, eax
    mov ebx, cr0
    vmcall
    mov eax, cr0
    and eax, 0x7fffffff                 /* paging off, natively */
    mov cr0, eax
    mov eax, 0x10000                    /* PML4 */
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100                       /* LME */
    wrmsr
    mov eax, cr0
    or eax, 0x80000000                  /* PG */
    and eax, 0xffffffdf                 /* NE off: emulated entry to IA-32e mode */
    mov cr0, eax
    lgdt [0x2100]
    .byte 0xEA
    .long 0x1000 + (2f - vmx_selftest_guest_start)
    .short 0x08
    .code64
2:  mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rax, cr0
    or rax, 0x20                        /* NE: emulated with a 64-bit operand */
    mov cr0, rax
    mov rbx, cr0
    mov rcx, cr4
    mov rax, 0x1122334455667788
    vmcall
    hlt
    mov rax, qword ptr [0x400000]
    vmcall
    mov rax, cr4
    or rax, 0x2000                      /* VMXE: #GP */
    mov cr4, rax
    ud2
vmx_selftest_guest_end:
    "#
);

unsafe extern "C" {
    static vmx_selftest_guest_start: u8;
    static vmx_selftest_guest_end: u8;
}

const GUEST_BASE: u64 = 0x1000;
const PML4: u64 = 0x10000;
const PAE_PDPT: u64 = 0x13000;
const GDT: u64 = 0x2000;
const GDTR: u64 = 0x2100;
const MARKER: u64 = 0xFEED_FACE_CAFE_F00D;

fn write_guest_u64(ram: u64, gpa: u64, value: u64) {
    // SAFETY: `ram` is the test's own 2 MiB block in the direct map and every `gpa`
    // used here lies inside it, 8-byte aligned.
    unsafe { (phys_to_virt(ram + gpa) as *mut u64).write(value) };
}

/// One run; a host interrupt that caused the exit is taken right after.
fn run_once(vcpu: &mut VmxVcpu) -> Exit {
    loop {
        x86_64::instructions::interrupts::disable();
        let exit = vcpu.run();
        x86_64::instructions::interrupts::enable();
        if exit != Exit::ExternalInterrupt {
            return exit;
        }
    }
}

fn expect(step: u32, vcpu: &mut VmxVcpu, want: Exit) -> Result<(), &'static str> {
    let exit = run_once(vcpu);
    log::info!(
        "vmx-selftest: exit {step}: {exit:?} at rip {:#x}",
        vcpu.rip()
    );
    if exit == want {
        Ok(())
    } else {
        log::warn!("vmx-selftest: exit {step}: expected {want:?}");
        Err("unexpected exit")
    }
}

/// Runs the check on the calling CPU, whose VMX state is `cpu`.
pub fn long_mode_guest(cpu: &VmxCpu) -> Result<&'static str, &'static str> {
    let ram = alloc_zeroed(9).ok_or("no 2 MiB block for guest RAM")?;
    let extra = alloc_zeroed(0).ok_or("no frame for the late mapping")?;
    let start = (&raw const vmx_selftest_guest_start) as u64;
    let len = (&raw const vmx_selftest_guest_end) as u64 - start;
    // SAFETY: the code lies in the image's .rodata; `ram` is ours and large enough.
    unsafe {
        core::ptr::copy_nonoverlapping(
            start as *const u8,
            phys_to_virt(ram + GUEST_BASE) as *mut u8,
            len as usize,
        )
    };
    // The guest's own page tables: the first GiB identity-mapped by 2 MiB pages.
    // The guest's page tables: one page directory mapping the first GiB by 2 MiB
    // pages, under a 4-level PML4/PDPT and under a PAE PDPT (present bit only: the
    // other low bits are reserved in PAE PDPTEs).
    write_guest_u64(ram, PML4, (PML4 + 0x1000) | 3);
    write_guest_u64(ram, PML4 + 0x1000, (PML4 + 0x2000) | 3);
    for i in 0..512 {
        write_guest_u64(ram, PML4 + 0x2000 + i * 8, (i << 21) | 0x83);
    }
    write_guest_u64(ram, PAE_PDPT, (PML4 + 0x2000) | 1);
    write_guest_u64(ram, GDT + 8, 0x00AF_9B00_0000_FFFF);
    write_guest_u64(ram, GDT + 16, 0x00CF_9300_0000_FFFF);
    write_guest_u64(ram, GDTR, (GDT << 16) | 23);
    // SAFETY: `extra` is our own zeroed frame.
    unsafe { (phys_to_virt(extra) as *mut u64).write(MARKER) };

    let mut tables = HostTables;
    let mut space =
        AddressSpace::new(Ept { gib_pages: false }, &mut tables).map_err(|_| "no EPT root")?;
    space
        .map(
            &mut tables,
            0,
            ram,
            2 << 20,
            Access::RWX,
            MemoryType::WriteBack,
        )
        .map_err(|_| "mapping guest RAM failed")?;
    let config = VcpuConfig {
        nested_root: space.root(),
        tag: 2,
    };
    let entry = ferrovisor::vcpu::VcpuInitState::pvh_entry(GUEST_BASE as u32, 0x1234);
    let result = (|| {
        let mut vcpu = VmxVcpu::new(cpu, &config, &entry).map_err(|e| {
            log::warn!("vmx-selftest: {e}");
            "no vCPU"
        })?;
        vcpu.load().map_err(|_| "the VMCS could not be loaded")?;
        if vcpu.regs().rbx != 0x1234 || vcpu.rip() != GUEST_BASE {
            return Err("wrong entry state");
        }
        expect(1, &mut vcpu, Exit::Cpuid)?;
        if vcpu.regs().rax != 0x4000_0000 {
            return Err("CPUID leaf not in RAX");
        }
        vcpu.skip_instruction(2);
        expect(
            2,
            &mut vcpu,
            Exit::Io(IoAccess {
                port: 0x80,
                size: IoSize::Byte,
                write: true,
                string: false,
                rep: false,
            }),
        )?;
        if vcpu.regs().rax & 0xFF != 0x5A {
            return Err("OUT value not in AL");
        }
        vcpu.skip_instruction(2);
        expect(3, &mut vcpu, Exit::Hypercall)?;
        let paging = vcpu.paging_state();
        log::info!(
            "vmx-selftest: PAE paging: guest sees cr0={:#x}; paging state {paging:x?}",
            vcpu.regs().rbx
        );
        if vcpu.regs().rbx & 0xFFFF_FFFF != paging.cr0
            || paging.cr0 & 0x8000_0021 != 0x8000_0021
            || paging.cr3 != PAE_PDPT
            || paging.efer != 0
        {
            return Err("wrong state after the emulated switch to PAE paging");
        }
        vcpu.skip_instruction(3);
        expect(4, &mut vcpu, Exit::MsrRead { msr: 0xC000_0080 })?;
        let efer = vcpu.paging_state().efer;
        vcpu.regs().rax = efer & 0xFFFF_FFFF;
        vcpu.regs().rdx = efer >> 32;
        vcpu.skip_instruction(2);
        expect(
            5,
            &mut vcpu,
            Exit::MsrWrite {
                msr: 0xC000_0080,
                value: 0x100,
            },
        )?;
        vcpu.write_efer(0x100);
        vcpu.skip_instruction(2);
        expect(6, &mut vcpu, Exit::Hypercall)?;
        let regs = *vcpu.regs();
        let paging = vcpu.paging_state();
        log::info!(
            "vmx-selftest: long mode: guest sees cr0={:#x} cr4={:#x}; paging state {paging:x?}",
            regs.rbx,
            regs.rcx
        );
        if regs.rax != 0x1122_3344_5566_7788 {
            return Err("RAX lost across the exits");
        }
        if regs.rbx & 0x8000_0021 != 0x8000_0021 || paging.cr0 != regs.rbx {
            return Err("guest CR0 is not PG|NE|PE as written");
        }
        if regs.rcx & (1 << 13) != 0 || regs.rcx & 0x20 == 0 || paging.cr4 != regs.rcx {
            return Err("guest CR4 shows VMXE or lost PAE");
        }
        if paging.efer & 0x500 != 0x500 || paging.cr3 != PML4 {
            return Err("EFER.LMA/LME or CR3 wrong in long mode");
        }
        vcpu.skip_instruction(3);
        expect(7, &mut vcpu, Exit::Hlt)?;
        vcpu.skip_instruction(1);
        expect(
            8,
            &mut vcpu,
            Exit::NestedPageFault(NestedFault {
                gpa: 0x40_0000,
                read: true,
                write: false,
                fetch: false,
                present: false,
            }),
        )?;
        space
            .map(
                &mut tables,
                0x40_0000,
                extra,
                4096,
                Access::READ,
                MemoryType::WriteBack,
            )
            .map_err(|_| "late mapping failed")?;
        vcpu.flush_ept().map_err(|_| "INVEPT failed")?;
        expect(9, &mut vcpu, Exit::Hypercall)?;
        if vcpu.regs().rax != MARKER {
            return Err("the retried load did not read the new mapping");
        }
        vcpu.skip_instruction(3);
        expect(10, &mut vcpu, Exit::Shutdown)?;
        Ok(
            "PAE and IA-32e paging entered through emulated CR0 writes, CR0.NE host-owned, CR4.VMXE refused with #GP, EPT violation retried, triple fault reported",
        )
    })();
    space.destroy(&mut tables);
    free(extra, 0);
    free(ram, 9);
    result
}
