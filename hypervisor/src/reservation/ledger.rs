//! The memory ledger: admission control and per-domain accounting.

use core::fmt;

use super::{PAGE_SIZE, nested_table_pages_estimate};

/// What one domain claimed at creation, in 4 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub domain: u16,
    /// Guest RAM (`memory =`): the domain's maximum.
    pub memory_pages: u64,
    /// Nested page tables for that RAM ([`nested_table_pages_estimate`]).
    pub nested_table_pages: u64,
    /// Per-domain structures (vCPU control blocks and headroom).
    pub overhead_pages: u64,
}

impl Claim {
    /// Everything claimed. Saturates, so an absurd request is simply too large.
    pub const fn total_pages(&self) -> u64 {
        self.memory_pages
            .saturating_add(self.nested_table_pages)
            .saturating_add(self.overhead_pages)
    }
}

/// A domain's accounting, in 4 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    /// Guest RAM pages the domain owns now.
    pub owned_pages: u64,
    /// Its maximum: the RAM it claimed.
    pub max_pages: u64,
    /// Nested page-table pages in use.
    pub nested_table_pages: u64,
    /// Other per-domain pages in use.
    pub other_pages: u64,
    /// The whole claim (RAM, table estimate, overhead).
    pub claim: Claim,
}

/// What charged pages are used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Guest RAM; bounded by the domain's maximum.
    Ram,
    /// Nested page tables.
    NestedTables,
    /// Other per-domain structures.
    Other,
}

impl Use {
    const fn name(self) -> &'static str {
        match self {
            Self::Ram => "RAM",
            Self::NestedTables => "nested page-table",
            Self::Other => "per-domain",
        }
    }
}

/// A claim refused for lack of memory. Displays as
/// `needs 1027 MiB, 1000 MiB free (memory 1024 MiB, nested page tables 12 KiB, ...)`;
/// the need is rounded up and the free memory down, so the figures never suggest the
/// claim would have fitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What the domain would have claimed.
    pub claim: Claim,
    /// Pages needed (`claim.total_pages()`).
    pub needed_pages: u64,
    /// Pages that were free to claim.
    pub available_pages: u64,
}

/// Why a claim was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// Not enough unclaimed memory.
    NotEnoughMemory(Refusal),
    /// The domain already holds a claim.
    AlreadyClaimed { domain: u16 },
    /// The ledger tracks its capacity of domains already.
    TooManyDomains { capacity: usize },
}

/// Why a charge or release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeError {
    /// The domain holds no claim.
    NoSuchDomain { domain: u16 },
    /// The charge would take the domain past its claim (or, for RAM, its maximum).
    OverClaim {
        domain: u16,
        what: Use,
        pages: u64,
        limit: u64,
    },
    /// More pages uncharged than were charged.
    NotCharged {
        domain: u16,
        what: Use,
        pages: u64,
        charged: u64,
    },
}

const MIB_PAGES: u64 = (1 << 20) / PAGE_SIZE;

/// Pages in MiB, rounded up.
struct MibUp(u64);
/// Pages in MiB, rounded down.
struct MibDown(u64);
/// Pages in MiB when whole, else KiB.
struct Size(u64);

impl fmt::Display for MibUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MiB", self.0.div_ceil(MIB_PAGES))
    }
}

impl fmt::Display for MibDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} MiB", self.0 / MIB_PAGES)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(MIB_PAGES) {
            write!(f, "{} MiB", self.0 / MIB_PAGES)
        } else {
            write!(f, "{} KiB", self.0.saturating_mul(PAGE_SIZE / 1024))
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.claim;
        write!(
            f,
            "needs {}, {} free (memory {}, nested page tables {}, per-domain structures {})",
            MibUp(self.needed_pages),
            MibDown(self.available_pages),
            Size(c.memory_pages),
            Size(c.nested_table_pages),
            Size(c.overhead_pages),
        )
    }
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnoughMemory(refusal) => write!(f, "{refusal}"),
            Self::AlreadyClaimed { domain } => {
                write!(f, "domain {domain} already holds a memory claim")
            }
            Self::TooManyDomains { capacity } => {
                write!(f, "too many domains (the ledger holds {capacity})")
            }
        }
    }
}

