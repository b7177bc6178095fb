//! The kernel side of ACPI: an `acpi::AcpiHandler` that maps firmware tables into the
//! hypervisor's address space, and the platform description read once at boot.
//! Parsing and validation live in `ferrovisor_drivers::acpi` (host-tested).

use core::ptr::NonNull;

use acpi::{AcpiHandler, PhysicalMapping};
use ferrovisor_drivers::acpi::Platform;
use log::{info, warn};
use spin::Once;

use crate::memory;

/// Maps each requested region read-only through the vmap region. Mappings are small
/// and few (one per table, at boot), so they are kept rather than unmapped.
#[derive(Clone, Copy, Debug)]
pub struct FirmwareMapper;

impl AcpiHandler for FirmwareMapper {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = match memory::map_firmware(physical_address as u64, size as u64) {
            Ok(virt) => virt,
            // The acpi crate has no way to report a mapping failure; running out of
            // page-table memory while parsing a few KiB of tables at boot means the
            // machine cannot run at all.
            Err(e) => panic!("cannot map ACPI tables at {physical_address:#x}+{size:#x}: {e}"),
        };
        let pointer = NonNull::new(virt as *mut T).expect("vmap addresses are never null");
        // SAFETY: `pointer` maps `size` bytes starting at `physical_address`, read-only,
        // for the hypervisor's lifetime (never unmapped, see above).
        unsafe { PhysicalMapping::new(physical_address, pointer, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

static PLATFORM: Once<Platform> = Once::new();

/// Reads the ACPI platform description (once). Missing or malformed tables give a
/// warning and the one-CPU fallback, never a crash.
pub fn platform(rsdp: Option<u64>, boot_apic_id: u32) -> &'static Platform {
    PLATFORM.call_once(|| {
        // SAFETY: FirmwareMapper maps any physical range below 2^52 on request, read-only
        // and cacheable, in fresh page-table entries: reading firmware tables (RAM the
        // firmware reserved) has no side effects and cannot fault.
        let discovered = unsafe { ferrovisor_drivers::acpi::discover(FirmwareMapper, rsdp) };
        let mut platform = match discovered {
            Ok(platform) => {
                for warning in &platform.warnings {
                    warn!("acpi: {warning}");
                }
                platform
            }
            Err(error) => {
                warn!("acpi: {error}; continuing with the boot CPU only");
                Platform::single_cpu_fallback(boot_apic_id)
            }
        };
        // The CPU running this code exists whatever the tables say.
        platform.ensure_boot_cpu(boot_apic_id);
        info!(
            "acpi: {} usable CPU(s) in the MADT, {} I/O APIC(s), pm timer {}, hpet {}",
            platform.usable_cpus().count(),
            platform.io_apics.len(),
            if platform.pm_timer.is_some() {
                "yes"
            } else {
                "no"
            },
            if platform.hpet.is_some() { "yes" } else { "no" },
        );
        platform
    })
}

/// The platform description, if [`platform`] has run.
#[cfg(feature = "selftest")]
pub fn get() -> Option<&'static Platform> {
    PLATFORM.get()
}
