//! Locating and validating tables: the RSDP, the RSDT/XSDT, and the System Description
//! Table header every other table starts with.
//!
//! Everything here reads firmware memory as plain bytes through [`Region`] and checks every
//! length against a bound before using it, so a corrupt table produces an error instead of
//! a wild read.

use alloc::vec::Vec;
use core::ops::Range;

use ::acpi::{AcpiHandler, PhysicalMapping};

use super::{AcpiError, RsdpProblem, Signature, TableProblem, Warning, Warnings};

/// Length of the System Description Table header (ACPI 6.5 §5.2.6).
pub(super) const HEADER_LEN: usize = 36;

/// Largest table length accepted. No RSDT, XSDT, MADT, FADT or HPET table comes near it (an
/// MADT listing 4096 x2APIC processors is 64 KiB); the bound limits how much memory a
/// corrupt length field makes us map and checksum.
pub(super) const MAX_TABLE_LEN: usize = 1 << 20;

/// Addresses at or above this are not physical addresses on x86_64 (MAXPHYADDR is at most
/// 52; Intel SDM Vol. 3A §4.1.4) and are rejected without asking the handler to map them.
const PHYS_LIMIT: u64 = 1 << 52;

/// Length of the ACPI 1.0 RSDP, covered by its first checksum (ACPI 6.5 §5.2.5.3).
const RSDP_V1_LEN: usize = 20;
/// Length of the ACPI 2.0+ RSDP (ACPI 6.5 §5.2.5.3).
const RSDP_V2_LEN: usize = 36;
/// Largest RSDP `Length` accepted: the structure is 36 bytes in every revision so far;
/// a little room is left for future growth.
const RSDP_MAX_LEN: usize = 4096;
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";

/// BIOS areas searched for the RSDP when the boot loader did not pass one (ACPI 6.5
/// §5.2.5.1): the first KiB of the EBDA, whose real-mode segment is stored at 40:0Eh, and
/// the read-only BIOS space 0E0000h–0FFFFFh. The RSDP is on a 16-byte boundary.
const EBDA_SEGMENT_PTR: u64 = 0x40e;
/// Plausible EBDA start addresses: below 640 KiB and above 512 KiB, as in practice. A value
/// outside (no EBDA, or a BDA that was never filled in) skips the EBDA search.
const EBDA_RANGE: Range<u64> = 0x8_0000..0xa_0000;
const EBDA_SEARCH_LEN: usize = 1024;
const BIOS_AREA: Range<u64> = 0xe_0000..0x10_0000;

/// A range of physical memory mapped through the [`AcpiHandler`], read as bytes.
pub(super) struct Region<H: AcpiHandler> {
    mapping: PhysicalMapping<H, u8>,
    len: usize,
}

impl<H: AcpiHandler> Region<H> {
    /// Maps `len` (≥ 1) bytes at `phys`, refusing ranges that are not physical addresses.
    pub(super) fn map(handler: &H, phys: u64, len: usize) -> Result<Self, TableProblem> {
        let out_of_range = TableProblem::AddressOutOfRange(phys);
        let end = u64::try_from(len)
            .ok()
            .and_then(|len| phys.checked_add(len))
            .ok_or(out_of_range)?;
        if end > PHYS_LIMIT || len == 0 {
            return Err(out_of_range);
        }
        let start = usize::try_from(phys).map_err(|_| out_of_range)?;
        // SAFETY: `discover`'s contract requires the handler to map any physical range below
        // 2^52 for reading (without side effects), which is what the firmware tables name.
        // `len` ≥ 1 = size_of::<u8>().
        let mapping = unsafe { handler.map_physical_region::<u8>(start, len) };
        Ok(Self { mapping, len })
    }

