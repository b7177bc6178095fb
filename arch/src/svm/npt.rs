//! Nested page table entries (APM Vol. 2 §15.25).
//!
//! Nested paging reuses the ordinary long-mode page-table format (APM Vol. 2 §5.3),
//! walked in the host's paging mode, so the entry is the familiar P/RW/US/.../NX word.
//! Two rules differ from a host page table:
//!
//! - Every nested access is a user access (APM Vol. 2 §15.25.5, §15.25.6), so U/S must be
//!   1 at every level or the guest faults on everything. The constructors always set it.
//! - Walks of the guest's own page tables are treated as writes (the CPU may set A/D
//!   bits), so guest page-table memory must be writable in the nested tables.
//!
//! Memory type comes from the entry's PAT/PCD/PWT bits indexing the host PAT, combined
//! with the guest's type from G_PAT (APM Vol. 2 §15.25). The constructors leave those
//! bits 0 (PAT entry 0, write-back by the power-on default).

/// Bits 51:12: physical-address bits an entry can hold.
pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Level of a nested paging structure, numbered as in a 4-level walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NptLevel {
    /// Page table: entries map 4 KiB pages.
    Pt = 1,
    /// Page directory: entries reference a page table or map 2 MiB (PS = 1).
    Pd = 2,
    /// Page-directory-pointer table: entries reference a page directory or map 1 GiB.
    Pdpt = 3,
    /// PML4: entries always reference a PDPT.
    Pml4 = 4,
}

impl NptLevel {
    /// Size mapped by a leaf at this level, or `None` at PML4.
    pub const fn page_size(self) -> Option<u64> {
        match self {
            Self::Pt => Some(1 << 12),
            Self::Pd => Some(1 << 21),
            Self::Pdpt => Some(1 << 30),
            Self::Pml4 => None,
        }
    }
}

/// Why an entry could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// The address has bits set below the page size or above bit 51.
    MisalignedAddress,
    /// PML4 entries cannot map pages.
    NoLeafAtLevel,
}

/// One nested page table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct NptEntry(pub u64);

impl NptEntry {
    /// Bit 0: present.
    pub const PRESENT: u64 = 1 << 0;
    /// Bit 1: writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// Bit 2: user; required on every level for nested translation.
    pub const USER: u64 = 1 << 2;
    /// Bit 3: page-level write-through (PAT index bit 0).
    pub const PWT: u64 = 1 << 3;
    /// Bit 4: page-level cache disable (PAT index bit 1).
    pub const PCD: u64 = 1 << 4;
    /// Bit 5: accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Bit 6: dirty (leaves).
    pub const DIRTY: u64 = 1 << 6;
    /// Bit 7: page size, a leaf in a PDPT or PD (the PAT bit in a PTE).
    pub const PAGE_SIZE: u64 = 1 << 7;
    /// Bit 8: global (ignored in nested tables, which are never shared with the host's
    /// own translations).
    pub const GLOBAL: u64 = 1 << 8;
    /// Bit 63: no-execute; honoured only when the host's EFER.NXE is set at VMRUN.
    pub const NO_EXECUTE: u64 = 1 << 63;

    /// A not-present entry: any access through it is a nested page fault.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// A non-leaf entry referencing the next table at `table_pa`: present, writable and
    /// user, executable, so the leaf alone decides the rights.
    pub const fn table(table_pa: u64) -> Result<Self, NptError> {
        if table_pa & !ADDRESS_MASK != 0 {
            return Err(NptError::MisalignedAddress);
        }
        Ok(Self(table_pa | Self::PRESENT | Self::WRITABLE | Self::USER))
    }

    /// A leaf mapping `pa` at `level` (4 KiB at [`NptLevel::Pt`], 2 MiB at
    /// [`NptLevel::Pd`], 1 GiB at [`NptLevel::Pdpt`]), present and user.
    pub const fn page(
        level: NptLevel,
        pa: u64,
        writable: bool,
        executable: bool,
    ) -> Result<Self, NptError> {
        let Some(size) = level.page_size() else {
            return Err(NptError::NoLeafAtLevel);
        };
        if pa & !(ADDRESS_MASK & !(size - 1)) != 0 {
            return Err(NptError::MisalignedAddress);
        }
        let mut raw = pa | Self::PRESENT | Self::USER;
        if writable {
            raw |= Self::WRITABLE;
        }
        if !executable {
            raw |= Self::NO_EXECUTE;
        }
        if !matches!(level, NptLevel::Pt) {
            raw |= Self::PAGE_SIZE;
        }
        Ok(Self(raw))
    }

