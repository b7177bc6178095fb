//! EPT paging-structure entries (SDM Vol. 3C §29.3.2, Tables 29-1 to 29-6) and the EPT
//! pointer (SDM Vol. 3C §25.6.11).
//!
//! EPT entries are not the ordinary page-table format: bit 0 is "read", not "present",
//! there is no user/supervisor bit, and leaves carry their own memory type. Access rights
//! are the AND over every level of the walk, so tables grant everything and leaves decide.

use bitflags::bitflags;

/// Bits 51:12: physical-address bits an entry can hold (MAXPHYADDR is at most 52).
pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Level of an EPT paging structure, numbered as in a 4-level walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EptLevel {
    /// Page table: entries map 4 KiB pages.
    Pt = 1,
    /// Page directory: entries reference a page table or map 2 MiB.
    Pd = 2,
    /// Page-directory-pointer table: entries reference a page directory or map 1 GiB.
    Pdpt = 3,
    /// PML4: entries always reference a PDPT.
    Pml4 = 4,
}

impl EptLevel {
    /// Size mapped by a leaf at this level, or `None` at PML4 where leaves do not exist.
    pub const fn page_size(self) -> Option<u64> {
        match self {
            Self::Pt => Some(1 << 12),
            Self::Pd => Some(1 << 21),
            Self::Pdpt => Some(1 << 30),
            Self::Pml4 => None,
        }
    }
}

/// EPT memory types (SDM Vol. 3C §29.3.7; values as in the MTRRs, SDM Vol. 3A §12.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EptMemoryType {
    /// Uncacheable (UC).
    Uncacheable = 0,
    /// Write combining (WC).
    WriteCombining = 1,
    /// Write-through (WT).
    WriteThrough = 4,
    /// Write-protected (WP).
    WriteProtected = 5,
    /// Write-back (WB).
    WriteBack = 6,
}

impl EptMemoryType {
    /// Decodes a 3-bit memory type; 2, 3 and 7 are reserved (an EPT misconfiguration in a
    /// leaf).
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }
}

bitflags! {
    /// Access rights in bits 2:0 of every EPT entry.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct EptPermissions: u64 {
        /// Reads allowed.
        const READ = 1 << 0;
        /// Writes allowed; without READ this is an EPT misconfiguration (§29.3.3.1).
        const WRITE = 1 << 1;
        /// Instruction fetches allowed (supervisor fetches under mode-based execute
        /// control).
        const EXECUTE = 1 << 2;
    }
}

impl EptPermissions {
    /// Read, write and execute: what a non-leaf entry grants.
    pub const RWX: Self = Self::all();
}

/// Why an entry could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// The address has bits set below the page size or above bit 51.
    MisalignedAddress,
    /// Writable but not readable: hardware reports an EPT misconfiguration
    /// (SDM Vol. 3C §29.3.3.1).
    WriteWithoutRead,
    /// PML4 entries cannot map pages.
    NoLeafAtLevel,
    /// The EPTP memory type must be UC or WB (SDM Vol. 3C §25.6.11).
    InvalidEptpMemoryType,
}

/// One EPT paging-structure entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct EptEntry(pub u64);

impl EptEntry {
    /// Bits 5:3: memory type (leaves only).
    pub const MEMORY_TYPE_SHIFT: u32 = 3;
    /// Bit 6: ignore guest PAT (leaves only).
    pub const IGNORE_PAT: u64 = 1 << 6;
    /// Bit 7: maps a page (PDPTE, PDE); must be 0 in a PML4E, ignored in a PTE.
    pub const LARGE_PAGE: u64 = 1 << 7;
    /// Bit 8: accessed, when A/D flags are enabled in the EPTP.
    pub const ACCESSED: u64 = 1 << 8;
    /// Bit 9: dirty (leaves only), when A/D flags are enabled.
    pub const DIRTY: u64 = 1 << 9;
    /// Bit 10: user-mode execute, under mode-based execute control.
    pub const USER_EXECUTE: u64 = 1 << 10;
    /// Bit 63: suppress #VE.
    pub const SUPPRESS_VE: u64 = 1 << 63;

    /// A not-present entry: any access through it is an EPT violation.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// A non-leaf entry referencing the next table at `table_pa`, granting read, write
    /// and execute so the leaf alone decides the rights.
    pub const fn table(table_pa: u64) -> Result<Self, EptError> {
        if table_pa & !ADDRESS_MASK != 0 {
            return Err(EptError::MisalignedAddress);
        }
        Ok(Self(table_pa | EptPermissions::RWX.bits()))
    }

