use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::nested_paging::{Access, EntryFormat, MemoryType, TableMemory};

/// A long-mode-style format (present, writable, NX, PS) for testing the walker alone;
/// the real EPT and NPT formats have their own bit-level tests.
#[derive(Clone, Copy, Debug)]
struct TestFormat {
    huge: bool,
}

const P: u64 = 1;
const W: u64 = 2;
const PS: u64 = 1 << 7;
const UC: u64 = 1 << 4;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

impl EntryFormat for TestFormat {
    fn large_leaf_supported(&self, level: u8) -> bool {
        level == 2 || self.huge
    }
    fn table_entry(&self, table_paddr: u64) -> u64 {
        table_paddr | P | W
    }
    fn leaf_entry(&self, paddr: u64, level: u8, access: Access, memory_type: MemoryType) -> u64 {
        let mut e = paddr | P;
        if access.write {
            e |= W;
        }
        if !access.execute {
            e |= NX;
        }
        if level > 1 {
            e |= PS;
        }
        if memory_type == MemoryType::Uncacheable {
            e |= UC;
        }
        e
    }
    fn is_present(&self, entry: u64) -> bool {
        entry & P != 0
    }
    fn is_leaf(&self, entry: u64, level: u8) -> bool {
        level == 1 || entry & PS != 0
    }
    fn address(&self, entry: u64) -> u64 {
        entry & ADDR
    }
    fn leaf_attributes(&self, entry: u64) -> (Access, MemoryType) {
        (
            Access {
                read: true,
                write: entry & W != 0,
                execute: entry & NX == 0,
            },
            if entry & UC != 0 {
                MemoryType::Uncacheable
            } else {
                MemoryType::WriteBack
            },
        )
    }
}

/// Simulated table frames with a live count and an allocation budget (failure injection).
#[derive(Default)]
struct Frames {
    tables: HashMap<u64, Box<[u64; 512]>>,
    next: u64,
    budget: Option<u64>,
}

impl Frames {
    fn new() -> Self {
        Self {
            next: 0x10_0000_0000,
            ..Self::default()
        }
    }
}

impl TableMemory for Frames {
    fn allocate_table(&mut self) -> Option<u64> {
        if let Some(budget) = &mut self.budget {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
        }
        let paddr = self.next;
        self.next += 4096;
        self.tables.insert(paddr, Box::new([0; 512]));
        Some(paddr)
    }
    fn free_table(&mut self, paddr: u64) {
        assert!(
            self.tables.remove(&paddr).is_some(),
            "double free of table {paddr:#x}"
        );
    }
    fn table(&mut self, paddr: u64) -> &mut [u64; 512] {
        self.tables
            .get_mut(&paddr)
            .expect("walk reached a table that is not allocated")
    }
}

const G: u64 = 1 << 30;
const M2: u64 = 2 << 20;
const K4: u64 = 4096;

fn space(huge: bool, frames: &mut Frames) -> AddressSpace<TestFormat> {
    AddressSpace::new(TestFormat { huge }, frames).unwrap()
}

#[test]
fn largest_pages_for_alignment() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    s.map(
        &mut f,
        0,
        4 * G,
        G + M2 + K4,
        Access::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    let c = s.counts();
    assert_eq!((c.pages_1g, c.pages_2m, c.pages_4k), (1, 1, 1));
    assert_eq!(c.tables, 4); // root, PDPT, PD, PT
    assert_eq!(c.mapped_bytes(), G + M2 + K4);
    let t = s.translate(&mut f, G + M2 + 0x123).unwrap();
    assert_eq!((t.paddr, t.level), (4 * G + G + M2 + 0x123, 1));
    assert_eq!(s.translate(&mut f, 5).unwrap().level, 3);
    assert!(s.translate(&mut f, G + M2 + K4).is_none());
}

#[test]
fn no_gib_pages_without_support() {
    let mut f = Frames::new();
    let mut s = space(false, &mut f);
    s.map(&mut f, 0, 0, G, Access::RWX, MemoryType::WriteBack)
        .unwrap();
    assert_eq!(s.counts().pages_2m, 512);
    assert_eq!(s.counts().pages_1g, 0);
}

#[test]
fn misaligned_host_address_uses_small_pages() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    s.map(&mut f, 0, K4, M2, Access::RWX, MemoryType::WriteBack)
        .unwrap();
    assert_eq!(s.counts().pages_4k, 512);
}

#[test]
fn unmapping_inside_a_gib_page_splits_twice() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    s.map(&mut f, 0, 8 * G, G, Access::READ, MemoryType::Uncacheable)
        .unwrap();
    s.unmap(&mut f, 3 * M2 + 5 * K4, K4).unwrap();
    let c = s.counts();
    assert_eq!((c.pages_1g, c.pages_2m, c.pages_4k), (0, 511, 511));
    assert!(s.translate(&mut f, 3 * M2 + 5 * K4).is_none());
    let t = s.translate(&mut f, 3 * M2 + 6 * K4 + 7).unwrap();
    assert_eq!(t.paddr, 8 * G + 3 * M2 + 6 * K4 + 7);
    assert_eq!(
        (t.access, t.memory_type),
        (Access::READ, MemoryType::Uncacheable)
    );
    assert_eq!(
        s.translate(&mut f, 100 * M2).unwrap().paddr,
        8 * G + 100 * M2
    );
}

