use std::collections::HashMap;
use std::string::ToString;
use std::sync::{Arc, Barrier, Mutex};
use std::vec::Vec;

use super::*;
use crate::nested_paging::{Access, AddressSpace, Ept, MemoryType, TableMemory};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Table frames from a map: enough to count what the nested-paging builder allocates.
#[derive(Default)]
struct Tables {
    next: u64,
    frames: HashMap<u64, [u64; 512]>,
}

impl TableMemory for Tables {
    fn allocate_table(&mut self) -> Option<u64> {
        self.next += PAGE_SIZE;
        self.frames.insert(self.next, [0; 512]);
        Some(self.next)
    }
    fn free_table(&mut self, paddr: u64) {
        self.frames.remove(&paddr);
    }
    fn table(&mut self, paddr: u64) -> &mut [u64; 512] {
        self.frames.get_mut(&paddr).expect("a table frame")
    }
}

/// Tables the builder allocates to map `[0, len)` to host memory at `hpa`.
fn built_tables(len: u64, hpa: u64, gib_pages: bool) -> u64 {
    let mut memory = Tables::default();
    let mut space = AddressSpace::new(Ept { gib_pages }, &mut memory).unwrap();
    if len > 0 {
        space
            .map(&mut memory, 0, hpa, len, Access::RWX, MemoryType::WriteBack)
            .unwrap();
    }
    assert_eq!(space.counts().tables, memory.frames.len() as u64);
    space.counts().tables
}

#[test]
fn estimate_matches_the_nested_paging_builder() {
    let sizes = [
        0,
        PAGE_SIZE,
        2 * MIB - PAGE_SIZE,
        2 * MIB,
        2 * MIB + PAGE_SIZE,
        16 * MIB,
        512 * MIB,
        GIB - PAGE_SIZE,
        GIB,
        GIB + 2 * MIB,
        3 * GIB + 5 * PAGE_SIZE,
        4 * GIB,
        64 * GIB + MIB,
    ];
    for len in sizes {
        for gib in [false, true] {
            // Backing aligned like the guest-physical addresses (1 GiB-aligned block).
            let built = built_tables(len, 64 * GIB, gib);
            assert_eq!(
                nested_table_pages_estimate(len, gib),
                built,
                "{len:#x} bytes, 1 GiB pages {gib}"
            );
        }
    }
    // Memory that is not a whole page is rounded up.
    assert_eq!(
        nested_table_pages_estimate(100, false),
        built_tables(PAGE_SIZE, 0, false)
    );
    // The PDPT count grows past 512 GiB.
    assert_eq!(nested_table_pages_estimate(512 * GIB, true), 2);
    assert_eq!(nested_table_pages_estimate(512 * GIB + GIB, true), 3);
    // Backing that is only 4 KiB-aligned needs more tables: the estimate's assumption.
    assert!(built_tables(16 * MIB, 64 * GIB + PAGE_SIZE, false) > 3);
}

#[test]
fn estimate_examples_from_the_docs() {
    assert_eq!(nested_table_pages_estimate(0, true), 1);
    assert_eq!(nested_table_pages_estimate(512 * MIB, false), 3);
    assert_eq!(nested_table_pages_estimate(4 * GIB, true), 2);
    assert_eq!(nested_table_pages_estimate(4 * GIB, false), 6);
    assert_eq!(nested_table_pages_estimate(4 * GIB + 4 * KIB, true), 4);
    assert_eq!(nested_table_pages_estimate(u64::MAX, false), {
        // Saturates rather than overflowing.
        let m = u64::MAX / PAGE_SIZE * PAGE_SIZE;
        1 + m.div_ceil(512 * GIB) + m.div_ceil(GIB) + 1
    });
    for mib in [1, 3, 100, 1024, 1500, 40_000] {
        let m = mib * MIB;
        assert!(nested_table_pages_estimate(m, false) >= nested_table_pages_estimate(m, true));
    }
}

#[test]
fn overhead() {
    assert_eq!(domain_overhead_bytes(0), PER_DOMAIN_PAGES * PAGE_SIZE);
    assert_eq!(
        domain_overhead_bytes(4),
        (PER_DOMAIN_PAGES + 4 * PER_VCPU_PAGES) * PAGE_SIZE
    );
    assert_eq!(domain_overhead_bytes(1), 92 * KIB);
}

type Small = Ledger<8>;