    /// The mapped bytes (fewer than requested only if the handler mapped less).
    pub(super) fn bytes(&self) -> &[u8] {
        let len = self.len.min(self.mapping.region_length());
        let start = self.mapping.virtual_start().as_ptr().cast_const();
        // SAFETY: the handler's contract (`AcpiHandler::map_physical_region`) makes
        // `region_length` bytes at `virtual_start` readable until the mapping is dropped, and
        // the slice borrows `self`, which owns the mapping. Nothing writes to firmware tables
        // while we read them (only the boot CPU runs, and the tables are static data).
        unsafe { core::slice::from_raw_parts(start, len) }
    }
}

/// Little-endian field readers; `None` if the field is not entirely inside `bytes`.
pub(super) fn le_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let field = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_le_bytes(field.try_into().ok()?))
}

/// See [`le_u16`].
pub(super) fn le_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

/// See [`le_u16`].
pub(super) fn le_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset..offset.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// Whether `bytes` sum to zero modulo 256, the ACPI checksum rule (ACPI 6.5 §5.2.5.3,
/// §5.2.6).
pub(super) fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

/// The validated Root System Description Pointer.
pub(super) struct Rsdp {
    pub(super) address: u64,
    pub(super) revision: u8,
    pub(super) rsdt_address: u32,
    /// Only for revision ≥ 2.
    pub(super) xsdt_address: Option<u64>,
}

/// Reads and validates the RSDP at `address` (ACPI 6.5 §5.2.5.3): signature, the checksum of
/// the first 20 bytes, and for revision 2 and later the `Length` field and the extended
/// checksum over the whole structure.
///
/// Revision 0 is ACPI 1.0 (20 bytes). Revision 1 was never defined; it is read as 1.0, so
/// its unchecked extension fields are not trusted.
pub(super) fn read_rsdp<H: AcpiHandler>(handler: &H, address: u64) -> Result<Rsdp, AcpiError> {
    let invalid = |problem| AcpiError::InvalidRsdp { address, problem };
    let v1 = Region::map(handler, address, RSDP_V1_LEN)
        .map_err(|_| invalid(RsdpProblem::AddressOutOfRange))?;
    let bytes = v1.bytes();
    if bytes.get(..8) != Some(&RSDP_SIGNATURE[..]) {
        return Err(invalid(RsdpProblem::BadSignature));
    }
    if bytes.len() < RSDP_V1_LEN || !checksum_ok(bytes) {
        return Err(invalid(RsdpProblem::BadChecksum));
    }
    let revision = bytes[15];
    let rsdt_address = le_u32(bytes, 16).ok_or(invalid(RsdpProblem::BadChecksum))?;
    drop(v1);
    if revision < 2 {
        return Ok(Rsdp {
            address,
            revision,
            rsdt_address,
            xsdt_address: None,
        });
    }

    let head = Region::map(handler, address, RSDP_V2_LEN)
        .map_err(|_| invalid(RsdpProblem::AddressOutOfRange))?;
    let length = le_u32(head.bytes(), 20).ok_or(invalid(RsdpProblem::BadLength(0)))?;
    drop(head);
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if !(RSDP_V2_LEN..=RSDP_MAX_LEN).contains(&len) {
        return Err(invalid(RsdpProblem::BadLength(length)));
    }
    let full =
        Region::map(handler, address, len).map_err(|_| invalid(RsdpProblem::AddressOutOfRange))?;
    let bytes = full.bytes();
    if bytes.len() != len || !checksum_ok(bytes) {
        return Err(invalid(RsdpProblem::BadExtendedChecksum));
    }
    let xsdt = le_u64(bytes, 24).ok_or(invalid(RsdpProblem::BadLength(length)))?;
    Ok(Rsdp {
        address,
        revision,
        rsdt_address,
        xsdt_address: Some(xsdt),
    })
}

