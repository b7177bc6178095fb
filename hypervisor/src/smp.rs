//! Bringing every CPU online: local APICs, the AP trampoline, INIT-SIPI-SIPI, and the
//! interrupts CPUs send each other.
//!
//! Start-up (SDM Vol. 3A §9.4.4 "MP Initialization Example", with the timings of the
//! universal start-up algorithm): for each AP in turn the boot CPU prepares its stacks
//! and per-CPU state, sends INIT, waits 10 ms, sends a start-up IPI pointing at the
//! trampoline page, and waits for the AP to report itself online; a second SIPI follows
//! after 200 µs if it has not. An AP that never comes online is reported and skipped.

use core::sync::atomic::{AtomicBool, Ordering};

use ferrovisor_arch::apic::{Delivery, Destination, LocalApic, has_x2apic, xapic_physical_base};
use ferrovisor_arch::descriptors::{CpuDescriptors, IST_STACK_SIZE, IstStacks};
use log::{info, warn};

use crate::memory::{self, phys_to_virt};
use crate::percpu::{self, MAX_CPUS, PerCpu};
use crate::time;

/// Interrupt vectors the hypervisor uses (above the exceptions; the legacy PIC is masked).
pub mod vectors {
    /// The per-CPU one-shot timer.
    pub const TIMER: u8 = 0xEC;
    /// A directed "kick" from another CPU.
    pub const KICK: u8 = 0xF0;
    /// Local APIC error.
    pub const APIC_ERROR: u8 = 0xFE;
    /// Spurious interrupts (SDM Vol. 3A §11.9): no EOI.
    pub const SPURIOUS: u8 = 0xFF;
}

/// Bytes in each CPU's main stack.
const STACK_SIZE: u64 = 128 * 1024;

/// Set once a fatal error has begun stopping the machine: an NMI then means "stop".
pub static STOPPING: AtomicBool = AtomicBool::new(false);

/// xAPIC mode shares one mapping of the APIC page (every CPU sees its own APIC there).
static XAPIC_MMIO: spin::Once<Option<u64>> = spin::Once::new();

/// Masks both legacy 8259 PICs: Ferrovisor takes interrupts through the APICs only.
fn mask_legacy_pics() {
    use x86_64::instructions::port::Port;
    for port in [0x21u16, 0xA1] {
        let mut mask: Port<u8> = Port::new(port);
        // SAFETY: 0x21/0xA1 are the PIC data ports; writing 0xFF masks every line, so
        // the PIC can no longer raise interrupts that nobody handles.
        unsafe { mask.write(0xFF) };
    }
}

/// Maps every I/O APIC the MADT lists and masks all its pins.
pub fn mask_io_apics(platform: &ferrovisor_drivers::acpi::Platform) {
    for description in &platform.io_apics {
        match memory::map_mmio(description.address, 0x20) {
            Ok(mmio) => {
                // SAFETY: `mmio` maps this I/O APIC's register window uncached, and only
                // this code touches it.
                let io_apic = unsafe { ferrovisor_drivers::ioapic::IoApic::new(mmio) };
                let pins = io_apic.mask_all();
                info!(
                    "ioapic {}: at {:#x}, gsi {}..{}, all {pins} pins masked",
                    description.id,
                    description.address,
                    description.gsi_base,
                    description.gsi_base + pins
                );
            }
            Err(e) => warn!(
                "ioapic {}: cannot map {:#x}: {e}",
                description.id, description.address
            ),
        }
    }
}

/// Per-CPU bring-up common to the boot CPU and every AP, run on the CPU itself once
/// its descriptors, GS base and local APIC are set up. It
/// records what the CPU offers, checks that every CPU agrees with the boot CPU (one
/// hypervisor policy must fit all of them), and turns VT-x or AMD-V on.
fn cpu_online_hook(cpu: &PerCpu) {
    let virt = ferrovisor_arch::cpu::detect_virtualization();
    cpu.virtualization.call_once(|| virt);
    cpu.virt
        .call_once(|| match crate::vmm::enable_on_this_cpu() {
            Ok(enabled) => {
                let name = match enabled {
                    crate::vmm::VirtCpu::Svm(_) => "AMD-V",
                    crate::vmm::VirtCpu::Vmx(_) => "VT-x",
                };
                log::debug!("cpu {}: {name} enabled", cpu.index);
                Some(enabled)
            }
            Err(why) => {
                warn!("cpu {}: no guests on this CPU: {why}", cpu.index);
                None
            }
        });
    if let Some(boot) = percpu::get(0).and_then(|b| b.virtualization.get())
        && *boot != virt
    {
        warn!(
            "cpu {}: virtualization features differ from the boot CPU's: {virt} vs {boot}",
            cpu.index
        );
    }
}

