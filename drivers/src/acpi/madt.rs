//! The Multiple APIC Description Table (ACPI 6.5 §5.2.12): processors, I/O APICs,
//! interrupt overrides and NMI wiring.
//!
//! The entry list is first walked here byte by byte to check every entry's length, and only
//! then handed to `acpi::madt::Madt::entries`. The crate's iterator trusts the lengths
//! completely: an entry length of 0 makes it loop forever, a length running past the table
//! end underflows its `u32` remaining-length counter (a panic with overflow checks, a wild
//! read without), and an entry shorter than its structure is read past its end.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::mem::size_of;

use ::acpi::AcpiHandler;
use ::acpi::madt::{self as raw, Madt, MadtEntry};

use super::tables::{Table, le_u32};
use super::{
    AcpiError, CpuDescription, InterruptOverride, IoApicDescription, LocalApicNmi,
    MadtEntryProblem, Polarity, Signature, TableProblem, TriggerMode, Warning, Warnings,
};

/// Bytes before the first interrupt controller structure: the header, Local Interrupt
/// Controller Address and Flags (ACPI 6.5 §5.2.12).
pub(super) const MADT_FIXED_LEN: usize = size_of::<Madt>();

/// First MADT revision that defines the Online Capable flag (ACPI 6.3, MADT revision 5);
/// before it, bit 1 of the processor flags is reserved.
const ONLINE_CAPABLE_REVISION: u8 = 5;

/// Processor Local APIC / x2APIC flags (ACPI 6.5 §5.2.12.2, Local APIC Flags).
const FLAG_ENABLED: u32 = 1 << 0;
const FLAG_ONLINE_CAPABLE: u32 = 1 << 1;

/// MADT Flags bit 0, PCAT_COMPAT: the system also has dual 8259s, which must be masked when
/// the APICs are used (ACPI 6.5 §5.2.12, Multiple APIC Flags).
const PCAT_COMPAT: u32 = 1 << 0;

/// An xAPIC ID of 0xFF is the broadcast destination, never a processor's ID.
const XAPIC_INVALID_ID: u8 = 0xff;
/// Most processors recorded. x2APIC IDs are 32 bits, but the largest machines have a few
/// thousand logical processors; the cap bounds the memory a corrupt (yet checksummed) 1 MiB
/// MADT could make discovery allocate at boot.
pub const MAX_CPUS: usize = 8192;

/// Most Local APIC NMI structures recorded (one per processor at most, in practice one for
/// all), for the same reason.
const MAX_NMIS: usize = 256;

/// An x2APIC ID of 0xFFFFFFFF is the x2APIC broadcast destination (Intel SDM Vol. 3A,
/// "x2APIC Mode", interrupt destination), never a processor's ID.
const X2APIC_INVALID_ID: u32 = u32::MAX;

/// What the MADT describes.
pub(super) struct MadtInfo {
    pub(super) cpus: Vec<CpuDescription>,
    pub(super) io_apics: Vec<IoApicDescription>,
    pub(super) interrupt_overrides: Vec<InterruptOverride>,
    pub(super) local_apic_nmis: Vec<LocalApicNmi>,
    pub(super) local_apic_address: u64,
    pub(super) legacy_pics: bool,
}