    /// A leaf mapping `pa` at `level` (4 KiB at [`EptLevel::Pt`], 2 MiB at
    /// [`EptLevel::Pd`], 1 GiB at [`EptLevel::Pdpt`]). `ignore_pat` makes `memory_type`
    /// final instead of combining it with the guest's PAT (SDM Vol. 3C §29.3.7).
    pub const fn page(
        level: EptLevel,
        pa: u64,
        permissions: EptPermissions,
        memory_type: EptMemoryType,
        ignore_pat: bool,
    ) -> Result<Self, EptError> {
        let Some(size) = level.page_size() else {
            return Err(EptError::NoLeafAtLevel);
        };
        if pa & !(ADDRESS_MASK & !(size - 1)) != 0 {
            return Err(EptError::MisalignedAddress);
        }
        if permissions.contains(EptPermissions::WRITE)
            && !permissions.contains(EptPermissions::READ)
        {
            return Err(EptError::WriteWithoutRead);
        }
        let mut raw = pa | permissions.bits() | ((memory_type as u64) << Self::MEMORY_TYPE_SHIFT);
        if ignore_pat {
            raw |= Self::IGNORE_PAT;
        }
        if !matches!(level, EptLevel::Pt) {
            raw |= Self::LARGE_PAGE;
        }
        Ok(Self(raw))
    }

    /// Bits 2:0 as permissions.
    pub const fn permissions(self) -> EptPermissions {
        EptPermissions::from_bits_truncate(self.0)
    }

    /// Present in the EPT sense: any of read, write or execute is set (SDM Vol. 3C
    /// §29.3.2). Ignores user-execute, which only matters with mode-based control.
    pub const fn is_present(self) -> bool {
        self.0 & EptPermissions::RWX.bits() != 0
    }

    /// Bit 0.
    pub const fn readable(self) -> bool {
        self.0 & EptPermissions::READ.bits() != 0
    }

    /// Bit 1.
    pub const fn writable(self) -> bool {
        self.0 & EptPermissions::WRITE.bits() != 0
    }

    /// Bit 2.
    pub const fn executable(self) -> bool {
        self.0 & EptPermissions::EXECUTE.bits() != 0
    }

    /// Whether this entry maps a page rather than referencing a table, given its level.
    pub const fn is_leaf(self, level: EptLevel) -> bool {
        match level {
            EptLevel::Pt => true,
            EptLevel::Pd | EptLevel::Pdpt => self.0 & Self::LARGE_PAGE != 0,
            EptLevel::Pml4 => false,
        }
    }

    /// Bits 5:3 of a leaf; `None` for reserved encodings.
    pub const fn memory_type(self) -> Option<EptMemoryType> {
        EptMemoryType::from_raw(((self.0 >> Self::MEMORY_TYPE_SHIFT) & 0b111) as u8)
    }

    /// Bit 6 of a leaf.
    pub const fn ignore_pat(self) -> bool {
        self.0 & Self::IGNORE_PAT != 0
    }

    /// Bit 8.
    pub const fn accessed(self) -> bool {
        self.0 & Self::ACCESSED != 0
    }

    /// Bit 9 of a leaf.
    pub const fn dirty(self) -> bool {
        self.0 & Self::DIRTY != 0
    }

    /// The referenced table, or the mapped page's base, given the entry's level: a 2 MiB
    /// or 1 GiB leaf's low address bits are other fields or reserved, so they are masked.
    pub const fn address(self, level: EptLevel) -> u64 {
        let mask = match (self.is_leaf(level), level.page_size()) {
            (true, Some(size)) => ADDRESS_MASK & !(size - 1),
            _ => ADDRESS_MASK,
        };
        self.0 & mask
    }
}

/// The EPT pointer VMCS field (SDM Vol. 3C §25.6.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Eptp(pub u64);

impl Eptp {
    /// Bits 5:3: page-walk length minus one.
    const WALK_LENGTH_SHIFT: u32 = 3;
    /// Bit 6: enable accessed and dirty flags.
    pub const ACCESSED_DIRTY: u64 = 1 << 6;

    /// A 4-level EPTP for the PML4 table at `pml4_pa`, whose paging structures are accessed
    /// with `memory_type` (only UC and WB are allowed; check IA32_VMX_EPT_VPID_CAP bits 8
    /// and 14). `accessed_dirty` requires IA32_VMX_EPT_VPID_CAP\[21\].
    pub const fn new(
        pml4_pa: u64,
        memory_type: EptMemoryType,
        accessed_dirty: bool,
    ) -> Result<Self, EptError> {
        if pml4_pa & !ADDRESS_MASK != 0 {
            return Err(EptError::MisalignedAddress);
        }
        if !matches!(
            memory_type,
            EptMemoryType::Uncacheable | EptMemoryType::WriteBack
        ) {
            return Err(EptError::InvalidEptpMemoryType);
        }
        let mut raw = pml4_pa | (memory_type as u64) | (3 << Self::WALK_LENGTH_SHIFT);
        if accessed_dirty {
            raw |= Self::ACCESSED_DIRTY;
        }
        Ok(Self(raw))
    }

    /// Bits 2:0.
    pub const fn memory_type(self) -> Option<EptMemoryType> {
        EptMemoryType::from_raw((self.0 & 0b111) as u8)
    }

    /// Number of paging levels (bits 5:3 plus one).
    pub const fn levels(self) -> u8 {
        ((self.0 >> Self::WALK_LENGTH_SHIFT) & 0b111) as u8 + 1
    }

