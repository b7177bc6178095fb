//! `selftest=vmm-smoke`: the smallest end-to-end check of a backend. A 2 MiB guest
//! whose code at 0x1000 is `mov eax, 0x40000000; cpuid; hlt` must exit for CPUID with
//! the right leaf, take the answer, and exit for HLT; read its TSC with an offset; then,
//! with interrupts disabled, get an interrupt-window exit right after it enables them,
//! and take an injected external interrupt through its own IDT.

use ferrovisor::nested_paging::{Access, AddressSpace, EntryFormat, Ept, MemoryType, Npt};
use ferrovisor::vcpu::Exit;
use ferrovisor_drivers::console_print;

use super::{HostTables, VcpuBackend, VcpuConfig, Vendor};
use crate::memory::{alloc_zeroed, phys_to_virt};

/// At guest-physical 0x1000: `mov eax, 0x40000000; cpuid; hlt; rdtsc; hlt;
/// mov esp, 0x1f00; cli; hlt; sti; nop; hlt`.
const GUEST_CODE: [u8; 21] = [
    0xB8, 0x00, 0x00, 0x00, 0x40, 0x0F, 0xA2, 0xF4, 0x0F, 0x31, 0xF4, 0xBC, 0x00, 0x1F, 0x00, 0x00,
    0xFA, 0xF4, 0xFB, 0x90, 0xF4,
];
/// The interrupt handler at 0x1100: `mov ebx, 0xcafe; hlt`.
const HANDLER_CODE: [u8; 6] = [0xBB, 0xFE, 0xCA, 0x00, 0x00, 0xF4];
/// The vector injected; its 32-bit interrupt gate (selector 0x08, present, DPL 0,
/// handler 0x1100) sits in the guest's IDT, which starts at 0 (the PVH entry state).
const VECTOR: u8 = 0x40;
const GATE: [u8; 8] = [0x00, 0x11, 0x08, 0x00, 0x00, 0x8E, 0x00, 0x00];
/// Delivery reloads CS from the GDT, which also starts at 0 in the PVH entry state:
/// selector 0x08 is bytes 8..16 (vector 1's gate slot, unused): flat 32-bit code.
const CODE_DESCRIPTOR: [u8; 8] = [0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00];
/// A TSC offset large enough that the guest's RDTSC shows it in EDX.
const TSC_OFFSET: u64 = 1 << 60;

/// Runs the smoke test; `Ok` with a summary or `Err` with what went wrong.
pub fn run() -> Result<&'static str, &'static str> {
    let vendor = Vendor::detect()?;
    let ram = alloc_zeroed(9).ok_or("no 2 MiB block for guest RAM")?;
    // SAFETY: the block is ours and mapped by the direct map; the code fits at 0x1000.
    unsafe {
        core::ptr::copy_nonoverlapping(
            GUEST_CODE.as_ptr(),
            phys_to_virt(ram + 0x1000) as *mut u8,
            GUEST_CODE.len(),
        )
    };
    // SAFETY: as above; the handler and the gate lie inside the same 2 MiB block.
    unsafe {
        core::ptr::copy_nonoverlapping(
            HANDLER_CODE.as_ptr(),
            phys_to_virt(ram + 0x1100) as *mut u8,
            HANDLER_CODE.len(),
        )
    };
    // SAFETY: as above.
    unsafe {
        core::ptr::copy_nonoverlapping(
            GATE.as_ptr(),
            phys_to_virt(ram + u64::from(VECTOR) * 8) as *mut u8,
            GATE.len(),
        )
    };
    // SAFETY: as above.
    unsafe {
        core::ptr::copy_nonoverlapping(
            CODE_DESCRIPTOR.as_ptr(),
            phys_to_virt(ram + 8) as *mut u8,
            CODE_DESCRIPTOR.len(),
        )
    };
    let gib = ferrovisor_arch::cpu::has_1gib_pages();
    let config = |root| VcpuConfig {
        nested_root: root,
        tag: 1,
    };
    let entry = ferrovisor::vcpu::VcpuInitState::pvh_entry(0x1000, 0);
    let here = crate::percpu::current().index;
    match vendor {
        Vendor::Svm => {
            let Some(super::VirtCpu::Svm(cpu)) = super::this_cpu() else {
                return Err("AMD-V is not enabled on this CPU");
            };
            let root = map_guest(Npt { gib_pages: gib }, ram)?;
            let mut vcpu = super::svm::SvmVcpu::new(cpu.nrips(), &config(root), &entry)
                .map_err(|_| "no memory for the vCPU")?;
            vcpu.load(cpu, here);
            let result = exercise(&mut vcpu);
            vcpu.put();
            result
        }
        Vendor::Vmx => {
            let Some(super::VirtCpu::Vmx(cpu)) = super::this_cpu() else {
                return Err("VT-x is not enabled on this CPU");
            };
            let root = map_guest(Ept { gib_pages: gib }, ram)?;
            let mut vcpu = super::vmx::VmxVcpu::new(cpu, &config(root), &entry).map_err(|e| {
                log::warn!("vmx: {e}");
                "no vCPU"
            })?;
            let _ = here;
            vcpu.load().map_err(|_| "the VMCS could not be loaded")?;
            let first = exercise(&mut vcpu)?;
            vcpu.put();
            console_print!("vmm-smoke: {first}\n");
            drop(vcpu);
            super::vmx::selftest::long_mode_guest(cpu)
        }
    }
}