/// Minimum length of each entry type the `acpi` crate decodes: the size of the structure it
/// reads. Unknown and reserved types only need their two-byte header.
fn min_entry_len(entry_type: u8) -> usize {
    match entry_type {
        0x0 => size_of::<raw::LocalApicEntry>(),
        0x1 => size_of::<raw::IoApicEntry>(),
        0x2 => size_of::<raw::InterruptSourceOverrideEntry>(),
        0x3 => size_of::<raw::NmiSourceEntry>(),
        0x4 => size_of::<raw::LocalApicNmiEntry>(),
        0x5 => size_of::<raw::LocalApicAddressOverrideEntry>(),
        0x6 => size_of::<raw::IoSapicEntry>(),
        0x7 => size_of::<raw::LocalSapicEntry>(),
        0x8 => size_of::<raw::PlatformInterruptSourceEntry>(),
        0x9 => size_of::<raw::LocalX2ApicEntry>(),
        0xa => size_of::<raw::X2ApicNmiEntry>(),
        0xb => size_of::<raw::GiccEntry>(),
        0xc => size_of::<raw::GicdEntry>(),
        0xd => size_of::<raw::GicMsiFrameEntry>(),
        0xe => size_of::<raw::GicRedistributorEntry>(),
        0xf => size_of::<raw::GicInterruptTranslationServiceEntry>(),
        0x10 => size_of::<raw::MultiprocessorWakeupEntry>(),
        _ => size_of::<raw::EntryHeader>(),
    }
}

/// Checks that the entries exactly tile the table: each has a complete two-byte header, a
/// length at least its structure's size, and ends inside the table. Longer entries than the
/// structure are allowed (later spec revisions extend structures; ACPI 6.5 §5.2.12 says the
/// second byte is the structure's length precisely so that OSPM can skip it).
fn validate_entries(table: &[u8]) -> Result<(), AcpiError> {
    let mut offset = MADT_FIXED_LEN;
    while offset < table.len() {
        let problem = |entry_type, length, problem| AcpiError::MalformedMadtEntry {
            offset,
            entry_type,
            length,
            problem,
        };
        let (Some(&entry_type), Some(&length)) = (table.get(offset), table.get(offset + 1)) else {
            return Err(problem(0, 0, MadtEntryProblem::TruncatedHeader));
        };
        let len = usize::from(length);
        let min = min_entry_len(entry_type);
        if len < min {
            return Err(problem(
                entry_type,
                length,
                MadtEntryProblem::TooShort { min },
            ));
        }
        if len > table.len() - offset {
            return Err(problem(
                entry_type,
                length,
                MadtEntryProblem::PastEndOfTable,
            ));
        }
        offset += len;
    }
    Ok(())
}

/// Decodes the MPS INTI flags of interrupt overrides and NMI structures (ACPI 6.5
/// §5.2.12.5, MPS INTI Flags): bits 1:0 polarity, bits 3:2 trigger mode, each 00 = conforms to
/// the bus, 01 = active high / edge, 11 = active low / level, 10 = reserved.
fn mps_inti_flags(flags: u16) -> Option<(Polarity, TriggerMode)> {
    let polarity = match flags & 0b11 {
        0b00 => Polarity::BusDefault,
        0b01 => Polarity::ActiveHigh,
        0b11 => Polarity::ActiveLow,
        _ => return None,
    };
    let trigger = match (flags >> 2) & 0b11 {
        0b00 => TriggerMode::BusDefault,
        0b01 => TriggerMode::Edge,
        0b11 => TriggerMode::Level,
        _ => return None,
    };
    Some((polarity, trigger))
}

/// Collects processors, rejecting invalid IDs and resolving duplicate APIC IDs.
#[derive(Default)]
struct CpuList {
    cpus: Vec<CpuDescription>,
    by_apic_id: BTreeMap<u32, usize>,
    /// Entries beyond [`MAX_CPUS`].
    ignored: usize,
}

impl CpuList {
    /// Adds a processor; on a duplicate APIC ID a usable entry wins over an unusable one,
    /// and otherwise the first one listed is kept, since bringing up one APIC ID twice
    /// would start the same processor twice.
    fn add(&mut self, cpu: CpuDescription, warnings: &mut Warnings) {
        match self.by_apic_id.get(&cpu.apic_id) {
            None if self.cpus.len() >= MAX_CPUS => self.ignored += 1,
            None => {
                self.by_apic_id.insert(cpu.apic_id, self.cpus.len());
                self.cpus.push(cpu);
            }
            Some(&index) => {
                let existing = &mut self.cpus[index];
                let (kept, dropped) = if cpu.usable() && !existing.usable() {
                    let dropped = *existing;
                    *existing = cpu;
                    (cpu, dropped)
                } else {
                    (*existing, cpu)
                };
                warnings.push(Warning::DuplicateApicId {
                    apic_id: cpu.apic_id,
                    kept_uid: kept.processor_uid,
                    dropped_uid: dropped.processor_uid,
                });
            }
        }
    }
}