/// Searches the BIOS areas for a valid RSDP (ACPI 6.5 §5.2.5.1), EBDA first.
///
/// Written here rather than using `acpi::AcpiTables::search_for_rsdp_bios` because that
/// function's candidate check (`Rsdp::validate`) trusts the candidate's `Length` field and
/// checksums that many bytes from a 36-byte mapping: any stray "RSD PTR " string in the BIOS
/// image could make it read out of bounds.
pub(super) fn search_rsdp<H: AcpiHandler>(handler: &H) -> Result<Rsdp, AcpiError> {
    let mut areas: [Option<(u64, usize)>; 2] = [None, None];
    if let Ok(bda) = Region::map(handler, EBDA_SEGMENT_PTR, 2) {
        let segment = le_u16(bda.bytes(), 0).unwrap_or(0);
        let ebda = u64::from(segment) << 4;
        if EBDA_RANGE.contains(&ebda) {
            areas[0] = Some((ebda, EBDA_SEARCH_LEN));
        }
    }
    let bios_len = (BIOS_AREA.end - BIOS_AREA.start) as usize;
    areas[1] = Some((BIOS_AREA.start, bios_len));

    for (base, len) in areas.into_iter().flatten() {
        let Ok(area) = Region::map(handler, base, len) else {
            continue;
        };
        let bytes = area.bytes();
        let mut offset = 0;
        while offset + RSDP_V1_LEN <= bytes.len() {
            let candidate = &bytes[offset..offset + RSDP_V1_LEN];
            if candidate.starts_with(RSDP_SIGNATURE) && checksum_ok(candidate) {
                // Full validation (revision 2 fields included) through the normal path; a
                // bad candidate is skipped, as a stray signature is not an RSDP.
                if let Ok(rsdp) = read_rsdp(handler, base + offset as u64) {
                    return Ok(rsdp);
                }
            }
            offset += 16;
        }
    }
    Err(AcpiError::NoRsdp)
}

/// A table located and validated: its header, length and checksum are correct.
pub(super) struct Table<H: AcpiHandler> {
    pub(super) address: u64,
    pub(super) region: Region<H>,
}

impl<H: AcpiHandler> Table<H> {
    /// The whole table, header included.
    pub(super) fn bytes(&self) -> &[u8] {
        self.region.bytes()
    }

    /// The header's `Revision` field.
    pub(super) fn revision(&self) -> u8 {
        self.bytes().get(8).copied().unwrap_or(0)
    }
}

/// Maps the table at `address` and checks that it has `signature`, a length in
/// `min_len..=MAX_TABLE_LEN`, and a correct checksum (ACPI 6.5 §5.2.6).
pub(super) fn read_table<H: AcpiHandler>(
    handler: &H,
    address: u64,
    signature: Signature,
    min_len: usize,
) -> Result<Table<H>, TableProblem> {
    let header = Region::map(handler, address, HEADER_LEN)?;
    let (found, length) = parse_header(header.bytes()).ok_or(TableProblem::BadLength(0))?;
    drop(header);
    if found != signature {
        return Err(TableProblem::WrongSignature(found));
    }
    let len = usize::try_from(length).unwrap_or(usize::MAX);
    if !(min_len.max(HEADER_LEN)..=MAX_TABLE_LEN).contains(&len) {
        return Err(TableProblem::BadLength(length));
    }
    let region = Region::map(handler, address, len)?;
    let bytes = region.bytes();
    // Re-read the header from the full mapping, so what we checksum and later parse is
    // exactly what we validated.
    if bytes.len() != len || parse_header(bytes) != Some((signature, length)) {
        return Err(TableProblem::BadLength(length));
    }
    if !checksum_ok(bytes) {
        return Err(TableProblem::BadChecksum);
    }
    Ok(Table { address, region })
}

/// Signature and length of a System Description Table header.
fn parse_header(bytes: &[u8]) -> Option<(Signature, u32)> {
    let signature: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some((Signature(signature), le_u32(bytes, 4)?))
}

/// The tables the RSDT or XSDT lists: address and signature of each entry that could be
/// read.
pub(super) struct RootTable {
    signature: Signature,
    entries: Vec<(u64, Signature)>,
}

impl RootTable {
    /// [`Signature::XSDT`] or [`Signature::RSDT`]: which root table this is.
    pub(super) fn signature(&self) -> Signature {
        self.signature
    }

