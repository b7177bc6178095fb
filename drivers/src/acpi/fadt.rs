//! The Fixed ACPI Description Table (ACPI 6.5 §5.2.9): the PM timer and the reset register.
//!
//! The `acpi` crate's [`Fadt`] is a 276-byte (ACPI 6.0+) structure whose accessors decide
//! which fields exist from the header's revision alone, not from the table's length, so
//! applied to a shorter table (ACPI 1.0 is 116 bytes, 2.0 is 244) they read past its end.
//! We therefore copy the validated table into a zeroed 276-byte buffer and decode that: a
//! field beyond the table's end reads as zero, which the FADT defines as "not present" for
//! every field used here.

use core::mem::size_of;

use ::acpi::address::{AddressSpace, GenericAddress};
use ::acpi::fadt::Fadt;

use super::{PmTimer, RegisterLocation, ResetRegister, Warning, Warnings};

/// Size of the crate's structure: the ACPI 6.0+ FADT.
const FADT_FULL_LEN: usize = 276;
const _: () = assert!(size_of::<Fadt>() == FADT_FULL_LEN);
const _: () = assert!(core::mem::align_of::<Fadt>() == 1);

/// Shortest FADT accepted: ACPI 1.0's, which ends after the Flags field (offset 112).
pub(super) const FADT_MIN_LEN: usize = 116;

/// Largest I/O port number.
const MAX_PORT: u64 = 0xffff;

/// What the FADT tells the hypervisor.
pub(super) struct FadtInfo {
    pub(super) pm_timer: Option<PmTimer>,
    pub(super) reset_register: Option<ResetRegister>,
}

/// Decodes a validated FADT (`bytes` is the whole table, at least [`FADT_MIN_LEN`] long).
pub(super) fn parse(bytes: &[u8], warnings: &mut Warnings) -> FadtInfo {
    let mut buffer = [0u8; FADT_FULL_LEN];
    let len = bytes.len().min(FADT_FULL_LEN);
    buffer[..len].copy_from_slice(&bytes[..len]);
    // SAFETY: `Fadt` is `repr(C, packed)` (alignment 1, asserted above) and exactly
    // `FADT_FULL_LEN` bytes; all of its fields are integers, integer newtypes and
    // `MaybeUninit` wrappers, for which every bit pattern is valid, and the buffer is fully
    // initialised. `read_unaligned` copies it out, so no reference to the buffer escapes.
    let fadt: Fadt = unsafe { core::ptr::read_unaligned(buffer.as_ptr().cast::<Fadt>()) };
    FadtInfo {
        pm_timer: pm_timer(&fadt, warnings),
        reset_register: reset_register(&fadt, warnings),
    }
}

/// The PM timer, from X_PM_TMR_BLK when its address is non-zero, else PM_TMR_BLK (an I/O
/// port), and only when PM_TMR_LEN is 4 (ACPI 6.5 §5.2.9: 0 means no PM timer). Its width
/// is 32 bits when the TMR_VAL_EXT flag is set, else 24 (§4.8.3.3).
///
/// On hardware-reduced platforms (flag HW_REDUCED_ACPI) the fixed hardware fields,
/// including both timer block fields, are to be ignored (§5.2.9), so there is no PM timer.
fn pm_timer(fadt: &Fadt, warnings: &mut Warnings) -> Option<PmTimer> {
    let flags = fadt.flags;
    if flags.system_is_hw_reduced_acpi() {
        return None;
    }
    let block = match fadt.pm_timer_block() {
        Ok(block) => block?,
        Err(_) => {
            warnings.push(Warning::PmTimerUnusable(
                "X_PM_TMR_BLK is not a valid address",
            ));
            return None;
        }
    };
    let location = match location(&block) {
        Some(RegisterLocation::Pci { .. }) | None => {
            warnings.push(Warning::PmTimerUnusable(
                "not a non-zero I/O port or memory address",
            ));
            return None;
        }
        Some(location) => location,
    };
    Some(PmTimer {
        location,
        bits: if flags.pm_timer_is_32_bit() { 32 } else { 24 },
    })
}

/// The reset register and value, when the RESET_REG_SUP flag says they are implemented
/// (ACPI 6.5 §4.8.3.6; §5.2.9: only system I/O, system memory and PCI configuration space
/// on segment 0 bus 0 are valid, the register is 8 bits wide at bit offset 0).
///
/// A bit width of 0 is accepted as "unspecified" (some firmware leaves it so); any other
/// width than 8, or a non-zero bit offset, makes the register unusable.
fn reset_register(fadt: &Fadt, warnings: &mut Warnings) -> Option<ResetRegister> {
    let flags = fadt.flags;
    if !flags.supports_system_reset_via_fadt() {
        return None;
    }
    let Ok(register) = fadt.reset_register() else {
        warnings.push(Warning::ResetRegisterUnusable(
            "RESET_REG is not a valid address",
        ));
        return None;
    };
    if !matches!(register.bit_width, 0 | 8) || register.bit_offset != 0 {
        warnings.push(Warning::ResetRegisterUnusable(
            "RESET_REG is not an 8-bit register at bit offset 0",
        ));
        return None;
    }
    let Some(location) = location(&register) else {
        warnings.push(Warning::ResetRegisterUnusable(
            "RESET_REG is empty or in an unsupported address space",
        ));
        return None;
    };
    Some(ResetRegister {
        location,
        value: fadt.reset_value,
    })
}

/// Where a Generic Address Structure points (ACPI 6.5 §5.2.3.2), for the address spaces
/// the hypervisor can access; `None` for address 0 (not present) and anything else.
fn location(gas: &GenericAddress) -> Option<RegisterLocation> {
    let address = gas.address;
    if address == 0 {
        return None;
    }
    match gas.address_space {
        AddressSpace::SystemIo if address <= MAX_PORT => Some(RegisterLocation::Io(address as u16)),
        AddressSpace::SystemMemory => Some(RegisterLocation::Memory(address)),
        AddressSpace::PciConfigSpace => {
            // Offset in bits 15:0, function in 31:16, device in 47:32, 63:48 reserved (0).
            let offset = (address & 0xffff) as u16;
            let function = (address >> 16) & 0xffff;
            let device = (address >> 32) & 0xffff;
            let reserved = address >> 48;
            if device < 32 && function < 8 && reserved == 0 {
                Some(RegisterLocation::Pci {
                    device: device as u8,
                    function: function as u8,
                    offset,
                })
            } else {
                None
            }
        }
        _ => None,
    }
}