fn map_guest<F: EntryFormat>(format: F, ram: u64) -> Result<u64, &'static str> {
    let mut tables = HostTables;
    let mut space =
        AddressSpace::new(format, &mut tables).map_err(|_| "no memory for nested page tables")?;
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
    let counts = space.counts();
    console_print!(
        "vmm-smoke: guest RAM mapped with {} x 2 MiB, {} x 4 KiB, {} tables\n",
        counts.pages_2m,
        counts.pages_4k,
        counts.tables
    );
    Ok(space.root())
}

fn exercise(vcpu: &mut impl VcpuBackend) -> Result<&'static str, &'static str> {
    let exit = run_once(vcpu);
    console_print!("vmm-smoke: first exit {exit:?} at rip {:#x}\n", vcpu.rip());
    if exit != Exit::Cpuid || vcpu.regs().rax != 0x4000_0000 || vcpu.rip() != 0x1005 {
        return Err("expected a CPUID exit for leaf 0x40000000 at 0x1005");
    }
    vcpu.regs()
        .set_cpuid_result([0x4000_0002, 0x1234, 0x5678, 0x9abc]);
    vcpu.skip_instruction(2);
    let exit = run_once(vcpu);
    console_print!("vmm-smoke: second exit {exit:?} at rip {:#x}\n", vcpu.rip());
    if exit != Exit::Hlt || vcpu.rip() != 0x1007 || vcpu.regs().rbx != 0x1234 {
        return Err("expected a HLT exit at 0x1007 with the CPUID answer in RBX");
    }
    vcpu.set_tsc_offset(TSC_OFFSET);
    vcpu.skip_instruction(1);
    let exit = run_once(vcpu);
    let guest_tsc = (vcpu.regs().rdx << 32) | (vcpu.regs().rax & 0xffff_ffff);
    console_print!("vmm-smoke: third exit {exit:?}, guest TSC {guest_tsc:#x}\n");
    if exit != Exit::Hlt || guest_tsc < TSC_OFFSET {
        return Err("the guest's RDTSC did not include the TSC offset");
    }
    // Interrupts off (CLI), then HLT: ask for a window and let it go on to STI; NOP.
    vcpu.skip_instruction(1);
    let exit = run_once(vcpu);
    if exit != Exit::Hlt || vcpu.rip() != 0x1011 {
        return Err("expected the HLT after CLI at 0x1011");
    }
    vcpu.request_interrupt_window(true);
    vcpu.skip_instruction(1);
    let exit = run_once(vcpu);
    console_print!("vmm-smoke: window exit {exit:?} at rip {:#x}\n", vcpu.rip());
    // STI blocks interrupts for one more instruction, so the window opens after the NOP
    // (0x1014); QEMU's AMD-V takes the virtual-interrupt exit right after STI (0x1013),
    // ignoring the shadow. Either way it is after interrupts were enabled.
    if exit != Exit::InterruptWindow || !(0x1013..=0x1014).contains(&vcpu.rip()) {
        return Err("expected an interrupt-window exit after STI, at 0x1013 or 0x1014");
    }
    vcpu.request_interrupt_window(false);
    vcpu.inject_interrupt(VECTOR);
    let exit = run_once(vcpu);
    console_print!(
        "vmm-smoke: after injecting vector {VECTOR:#x}: {exit:?} at rip {:#x}, rbx {:#x}\n",
        vcpu.rip(),
        vcpu.regs().rbx
    );
    if exit != Exit::Hlt || vcpu.rip() != 0x1105 || vcpu.regs().rbx != 0xcafe {
        return Err("the injected interrupt did not reach the guest's handler");
    }
    Ok("cpuid, hlt, a TSC offset, an interrupt window and an injected interrupt round-tripped")
}

/// One entry with interrupts disabled around the switch; a host interrupt that caused
/// the exit is taken right after (interrupts briefly enabled), then the guest resumes.
fn run_once(vcpu: &mut impl VcpuBackend) -> Exit {
    loop {
        x86_64::instructions::interrupts::disable();
        let exit = vcpu.run();
        x86_64::instructions::interrupts::enable();
        if exit != Exit::ExternalInterrupt {
            return exit;
        }
    }
}
