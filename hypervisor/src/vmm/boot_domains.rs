//! Boot-time domains. Configuration modules (xl.cfg syntax, a file name ending in
//! `.cfg`, see docs/domain-config.md) each describe a domain whose kernel is another
//! boot module; memory is claimed in full against the host's budget before anything is
//! built, and a refusal names the numbers. Without any configuration module, every
//! module that is a PVH kernel runs as a domain with default settings.
//!
//! Domains run one after another on the boot CPU until the scheduler runs them side by
//! side. When one ends, its `on_poweroff` / `on_reboot` / `on_crash` action applies:
//! `destroy` returns everything, `restart` builds it again (at most
//! [`RESTART_LIMIT`] times within [`RESTART_WINDOW_NS`], so a crash loop cannot starve
//! the host), `preserve` is refused at creation (there is no way to inspect a preserved
//! domain yet).

use ferrovisor::config::{Action, DomainConfig};
use ferrovisor::reservation::{ClaimError, Ledger, domain_overhead_bytes};
use ferrovisor_boot::{BootInfo, Module};
use log::{info, warn};

use super::domain::Ending;
use crate::memory::phys_to_virt;

/// Most configuration-driven domains in one boot.
const MAX_DOMAINS: usize = 64;
/// Memory kept back for the hypervisor's own growth (per-CPU and vCPU structures,
/// nested tables beyond the estimate) when domains claim the rest.
const HYPERVISOR_HEADROOM: u64 = 8 << 20;
/// Restarts allowed within the window before a restarting domain is destroyed.
pub const RESTART_LIMIT: u32 = 5;
/// The window for [`RESTART_LIMIT`] (nanoseconds of host time).
pub const RESTART_WINDOW_NS: u64 = 60_000_000_000;

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

/// Starts the boot-time domains; returns how many domains were created.
pub fn start(boot: &BootInfo) -> usize {
    let configs: alloc::vec::Vec<&Module> = boot
        .modules
        .iter()
        .filter(|m| file_name(m).ends_with(".cfg"))
        .collect();
    if configs.is_empty() {
        let mut created = 0;
        for (index, module) in boot.modules.iter().enumerate() {
            created += usize::from(super::run_module_as_domain(index as u16 + 1, module).is_some());
        }
        return created;
    }
    let mut ledger: Ledger<MAX_DOMAINS> =
        Ledger::new(crate::memory::free_bytes(), HYPERVISOR_HEADROOM)
            .with_gib_pages(ferrovisor_arch::cpu::has_1gib_pages());
    info!(
        "domains: {} configuration(s); {} MiB available to domains",
        configs.len(),
        ledger.available_bytes() >> 20
    );
    let mut created = 0;
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
        created += usize::from(run_configured(id, file, &config, boot, &mut ledger));
    }
    created
}

/// Runs one configured domain through its lifecycle; returns whether it was created.
fn run_configured(
    id: u16,
    file: &str,
    config: &DomainConfig<'_>,
    boot: &BootInfo,
    ledger: &mut Ledger<MAX_DOMAINS>,
) -> bool {
    let name = config.name;
    let Some(kernel) = boot.modules.iter().find(|m| file_name(m) == config.kernel) else {
        warn!(
            "domain {id} ({name}): not created: {file}: kernel \"{}\" is not a boot module",
            config.kernel
        );
        return false;
    };
    if config.vcpus != 1 {
        warn!(
            "domain {id} ({name}): not created: {file}: vcpus = {}: domains have one vCPU until secondary vCPUs (VCPUOP_up) land",
            config.vcpus
        );
        return false;
    }
    if [config.on_poweroff, config.on_reboot, config.on_crash].contains(&Action::Preserve) {
        warn!(
            "domain {id} ({name}): not created: {file}: \"preserve\" is not supported yet (use destroy or restart)"
        );
        return false;
    }
    let memory = config.memory_mib << 20;
    if let Err(error) = ledger.claim(id, memory, domain_overhead_bytes(config.vcpus)) {
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
    let mut restarts: u32 = 0;
    let mut window_start = crate::time::now_ns();
    while let Some(ending) = super::run_domain(id, name, kernel, cmdline, memory) {
        let (why, action) = match ending {
            Ending::Shutdown(0) => ("poweroff", config.on_poweroff),
            Ending::Shutdown(1) => ("reboot", config.on_reboot),
            Ending::Shutdown(_) | Ending::Crashed => ("crash", config.on_crash),
        };
        if action != Action::Restart {
            break;
        }
        let now = crate::time::now_ns();
        if now - window_start > RESTART_WINDOW_NS {
            window_start = now;
            restarts = 0;
        }
        restarts += 1;
        if restarts > RESTART_LIMIT {
            warn!(
                "domain {id} ({name}): restarted {RESTART_LIMIT} times within {} s: crash loop, destroying it",
                RESTART_WINDOW_NS / 1_000_000_000
            );
            break;
        }
        info!(
            "domain {id} ({name}): restarting (on_{why} = restart, {restarts} of {RESTART_LIMIT})"
        );
    }
    if ledger.release(id).is_err() {
        warn!("domain {id} ({name}): its memory claim was already released");
    }
    true
}