    /// Bit 0.
    pub const fn is_present(self) -> bool {
        self.0 & Self::PRESENT != 0
    }

    /// Bit 1.
    pub const fn writable(self) -> bool {
        self.0 & Self::WRITABLE != 0
    }

    /// Bit 2.
    pub const fn user(self) -> bool {
        self.0 & Self::USER != 0
    }

    /// Not bit 63.
    pub const fn executable(self) -> bool {
        self.0 & Self::NO_EXECUTE == 0
    }

    /// Bit 5.
    pub const fn accessed(self) -> bool {
        self.0 & Self::ACCESSED != 0
    }

    /// Bit 6.
    pub const fn dirty(self) -> bool {
        self.0 & Self::DIRTY != 0
    }

    /// Whether this entry maps a page rather than referencing a table, given its level.
    pub const fn is_leaf(self, level: NptLevel) -> bool {
        match level {
            NptLevel::Pt => true,
            NptLevel::Pd | NptLevel::Pdpt => self.0 & Self::PAGE_SIZE != 0,
            NptLevel::Pml4 => false,
        }
    }

    /// The referenced table, or the mapped page's base, given the entry's level. Bit 12
    /// of a large leaf is its PAT bit, so low bits below the page size are masked off.
    pub const fn address(self, level: NptLevel) -> u64 {
        let mask = match (self.is_leaf(level), level.page_size()) {
            (true, Some(size)) => ADDRESS_MASK & !(size - 1),
            _ => ADDRESS_MASK,
        };
        self.0 & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_are_present_writable_user() {
        let e = NptEntry::table(0x0012_3000).unwrap();
        assert_eq!(e.0, 0x0012_3007);
        assert!(e.is_present() && e.writable() && e.user() && e.executable());
        assert!(!e.is_leaf(NptLevel::Pml4) && !e.is_leaf(NptLevel::Pd));
        assert_eq!(e.address(NptLevel::Pml4), 0x0012_3000);
        assert_eq!(NptEntry::table(0x123), Err(NptError::MisalignedAddress));
        assert_eq!(NptEntry::table(1 << 52), Err(NptError::MisalignedAddress));
    }

    #[test]
    fn leaf_entries() {
        let rw = NptEntry::page(NptLevel::Pt, 0xABCD_E000, true, true).unwrap();
        assert_eq!(rw.0, 0xABCD_E007);
        let ro_nx = NptEntry::page(NptLevel::Pt, 0x5000, false, false).unwrap();
        assert_eq!(ro_nx.0, 0x8000_0000_0000_5005);
        assert!(ro_nx.user() && !ro_nx.writable() && !ro_nx.executable());
        let two_mib = NptEntry::page(NptLevel::Pd, 0x4020_0000, true, true).unwrap();
        assert_eq!(two_mib.0, 0x4020_0087);
        assert!(two_mib.is_leaf(NptLevel::Pd));
        assert_eq!(two_mib.address(NptLevel::Pd), 0x4020_0000);
        let one_gib = NptEntry::page(NptLevel::Pdpt, 0xC000_0000, true, false).unwrap();
        assert_eq!(one_gib.0, 0x8000_0000_C000_0087);
        // A large leaf with its PAT bit (12) set still reports the page base.
        assert_eq!(
            NptEntry(two_mib.0 | (1 << 12)).address(NptLevel::Pd),
            0x4020_0000
        );
    }

    #[test]
    fn rejects_bad_leaves() {
        assert_eq!(
            NptEntry::page(NptLevel::Pd, 0x4010_0000, true, true),
            Err(NptError::MisalignedAddress)
        );
        assert_eq!(
            NptEntry::page(NptLevel::Pdpt, 0x4000_0000 | 0x20_0000, true, true),
            Err(NptError::MisalignedAddress)
        );
        assert_eq!(
            NptEntry::page(NptLevel::Pml4, 0, true, true),
            Err(NptError::NoLeafAtLevel)
        );
        assert!(!NptEntry::empty().is_present());
        let a_d = NptEntry(NptEntry::ACCESSED | NptEntry::DIRTY | 1);
        assert!(a_d.accessed() && a_d.dirty());
    }
}
