//! ACPI platform description: which processors exist, where the interrupt controllers and
//! timers are, and how to reset the machine, read from the firmware's static tables.
//!
//! [`discover`] walks RSDP → RSDT/XSDT → MADT, FADT and HPET and returns a plain-data
//! [`Platform`]. When ACPI is missing or unusable the kernel carries on with
//! [`Platform::single_cpu_fallback`].
//!
//! # Trust
//!
//! Firmware tables are input, not truth: a malformed table yields an [`AcpiError`] (for what
//! the hypervisor cannot do without: the RSDP, the root table, the MADT) or a [`Warning`]
//! (for everything else), never a panic and never a read outside the table's validated
//! bounds. Every table's signature, length (bounded by 1 MiB) and checksum are checked
//! before it is used, and every MADT entry's length before the entries are iterated.
//!
//! # Use of the `acpi` crate
//!
//! The crate (5.2, without its nightly-only `alloc` features) provides the table layouts,
//! the MADT entry decoder (`Madt::entries`), the FADT accessors (`Fadt`) and the Generic
//! Address Structure decoding. Its table *walking* is not used, because it trusts lengths
//! that come from firmware:
//!
//! - `Rsdp::validate` checksums `Length` bytes from a 36-byte mapping (an out-of-bounds
//!   read with a corrupt length), which also affects `AcpiTables::from_rsdp` and
//!   `search_for_rsdp_bios`;
//! - `AcpiTables` computes the root table's entry count as `length - 36`, which underflows
//!   (a panic with overflow checks) for a root table shorter than its header, and
//!   `find_table` maps and checksums whatever length a table claims, up to 4 GiB;
//! - `Madt::entries` loops forever on an entry of length 0 and underflows on one running
//!   past the table end (see the `madt` submodule);
//! - the `Fadt` accessors read fields beyond a short table's end (see the `fadt` submodule);
//! - `HpetInfo::new` asserts that the HPET is memory mapped (see the `hpet` submodule).
//!
//! So the module locates and validates tables itself (the `tables` submodule) and hands the crate only
//! validated memory. The crate's own error type never surfaces: the checks that could
//! produce it have already been made here, with more precise errors.
//!
//! # The handler
//!
//! The caller's [`AcpiHandler`] maps physical memory. The kernel's maps through the
//! direct map; the tests use synthetic memory. See [`discover`] for what it must allow.

mod fadt;
mod hpet;
mod madt;
mod tables;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use ::acpi::AcpiHandler;

use tables::RootTable;

pub use madt::MAX_CPUS;

/// Most warnings recorded in [`Platform::warnings`]; further ones are only counted, in a
/// final [`Warning::Suppressed`], so that a corrupt table cannot flood the boot log or the
/// heap.
pub const MAX_WARNINGS: usize = 64;

/// The warning list under construction, capped at [`MAX_WARNINGS`].
#[derive(Default)]
struct Warnings {
    list: Vec<Warning>,
    suppressed: usize,
}

impl Warnings {
    fn push(&mut self, warning: Warning) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(warning);
        } else {
            self.suppressed += 1;
        }
    }

    fn finish(mut self) -> Vec<Warning> {
        if self.suppressed > 0 {
            self.list.push(Warning::Suppressed {
                count: self.suppressed,
            });
        }
        self.list
    }
}

/// The physical address of the local APIC registers unless firmware says otherwise (Intel SDM
/// Vol. 3A §11.4.1, the IA32_APIC_BASE reset value).
pub const DEFAULT_LOCAL_APIC_ADDRESS: u64 = 0xfee0_0000;

/// A four-character ACPI table signature, displayed as text (non-printable bytes as `?`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// Root System Description Table (ACPI 6.5 §5.2.7).
    pub const RSDT: Self = Self(*b"RSDT");
    /// Extended System Description Table (ACPI 6.5 §5.2.8).
    pub const XSDT: Self = Self(*b"XSDT");
    /// Multiple APIC Description Table (ACPI 6.5 §5.2.12).
    pub const MADT: Self = Self(*b"APIC");
    /// Fixed ACPI Description Table (ACPI 6.5 §5.2.9).
    pub const FADT: Self = Self(*b"FACP");
    /// IA-PC High Precision Event Timer table.
    pub const HPET: Self = Self(*b"HPET");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Where a [`Platform`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// ACPI tables.
    Acpi {
        /// Physical address of the RSDP.
        rsdp_address: u64,
        /// RSDP revision: 0 for ACPI 1.0, 2 for ACPI 2.0 and later.
        revision: u8,
        /// The root table used: [`Signature::XSDT`] or [`Signature::RSDT`].
        root: Signature,
    },
    /// [`Platform::single_cpu_fallback`]: no usable ACPI.
    Fallback,
}

