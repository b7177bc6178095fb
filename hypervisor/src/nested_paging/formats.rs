//! The two real entry formats, on top of the typed encoders in `ferrovisor_arch`.

use ferrovisor_arch::svm::npt::{NptEntry, NptLevel};
use ferrovisor_arch::vmx::ept::{EptEntry, EptLevel, EptMemoryType, EptPermissions};

use super::{Access, EntryFormat, MemoryType};

/// Intel EPT (SDM Vol. 3C §29.3.2). Leaves carry the memory type with IPAT set, so the
/// guest's PAT cannot make RAM uncached behind the hypervisor's back nor device memory
/// cacheable.
#[derive(Clone, Copy, Debug)]
pub struct Ept {
    /// Whether the CPU maps 1 GiB pages in EPT (IA32_VMX_EPT_VPID_CAP bit 17).
    pub gib_pages: bool,
}

fn ept_level(level: u8) -> EptLevel {
    match level {
        1 => EptLevel::Pt,
        2 => EptLevel::Pd,
        3 => EptLevel::Pdpt,
        _ => EptLevel::Pml4,
    }
}

impl EntryFormat for Ept {
    fn large_leaf_supported(&self, level: u8) -> bool {
        level == 2 || (level == 3 && self.gib_pages)
    }
    fn table_entry(&self, table_paddr: u64) -> u64 {
        // Table entries grant everything; leaves restrict (SDM §29.3.3).
        EptEntry::table(table_paddr).map_or(0, |e| e.0)
    }
    fn leaf_entry(&self, paddr: u64, level: u8, access: Access, memory_type: MemoryType) -> u64 {
        let mut permissions = EptPermissions::empty();
        permissions.set(EptPermissions::READ, access.read || access.write);
        permissions.set(EptPermissions::WRITE, access.write);
        permissions.set(EptPermissions::EXECUTE, access.execute);
        let memory_type = match memory_type {
            MemoryType::WriteBack => EptMemoryType::WriteBack,
            MemoryType::Uncacheable => EptMemoryType::Uncacheable,
        };
        EptEntry::page(ept_level(level), paddr, permissions, memory_type, true).map_or(0, |e| e.0)
    }
    fn is_present(&self, entry: u64) -> bool {
        EptEntry(entry).is_present()
    }
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        EptEntry(entry).is_leaf(ept_level(level))
    }
    fn address(&self, entry: u64) -> u64 {
        entry & ferrovisor_arch::vmx::ept::ADDRESS_MASK
    }
    fn leaf_attributes(&self, entry: u64) -> (Access, MemoryType) {
        let e = EptEntry(entry);
        let memory_type = match e.memory_type() {
            Some(EptMemoryType::WriteBack) => MemoryType::WriteBack,
            _ => MemoryType::Uncacheable,
        };
        (
            Access {
                read: e.readable(),
                write: e.writable(),
                execute: e.executable(),
            },
            memory_type,
        )
    }
}

/// AMD NPT: the long-mode page-table format with U=1 everywhere (APM Vol. 2 §15.25.5).
/// The memory type comes from PCD/PWT with the host's PAT (APM §15.25.8): PCD|PWT
/// selects UC in the power-on PAT.
#[derive(Clone, Copy, Debug)]
pub struct Npt {
    /// Whether the CPU maps 1 GiB pages (CPUID 8000_0001h EDX bit 26).
    pub gib_pages: bool,
}

fn npt_level(level: u8) -> NptLevel {
    match level {
        1 => NptLevel::Pt,
        2 => NptLevel::Pd,
        3 => NptLevel::Pdpt,
        _ => NptLevel::Pml4,
    }
}

impl EntryFormat for Npt {
    fn large_leaf_supported(&self, level: u8) -> bool {
        level == 2 || (level == 3 && self.gib_pages)
    }
    fn table_entry(&self, table_paddr: u64) -> u64 {
        NptEntry::table(table_paddr).map_or(0, |e| e.0)
    }
    fn leaf_entry(&self, paddr: u64, level: u8, access: Access, memory_type: MemoryType) -> u64 {
        // NPT has no read-only-without-present: a readable page is present.
        let entry = NptEntry::page(npt_level(level), paddr, access.write, access.execute)
            .map_or(0, |e| e.0);
        match memory_type {
            MemoryType::WriteBack => entry,
            MemoryType::Uncacheable => entry | NptEntry::PCD | NptEntry::PWT,
        }
    }
    fn is_present(&self, entry: u64) -> bool {
        NptEntry(entry).is_present()
    }
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        NptEntry(entry).is_leaf(npt_level(level))
    }
    fn address(&self, entry: u64) -> u64 {
        entry & ferrovisor_arch::svm::npt::ADDRESS_MASK
    }
    fn leaf_attributes(&self, entry: u64) -> (Access, MemoryType) {
        let e = NptEntry(entry);
        let memory_type = if entry & NptEntry::PCD != 0 {
            MemoryType::Uncacheable
        } else {
            MemoryType::WriteBack
        };
        (
            Access {
                read: true,
                write: e.writable(),
                execute: e.executable(),
            },
            memory_type,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ept_leaves() {
        let f = Ept { gib_pages: true };
        let e = f.leaf_entry(0x4000_0000, 3, Access::RWX, MemoryType::WriteBack);
        // R|W|X, WB (6) in bits 5:3, IPAT, large page.
        assert_eq!(e, 0x4000_0000 | 0b111 | (6 << 3) | (1 << 6) | (1 << 7));
        assert!(f.is_leaf(e, 3) && f.is_present(e));
        assert_eq!(f.leaf_attributes(e), (Access::RWX, MemoryType::WriteBack));
        let ro = f.leaf_entry(0x1000, 1, Access::READ, MemoryType::Uncacheable);
        assert_eq!(ro, 0x1000 | 0b001 | (1 << 6));
        assert_eq!(f.table_entry(0x5000), 0x5000 | 0b111);
        assert!(!f.large_leaf_supported(3) || f.gib_pages);
    }

    #[test]
    fn npt_leaves() {
        let f = Npt { gib_pages: false };
        let e = f.leaf_entry(0x20_0000, 2, Access::RWX, MemoryType::WriteBack);
        assert_eq!(e, 0x20_0000 | 0b111 | (1 << 7));
        let ro_nx = f.leaf_entry(0x1000, 1, Access::READ, MemoryType::Uncacheable);
        assert_eq!(ro_nx, 0x1000 | 0b101 | (1 << 3) | (1 << 4) | (1 << 63));
        assert_eq!(f.leaf_attributes(ro_nx).1, MemoryType::Uncacheable);
        assert_eq!(f.table_entry(0x7000), 0x7000 | 0b111);
        assert!(!f.large_leaf_supported(3));
    }
}