#[test]
fn overlap_is_refused_and_changes_nothing() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    s.map(&mut f, M2, 0, K4, Access::RWX, MemoryType::WriteBack)
        .unwrap();
    let before = s.counts();
    let live = f.tables.len();
    assert_eq!(
        s.map(&mut f, 0, 0, 4 * M2, Access::RWX, MemoryType::WriteBack),
        Err(MapError::AlreadyMapped { gpa: M2 })
    );
    assert_eq!(s.counts(), before);
    assert_eq!(f.tables.len(), live);
    assert!(s.translate(&mut f, 0).is_none());
}

#[test]
fn out_of_memory_changes_nothing() {
    let mut f = Frames::new();
    let mut s = space(false, &mut f);
    s.map(&mut f, 0, 0, K4, Access::RWX, MemoryType::WriteBack)
        .unwrap();
    let before = s.counts();
    f.budget = Some(0);
    assert_eq!(
        s.map(&mut f, 4 * G, 0, K4, Access::RWX, MemoryType::WriteBack),
        Err(MapError::OutOfMemory)
    );
    // The tables allocated before running out are freed again by the rollback when
    // something was mapped; here nothing was, and no table was allocated.
    assert_eq!(s.counts(), before);
    assert!(s.translate(&mut f, 4 * G).is_none());
}

#[test]
fn out_of_memory_midway_frees_the_new_tables() {
    let mut f = Frames::new();
    let mut s = space(false, &mut f);
    let before = (s.counts(), f.tables.len());
    for budget in 0..3 {
        f.budget = Some(budget); // a 4 KiB page far away needs 3 new tables
        assert_eq!(
            s.map(&mut f, 300 * G, 0, K4, Access::RWX, MemoryType::WriteBack),
            Err(MapError::OutOfMemory)
        );
        assert_eq!((s.counts(), f.tables.len()), before, "budget {budget}");
    }
    // A multi-page request that runs out part-way is rolled back whole.
    f.budget = Some(2); // PDPT and the first PD: the second GiB runs out
    assert_eq!(
        s.map(&mut f, 0, 0, 2 * G, Access::RWX, MemoryType::WriteBack),
        Err(MapError::OutOfMemory)
    );
    assert_eq!((s.counts(), f.tables.len()), before);
}

#[test]
fn bad_ranges() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    for (gpa, paddr, len) in [
        (1, 0, K4),
        (0, 1, K4),
        (0, 0, 0),
        (0, 0, 5),
        (u64::MAX - K4 + 1, 0, K4),
        (1 << 48, 0, K4),
    ] {
        assert_eq!(
            s.map(&mut f, gpa, paddr, len, Access::RWX, MemoryType::WriteBack),
            Err(MapError::BadRange)
        );
    }
    assert!(s.translate(&mut f, 1 << 48).is_none());
}

#[test]
fn destroy_frees_every_table() {
    let mut f = Frames::new();
    let mut s = space(true, &mut f);
    s.map(
        &mut f,
        0,
        0,
        3 * G + 5 * M2 + 7 * K4,
        Access::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    s.map(
        &mut f,
        200 * G,
        0,
        9 * K4,
        Access::RWX,
        MemoryType::WriteBack,
    )
    .unwrap();
    assert_eq!(f.tables.len() as u64, s.counts().tables);
    s.destroy(&mut f);
    assert!(f.tables.is_empty());
}

/// Random maps and unmaps against a page-by-page reference model.
#[test]
fn matches_a_reference_model() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..60 {
        let mut f = Frames::new();
        let mut s = space(round % 2 == 0, &mut f);
        let mut model: BTreeMap<u64, u64> = BTreeMap::new(); // 4 KiB gpa page -> paddr
        // Addresses within 8 GiB, in units that exercise every page size.
        let unit = [K4, M2, G][(rand() % 3) as usize];
        for _ in 0..40 {
            let gpa = (rand() % (8 * G / unit)) * unit;
            let len = ((rand() % 4) + 1) * unit.min(M2);
            let paddr = (rand() % 64) * G + (gpa % G);
            if rand() % 3 == 0 {
                s.unmap(&mut f, gpa, len).unwrap();
                let mut page = gpa;
                while page < gpa + len {
                    model.remove(&page);
                    page += K4;
                }
            } else {
                let overlaps = (0..len / K4).any(|i| model.contains_key(&(gpa + i * K4)));
                let result = s.map(&mut f, gpa, paddr, len, Access::RWX, MemoryType::WriteBack);
                assert_eq!(result.is_err(), overlaps, "map {gpa:#x}+{len:#x}");
                if result.is_ok() {
                    for i in 0..len / K4 {
                        model.insert(gpa + i * K4, paddr + i * K4);
                    }
                }
            }
            assert_eq!(s.counts().mapped_bytes(), model.len() as u64 * K4);
            assert_eq!(f.tables.len() as u64, s.counts().tables);
        }
        for _ in 0..200 {
            let gpa = (rand() % (8 * G / K4)) * K4;
            let got = s.translate(&mut f, gpa).map(|t| t.paddr);
            assert_eq!(got, model.get(&gpa).copied(), "translate {gpa:#x}");
        }
        s.unmap(&mut f, 0, 8 * G + 4 * M2).unwrap();
        assert_eq!(s.counts().mapped_bytes(), 0);
        assert_eq!(s.counts().tables, 1);
        s.destroy(&mut f);
        assert!(f.tables.is_empty());
    }
}