/// The machine as described by ACPI: plain data for the APIC, SMP and timer code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Every processor the MADT lists with a valid, unique APIC ID, in MADT order (which by
    /// convention starts with the boot processor). Use [`Platform::usable_cpus`] to pick
    /// the ones to start.
    pub cpus: Vec<CpuDescription>,
    /// I/O APICs (MADT type 1), unique by ID.
    pub io_apics: Vec<IoApicDescription>,
    /// ISA IRQs that are not identity-mapped to GSIs or not edge/active-high (MADT type 2),
    /// at most one per IRQ. See [`Platform::isa_irq`].
    pub interrupt_overrides: Vec<InterruptOverride>,
    /// Which local APIC LINT pins are wired to NMI (MADT types 4 and 0xA).
    pub local_apic_nmis: Vec<LocalApicNmi>,
    /// Physical address of the local APIC registers: the MADT header's, replaced by a Local
    /// APIC Address Override (type 5) when present.
    pub local_apic_address: u64,
    /// MADT flag PCAT_COMPAT: dual 8259 PICs are present and must be masked before the
    /// APICs are used (ACPI 6.5 §5.2.12).
    pub legacy_pics: bool,
    /// The ACPI power-management timer, if the FADT describes one.
    pub pm_timer: Option<PmTimer>,
    /// The FADT reset register, if the FADT says it is supported.
    pub reset_register: Option<ResetRegister>,
    /// The HPET, if there is an HPET table.
    pub hpet: Option<HpetDescription>,
    /// Where this description came from.
    pub source: Source,
    /// Inconsistencies found and worked around; worth logging, not fatal. At most
    /// [`MAX_WARNINGS`] of them, plus a [`Warning::Suppressed`] count.
    pub warnings: Vec<Warning>,
}

/// A processor from the MADT (ACPI 6.5 §5.2.12.2 and §5.2.12.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuDescription {
    /// The local APIC ID (8 bits in an xAPIC entry, 32 in an x2APIC entry): the INIT/SIPI
    /// destination.
    pub apic_id: u32,
    /// The ACPI Processor UID, which ties the entry to the processor object in the
    /// namespace and to the Local APIC NMI entries.
    pub processor_uid: u32,
    /// Flags bit 0, Enabled: the processor is present and may be started.
    pub enabled: bool,
    /// Flags bit 1, Online Capable: not enabled now, but the hardware supports enabling it
    /// at runtime. Only reported for disabled processors and MADT revision ≥ 5, where the
    /// bit is defined; otherwise false.
    pub online_capable: bool,
    /// Listed by a Processor Local x2APIC entry (type 9) rather than a Processor Local APIC
    /// entry (type 0). IDs of 255 and above need x2APIC mode to address.
    pub x2apic_entry: bool,
}

impl CpuDescription {
    /// Whether the processor may be started: enabled or online capable (ACPI 6.5
    /// §5.2.12.2).
    pub const fn usable(&self) -> bool {
        self.enabled || self.online_capable
    }
}

/// An I/O APIC (ACPI 6.5 §5.2.12.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicDescription {
    /// The I/O APIC's ID.
    pub id: u8,
    /// Physical address of its register window.
    pub address: u64,
    /// The first Global System Interrupt its inputs serve.
    pub gsi_base: u32,
}

/// Interrupt polarity (ACPI 6.5 §5.2.12.5, MPS INTI flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Conforms to the bus's specification (for ISA: active high).
    BusDefault,
    /// Active high.
    ActiveHigh,
    /// Active low.
    ActiveLow,
}

