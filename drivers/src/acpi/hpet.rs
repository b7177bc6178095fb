//! The HPET description table (IA-PC HPET Specification 1.0a §3.2.4, "The ACPI 2.0 HPET
//! Description Table").
//!
//! Decoded from bytes: `acpi::HpetInfo::new` asserts (panics) when the base address is not
//! in system memory, and `acpi::hpet::HpetTable`'s fields are private, so only its size is
//! used here.

use core::mem::size_of;

use super::tables::{le_u16, le_u32, le_u64};
use super::{HpetDescription, Warning, Warnings};

/// Length of the HPET table: header, then Event Timer Block ID (offset 36), BASE_ADDRESS as a
/// Generic Address Structure (40), HPET Number (52), Main Counter Minimum Clock Tick (53),
/// Page Protection and OEM Attribute (55).
pub(super) const HPET_LEN: usize = size_of::<::acpi::hpet::HpetTable>();
const _: () = assert!(HPET_LEN == 56);

/// GAS Address Space ID of system memory (ACPI 6.5 §5.2.3.2); the HPET is always memory
/// mapped.
const SYSTEM_MEMORY: u8 = 0;

/// Decodes a validated HPET table (`bytes` at least [`HPET_LEN`] long).
pub(super) fn parse(bytes: &[u8], warnings: &mut Warnings) -> Option<HpetDescription> {
    let (Some(block_id), Some(&space), Some(base), Some(&number), Some(min_tick), Some(&prot)) = (
        le_u32(bytes, 36),
        bytes.get(40),
        le_u64(bytes, 44),
        bytes.get(52),
        le_u16(bytes, 53),
        bytes.get(55),
    ) else {
        warnings.push(Warning::HpetUnusable("table too short"));
        return None;
    };
    if space != SYSTEM_MEMORY || base == 0 {
        warnings.push(Warning::HpetUnusable(
            "base address is not a non-zero memory address",
        ));
        return None;
    }
    // Event Timer Block ID mirrors the General Capabilities and ID register (HPET spec
    // §2.3.4): bits 7:0 revision, 12:8 number of comparators minus one, 13 COUNT_SIZE_CAP,
    // 15 LEG_RT_CAP, 31:16 PCI vendor ID.
    Some(HpetDescription {
        base_address: base,
        hpet_number: number,
        min_tick,
        comparators: ((block_id >> 8) & 0x1f) as u8 + 1,
        counter_64bit: block_id & (1 << 13) != 0,
        legacy_replacement: block_id & (1 << 15) != 0,
        pci_vendor_id: (block_id >> 16) as u16,
        page_protection: prot & 0xf,
    })
}