impl fmt::Display for ChargeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSuchDomain { domain } => write!(f, "domain {domain} holds no memory claim"),
            Self::OverClaim {
                domain,
                what,
                pages,
                limit,
            } => write!(
                f,
                "domain {domain}: {pages} more {} pages would exceed its claim ({} allowed)",
                what.name(),
                Size(limit)
            ),
            Self::NotCharged {
                domain,
                what,
                pages,
                charged,
            } => write!(
                f,
                "domain {domain}: returning {pages} {} pages, but only {charged} are charged",
                what.name()
            ),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    claim: Claim,
    ram: u64,
    tables: u64,
    other: u64,
}

impl Entry {
    const fn in_use(&self) -> u64 {
        self.ram + self.tables + self.other
    }
}

/// The host's memory budget and the domains' claims on it.
///
/// At boot the hypervisor knows how much memory is free and how much it keeps (its own
/// reserve plus `dom0_mem=`); the rest is the *budget*. Each domain claims its RAM,
/// the nested page tables for it and its per-domain structures in full at creation
/// ([`Ledger::claim`]); the claim succeeds whole or is refused with the numbers. A
/// claim checks and deducts in one `&mut self` call, so with the ledger behind one
/// lock two creations can never both succeed on the same free memory. As a domain is
/// built its pages are [charged](Ledger::charge) against its claim, which is what
/// [`Ledger::account`] reports. [`Ledger::release`] at destruction returns the claim.
///
/// Invariant: `available + sum(claims) == budget`, with every quantity non-negative.
#[derive(Clone, Debug)]
pub struct Ledger<const MAX_DOMAINS: usize> {
    free_pages: u64,
    reserved_pages: u64,
    claimed_pages: u64,
    gib_pages: bool,
    entries: [Option<Entry>; MAX_DOMAINS],
}

impl<const MAX_DOMAINS: usize> Ledger<MAX_DOMAINS> {
    /// A ledger for `free_bytes` of free memory (whole pages count), of which
    /// `hypervisor_reserve_bytes` (rounded up to pages) is kept back. Nested tables are
    /// estimated without 1 GiB pages until [`Ledger::with_gib_pages`] says otherwise.
    pub const fn new(free_bytes: u64, hypervisor_reserve_bytes: u64) -> Self {
        let free_pages = free_bytes / PAGE_SIZE;
        let reserve = hypervisor_reserve_bytes.div_ceil(PAGE_SIZE);
        Self {
            free_pages,
            reserved_pages: if reserve < free_pages {
                reserve
            } else {
                free_pages
            },
            claimed_pages: 0,
            gib_pages: false,
            entries: [None; MAX_DOMAINS],
        }
    }

    /// Estimates nested page tables with 1 GiB pages when the CPU maps them (fewer
    /// page directories).
    pub const fn with_gib_pages(mut self, gib_pages: bool) -> Self {
        self.gib_pages = gib_pages;
        self
    }

    /// Free pages when the ledger was made.
    pub const fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Pages kept for the hypervisor (and dom0).
    pub const fn reserved_pages(&self) -> u64 {
        self.reserved_pages
    }

    /// Pages domains may claim in all: free minus reserved.
    pub const fn budget_pages(&self) -> u64 {
        self.free_pages - self.reserved_pages
    }

    /// Pages claimed by domains.
    pub const fn claimed_pages(&self) -> u64 {
        self.claimed_pages
    }

    /// Pages not yet claimed.
    pub const fn available_pages(&self) -> u64 {
        self.budget_pages() - self.claimed_pages
    }

    /// Bytes not yet claimed.
    pub const fn available_bytes(&self) -> u64 {
        self.available_pages() * PAGE_SIZE
    }

    /// What `domain` would claim for `memory_bytes` of RAM and `overhead_bytes` of
    /// per-domain structures (both rounded up to pages).
    pub const fn claim_for(&self, domain: u16, memory_bytes: u64, overhead_bytes: u64) -> Claim {
        Claim {
            domain,
            memory_pages: memory_bytes.div_ceil(PAGE_SIZE),
            nested_table_pages: nested_table_pages_estimate(memory_bytes, self.gib_pages),
            overhead_pages: overhead_bytes.div_ceil(PAGE_SIZE),
        }
    }

