//! The four-level radix-tree walker and editor behind [`AddressSpace`].

use super::{Access, EntryFormat, MemoryType, TableMemory, page_size};

/// Guest-physical addresses a four-level tree covers (48 bits).
const GPA_LIMIT: u64 = 1 << 48;
const ENTRIES: usize = 512;

/// Why a mapping change failed. Nothing is left half-done: a failed `map` unmaps what it
/// had mapped of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Addresses or length not 4 KiB-aligned, zero length, or past 2^48.
    BadRange,
    /// Part of the range is already mapped.
    AlreadyMapped { gpa: u64 },
    /// No frame for a page table.
    OutOfMemory,
}

/// How many mappings of each size, and table frames, an address space holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingCounts {
    pub pages_1g: u64,
    pub pages_2m: u64,
    pub pages_4k: u64,
    /// Table frames, the root included.
    pub tables: u64,
}

impl MappingCounts {
    fn leaf(&mut self, level: u8) -> &mut u64 {
        match level {
            3 => &mut self.pages_1g,
            2 => &mut self.pages_2m,
            _ => &mut self.pages_4k,
        }
    }

    /// Bytes mapped.
    pub fn mapped_bytes(&self) -> u64 {
        self.pages_1g * page_size(3) + self.pages_2m * page_size(2) + self.pages_4k * page_size(1)
    }
}

/// What a guest-physical address maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub paddr: u64,
    pub access: Access,
    pub memory_type: MemoryType,
    /// Leaf level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB.
    pub level: u8,
}

/// One guest-physical address space.
#[derive(Debug)]
pub struct AddressSpace<F: EntryFormat> {
    format: F,
    root: u64,
    counts: MappingCounts,
}

fn index(gpa: u64, level: u8) -> usize {
    ((gpa >> (12 + 9 * (u32::from(level) - 1))) & 0x1ff) as usize
}

impl<F: EntryFormat> AddressSpace<F> {
    /// An empty address space (one root table).
    pub fn new(format: F, memory: &mut impl TableMemory) -> Result<Self, MapError> {
        let root = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
        Ok(Self {
            format,
            root,
            counts: MappingCounts {
                tables: 1,
                ..MappingCounts::default()
            },
        })
    }

    /// Physical address of the root table (for the EPTP or nCR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Mapping and table counts.
    pub fn counts(&self) -> MappingCounts {
        self.counts
    }

    /// Maps `[gpa, gpa + len)` to `[paddr, paddr + len)` with the largest pages
    /// alignment allows. Fails without change if any part is already mapped.
    pub fn map(
        &mut self,
        memory: &mut impl TableMemory,
        gpa: u64,
        paddr: u64,
        len: u64,
        access: Access,
        memory_type: MemoryType,
    ) -> Result<(), MapError> {
        check_range(gpa, len)?;
        if !paddr.is_multiple_of(page_size(1)) {
            return Err(MapError::BadRange);
        }
        let mut done = 0;
        while done < len {
            let (g, p, left) = (gpa + done, paddr + done, len - done);
            let level = (1..=3)
                .rev()
                .find(|&level| {
                    let size = page_size(level);
                    (level == 1 || self.format.large_leaf_supported(level))
                        && g.is_multiple_of(size)
                        && p.is_multiple_of(size)
                        && left >= size
                })
                .unwrap_or(1);
            if let Err(e) = self.map_one(memory, g, p, level, access, memory_type) {
                // Undo what this call mapped, and free tables the failed step created
                // but left empty, so a failure changes nothing.
                if done > 0 {
                    let _ = self.unmap(memory, gpa, done);
                }
                let root = self.root;
                self.prune(memory, root, 4, g);
                return Err(e);
            }
            done += page_size(level);
        }
        Ok(())
    }

    fn map_one(
        &mut self,
        memory: &mut impl TableMemory,
        gpa: u64,
        paddr: u64,
        leaf_level: u8,
        access: Access,
        memory_type: MemoryType,
    ) -> Result<(), MapError> {
        let mut table = self.root;
        for level in (leaf_level + 1..=4).rev() {
            let slot = index(gpa, level);
            let entry = memory.table(table)[slot];
            if !self.format.is_present(entry) {
                let next = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
                self.counts.tables += 1;
                memory.table(table)[slot] = self.format.table_entry(next);
                table = next;
            } else if self.format.is_leaf(entry, level) {
                return Err(MapError::AlreadyMapped { gpa });
            } else {
                table = self.format.address(entry);
            }
        }
        let slot = index(gpa, leaf_level);
        if self.format.is_present(memory.table(table)[slot]) {
            return Err(MapError::AlreadyMapped { gpa });
        }
        memory.table(table)[slot] = self
            .format
            .leaf_entry(paddr, leaf_level, access, memory_type);
        *self.counts.leaf(leaf_level) += 1;
        Ok(())
    }