/// Parses a validated MADT.
pub(super) fn parse<H: AcpiHandler>(
    handler: &H,
    table: &Table<H>,
    warnings: &mut Warnings,
) -> Result<MadtInfo, AcpiError> {
    let bytes = table.bytes();
    validate_entries(bytes)?;
    let revision = table.revision();
    let header_address = le_u32(bytes, 36).unwrap_or(0);
    let flags = le_u32(bytes, 40).unwrap_or(0);

    let len = bytes.len();
    let start = usize::try_from(table.address).map_err(|_| AcpiError::InvalidTable {
        signature: Signature::MADT,
        address: table.address,
        problem: TableProblem::AddressOutOfRange(table.address),
    })?;
    // SAFETY: the same range `table` maps, so it is readable (and `discover`'s contract
    // covers the handler); `len` ≥ MADT_FIXED_LEN = size_of::<Madt>() was checked by
    // `read_table`, and `validate_entries` has checked every entry's length, which is what
    // `Madt::entries` relies on.
    let mapping = unsafe { handler.map_physical_region::<Madt>(start, len) };
    let madt = mapping.get();
    let length = madt.header.length;
    if usize::try_from(length).ok() != Some(len) {
        // Not the bytes we validated (the memory changed underneath us): do not iterate.
        return Err(AcpiError::InvalidTable {
            signature: Signature::MADT,
            address: table.address,
            problem: TableProblem::BadLength(length),
        });
    }

    let mut cpus = CpuList::default();
    let mut io_apics: Vec<IoApicDescription> = Vec::new();
    let mut interrupt_overrides: Vec<InterruptOverride> = Vec::new();
    let mut local_apic_nmis = Vec::new();
    let mut address_override = None;

    // Online Capable is only meaningful for disabled processors, and only defined from
    // MADT revision 5 (ACPI 6.5 §5.2.12.2, Local APIC Flags).
    let cpu = |apic_id, processor_uid, flags: u32, x2apic_entry| {
        let enabled = flags & FLAG_ENABLED != 0;
        CpuDescription {
            apic_id,
            processor_uid,
            enabled,
            online_capable: !enabled
                && revision >= ONLINE_CAPABLE_REVISION
                && flags & FLAG_ONLINE_CAPABLE != 0,
            x2apic_entry,
        }
    };

    for entry in madt.entries() {
        match entry {
            // ACPI 6.5 §5.2.12.2.
            MadtEntry::LocalApic(e) => {
                let (uid, apic_id, flags) = (e.processor_id, e.apic_id, e.flags);
                if apic_id == XAPIC_INVALID_ID {
                    warnings.push(Warning::InvalidApicId {
                        processor_uid: u32::from(uid),
                        apic_id: u32::from(apic_id),
                    });
                    continue;
                }
                cpus.add(
                    cpu(u32::from(apic_id), u32::from(uid), flags, false),
                    warnings,
                );
            }
            // ACPI 6.5 §5.2.12.12.
            MadtEntry::LocalX2Apic(e) => {
                let (apic_id, uid, flags) = (e.x2apic_id, e.processor_uid, e.flags);
                if apic_id == X2APIC_INVALID_ID {
                    warnings.push(Warning::InvalidApicId {
                        processor_uid: uid,
                        apic_id,
                    });
                    continue;
                }
                cpus.add(cpu(apic_id, uid, flags, true), warnings);
            }
            // ACPI 6.5 §5.2.12.3.
            MadtEntry::IoApic(e) => {
                let (id, address, gsi_base) = (
                    e.io_apic_id,
                    e.io_apic_address,
                    e.global_system_interrupt_base,
                );
                if address == 0 {
                    warnings.push(Warning::InvalidIoApic { id, address: 0 });
                } else if io_apics.iter().any(|a| a.id == id) {
                    warnings.push(Warning::DuplicateIoApicId { id });
                } else {
                    io_apics.push(IoApicDescription {
                        id,
                        address: u64::from(address),
                        gsi_base,
                    });
                }
            }
            // ACPI 6.5 §5.2.12.5: Bus 0 is ISA, the only bus the spec defines.
            MadtEntry::InterruptSourceOverride(e) => {
                let (bus, irq, gsi, flags) = (e.bus, e.irq, e.global_system_interrupt, e.flags);
                match mps_inti_flags(flags) {
                    Some((polarity, trigger)) if bus == 0 => {
                        if interrupt_overrides.iter().any(|o| o.isa_irq == irq) {
                            warnings.push(Warning::DuplicateInterruptOverride { irq });
                        } else {
                            interrupt_overrides.push(InterruptOverride {
                                isa_irq: irq,
                                gsi,
                                polarity,
                                trigger,
                            });
                        }
                    }
                    _ => warnings.push(Warning::InvalidInterruptOverride { bus, irq, flags }),
                }
            }
            // ACPI 6.5 §5.2.12.7: processor UID 0xFF means all processors.
            MadtEntry::LocalApicNmi(e) => {
                let (uid, flags, lint) = (e.processor_id, e.flags, e.nmi_line);
                let processor_uid = (uid != 0xff).then_some(u32::from(uid));
                push_nmi(&mut local_apic_nmis, processor_uid, flags, lint, warnings);
            }
            // ACPI 6.5 §5.2.12.13: processor UID 0xFFFFFFFF means all processors.
            MadtEntry::X2ApicNmi(e) => {
                let (uid, flags, lint) = (e.processor_uid, e.flags, e.nmi_line);
                let processor_uid = (uid != u32::MAX).then_some(uid);
                push_nmi(&mut local_apic_nmis, processor_uid, flags, lint, warnings);
            }
            // ACPI 6.5 §5.2.12.8: at most one; it replaces the 32-bit header field.
            MadtEntry::LocalApicAddressOverride(e) => {
                let address = e.local_apic_address;
                if address_override.is_some() {
                    warnings.push(Warning::ExtraLocalApicAddressOverride { address });
                } else {
                    address_override = Some(address);
                }
            }
            // NMI sources (§5.2.12.6), SAPIC, GIC and wakeup structures are not used on
            // this platform.
            _ => {}
        }
    }

    if cpus.ignored > 0 {
        warnings.push(Warning::TooManyCpus {
            ignored: cpus.ignored,
        });
    }
    Ok(MadtInfo {
        cpus: cpus.cpus,
        io_apics,
        interrupt_overrides,
        local_apic_nmis,
        local_apic_address: address_override.unwrap_or(u64::from(header_address)),
        legacy_pics: flags & PCAT_COMPAT != 0,
    })
}

/// Records a Local APIC NMI structure if its LINT number and flags are valid.
fn push_nmi(
    nmis: &mut Vec<LocalApicNmi>,
    processor_uid: Option<u32>,
    flags: u16,
    lint: u8,
    warnings: &mut Warnings,
) {
    match mps_inti_flags(flags) {
        // Beyond the cap, silently dropped: only a corrupt table gets there.
        Some(_) if lint <= 1 && nmis.len() >= MAX_NMIS => {}
        Some((polarity, trigger)) if lint <= 1 => nmis.push(LocalApicNmi {
            processor_uid,
            lint,
            polarity,
            trigger,
        }),
        _ => warnings.push(Warning::InvalidLocalApicNmi {
            processor_uid,
            lint,
            flags,
        }),
    }
}