/// Interrupt trigger mode (ACPI 6.5 §5.2.12.5, MPS INTI flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerMode {
    /// Conforms to the bus's specification (for ISA: edge).
    BusDefault,
    /// Edge triggered.
    Edge,
    /// Level triggered.
    Level,
}

/// An ISA interrupt routed differently from the identity default (ACPI 6.5 §5.2.12.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOverride {
    /// The ISA IRQ (bus-relative source).
    pub isa_irq: u8,
    /// The Global System Interrupt it is wired to.
    pub gsi: u32,
    /// Its polarity.
    pub polarity: Polarity,
    /// Its trigger mode.
    pub trigger: TriggerMode,
}

/// A local APIC LINT pin wired to NMI (ACPI 6.5 §5.2.12.7 and §5.2.12.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// The processor (by ACPI Processor UID), or `None` for all processors.
    pub processor_uid: Option<u32>,
    /// 0 for LINT0, 1 for LINT1.
    pub lint: u8,
    /// Its polarity.
    pub polarity: Polarity,
    /// Its trigger mode.
    pub trigger: TriggerMode,
}

/// Where a fixed-hardware register lives (a decoded Generic Address Structure, ACPI 6.5
/// §5.2.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterLocation {
    /// An I/O port.
    Io(u16),
    /// A physical memory address.
    Memory(u64),
    /// PCI configuration space of segment 0, bus 0 (the only one the FADT may use).
    Pci {
        /// Device number (0–31).
        device: u8,
        /// Function number (0–7).
        function: u8,
        /// Register offset.
        offset: u16,
    },
}

/// The ACPI power-management timer (ACPI 6.5 §4.8.3.3): a free-running up-counter at
/// 3.579545 MHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmTimer {
    /// Where to read it: [`RegisterLocation::Io`] or [`RegisterLocation::Memory`], 32 bits.
    pub location: RegisterLocation,
    /// Counter width: 32 when the FADT flag TMR_VAL_EXT is set, else 24.
    pub bits: u8,
}

/// The FADT reset mechanism (ACPI 6.5 §4.8.3.6): write `value` to the 8-bit register at
/// `location` to reset the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// The register.
    pub location: RegisterLocation,
    /// The value to write (FADT RESET_VALUE).
    pub value: u8,
}

/// The High Precision Event Timer (IA-PC HPET Specification 1.0a §3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HpetDescription {
    /// Physical address of the register block (1 KiB).
    pub base_address: u64,
    /// Sequence number of this HPET block.
    pub hpet_number: u8,
    /// Main Counter Minimum Clock Tick in periodic mode.
    pub min_tick: u16,
    /// Number of comparators (timers), from the Event Timer Block ID.
    pub comparators: u8,
    /// Whether the main counter is 64 bits wide (COUNT_SIZE_CAP).
    pub counter_64bit: bool,
    /// Whether legacy replacement routing is supported (LEG_RT_CAP).
    pub legacy_replacement: bool,
    /// PCI vendor ID of the HPET's maker.
    pub pci_vendor_id: u16,
    /// Page protection: 0 none, 1 4 KiB, 2 64 KiB around the block is safe to map.
    pub page_protection: u8,
}

/// Why ACPI discovery failed. The kernel then uses [`Platform::single_cpu_fallback`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No RSDP: the boot loader passed none and the BIOS areas contain no valid one.
    NoRsdp,
    /// The RSDP at `address` is invalid.
    InvalidRsdp {
        /// Physical address of the RSDP.
        address: u64,
        /// What is wrong with it.
        problem: RsdpProblem,
    },
    /// A table needed for discovery is invalid (or, in a [`Warning::TableSkipped`], an
    /// optional table or a redundant copy).
    InvalidTable {
        /// The table's expected signature.
        signature: Signature,
        /// Its physical address.
        address: u64,
        /// What is wrong with it.
        problem: TableProblem,
    },
    /// The root table lists no MADT.
    NoMadt,
    /// An MADT interrupt controller structure has an impossible length.
    MalformedMadtEntry {
        /// Byte offset of the entry in the MADT.
        offset: usize,
        /// Its type byte.
        entry_type: u8,
        /// Its length byte.
        length: u8,
        /// What is wrong with it.
        problem: MadtEntryProblem,
    },
    /// The MADT lists no processor that is enabled or online capable.
    NoCpus,
}