    /// Bit 6.
    pub const fn accessed_dirty(self) -> bool {
        self.0 & Self::ACCESSED_DIRTY != 0
    }

    /// The PML4 table's physical address.
    pub const fn pml4(self) -> u64 {
        self.0 & ADDRESS_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entry_grants_rwx() {
        let e = EptEntry::table(0x1234_5000).unwrap();
        assert_eq!(e.0, 0x1234_5007);
        assert!(e.is_present() && !e.is_leaf(EptLevel::Pml4) && !e.is_leaf(EptLevel::Pd));
        assert_eq!(e.address(EptLevel::Pml4), 0x1234_5000);
        assert_eq!(
            EptEntry::table(0x1234_5008),
            Err(EptError::MisalignedAddress)
        );
        assert_eq!(EptEntry::table(1 << 52), Err(EptError::MisalignedAddress));
    }

    #[test]
    fn four_kib_wb_page() {
        let e = EptEntry::page(
            EptLevel::Pt,
            0xABCD_E000,
            EptPermissions::READ | EptPermissions::WRITE,
            EptMemoryType::WriteBack,
            false,
        )
        .unwrap();
        // R|W = 0b011, WB (6) << 3 = 0x30, no large-page bit at PT level.
        assert_eq!(e.0, 0xABCD_E033);
        assert!(e.is_leaf(EptLevel::Pt));
        assert!(e.readable() && e.writable() && !e.executable());
        assert_eq!(e.memory_type(), Some(EptMemoryType::WriteBack));
        assert_eq!(e.address(EptLevel::Pt), 0xABCD_E000);
    }

    #[test]
    fn large_pages() {
        let two_mib = EptEntry::page(
            EptLevel::Pd,
            0x4020_0000,
            EptPermissions::RWX,
            EptMemoryType::Uncacheable,
            true,
        )
        .unwrap();
        // RWX | UC (0) | ignore PAT (bit 6) | large (bit 7).
        assert_eq!(two_mib.0, 0x4020_00C7);
        assert!(two_mib.is_leaf(EptLevel::Pd) && two_mib.ignore_pat());
        assert_eq!(two_mib.address(EptLevel::Pd), 0x4020_0000);

        let one_gib = EptEntry::page(
            EptLevel::Pdpt,
            0x1_4000_0000,
            EptPermissions::READ | EptPermissions::EXECUTE,
            EptMemoryType::WriteBack,
            false,
        )
        .unwrap();
        assert_eq!(one_gib.0, 0x1_4000_00B5);
        assert!(one_gib.is_leaf(EptLevel::Pdpt));

        assert_eq!(
            EptEntry::page(
                EptLevel::Pd,
                0x4010_0000,
                EptPermissions::READ,
                EptMemoryType::WriteBack,
                false
            ),
            Err(EptError::MisalignedAddress)
        );
        assert_eq!(
            EptEntry::page(
                EptLevel::Pml4,
                0,
                EptPermissions::READ,
                EptMemoryType::WriteBack,
                false
            ),
            Err(EptError::NoLeafAtLevel)
        );
    }

    #[test]
    fn write_without_read_is_rejected() {
        assert_eq!(
            EptEntry::page(
                EptLevel::Pt,
                0x1000,
                EptPermissions::WRITE,
                EptMemoryType::WriteBack,
                false
            ),
            Err(EptError::WriteWithoutRead)
        );
        // Execute-only is architecturally valid (if the CPU supports it).
        assert!(
            EptEntry::page(
                EptLevel::Pt,
                0x1000,
                EptPermissions::EXECUTE,
                EptMemoryType::WriteBack,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn accessed_dirty_and_reserved_types() {
        let e = EptEntry(0x5000 | 0x7 | EptEntry::ACCESSED | EptEntry::DIRTY | (2 << 3));
        assert!(e.accessed() && e.dirty());
        assert_eq!(e.memory_type(), None);
        assert!(!EptEntry::empty().is_present());
        assert_eq!(EptEntry(0x4).permissions(), EptPermissions::EXECUTE);
    }

    #[test]
    fn eptp_encoding() {
        let p = Eptp::new(0x7FFF_F000, EptMemoryType::WriteBack, true).unwrap();
        // WB = 6 in bits 2:0, walk length 4 -> 3 in bits 5:3 (0x18), A/D bit 6.
        assert_eq!(p.0, 0x7FFF_F05E);
        assert_eq!(p.levels(), 4);
        assert_eq!(p.memory_type(), Some(EptMemoryType::WriteBack));
        assert!(p.accessed_dirty());
        assert_eq!(p.pml4(), 0x7FFF_F000);
        assert_eq!(
            Eptp::new(0x1000, EptMemoryType::Uncacheable, false)
                .unwrap()
                .0,
            0x1018
        );
        assert_eq!(
            Eptp::new(0x1000, EptMemoryType::WriteThrough, false),
            Err(EptError::InvalidEptpMemoryType)
        );
        assert_eq!(
            Eptp::new(0x1800, EptMemoryType::WriteBack, false),
            Err(EptError::MisalignedAddress)
        );
    }
}