    /// Reads the XSDT (ACPI 6.5 §5.2.8) when the RSDP has revision ≥ 2 and a non-zero XSDT
    /// address, since the XSDT supersedes the RSDT, else the RSDT (§5.2.7).
    ///
    /// If the XSDT fails validation and the RSDP also names an RSDT that is valid, the RSDT
    /// is used with a warning (firmware with a broken XSDT and a working RSDT exists, and
    /// Linux falls back the same way). QEMU's microvm machine has an XSDT and no RSDT
    /// (address 0), which needs no special case.
    pub(super) fn read<H: AcpiHandler>(
        handler: &H,
        rsdp: &Rsdp,
        warnings: &mut Warnings,
    ) -> Result<Self, AcpiError> {
        let rsdt = u64::from(rsdp.rsdt_address);
        match rsdp.xsdt_address.filter(|&a| a != 0) {
            Some(xsdt) => match Self::read_one(handler, xsdt, Signature::XSDT, 8, warnings) {
                Ok(root) => Ok(root),
                Err(error) if rsdt != 0 => {
                    let root = Self::read_one(handler, rsdt, Signature::RSDT, 4, warnings)
                        .map_err(|_| error.clone())?;
                    warnings.push(Warning::UsedRsdtInsteadOfXsdt(error));
                    Ok(root)
                }
                Err(error) => Err(error),
            },
            None if rsdt != 0 => Self::read_one(handler, rsdt, Signature::RSDT, 4, warnings),
            None => Err(AcpiError::InvalidRsdp {
                address: rsdp.address,
                problem: RsdpProblem::NoRootTable,
            }),
        }
    }

    fn read_one<H: AcpiHandler>(
        handler: &H,
        address: u64,
        signature: Signature,
        entry_size: usize,
        warnings: &mut Warnings,
    ) -> Result<Self, AcpiError> {
        let table = read_table(handler, address, signature, HEADER_LEN).map_err(|problem| {
            AcpiError::InvalidTable {
                signature,
                address,
                problem,
            }
        })?;
        let bytes = table.bytes();
        // Length ≥ HEADER_LEN was checked; a partial trailing entry is ignored.
        let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        let mut entries = Vec::with_capacity(body.len() / entry_size);
        for (index, chunk) in body.chunks_exact(entry_size).enumerate() {
            let entry = if entry_size == 8 {
                le_u64(chunk, 0)
            } else {
                le_u32(chunk, 0).map(u64::from)
            };
            let entry = entry.unwrap_or(0);
            if entry == 0 {
                warnings.push(Warning::NullTableEntry { index });
                continue;
            }
            match Region::map(handler, entry, HEADER_LEN) {
                Ok(header) => {
                    if let Some((found, _)) = parse_header(header.bytes()) {
                        entries.push((entry, found));
                    }
                }
                Err(_) => warnings.push(Warning::BadTableAddress {
                    index,
                    address: entry,
                }),
            }
        }
        Ok(Self { signature, entries })
    }

    /// The first valid table with `signature`.
    ///
    /// Copies that fail validation are skipped with a warning when a later copy is valid.
    /// If there are copies but none is valid, the first one's problem is the error, and
    /// `Ok(None)` means there is no such table at all.
    pub(super) fn find<H: AcpiHandler>(
        &self,
        handler: &H,
        signature: Signature,
        min_len: usize,
        warnings: &mut Warnings,
    ) -> Result<Option<Table<H>>, AcpiError> {
        let mut first_error = None;
        let mut skipped = Vec::new();
        for &(address, _) in self.entries.iter().filter(|(_, s)| *s == signature) {
            match read_table(handler, address, signature, min_len) {
                Ok(table) => {
                    for warning in skipped {
                        warnings.push(warning);
                    }
                    return Ok(Some(table));
                }
                Err(problem) => {
                    let error = AcpiError::InvalidTable {
                        signature,
                        address,
                        problem,
                    };
                    skipped.push(Warning::TableSkipped(error.clone()));
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }
}