/// What is wrong with an RSDP (ACPI 6.5 §5.2.5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RsdpProblem {
    /// It does not start with "RSD PTR ".
    BadSignature,
    /// The checksum of its first 20 bytes is not zero.
    BadChecksum,
    /// The extended checksum over the whole ACPI 2.0+ structure is not zero.
    BadExtendedChecksum,
    /// The ACPI 2.0+ `Length` field is impossible.
    BadLength(u32),
    /// It names neither an XSDT nor an RSDT.
    NoRootTable,
    /// Its address is not a physical address.
    AddressOutOfRange,
}

/// What is wrong with a table (ACPI 6.5 §5.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableProblem {
    /// The table at the address has another signature.
    WrongSignature(Signature),
    /// The header's length is shorter than the table's fixed part or longer than 1 MiB.
    BadLength(u32),
    /// The bytes do not sum to zero.
    BadChecksum,
    /// The table does not lie below the 52-bit physical address limit.
    AddressOutOfRange(u64),
}

/// What is wrong with an MADT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtEntryProblem {
    /// Fewer than the two bytes of type and length remain before the table's end.
    TruncatedHeader,
    /// The length is below the size of the entry type's structure.
    TooShort {
        /// That size.
        min: usize,
    },
    /// The entry runs past the end of the table.
    PastEndOfTable,
}

/// An inconsistency in the tables that discovery worked around.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The XSDT is invalid; the RSDT was used instead.
    UsedRsdtInsteadOfXsdt(AcpiError),
    /// An invalid table was ignored: a redundant copy, or an optional table (FADT, HPET)
    /// whose information is then missing.
    TableSkipped(AcpiError),
    /// A root table entry is zero.
    NullTableEntry {
        /// Index of the entry.
        index: usize,
    },
    /// A root table entry is not a physical address.
    BadTableAddress {
        /// Index of the entry.
        index: usize,
        /// The address.
        address: u64,
    },
    /// A processor entry has the broadcast ID (0xFF for xAPIC, 0xFFFFFFFF for x2APIC) and
    /// was ignored.
    InvalidApicId {
        /// Its ACPI Processor UID.
        processor_uid: u32,
        /// The ID.
        apic_id: u32,
    },
    /// Two processor entries have the same APIC ID; one was ignored (a usable one is kept
    /// over an unusable one, else the first).
    DuplicateApicId {
        /// The ID.
        apic_id: u32,
        /// UID of the entry kept.
        kept_uid: u32,
        /// UID of the entry ignored.
        dropped_uid: u32,
    },
    /// An I/O APIC entry with address 0 was ignored.
    InvalidIoApic {
        /// Its ID.
        id: u8,
        /// Its address.
        address: u32,
    },
    /// A second I/O APIC entry with the same ID was ignored.
    DuplicateIoApicId {
        /// The ID.
        id: u8,
    },
    /// An interrupt override for a bus other than ISA, or with reserved flag encodings, was
    /// ignored.
    InvalidInterruptOverride {
        /// The bus (0 is ISA).
        bus: u8,
        /// The source IRQ.
        irq: u8,
        /// The MPS INTI flags.
        flags: u16,
    },
    /// A second interrupt override for the same ISA IRQ was ignored.
    DuplicateInterruptOverride {
        /// The ISA IRQ.
        irq: u8,
    },
    /// A Local APIC NMI entry with a LINT number other than 0 or 1, or reserved flag
    /// encodings, was ignored.
    InvalidLocalApicNmi {
        /// The processor UID (`None`: all).
        processor_uid: Option<u32>,
        /// The LINT number.
        lint: u8,
        /// The MPS INTI flags.
        flags: u16,
    },
    /// A second Local APIC Address Override was ignored.
    ExtraLocalApicAddressOverride {
        /// Its address.
        address: u64,
    },
    /// The FADT's PM timer description is unusable (why).
    PmTimerUnusable(&'static str),
    /// The FADT's reset register is unusable (why).
    ResetRegisterUnusable(&'static str),
    /// The HPET table is unusable (why).
    HpetUnusable(&'static str),
    /// The MADT lists more than [`MAX_CPUS`] distinct processors; the rest were ignored.
    TooManyCpus {
        /// How many entries were ignored.
        ignored: usize,
    },
    /// More than [`MAX_WARNINGS`] warnings: this many more were not recorded.
    Suppressed {
        /// How many.
        count: usize,
    },
    /// [`Platform::ensure_boot_cpu`] found the running boot processor missing from the
    /// MADT, or listed as not usable, and corrected that.
    BootCpuNotListed {
        /// The boot processor's APIC ID.
        apic_id: u32,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRsdp => f.write_str(
                "no ACPI RSDP found: the boot loader passed none and the BIOS areas hold no \
                 valid one",
            ),
            Self::InvalidRsdp { address, problem } => {
                write!(f, "ACPI RSDP at {address:#x} is invalid: {problem}")
            }
            Self::InvalidTable {
                signature,
                address,
                problem,
            } => write!(
                f,
                "ACPI {signature} table at {address:#x} is invalid: {problem}"
            ),
            Self::NoMadt => f.write_str(
                "the ACPI tables have no MADT (\"APIC\" table), so processors cannot be \
                 enumerated",
            ),
            Self::MalformedMadtEntry {
                offset,
                entry_type,
                length,
                problem,
            } => write!(
                f,
                "ACPI MADT entry at offset {offset} (type {entry_type:#x}, length {length}) is \
                 malformed: {problem}"
            ),
            Self::NoCpus => {
                f.write_str("the ACPI MADT lists no enabled or online-capable processor")
            }
        }
    }
}

impl fmt::Display for RsdpProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSignature => f.write_str("no \"RSD PTR \" signature"),
            Self::BadChecksum => f.write_str("bad checksum"),
            Self::BadExtendedChecksum => f.write_str("bad extended checksum"),
            Self::BadLength(length) => write!(f, "impossible length {length}"),
            Self::NoRootTable => f.write_str("neither an XSDT nor an RSDT address"),
            Self::AddressOutOfRange => f.write_str("not a physical address"),
        }
    }
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSignature(found) => write!(f, "signature is \"{found}\""),
            Self::BadLength(length) => write!(f, "impossible length {length}"),
            Self::BadChecksum => f.write_str("bad checksum"),
            Self::AddressOutOfRange(address) => {
                write!(f, "{address:#x} is not a physical address")
            }
        }
    }
}

