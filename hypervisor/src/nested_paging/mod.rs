//! Guest-physical address spaces: the nested page tables (Intel EPT, AMD NPT) that map
//! a domain's guest-physical addresses to host-physical frames.
//!
//! One builder serves both vendors: [`AddressSpace`] walks and edits a four-level radix
//! tree, and an [`EntryFormat`] says how entries are encoded (EPT: SDM Vol. 3C §29.3.2;
//! NPT: the long-mode page-table format, APM Vol. 2 §15.25). Table frames come from a
//! [`TableMemory`], the hypervisor's frame allocator and direct map in the kernel, a
//! simulated physical memory in host tests.
//!
//! Mappings use the largest page that alignment and length allow (1 GiB, 2 MiB, 4 KiB)
//! when the format supports it; changing part of a large page splits it into the next
//! size down with identical attributes first, so nothing else changes.

mod formats;
mod space;
#[cfg(test)]
mod tests;

pub use formats::{Ept, Npt};
pub use space::{AddressSpace, MapError, MappingCounts, Translation};

/// Access rights of a guest-physical mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Access {
    /// Read, write and execute: ordinary guest RAM.
    pub const RWX: Self = Self {
        read: true,
        write: true,
        execute: true,
    };
    /// Read-only, no execute.
    pub const READ: Self = Self {
        read: true,
        write: false,
        execute: false,
    };
}

/// Memory type of a guest-physical mapping (the EPT memory-type field; NPT leaves the
/// type to the guest's PAT combined with the host's MTRRs, APM Vol. 2 §15.25.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    Uncacheable,
    WriteBack,
}

/// Sizes of leaf mappings, by level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB.
pub const fn page_size(level: u8) -> u64 {
    1 << (12 + 9 * (level as u32 - 1))
}

/// How a vendor encodes nested page-table entries.
pub trait EntryFormat {
    /// Whether leaves at `level` (2: 2 MiB, 3: 1 GiB) are allowed. 4 KiB always are.
    fn large_leaf_supported(&self, level: u8) -> bool;
    /// A non-leaf entry pointing at the table at `table_paddr`, granting everything
    /// (leaves restrict).
    fn table_entry(&self, table_paddr: u64) -> u64;
    /// A leaf at `level` mapping `paddr` with `access` and `memory_type`.
    fn leaf_entry(&self, paddr: u64, level: u8, access: Access, memory_type: MemoryType) -> u64;
    /// Whether `entry` maps anything (a table or a leaf).
    fn is_present(&self, entry: u64) -> bool;
    /// Whether `entry` at `level` is a leaf (level 1 entries always are).
    fn is_leaf(&self, entry: u64, level: u8) -> bool;
    /// The physical address `entry` points at.
    fn address(&self, entry: u64) -> u64;
    /// Access rights and memory type of a leaf.
    fn leaf_attributes(&self, entry: u64) -> (Access, MemoryType);
}

/// Where page-table frames come from and how they are reached.
pub trait TableMemory {
    /// A zeroed 4 KiB frame for a table, or `None` when out of memory.
    fn allocate_table(&mut self) -> Option<u64>;
    /// Returns a table frame.
    fn free_table(&mut self, paddr: u64);
    /// The 512 entries of the table at `paddr`.
    fn table(&mut self, paddr: u64) -> &mut [u64; 512];
}