#[test]
fn budget_and_reserve() {
    let l = Small::new(1024 * MIB + 100, 64 * MIB + 1);
    assert_eq!(l.free_pages(), 1024 * MIB / PAGE_SIZE);
    assert_eq!(l.reserved_pages(), 64 * MIB / PAGE_SIZE + 1);
    assert_eq!(l.budget_pages(), l.free_pages() - l.reserved_pages());
    assert_eq!(l.available_pages(), l.budget_pages());
    assert_eq!(l.available_bytes(), l.budget_pages() * PAGE_SIZE);
    assert_eq!(l.claimed_pages(), 0);
    // A reserve above the free memory leaves nothing, without underflow.
    let l = Small::new(10 * MIB, 20 * MIB);
    assert_eq!(l.budget_pages(), 0);
    assert!(matches!(
        Small::new(10 * MIB, 20 * MIB).claim(1, 0, 0),
        Err(ClaimError::NotEnoughMemory(_))
    ));
}

#[test]
fn claim_and_release_exactly() {
    let mut l = Small::new(1024 * MIB, 0);
    let claim = l.claim(1, 256 * MIB, domain_overhead_bytes(2)).unwrap();
    assert_eq!(
        claim,
        Claim {
            domain: 1,
            memory_pages: 256 * MIB / PAGE_SIZE,
            nested_table_pages: 3,
            overhead_pages: PER_DOMAIN_PAGES + 2 * PER_VCPU_PAGES,
        }
    );
    assert_eq!(l.claim_for(1, 256 * MIB, domain_overhead_bytes(2)), claim);
    assert_eq!(l.claimed_pages(), claim.total_pages());
    assert_eq!(l.available_pages(), l.budget_pages() - claim.total_pages());
    let before = l.available_pages();
    let other = l.claim(2, 100 * MIB + 1, 1).unwrap();
    assert_eq!(other.memory_pages, 100 * MIB / PAGE_SIZE + 1);
    assert_eq!(other.overhead_pages, 1);
    assert_eq!(l.release(1), Ok(claim));
    assert_eq!(
        l.available_pages(),
        before + claim.total_pages() - other.total_pages()
    );
    assert_eq!(l.release(1), Err(ChargeError::NoSuchDomain { domain: 1 }));
    assert_eq!(l.release(2), Ok(other));
    assert_eq!(l.available_pages(), l.budget_pages());
    assert_eq!(l.claims().count(), 0);
}

#[test]
fn two_claims_that_fit_alone_but_not_together() {
    let budget = 1024 * MIB;
    for first in [1u16, 2] {
        let mut l = Small::new(budget, 0);
        let second = 3 - first;
        let memory = 600 * MIB;
        assert!(l.claim_for(first, memory, 0).total_pages() <= l.available_pages());
        l.claim(first, memory, 0).unwrap();
        let Err(ClaimError::NotEnoughMemory(refusal)) = l.claim(second, memory, 0) else {
            panic!("both claims succeeded");
        };
        assert_eq!(refusal.claim.domain, second);
        assert_eq!(
            refusal.needed_pages,
            l.claim_for(second, memory, 0).total_pages()
        );
        assert_eq!(refusal.available_pages, l.available_pages());
        // The refusal changed nothing; the refused domain holds no claim.
        assert_eq!(l.claims().count(), 1);
        assert_eq!(l.account(second), None);
        assert_eq!(
            refusal.to_string(),
            "needs 601 MiB, 423 MiB free (memory 600 MiB, nested page tables 12 KiB, \
             per-domain structures 0 MiB)"
        );
        // Once the first is released, the second fits.
        l.release(first).unwrap();
        l.claim(second, memory, 0).unwrap();
    }
}