impl fmt::Display for MadtEntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedHeader => f.write_str("the table ends inside its type/length header"),
            Self::TooShort { min } => write!(f, "shorter than its {min}-byte structure"),
            Self::PastEndOfTable => f.write_str("it runs past the end of the table"),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UsedRsdtInsteadOfXsdt(error) => write!(f, "{error}; using the RSDT instead"),
            Self::TableSkipped(error) => write!(f, "{error}; ignored"),
            Self::NullTableEntry { index } => {
                write!(f, "ACPI root table entry {index} is null; ignored")
            }
            Self::BadTableAddress { index, address } => write!(
                f,
                "ACPI root table entry {index} ({address:#x}) is not a physical address; ignored"
            ),
            Self::InvalidApicId {
                processor_uid,
                apic_id,
            } => write!(
                f,
                "MADT processor {processor_uid} has the invalid APIC ID {apic_id:#x}; ignored"
            ),
            Self::DuplicateApicId {
                apic_id,
                kept_uid,
                dropped_uid,
            } => write!(
                f,
                "MADT processors {kept_uid} and {dropped_uid} share APIC ID {apic_id:#x}; \
                 ignoring processor {dropped_uid}"
            ),
            Self::InvalidIoApic { id, address } => write!(
                f,
                "MADT I/O APIC {id} has the invalid address {address:#x}; ignored"
            ),
            Self::DuplicateIoApicId { id } => {
                write!(f, "MADT lists I/O APIC ID {id} twice; ignoring the second")
            }
            Self::InvalidInterruptOverride { bus, irq, flags } => write!(
                f,
                "MADT interrupt override for bus {bus} IRQ {irq} (flags {flags:#x}) is invalid; \
                 ignored"
            ),
            Self::DuplicateInterruptOverride { irq } => {
                write!(f, "MADT overrides ISA IRQ {irq} twice; ignoring the second")
            }
            Self::InvalidLocalApicNmi {
                processor_uid,
                lint,
                flags,
            } => match processor_uid {
                Some(uid) => write!(
                    f,
                    "MADT local APIC NMI for processor {uid} (LINT{lint}, flags {flags:#x}) is \
                     invalid; ignored"
                ),
                None => write!(
                    f,
                    "MADT local APIC NMI for all processors (LINT{lint}, flags {flags:#x}) is \
                     invalid; ignored"
                ),
            },
            Self::ExtraLocalApicAddressOverride { address } => write!(
                f,
                "MADT has a second local APIC address override ({address:#x}); ignored"
            ),
            Self::PmTimerUnusable(why) => write!(f, "FADT PM timer unusable: {why}"),
            Self::ResetRegisterUnusable(why) => write!(f, "FADT reset register unusable: {why}"),
            Self::HpetUnusable(why) => write!(f, "HPET table unusable: {why}"),
            Self::TooManyCpus { ignored } => write!(
                f,
                "MADT lists more than {MAX_CPUS} processors; ignored {ignored} more"
            ),
            Self::Suppressed { count } => write!(f, "{count} more ACPI warnings not shown"),
            Self::BootCpuNotListed { apic_id } => write!(
                f,
                "the boot processor (APIC ID {apic_id:#x}) is not listed as usable in the \
                 MADT; added"
            ),
        }
    }
}