    /// Claims memory for `domain` in one step: all of it, or nothing and an error.
    pub fn claim(
        &mut self,
        domain: u16,
        memory_bytes: u64,
        overhead_bytes: u64,
    ) -> Result<Claim, ClaimError> {
        if self.account(domain).is_some() {
            return Err(ClaimError::AlreadyClaimed { domain });
        }
        let claim = self.claim_for(domain, memory_bytes, overhead_bytes);
        let needed = claim.total_pages();
        let available = self.available_pages();
        if needed > available {
            return Err(ClaimError::NotEnoughMemory(Refusal {
                claim,
                needed_pages: needed,
                available_pages: available,
            }));
        }
        let slot = self.entries.iter_mut().find(|e| e.is_none());
        let Some(slot) = slot else {
            return Err(ClaimError::TooManyDomains {
                capacity: MAX_DOMAINS,
            });
        };
        *slot = Some(Entry {
            claim,
            ram: 0,
            tables: 0,
            other: 0,
        });
        self.claimed_pages += needed;
        Ok(claim)
    }

    /// Ends `domain`'s claim (at destruction, once its pages are freed) and returns it:
    /// exactly what was claimed goes back to the available memory.
    pub fn release(&mut self, domain: u16) -> Result<Claim, ChargeError> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.is_some_and(|e| e.claim.domain == domain))
            .and_then(Option::take)
            .ok_or(ChargeError::NoSuchDomain { domain })?;
        self.claimed_pages -= entry.claim.total_pages();
        Ok(entry.claim)
    }

    /// Records that `domain` now uses `pages` more pages for `what`. RAM may not exceed
    /// the domain's maximum; all uses together may not exceed its claim (page tables
    /// beyond the estimate draw on the overhead).
    pub fn charge(&mut self, domain: u16, what: Use, pages: u64) -> Result<(), ChargeError> {
        let entry = self.entry_mut(domain)?;
        let (used, limit) = match what {
            Use::Ram => (entry.ram, entry.claim.memory_pages),
            _ => (entry.in_use(), entry.claim.total_pages()),
        };
        let limit_left = limit - used;
        let total_left = entry.claim.total_pages() - entry.in_use();
        if pages > limit_left || pages > total_left {
            return Err(ChargeError::OverClaim {
                domain,
                what,
                pages,
                limit,
            });
        }
        *entry.counter(what) += pages;
        Ok(())
    }

    /// Records that `domain` uses `pages` fewer pages for `what`.
    pub fn uncharge(&mut self, domain: u16, what: Use, pages: u64) -> Result<(), ChargeError> {
        let counter = self.entry_mut(domain)?.counter(what);
        if pages > *counter {
            return Err(ChargeError::NotCharged {
                domain,
                what,
                pages,
                charged: *counter,
            });
        }
        *counter -= pages;
        Ok(())
    }

    /// `domain`'s accounting, if it holds a claim.
    pub fn account(&self, domain: u16) -> Option<Account> {
        let entry = self
            .entries
            .iter()
            .flatten()
            .find(|e| e.claim.domain == domain)?;
        Some(Account {
            owned_pages: entry.ram,
            max_pages: entry.claim.memory_pages,
            nested_table_pages: entry.tables,
            other_pages: entry.other,
            claim: entry.claim,
        })
    }

    /// The claims held, in no particular order.
    pub fn claims(&self) -> impl Iterator<Item = Claim> + '_ {
        self.entries.iter().flatten().map(|e| e.claim)
    }

    fn entry_mut(&mut self, domain: u16) -> Result<&mut Entry, ChargeError> {
        self.entries
            .iter_mut()
            .flatten()
            .find(|e| e.claim.domain == domain)
            .ok_or(ChargeError::NoSuchDomain { domain })
    }
}

impl Entry {
    fn counter(&mut self, what: Use) -> &mut u64 {
        match what {
            Use::Ram => &mut self.ram,
            Use::NestedTables => &mut self.tables,
            Use::Other => &mut self.other,
        }
    }
}