/// Enables the local APIC on the running CPU (x2APIC when present) and records it.
fn enable_local_apic(cpu: &PerCpu) -> Result<LocalApic, memory::MemoryError> {
    let mmio = *XAPIC_MMIO.try_call_once(|| {
        if has_x2apic() {
            Ok(None)
        } else {
            memory::map_mmio(xapic_physical_base(), 4096).map(Some)
        }
    })?;
    // SAFETY: interrupts are disabled during bring-up; `mmio` (xAPIC) maps the APIC page
    // uncached; the vectors used have handlers (every vector has a stub).
    let apic = unsafe { LocalApic::enable(mmio, vectors::SPURIOUS, vectors::APIC_ERROR) };
    cpu.apic.call_once(|| apic);
    Ok(apic)
}

/// Sets up the boot CPU's per-CPU state and APIC. Call after memory is up.
pub fn init_boot_cpu(apic_id: u32) -> &'static PerCpu {
    let (_guard, bottom, top) = ferrovisor_boot::entry::boot_stack();
    let cpu = PerCpu::create(0, apic_id, bottom..top, IstStacks::boot_cpu());
    cpu.install();
    mask_legacy_pics();
    match enable_local_apic(cpu) {
        Ok(apic) => {
            let id = apic.id();
            info!(
                "cpu 0: apic id {id} ({}), boot CPU",
                if matches!(apic, LocalApic::X2Apic) {
                    "x2apic"
                } else {
                    "xapic"
                }
            );
        }
        Err(e) => warn!("cpu 0: cannot map the local APIC: {e}"),
    }
    cpu_online_hook(cpu);
    cpu.online.store(true, Ordering::Release);
    cpu
}

/// Picks a free page below 1 MiB for the trampoline: usable RAM, not a boot module.
fn trampoline_page(boot: &ferrovisor_boot::BootInfo) -> Option<u64> {
    (1..0x9F_u64).rev().map(|page| page << 12).find(|&page| {
        let inside_usable = boot.memory_map.iter().any(|r| {
            r.kind == ferrovisor_boot::MemoryKind::Usable
                && r.start <= page
                && page + 4096 <= r.end()
        });
        let clashes = boot
            .modules
            .iter()
            .any(|m| m.start < page + 4096 && page < m.end);
        inside_usable && !clashes
    })
}

/// Starts every AP in `apic_ids` (the firmware's list, boot CPU included or not) up to
/// `max_cpus` CPUs in all. Returns how many CPUs are online afterwards.
pub fn start_aps(boot: &ferrovisor_boot::BootInfo, apic_ids: &[u32], max_cpus: usize) -> usize {
    let bsp = percpu::current();
    let Some(apic) = bsp.apic.get().copied() else {
        warn!("smp: no local APIC; running on the boot CPU only");
        return 1;
    };
    let Some(page) = trampoline_page(boot) else {
        warn!("smp: no free page below 1 MiB for the AP trampoline; boot CPU only");
        return 1;
    };
    // Copy the trampoline and patch its GDT pointer (the page is in the direct map).
    let code = ferrovisor_boot::entry::ap_trampoline();
    let (patch_offset, patch) = ferrovisor_boot::entry::ap_trampoline_gdt_patch();
    let target = phys_to_virt(page) as *mut u8;
    // SAFETY: `page` is a usable RAM page below 1 MiB that nothing owns (the frame
    // allocator never hands out the first MiB; modules were excluded above); the
    // trampoline (< 4 KiB) fits, and the direct map maps it writable.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), target, code.len()) };
    // SAFETY: as above; the patch lies inside the copied trampoline.
    unsafe {
        core::ptr::copy_nonoverlapping(
            patch.as_ptr(),
            target.wrapping_add(patch_offset),
            patch.len(),
        )
    };

    let mut next_index = 1u32;
    for &apic_id in apic_ids {
        if apic_id == bsp.apic_id {
            continue;
        }
        if next_index as usize >= max_cpus.min(MAX_CPUS) {
            info!("smp: cpu limit {max_cpus} reached; apic id {apic_id} left offline");
            continue;
        }
        match start_one(apic, page, next_index, apic_id) {
            Ok(()) => next_index += 1,
            Err(reason) => warn!("smp: apic id {apic_id} did not start: {reason}"),
        }
    }
    percpu::online_count()
}