/// Reads the platform description from the ACPI tables.
///
/// `rsdp` is the RSDP's physical address from the boot loader (the multiboot2 ACPI tags, or
/// the UEFI configuration table). Without one, the BIOS areas are searched (ACPI 6.5
/// §5.2.5.1), which is right only on BIOS machines: multiboot1 passes no RSDP.
///
/// Errors mean discovery failed for lack of something essential (no RSDP, an invalid root
/// table or MADT, no usable processor); the kernel should then log the error and use
/// [`Platform::single_cpu_fallback`]. Lesser problems are in [`Platform::warnings`].
///
/// # Safety
///
/// The handler must be able to map, for reading and without side effects, any physical
/// range below 2^52 that the firmware tables name (the RSDP, the BIOS areas 40:0Eh,
/// 80000h–9FFFFh and E0000h–FFFFFh when `rsdp` is `None`, and every table the root table
/// lists), and such reads must not fault. A direct map of all RAM and of the firmware's
/// ACPI regions satisfies this for sane firmware; for insane firmware (a table address
/// outside both) it does not, which is why the caller must decide. Every length is
/// validated before it is read, so the handler is never asked for more than 1 MiB at a
/// time.
pub unsafe fn discover<H: AcpiHandler>(
    handler: H,
    rsdp: Option<u64>,
) -> Result<Platform, AcpiError> {
    let mut warnings = Warnings::default();
    let rsdp = match rsdp {
        Some(address) => tables::read_rsdp(&handler, address)?,
        None => tables::search_rsdp(&handler)?,
    };
    let root = RootTable::read(&handler, &rsdp, &mut warnings)?;

    let madt_table = root
        .find(
            &handler,
            Signature::MADT,
            madt::MADT_FIXED_LEN,
            &mut warnings,
        )?
        .ok_or(AcpiError::NoMadt)?;
    let madt = madt::parse(&handler, &madt_table, &mut warnings)?;
    drop(madt_table);
    if !madt.cpus.iter().any(CpuDescription::usable) {
        return Err(AcpiError::NoCpus);
    }

    let (pm_timer, reset_register) =
        match root.find(&handler, Signature::FADT, fadt::FADT_MIN_LEN, &mut warnings) {
            Ok(Some(table)) => {
                let info = fadt::parse(table.bytes(), &mut warnings);
                (info.pm_timer, info.reset_register)
            }
            Ok(None) => (None, None),
            Err(error) => {
                warnings.push(Warning::TableSkipped(error));
                (None, None)
            }
        };

    let hpet = match root.find(&handler, Signature::HPET, hpet::HPET_LEN, &mut warnings) {
        Ok(Some(table)) => hpet::parse(table.bytes(), &mut warnings),
        Ok(None) => None,
        Err(error) => {
            warnings.push(Warning::TableSkipped(error));
            None
        }
    };

    Ok(Platform {
        cpus: madt.cpus,
        io_apics: madt.io_apics,
        interrupt_overrides: madt.interrupt_overrides,
        local_apic_nmis: madt.local_apic_nmis,
        local_apic_address: madt.local_apic_address,
        legacy_pics: madt.legacy_pics,
        pm_timer,
        reset_register,
        hpet,
        source: Source::Acpi {
            rsdp_address: rsdp.address,
            revision: rsdp.revision,
            root: root.signature(),
        },
        warnings: warnings.finish(),
    })
}

