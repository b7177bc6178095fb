//! The boot sequence, in order: console, traps, boot description, command line, banner,
//! memory, then work (self-tests in test builds; idle until domains exist otherwise).

use ferrovisor_arch::cpu::{CpuIdentity, detect_virtualization};
use ferrovisor_boot::cmdline::Options;
use ferrovisor_boot::entry::ENTRY_PATH_PVH;
use ferrovisor_boot::{BootInfo, BootProtocol, EntryPath, PhysMemory};
use ferrovisor_drivers::console;
use log::{info, warn};
use spin::Mutex;

use crate::platform::{ExitCode, stop};
use crate::{memory, smp, time};

/// The boot description, filled once by `ferrovisor_main`.
static BOOT_INFO: Mutex<BootInfo> = Mutex::new(BootInfo::empty(BootProtocol::Multiboot1));

/// Boot-loader memory as seen through the 32-bit entry's identity map of 0..4 GiB, which
/// is live until `memory::init` loads the hypervisor's own page tables.
struct EarlyIdentityMemory;

impl PhysMemory for EarlyIdentityMemory {
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]> {
        const IDENTITY_LIMIT: u64 = 4 << 30;
        let end = paddr.checked_add(len as u64)?;
        // Address 0 cannot back a Rust slice, and nothing a loader hands over lives there.
        if paddr == 0 || end > IDENTITY_LIMIT {
            return None;
        }
        // SAFETY: [paddr, end) is inside the early identity map (2 MiB pages covering all
        // of 0..4 GiB, present and readable), non-null, and the boot sequence neither
        // writes this memory nor frees it while the BootInfo is being parsed; the slice
        // does not outlive `parse`, which copies everything it keeps.
        Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, len) })
    }
}

/// Called by the 32-bit entry (boot/src/entry.rs) in long mode on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn ferrovisor_main(entry_path: u32, eax: u32, ebx: u32) -> ! {
    // Without a console we can still run; we just cannot say anything.
    let _ = console::init(log::LevelFilter::Info);
    ferrovisor_arch::descriptors::init_boot_cpu();

    let entry = if entry_path == ENTRY_PATH_PVH {
        EntryPath::Pvh
    } else {
        EntryPath::Multiboot
    };
    // The boot description is ~14 KiB: it is parsed in place into a static rather than
    // returned on the 64 KiB boot stack. The guard is held for good (this never returns).
    let mut boot = BOOT_INFO.lock();
    if let Err(error) =
        ferrovisor_boot::parse_into(entry, eax, ebx, &EarlyIdentityMemory, &mut boot)
    {
        cannot_boot(format_args!("{error}"));
    }
    let options = Options::parse(boot.cmdline.as_str());
    if let Some(level) = options.loglvl {
        console::set_level(level);
    }

    info!(
        "Ferrovisor {} booted by {}",
        env!("CARGO_PKG_VERSION"),
        boot.protocol
    );
    if let Some(loader) = &boot.bootloader {
        info!("boot loader: {}", loader.as_str());
    }
    info!("command line: \"{}\"", boot.cmdline.as_str());
    report_options(&options);
    info!("cpu: {}", CpuIdentity::read());
    info!("virt: {}", detect_virtualization());

    let summary = match memory::init(&boot) {
        Ok(summary) => summary,
        Err(error) => cannot_boot(format_args!("memory: {error}")),
    };
    info!(
        "memory: ram={} KiB usable={} KiB free={} KiB",
        summary.ram_bytes / 1024,
        summary.usable_bytes / 1024,
        summary.free_bytes / 1024
    );
    info!(
        "memory: heap={} KiB page-tables={} KiB frame-metadata={} KiB",
        summary.heap_bytes / 1024,
        summary.page_table_bytes / 1024,
        summary.metadata_bytes / 1024
    );
    report_boot_info(&boot);

    let boot_apic_id = raw_cpuid::CpuId::new()
        .get_feature_info()
        .map_or(0, |f| u32::from(f.initial_local_apic_id()));
    let platform = crate::platform_acpi::platform(boot.rsdp, boot_apic_id);
    time::init(platform);
    smp::mask_io_apics(platform);
    let bsp = smp::init_boot_cpu(boot_apic_id);
    if let Some(apic) = bsp.apic.get() {
        time::calibrate_apic_timer(*apic);
    }
    let max_cpus = if options.nosmp {
        1
    } else {
        options.maxcpus.map_or(usize::MAX, |n| n as usize)
    };
    let apic_ids: alloc::vec::Vec<u32> = platform.usable_cpus().map(|cpu| cpu.apic_id).collect();
    let online = smp::start_aps(&boot, &apic_ids, max_cpus);
    info!("smp: {online} CPU(s) online");

    run(&boot, &options)
}

fn report_options(options: &Options) {
    for unknown in options.unknown.iter() {
        warn!(
            "command line: unknown option '{}' ignored",
            unknown.as_str()
        );
    }
    for invalid in options.invalid.iter() {
        warn!(
            "command line: '{}' ignored: {}",
            invalid.word.as_str(),
            invalid.reason
        );
    }
}

fn report_boot_info(boot: &BootInfo) {
    if let Some(rsdp) = boot.rsdp {
        info!("acpi: rsdp={rsdp:#x}");
    }
    info!("modules: {}", boot.modules.len());
    for (index, module) in boot.modules.iter().enumerate() {
        info!(
            "module {index}: addr={:#x} size={} cmdline=\"{}\"",
            module.start,
            module.len(),
            module.cmdline.as_str()
        );
    }
}

#[cfg(feature = "selftest")]
fn run(boot: &BootInfo, options: &Options) -> ! {
    crate::selftest::run(boot, options)
}

#[cfg(not(feature = "selftest"))]
fn run(boot: &BootInfo, options: &Options) -> ! {
    use crate::vmm::{boot_domains, cpu_loop, manager};
    // Boot-time domains: from configuration modules, or every PVH kernel module, run by
    // the scheduler on every CPU.
    manager::scheduler_cpus_up();
    manager::configure(
        usize::MAX,
        false,
        Some(|| info!("no more domains to run: idle")),
    );
    boot_domains::submit(boot, options.dom0_mem.as_ref().map(|s| s.as_str()));
    manager::launch();
    cpu_loop::run_this_cpu()
}

/// A boot that cannot continue: say why, plainly, and stop.
fn cannot_boot(reason: core::fmt::Arguments<'_>) -> ! {
    console::emergency_write(format_args!("(FV) ERROR: cannot boot: {reason}\n"));
    console::emergency_write(format_args!("FATAL: halting all CPUs\n"));
    stop(ExitCode::Fatal)
}

/// An application processor's life after bring-up: it runs vCPUs for the scheduler
/// (self-test builds first wait for the test to say so).
pub fn ap_run(cpu: &'static crate::percpu::PerCpu) -> ! {
    #[cfg(feature = "selftest")]
    crate::selftest::ap_run(cpu);
    #[cfg(not(feature = "selftest"))]
    {
        let _ = cpu;
        crate::vmm::cpu_loop::run_this_cpu()
    }
}
