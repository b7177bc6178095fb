//! Memory reservations: what the hypervisor keeps, what each domain claims at creation,
//! and per-domain accounting.
//!
//! - [`Ledger`]: the budget (free memory minus the hypervisor's reserve and
//!   `dom0_mem=`), admission control (a domain's claim succeeds whole or is refused
//!   naming the numbers: "needs X MiB, Y MiB free"), and per-domain accounting (pages
//!   owned, maximum, nested page tables).
//! - [`nested_table_pages_estimate`] and [`domain_overhead_bytes`]: what a domain
//!   claims besides its RAM.
//! - [`Dom0Mem`]: `dom0_mem=` in Xen's syntax.
//!
//! Pure logic, no `unsafe`, no allocation: the kernel keeps one `Ledger` behind a lock
//! and calls it on domain creation and destruction. `docs/domain-config.md` has the
//! rules.

mod dom0_mem;
mod estimate;
mod ledger;

#[cfg(test)]
mod tests;

pub use dom0_mem::{Dom0Mem, Dom0MemError};
pub use estimate::{
    PER_DOMAIN_PAGES, PER_VCPU_PAGES, domain_overhead_bytes, nested_table_pages_estimate,
};
pub use ledger::{Account, ChargeError, Claim, ClaimError, Ledger, Refusal, Use};

/// The accounting unit: a 4 KiB page.
pub const PAGE_SIZE: u64 = 4096;