#[test]
fn concurrent_claims_never_oversubscribe() {
    // Threads race to claim through one lock, as CPUs creating domains do: exactly as
    // many claims succeed as the budget holds, whatever the interleaving.
    const THREADS: u16 = 8;
    for round in 0..20 {
        let ledger = Arc::new(Mutex::new(Ledger::<16>::new(1000 * MIB, 100 * MIB)));
        let size = 200 * MIB + round * MIB;
        let per_claim = ledger.lock().unwrap().claim_for(0, size, 0).total_pages();
        let fits = ledger.lock().unwrap().available_pages() / per_claim;
        let barrier = Arc::new(Barrier::new(THREADS.into()));
        let handles: Vec<_> = (0..THREADS)
            .map(|d| {
                let (ledger, barrier) = (Arc::clone(&ledger), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    ledger.lock().unwrap().claim(d, size, 0)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count() as u64;
        assert_eq!(won, fits, "round {round}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, ClaimError::NotEnoughMemory(_)), "{e}");
            }
        }
        let l = ledger.lock().unwrap();
        assert_eq!(l.claimed_pages(), won * per_claim);
        assert!(l.available_pages() < per_claim);
    }
}

#[test]
fn duplicate_domains_and_capacity() {
    let mut l = Ledger::<2>::new(GIB, 0);
    l.claim(7, MIB, 0).unwrap();
    let available = l.available_pages();
    assert_eq!(
        l.claim(7, MIB, 0),
        Err(ClaimError::AlreadyClaimed { domain: 7 })
    );
    assert_eq!(l.available_pages(), available);
    l.claim(8, MIB, 0).unwrap();
    assert_eq!(
        l.claim(9, MIB, 0),
        Err(ClaimError::TooManyDomains { capacity: 2 })
    );
    assert_eq!(
        ClaimError::AlreadyClaimed { domain: 7 }.to_string(),
        "domain 7 already holds a memory claim"
    );
    l.release(7).unwrap();
    l.claim(9, MIB, 0).unwrap();
}

#[test]
fn absurd_requests_are_refused_not_overflowed() {
    let mut l = Small::new(GIB, 0);
    let Err(ClaimError::NotEnoughMemory(r)) = l.claim(1, u64::MAX, u64::MAX) else {
        panic!()
    };
    assert!(r.needed_pages > u64::MAX / PAGE_SIZE);
    assert!(r.to_string().starts_with("needs "));
    assert_eq!(l.available_pages(), l.budget_pages());
}

#[test]
fn accounting() {
    let mut l = Small::new(GIB, 0);
    let claim = l.claim(3, 4 * MIB, 2 * PAGE_SIZE).unwrap();
    assert_eq!(claim.nested_table_pages, 3);
    let account = l.account(3).unwrap();
    assert_eq!(
        account,
        Account {
            owned_pages: 0,
            max_pages: 1024,
            nested_table_pages: 0,
            other_pages: 0,
            claim,
        }
    );
    l.charge(3, Use::Ram, 1000).unwrap();
    l.charge(3, Use::Ram, 24).unwrap();
    assert_eq!(
        l.charge(3, Use::Ram, 1),
        Err(ChargeError::OverClaim {
            domain: 3,
            what: Use::Ram,
            pages: 1,
            limit: 1024
        })
    );
    // Tables beyond the estimate draw on the overhead, and no further.
    l.charge(3, Use::NestedTables, 4).unwrap();
    l.charge(3, Use::Other, 1).unwrap();
    let e = l.charge(3, Use::Other, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "domain 3: 1 more per-domain pages would exceed its claim (4116 KiB allowed)"
    );
    let a = l.account(3).unwrap();
    assert_eq!(
        (
            a.owned_pages,
            a.max_pages,
            a.nested_table_pages,
            a.other_pages
        ),
        (1024, 1024, 4, 1)
    );
    l.uncharge(3, Use::Ram, 24).unwrap();
    assert_eq!(
        l.uncharge(3, Use::Other, 2),
        Err(ChargeError::NotCharged {
            domain: 3,
            what: Use::Other,
            pages: 2,
            charged: 1
        })
    );
    assert_eq!(l.account(3).unwrap().owned_pages, 1000);
    assert_eq!(
        l.charge(4, Use::Ram, 1),
        Err(ChargeError::NoSuchDomain { domain: 4 })
    );
    // Charges never move the budget: only claims and releases do.
    assert_eq!(l.available_pages(), l.budget_pages() - claim.total_pages());
    assert_eq!(l.release(3), Ok(claim));
    assert_eq!(l.account(3), None);
}

use crate::test_rng::Rng;

#[test]
fn random_claims_and_releases_keep_the_books() {
    for seed in 1..=50u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let free = (rng.below(4096) + 1) * MIB + rng.below(PAGE_SIZE);
        let reserve = rng.below(free / 2);
        let mut l = Ledger::<12>::new(free, reserve).with_gib_pages(rng.below(2) == 0);
        let budget = l.budget_pages();
        // The model: what each domain holds.
        let mut model: HashMap<u16, Claim> = HashMap::new();
        for step in 0..2000 {
            let domain = rng.below(16) as u16;
            match rng.below(5) {
                0..=2 => {
                    let memory = rng.below(free / 3 + 1);
                    let overhead = rng.below(64 * KIB);
                    let before = l.available_pages();
                    match l.claim(domain, memory, overhead) {
                        Ok(c) => {
                            assert!(model.insert(domain, c).is_none());
                            assert!(c.total_pages() <= before);
                        }
                        Err(ClaimError::NotEnoughMemory(r)) => {
                            assert!(r.needed_pages > r.available_pages);
                            assert_eq!(r.available_pages, before);
                        }
                        Err(ClaimError::AlreadyClaimed { domain: d }) => {
                            assert!(model.contains_key(&d));
                        }
                        Err(ClaimError::TooManyDomains { .. }) => assert_eq!(model.len(), 12),
                    }
                }
                3 => match l.release(domain) {
                    Ok(c) => assert_eq!(model.remove(&domain), Some(c)),
                    Err(_) => assert!(!model.contains_key(&domain)),
                },
                _ => {
                    let what = [Use::Ram, Use::NestedTables, Use::Other][rng.below(3) as usize];
                    let pages = rng.below(64);
                    let _ = if rng.below(2) == 0 {
                        l.charge(domain, what, pages)
                    } else {
                        l.uncharge(domain, what, pages)
                    };
                }
            }
            let sum: u64 = model.values().map(Claim::total_pages).sum();
            assert_eq!(l.available_pages() + sum, budget, "seed {seed} step {step}");
            assert_eq!(l.claimed_pages(), sum);
            assert!(l.claimed_pages() <= budget);
            for (&d, c) in &model {
                let a = l.account(d).unwrap();
                assert_eq!(a.claim, *c);
                assert!(a.owned_pages <= a.max_pages);
                assert!(a.owned_pages + a.nested_table_pages + a.other_pages <= c.total_pages());
            }
        }
    }
}

#[test]
fn dom0_mem_sizes() {
    let size = |s| Dom0Mem::parse(s).map(|d| d.size.unwrap());
    assert_eq!(size("512M"), Ok(512 * MIB));
    assert_eq!(size("512m"), Ok(512 * MIB));
    assert_eq!(size("1G"), Ok(GIB));
    assert_eq!(size("2T"), Ok(2 << 40));
    assert_eq!(size("64K"), Ok(64 * KIB));
    assert_eq!(size("4096B"), Ok(4096));
    assert_eq!(size("1024"), Ok(MIB), "no unit is KiB, as Xen");
    assert_eq!(size("0x200M"), Ok(512 * MIB));
    assert_eq!(
        size("0x1B"),
        Ok(0x1b * KIB),
        "after hex digits B is a digit"
    );
    assert_eq!(size("0"), Ok(0));

    for bad in [
        "", "lots", "512Q", "512MB", "1.5G", "0512M", "0x", "M", "+5M",
    ] {
        let e = Dom0Mem::parse(bad).unwrap_err();
        let expected = if bad.is_empty() {
            Dom0MemError::Empty
        } else {
            Dom0MemError::BadSize(bad)
        };
        assert_eq!(e, expected, "{bad:?}");
    }
    assert_eq!(
        Dom0Mem::parse("99999999T"),
        Err(Dom0MemError::BadSize("99999999T"))
    );
    assert_eq!(
        Dom0Mem::parse("-512M"),
        Err(Dom0MemError::Unsupported("-512M"))
    );
    assert_eq!(Dom0Mem::parse("10%"), Err(Dom0MemError::Unsupported("10%")));
    assert_eq!(
        Dom0Mem::parse("lots").unwrap_err().to_string(),
        "`lots` is not a size (a number with an optional B, K, M, G or T suffix)"
    );
}

#[test]
fn dom0_mem_min_max() {
    assert_eq!(
        Dom0Mem::parse("1G,max:2G"),
        Ok(Dom0Mem {
            size: Some(GIB),
            min: None,
            max: Some(2 * GIB)
        })
    );
    assert_eq!(
        Dom0Mem::parse("min:256M,max:1G"),
        Ok(Dom0Mem {
            size: None,
            min: Some(256 * MIB),
            max: Some(GIB)
        })
    );
    assert_eq!(
        Dom0Mem::parse("max:1G,min:2G"),
        Err(Dom0MemError::MinAboveMax)
    );
    assert_eq!(Dom0Mem::parse("1G,2G"), Err(Dom0MemError::Repeated("2G")));
    assert_eq!(
        Dom0Mem::parse("max:1G,max:2G"),
        Err(Dom0MemError::Repeated("max:2G"))
    );
    assert_eq!(
        Dom0Mem::parse("min:-1G"),
        Err(Dom0MemError::Unsupported("min:-1G"))
    );
    assert_eq!(
        Dom0Mem::parse("1G,"),
        Err(Dom0MemError::BadSize("")),
        "an empty part"
    );
}

#[test]
fn dom0_mem_resolve() {
    let free = 16 * GIB;
    let d = |s| Dom0Mem::parse(s).unwrap();
    assert_eq!(d("512M").resolve(free), 512 * MIB);
    assert_eq!(d("512M").resolve(100 * MIB), 100 * MIB, "never above free");
    assert_eq!(d("512M,min:1G").resolve(free), GIB);
    assert_eq!(d("4G,max:2G").resolve(free), 2 * GIB);
    // No size: everything but Xen's reserve of min(free / 16, 128 MiB).
    assert_eq!(d("max:64G").resolve(free), free - 128 * MIB);
    assert_eq!(d("min:1M").resolve(GIB), GIB - GIB / 16);
    assert_eq!(d("max:1G").resolve(free), GIB);
}