fn start_one(apic: LocalApic, page: u64, index: u32, apic_id: u32) -> Result<(), &'static str> {
    let stack = memory::alloc_stack(STACK_SIZE).map_err(|_| "no memory for its stack")?;
    let ist = IstStacks {
        double_fault: memory::alloc_stack(IST_STACK_SIZE as u64)
            .map_err(|_| "no memory for IST stacks")?,
        nmi: memory::alloc_stack(IST_STACK_SIZE as u64).map_err(|_| "no memory for IST stacks")?,
        machine_check: memory::alloc_stack(IST_STACK_SIZE as u64)
            .map_err(|_| "no memory for IST stacks")?,
    };
    let cpu = PerCpu::create(index, apic_id, stack.clone(), ist);
    // SAFETY: the boot CPU starts APs one at a time and waits for each to come online
    // (or gives up on it, after which it never reads the slots: see below) before
    // writing the next AP's parameters.
    unsafe {
        ferrovisor_boot::entry::set_ap_boot_parameters(memory::kernel_cr3(), stack.end, index)
    };

    apic.send_ipi(Delivery::Init, Destination::Apic(apic_id));
    time::delay_us(10_000);
    let vector = (page >> 12) as u8;
    for _attempt in 0..2 {
        apic.send_ipi(Delivery::Startup(vector), Destination::Apic(apic_id));
        if time::wait_until(200, || cpu.online.load(Ordering::Acquire)) {
            return Ok(());
        }
    }
    // Give a slow CPU (or emulator) up to a second before declaring it lost.
    if time::wait_until(1_000_000, || cpu.online.load(Ordering::Acquire)) {
        return Ok(());
    }
    Err("no response to INIT-SIPI-SIPI within 1 s")
}

/// An AP's first Rust code, called by `ap_entry32` on its own stack.
#[unsafe(no_mangle)]
extern "C" fn ferrovisor_ap_main(cpu_index: u32) -> ! {
    let cpu = percpu::get(cpu_index).expect("AP started without per-CPU state");
    let tables = alloc::boxed::Box::leak(alloc::boxed::Box::new(CpuDescriptors::new(&cpu.ist)));
    tables.load();
    cpu.install();
    match enable_local_apic(cpu) {
        Ok(apic) => info!("cpu {cpu_index}: apic id {} online", apic.id()),
        Err(e) => warn!("cpu {cpu_index}: local APIC unusable: {e}"),
    }
    cpu_online_hook(cpu);
    cpu.online.store(true, Ordering::Release);
    crate::start::ap_run(cpu)
}

/// Sends a kick IPI to CPU `index`.
pub fn kick(index: u32) {
    if let Some(target) = percpu::get(index) {
        percpu::current().local_apic().send_ipi(
            Delivery::Fixed(vectors::KICK),
            Destination::Apic(target.apic_id),
        );
    }
}

#[cfg_attr(
    not(feature = "selftest"),
    allow(dead_code, reason = "the scheduler is its first production user")
)]
/// Sends a kick IPI to every CPU but this one.
pub fn kick_all_but_self() {
    percpu::current()
        .local_apic()
        .send_ipi(Delivery::Fixed(vectors::KICK), Destination::AllButSelf);
}

/// Sends an NMI to every other CPU (used to stop the machine on a fatal error).
pub fn nmi_all_but_self() {
    if let Some(apic) = percpu::try_current().and_then(|cpu| cpu.apic.get().copied()) {
        apic.send_ipi(Delivery::Nmi, Destination::AllButSelf);
    }
}

/// Handles an interrupt (vector ≥ 32) on the running CPU.
pub fn handle_interrupt(vector: u8) {
    let cpu = percpu::current();
    match vector {
        vectors::SPURIOUS => return, // no EOI for spurious interrupts (§11.9)
        vectors::KICK => {
            cpu.ipis_received.fetch_add(1, Ordering::AcqRel);
            cpu.need_resched.store(true, Ordering::Release);
            #[cfg(feature = "selftest")]
            crate::selftest::on_kick(cpu);
        }
        vectors::TIMER => {
            cpu.timer_interrupts.fetch_add(1, Ordering::AcqRel);
            time::on_timer_interrupt(cpu);
        }
        vectors::APIC_ERROR => warn!("cpu {}: local APIC error", cpu.index),
        other => warn!("cpu {}: unexpected interrupt vector {other:#x}", cpu.index),
    }
    cpu.local_apic().eoi();
}