impl Platform {
    /// The description to use when ACPI is missing or malformed: only the boot processor
    /// (with `boot_apic_id`, which the caller reads from its own local APIC), the local APIC
    /// at its architectural default address, no I/O APIC, no timers beyond the
    /// architectural ones, no reset register.
    ///
    /// `legacy_pics` is true: without ACPI a PC-AT compatible machine is assumed, so the
    /// kernel masks the 8259s (harmless if they are absent). `x2apic_entry` is set for an
    /// ID of 255 or more, which is only reachable in x2APIC mode.
    pub fn single_cpu_fallback(boot_apic_id: u32) -> Self {
        Self {
            cpus: vec![CpuDescription {
                apic_id: boot_apic_id,
                processor_uid: 0,
                enabled: true,
                online_capable: false,
                x2apic_entry: boot_apic_id >= 0xff,
            }],
            io_apics: Vec::new(),
            interrupt_overrides: Vec::new(),
            local_apic_nmis: Vec::new(),
            local_apic_address: DEFAULT_LOCAL_APIC_ADDRESS,
            legacy_pics: true,
            pm_timer: None,
            reset_register: None,
            hpet: None,
            source: Source::Fallback,
            warnings: Vec::new(),
        }
    }

    /// The processors that may be started: enabled or online capable.
    pub fn usable_cpus(&self) -> impl Iterator<Item = &CpuDescription> {
        self.cpus.iter().filter(|cpu| cpu.usable())
    }

    /// The processor with local APIC ID `apic_id`, if listed.
    pub fn cpu_by_apic_id(&self, apic_id: u32) -> Option<&CpuDescription> {
        self.cpus.iter().find(|cpu| cpu.apic_id == apic_id)
    }

    /// Makes sure the running boot processor is listed as usable, adding it (first) or
    /// marking it enabled with a [`Warning::BootCpuNotListed`] if the MADT disagrees: the
    /// processor executing this code is demonstrably present, and the SMP code must not try
    /// to start it again or count it out.
    pub fn ensure_boot_cpu(&mut self, boot_apic_id: u32) {
        match self.cpus.iter_mut().find(|cpu| cpu.apic_id == boot_apic_id) {
            Some(cpu) if cpu.enabled => return,
            Some(cpu) => cpu.enabled = true,
            None => self.cpus.insert(
                0,
                CpuDescription {
                    apic_id: boot_apic_id,
                    processor_uid: 0,
                    enabled: true,
                    online_capable: false,
                    x2apic_entry: boot_apic_id >= 0xff,
                },
            ),
        }
        self.warnings.push(Warning::BootCpuNotListed {
            apic_id: boot_apic_id,
        });
    }

    /// How ISA IRQ `irq` reaches the I/O APICs: its override, or else the identity mapping
    /// to GSI `irq` (ACPI 6.5 §5.2.12.5 assumes ISA IRQs are identity-mapped unless
    /// overridden), with the bus defaults resolved to ISA's edge-triggered, active-high
    /// signalling.
    pub fn isa_irq(&self, irq: u8) -> InterruptOverride {
        let found = self.interrupt_overrides.iter().find(|o| o.isa_irq == irq);
        let mut route = found.copied().unwrap_or(InterruptOverride {
            isa_irq: irq,
            gsi: u32::from(irq),
            polarity: Polarity::BusDefault,
            trigger: TriggerMode::BusDefault,
        });
        if route.polarity == Polarity::BusDefault {
            route.polarity = Polarity::ActiveHigh;
        }
        if route.trigger == TriggerMode::BusDefault {
            route.trigger = TriggerMode::Edge;
        }
        route
    }
}
