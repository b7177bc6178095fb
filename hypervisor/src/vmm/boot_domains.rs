//! Boot-time domains. Configuration modules (xl.cfg syntax, a file name ending in
//! `.cfg`, see docs/domain-config.md) each describe a domain whose kernel is another
//! boot module; memory is claimed in full against the host's budget before anything is
//! built, and a refusal names the numbers. Without any configuration module, every
//! module that is a PVH kernel runs as a domain with default settings.
//!
//! The domains are handed to the domain manager (`manager`), which builds them, lets
//! the scheduler run them side by side, and applies their `on_*` actions when they end.

use ferrovisor::config::DomainConfig;
use ferrovisor::reservation::{ClaimError, Ledger, domain_overhead_bytes};
use ferrovisor_boot::{BootInfo, BoundedStr, Module};
use log::{info, warn};

use super::domain::{DEFAULT_RAM, MAX_VCPUS_PER_DOMAIN};
use super::manager::{self, DomainSpec, MAX_CLAIMS};
use crate::memory::phys_to_virt;

/// Memory kept back for the hypervisor's own growth (per-CPU and vCPU structures,
/// nested tables beyond the estimate) when domains claim the rest.
const HYPERVISOR_HEADROOM: u64 = 8 << 20;

fn module_bytes(module: &Module) -> &'static [u8] {
    // SAFETY: boot modules are RAM the frame allocator never hands out (they are
    // reserved), covered by the direct map, and nothing writes them.
    unsafe {
        core::slice::from_raw_parts(
            phys_to_virt(module.start) as *const u8,
            module.len() as usize,
        )
    }
}

/// A module's file name (QEMU passes a path; GRUB whatever the menu says first).
fn file_name(module: &Module) -> &str {
    module.name().rsplit('/').next().unwrap_or("")
}

/// Memory to keep for the control domain from `dom0_mem=` (Xen's syntax, resolved
/// against `free_bytes` as Xen does), 0 without it or when it is invalid (reported).
fn dom0_reserve(dom0_mem: Option<&str>, free_bytes: u64) -> u64 {
    let Some(value) = dom0_mem else {
        return 0;
    };
    match ferrovisor::reservation::Dom0Mem::parse(value) {
        Ok(dom0) => dom0.resolve(free_bytes),
        Err(e) => {
            warn!("command line: dom0_mem={value}: {e}; nothing kept for dom0");
            0
        }
    }
}

/// Queues the boot-time domains with the domain manager; returns how many were
/// accepted (configuration valid, memory claimed). `manager::launch` starts them.
/// `dom0_mem` is the command line's `dom0_mem=` value: that much memory stays out of
/// the domains' budget, for the control domain.
pub fn submit(boot: &BootInfo, dom0_mem: Option<&str>) -> usize {
    let configs: alloc::vec::Vec<&Module> = boot
        .modules
        .iter()
        .filter(|m| file_name(m).ends_with(".cfg"))
        .collect();
    if configs.is_empty() {
        for (index, module) in boot.modules.iter().enumerate() {
            manager::submit(DomainSpec::simple(
                index as u16 + 1,
                file_name(module),
                *module,
                module.args(),
                DEFAULT_RAM,
            ));
        }
        return boot.modules.len();
    }
    let free = crate::memory::free_bytes();
    let dom0 = dom0_reserve(dom0_mem, free.saturating_sub(HYPERVISOR_HEADROOM));
    let ledger: Ledger<MAX_CLAIMS> = Ledger::new(free, HYPERVISOR_HEADROOM + dom0)
        .with_gib_pages(ferrovisor_arch::cpu::has_1gib_pages());
    info!(
        "domains: {} configuration(s); {} MiB available to domains ({} MiB kept for the hypervisor, {} MiB for dom0)",
        configs.len(),
        ledger.available_bytes() >> 20,
        HYPERVISOR_HEADROOM >> 20,
        dom0 >> 20
    );
    manager::set_ledger(ledger);
    let mut accepted = 0;
    for (index, module) in configs.iter().enumerate() {
        let id = index as u16 + 1;
        let file = file_name(module);
        let Ok(text) = core::str::from_utf8(module_bytes(module)) else {
            warn!("domain config {file}: not UTF-8 text; no domain created");
            continue;
        };
        let config = match ferrovisor::config::parse(file, text) {
            Ok(config) => config,
            Err(error) => {
                warn!("domain config {error}; no domain created");
                continue;
            }
        };
        accepted += usize::from(submit_configured(id, file, &config, boot));
    }
    accepted
}

/// Claims a configured domain's memory and queues it; returns whether it was accepted.
fn submit_configured(id: u16, file: &str, config: &DomainConfig<'_>, boot: &BootInfo) -> bool {
    let name = config.name;
    let Some(kernel) = boot.modules.iter().find(|m| file_name(m) == config.kernel) else {
        warn!(
            "domain {id} ({name}): not created: {file}: kernel \"{}\" is not a boot module",
            config.kernel
        );
        return false;
    };
    if config.vcpus as usize > MAX_VCPUS_PER_DOMAIN {
        warn!(
            "domain {id} ({name}): not created: {file}: vcpus = {}: at most {MAX_VCPUS_PER_DOMAIN} per domain",
            config.vcpus
        );
        return false;
    }
    let memory = config.memory_bytes();
    let claim = manager::with_ledger(|l| l.claim(id, memory, domain_overhead_bytes(config.vcpus)));
    if let Some(Err(error)) = claim {
        match error {
            ClaimError::NotEnoughMemory(refusal) => {
                warn!("domain {id} ({name}): not created: {refusal}")
            }
            other => warn!("domain {id} ({name}): not created: {other:?}"),
        }
        return false;
    }
    if !config.start_on_boot {
        info!("domain {id} ({name}): memory claimed, not started (start_on_boot = 0)");
        return true;
    }
    let mut cmdline_buffer = [0u8; 1024];
    let cmdline = config
        .cmdline
        .as_ref()
        .and_then(|c| c.decode_into(&mut cmdline_buffer))
        .unwrap_or("");
    let mut spec = DomainSpec::simple(id, name, *kernel, cmdline, memory);
    spec.vcpus = config.vcpus;
    spec.params = config.sched_params();
    for (vcpu, mask) in spec
        .affinity
        .iter_mut()
        .enumerate()
        .take(config.vcpus as usize)
    {
        *mask = config.vcpu_affinity(vcpu as u32);
    }
    spec.on_poweroff = config.on_poweroff;
    spec.on_reboot = config.on_reboot;
    spec.on_crash = config.on_crash;
    spec.claimed = true;
    spec.name = BoundedStr::from_str_truncating(name);
    manager::submit(spec);
    true
}