    /// Unmaps `[gpa, gpa + len)`, splitting large pages that straddle its ends; holes
    /// inside the range are fine. Empty tables are freed. The caller flushes the TLB
    /// (INVEPT / ASID flush).
    pub fn unmap(
        &mut self,
        memory: &mut impl TableMemory,
        gpa: u64,
        len: u64,
    ) -> Result<(), MapError> {
        check_range(gpa, len)?;
        let root = self.root;
        self.unmap_in(memory, root, 4, 0, gpa, gpa + len)?;
        Ok(())
    }

    /// Unmaps `[start, end)` within the table at `table` (level `level`, covering from
    /// `base`); returns whether the table is now empty.
    fn unmap_in(
        &mut self,
        memory: &mut impl TableMemory,
        table: u64,
        level: u8,
        base: u64,
        start: u64,
        end: u64,
    ) -> Result<bool, MapError> {
        let span = page_size(level);
        for slot in 0..ENTRIES {
            let slot_start = base + slot as u64 * span;
            let slot_end = slot_start + span;
            if slot_end <= start || slot_start >= end {
                continue;
            }
            let entry = memory.table(table)[slot];
            if !self.format.is_present(entry) {
                continue;
            }
            let whole = start <= slot_start && slot_end <= end;
            if self.format.is_leaf(entry, level) {
                if whole {
                    memory.table(table)[slot] = 0;
                    *self.counts.leaf(level) -= 1;
                    continue;
                }
                self.split(memory, table, slot, level)?;
            }
            let child = self.format.address(memory.table(table)[slot]);
            if self.unmap_in(memory, child, level - 1, slot_start, start, end)? {
                memory.table(table)[slot] = 0;
                memory.free_table(child);
                self.counts.tables -= 1;
            }
        }
        Ok(memory
            .table(table)
            .iter()
            .all(|&e| !self.format.is_present(e)))
    }

    /// Frees empty tables on the path to `gpa` below `table`; returns whether `table`
    /// itself is now empty.
    fn prune(&mut self, memory: &mut impl TableMemory, table: u64, level: u8, gpa: u64) -> bool {
        let slot = index(gpa, level);
        let entry = memory.table(table)[slot];
        if level > 1 && self.format.is_present(entry) && !self.format.is_leaf(entry, level) {
            let child = self.format.address(entry);
            if self.prune(memory, child, level - 1, gpa) {
                memory.table(table)[slot] = 0;
                memory.free_table(child);
                self.counts.tables -= 1;
            }
        }
        memory
            .table(table)
            .iter()
            .all(|&e| !self.format.is_present(e))
    }

    /// Replaces the large leaf at `table[slot]` (level `level` ≥ 2) with a table of 512
    /// leaves one level down, same attributes.
    fn split(
        &mut self,
        memory: &mut impl TableMemory,
        table: u64,
        slot: usize,
        level: u8,
    ) -> Result<(), MapError> {
        let entry = memory.table(table)[slot];
        let (access, memory_type) = self.format.leaf_attributes(entry);
        let paddr = self.format.address(entry);
        let child = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
        self.counts.tables += 1;
        let small = page_size(level - 1);
        for i in 0..ENTRIES {
            memory.table(child)[i] =
                self.format
                    .leaf_entry(paddr + i as u64 * small, level - 1, access, memory_type);
        }
        *self.counts.leaf(level) -= 1;
        *self.counts.leaf(level - 1) += ENTRIES as u64;
        memory.table(table)[slot] = self.format.table_entry(child);
        Ok(())
    }

    /// What `gpa` maps to, if anything.
    pub fn translate(&self, memory: &mut impl TableMemory, gpa: u64) -> Option<Translation> {
        if gpa >= GPA_LIMIT {
            return None;
        }
        let mut table = self.root;
        for level in (1..=4).rev() {
            let entry = memory.table(table)[index(gpa, level)];
            if !self.format.is_present(entry) {
                return None;
            }
            if self.format.is_leaf(entry, level) {
                let (access, memory_type) = self.format.leaf_attributes(entry);
                let offset = gpa & (page_size(level) - 1);
                return Some(Translation {
                    paddr: self.format.address(entry) + offset,
                    access,
                    memory_type,
                    level,
                });
            }
            table = self.format.address(entry);
        }
        None
    }

    /// Frees every table (not the mapped frames, which belong to the domain).
    pub fn destroy(self, memory: &mut impl TableMemory) {
        fn free<F: EntryFormat>(format: &F, memory: &mut impl TableMemory, table: u64, level: u8) {
            if level > 1 {
                for slot in 0..ENTRIES {
                    let entry = memory.table(table)[slot];
                    if format.is_present(entry) && !format.is_leaf(entry, level) {
                        free(format, memory, format.address(entry), level - 1);
                    }
                }
            }
            memory.free_table(table);
        }
        free(&self.format, memory, self.root, 4);
    }
}

fn check_range(gpa: u64, len: u64) -> Result<(), MapError> {
    let aligned = gpa.is_multiple_of(page_size(1)) && len.is_multiple_of(page_size(1));
    let end = gpa.checked_add(len).ok_or(MapError::BadRange)?;
    if !aligned || len == 0 || end > GPA_LIMIT {
        return Err(MapError::BadRange);
    }
    Ok(())
}
