//! What a domain costs besides its RAM: nested page tables and per-domain structures.

use super::PAGE_SIZE;

const MIB_2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;
/// Guest-physical span of one PDPT (512 entries of 1 GiB).
const PDPT_SPAN: u64 = 512 * GIB;

/// Pages of nested page tables (EPT or NPT, four levels) that map guest-physical
/// `[0, memory_bytes)` with the largest pages alignment allows, when the backing host
/// memory is aligned like the guest-physical addresses (it is for RAM built from
/// naturally aligned buddy blocks placed at multiples of their size). `memory_bytes`
/// is rounded up to whole 4 KiB pages (`m` below). The count is exact for that
/// layout, and is what `nested_paging::AddressSpace::map` allocates:
///
/// - 1 root (PML4);
/// - `ceil(m / 512 GiB)` PDPTs;
/// - page directories: with 1 GiB pages only one, for a tail that is not a whole GiB
///   (`m % 1 GiB != 0`); without them `ceil(m / 1 GiB)`, one per GiB;
/// - page tables: one, for a tail that is not a whole 2 MiB (`m % 2 MiB != 0`).
///
/// So 512 MiB costs 3 pages; 4 GiB costs 3 pages with 1 GiB pages and 6 without;
/// `4 GiB + 4 KiB` costs one PD and one PT more. Empty memory costs the root alone.
/// Without 1 GiB pages the count is never smaller, so `false` is the safe guess.
/// Tables for mappings outside `[0, memory)`, or for splitting large pages later,
/// belong to the per-domain overhead ([`domain_overhead_bytes`]).
pub const fn nested_table_pages_estimate(memory_bytes: u64, gib_pages: bool) -> u64 {
    let m = memory_bytes.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
    if m == 0 {
        return 1;
    }
    let pdpts = m.div_ceil(PDPT_SPAN);
    let pds = if gib_pages {
        (!m.is_multiple_of(GIB)) as u64
    } else {
        m.div_ceil(GIB)
    };
    let pts = (!m.is_multiple_of(MIB_2)) as u64;
    1 + pdpts + pds + pts
}

/// Pages of per-vCPU control structures, for the vendor that needs more: AMD SVM's
/// VMCB (1), I/O permission map (12 KiB, allocated as a 16 KiB block: 4) and MSR
/// permission map (2) make 7; Intel VMX's VMCS, MSR bitmap and two I/O bitmaps make 4.
pub const PER_VCPU_PAGES: u64 = 7;

/// Pages per domain besides RAM, nested tables and vCPUs: headroom for the domain's
/// own structures as they arrive (grant table, event channels) and for tables that
/// splitting large nested pages needs (one per split).
pub const PER_DOMAIN_PAGES: u64 = 16;

/// Bytes a domain with `vcpus` vCPUs claims besides its RAM and nested page tables:
/// `(PER_DOMAIN_PAGES + vcpus * PER_VCPU_PAGES) * 4 KiB`.
pub const fn domain_overhead_bytes(vcpus: u32) -> u64 {
    (PER_DOMAIN_PAGES + vcpus as u64 * PER_VCPU_PAGES) * PAGE_SIZE
}
