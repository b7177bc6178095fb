//! Guest-virtual to guest-physical translation: a pure walker of the guest's page tables.
//!
//! Hypercall arguments are guest-*virtual* pointers (Xen's guest handles): before copying,
//! the hypervisor walks the guest's page tables as the CPU would for the same access at
//! the same privilege, and fails the copy where the guest itself would fault. The walker
//! reads page-table entries through [`GuestMemory`] (copies; the tables stay in guest
//! memory and may be hostile) and never writes: accessed and dirty bits are not updated.
//! Xen sets them when it walks for a copy; the virtualization core decides whether it
//! needs to (a later issue).
//!
//! Modes (SDM Vol. 3A 4.1.1, Table 4-1): paging disabled (identity), 32-bit paging
//! (4 KiB and, with CR4.PSE, 4 MiB pages including PSE-36 high address bits), PAE paging
//! (4 KiB and 2 MiB pages) and 4-level paging (4 KiB, 2 MiB and 1 GiB pages). 5-level
//! paging (CR4.LA57) is refused as unsupported; the CPUID policy hides LA57.
//!
//! Not modelled: protection keys (PKRU/PKRS), CET shadow-stack accesses, HLAT, and the
//! PAE PDPTE register cache (PDPTEs are read from memory, as if CR3 was just loaded).

use super::{GUEST_PAGE_SIZE, GuestMemory, GuestMemoryError};
use crate::xen::XenErrno;

/// CR0.PG: paging enabled (SDM Vol. 3A 2.5).
pub const CR0_PG: u64 = 1 << 31;
/// CR0.WP: supervisor writes honour read-only pages (SDM Vol. 3A 2.5).
pub const CR0_WP: u64 = 1 << 16;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: physical address extension.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: 5-level paging.
pub const CR4_LA57: u64 = 1 << 12;
/// CR4.SMEP: supervisor-mode execution prevention.
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP: supervisor-mode access prevention.
pub const CR4_SMAP: u64 = 1 << 21;
/// IA32_EFER.LMA: long mode active (SDM Vol. 3A 2.2.1).
pub const EFER_LMA: u64 = 1 << 10;
/// IA32_EFER.NXE: execute-disable bit enabled.
pub const EFER_NXE: u64 = 1 << 11;

/// Page-fault error code bits (SDM Vol. 3A 4.7, Figure 4-12).
pub mod pfec {
    /// P: 0 = the page was not present, 1 = a protection violation.
    pub const PRESENT: u32 = 1 << 0;
    /// W/R: the access was a write.
    pub const WRITE: u32 = 1 << 1;
    /// U/S: the access was a user-mode access.
    pub const USER: u32 = 1 << 2;
    /// RSVD: a reserved bit was set in some paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// I/D: the access was an instruction fetch (reported only when NXE or SMEP is on).
    pub const FETCH: u32 = 1 << 4;
}

// Paging-structure entry bits (SDM Vol. 3A 4.3-4.5, Tables 4-4 to 4-20).
const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_XD: u64 = 1 << 63;

/// The paging mode the guest is in (SDM Vol. 3A 4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0: linear addresses are physical addresses (32 bits wide).
    Disabled,
    /// 32-bit paging: CR0.PG = 1, CR4.PAE = 0.
    Bits32,
    /// PAE paging: CR0.PG = 1, CR4.PAE = 1, EFER.LMA = 0.
    Pae,
    /// 4-level paging: CR0.PG = 1, CR4.PAE = 1, EFER.LMA = 1, CR4.LA57 = 0.
    Level4,
}

/// Everything about the guest's paging state that a walk depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingContext {
    /// The paging mode.
    pub mode: PagingMode,
    /// The guest's CR3.
    pub cr3: u64,
    /// CR0.WP.
    pub wp: bool,
    /// CR4.PSE (32-bit paging only; PAE and 4-level paging always allow large pages).
    pub pse: bool,
    /// EFER.NXE: the XD bit is honoured (and is reserved when this is clear).
    pub nxe: bool,
    /// CR4.SMEP.
    pub smep: bool,
    /// CR4.SMAP.
    pub smap: bool,
    /// The guest's MAXPHYADDR (CPUID 0x80000008 `EAX[7:0]`); address bits at or above it in
    /// an entry are reserved. At most 52.
    pub max_phys_bits: u8,
    /// Whether 1 GiB pages exist for the guest (CPUID 0x80000001 EDX.Page1GB); if not, PS
    /// in a PDPTE is reserved.
    pub page_1gb: bool,
}

/// Why [`PagingContext::from_regs`] refused a register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsupportedPaging {
    /// CR4.LA57 with long mode: 5-level paging is not implemented.
    FiveLevel,
}

impl PagingContext {
    /// Derives the context from the guest's control registers (SDM Vol. 3A 4.1.1).
    pub fn from_regs(
        cr0: u64,
        cr3: u64,
        cr4: u64,
        efer: u64,
        max_phys_bits: u8,
        page_1gb: bool,
    ) -> Result<Self, UnsupportedPaging> {
        let mode = if cr0 & CR0_PG == 0 {
            PagingMode::Disabled
        } else if cr4 & CR4_PAE == 0 {
            PagingMode::Bits32
        } else if efer & EFER_LMA == 0 {
            PagingMode::Pae
        } else if cr4 & CR4_LA57 != 0 {
            return Err(UnsupportedPaging::FiveLevel);
        } else {
            PagingMode::Level4
        };
        Ok(Self {
            mode,
            cr3,
            wp: cr0 & CR0_WP != 0,
            pse: cr4 & CR4_PSE != 0,
            nxe: efer & EFER_NXE != 0,
            smep: cr4 & CR4_SMEP != 0,
            smap: cr4 & CR4_SMAP != 0,
            max_phys_bits: max_phys_bits.min(52),
            page_1gb,
        })
    }

    /// Mask of the physical-address bits an entry may hold (bits 12 to MAXPHYADDR-1).
    fn addr_mask(&self) -> u64 {
        let width = u32::from(self.max_phys_bits.min(52));
        ((1u64 << width) - 1) & !(GUEST_PAGE_SIZE - 1)
    }

    /// Bits 51:MAXPHYADDR, reserved in every 64-bit entry.
    fn high_reserved(&self) -> u64 {
        let width = u32::from(self.max_phys_bits.min(52));
        ((1u64 << 52) - 1) & !((1u64 << width) - 1)
    }
}

/// What kind of access is being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

/// An access to check against the page tables (SDM Vol. 3A 4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest {
    /// Read, write or fetch.
    pub kind: AccessKind,
    /// A user-mode access (CPL 3). Copies on behalf of a hypercall from the guest kernel
    /// are supervisor accesses.
    pub user: bool,
    /// For supervisor data accesses with CR4.SMAP: whether EFLAGS.AC permits touching
    /// user pages (an explicit access with AC = 1).
    pub smap_override: bool,
}

impl AccessRequest {
    /// A supervisor data read (how a hypercall's input is copied in).
    pub const SUPERVISOR_READ: Self = Self {
        kind: AccessKind::Read,
        user: false,
        smap_override: false,
    };
    /// A supervisor data write (how a hypercall's output is copied out).
    pub const SUPERVISOR_WRITE: Self = Self {
        kind: AccessKind::Write,
        user: false,
        smap_override: false,
    };
}

/// The effective permissions of a mapping: each is the combination over all levels of the
/// walk (SDM Vol. 3A 4.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// R/W set at every level.
    pub writable: bool,
    /// U/S set at every level.
    pub user: bool,
    /// XD clear at every level (or EFER.NXE clear).
    pub executable: bool,
}

impl Access {
    const ALL: Self = Self {
        writable: true,
        user: true,
        executable: true,
    };
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The guest-physical address of the byte at the translated virtual address.
    pub gpa: u64,
    /// Size of the page that maps it: 4 KiB, 2 MiB, 4 MiB or 1 GiB (or 4 GiB, the whole
    /// space, with paging disabled).
    pub page_size: u64,
    /// The mapping's effective permissions.
    pub access: Access,
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranslateError {
    /// The guest would take #PF with this error code (CR2 = the virtual address).
    PageFault {
        /// The page-fault error code ([`pfec`] bits).
        error_code: u32,
    },
    /// The address is not canonical in 4-level paging: the guest would take #GP(0) (or
    /// #SS(0) for stack accesses), not #PF.
    NonCanonical,
    /// A paging-structure entry lies outside guest RAM.
    Memory(GuestMemoryError),
}

impl TranslateError {
    /// The Xen errno for a hypercall whose guest buffer cannot be translated: `EFAULT`,
    /// whatever the reason (Xen's `copy_from_guest` does not distinguish).
    pub const fn errno(self) -> XenErrno {
        XenErrno::EFAULT
    }
}

impl From<GuestMemoryError> for TranslateError {
    fn from(e: GuestMemoryError) -> Self {
        Self::Memory(e)
    }
}

/// The error code bits that describe the access itself (SDM Vol. 3A 4.7).
fn access_bits(ctx: &PagingContext, req: &AccessRequest) -> u32 {
    let mut code = 0;
    if req.kind == AccessKind::Write {
        code |= pfec::WRITE;
    }
    if req.user {
        code |= pfec::USER;
    }
    if req.kind == AccessKind::Fetch && (ctx.nxe || ctx.smep) {
        code |= pfec::FETCH;
    }
    code
}

/// Applies the access-rights rules of SDM Vol. 3A 4.6.1 (without protection keys).
fn permitted(ctx: &PagingContext, req: &AccessRequest, access: &Access) -> bool {
    match (req.user, req.kind) {
        (true, AccessKind::Read) => access.user,
        (true, AccessKind::Write) => access.user && access.writable,
        (true, AccessKind::Fetch) => access.user && access.executable,
        (false, AccessKind::Read) => !(access.user && ctx.smap && !req.smap_override),
        (false, AccessKind::Write) => {
            !(access.user && ctx.smap && !req.smap_override) && (access.writable || !ctx.wp)
        }
        (false, AccessKind::Fetch) => !(access.user && ctx.smep) && access.executable,
    }
}

/// Translates the linear address `gva` for `req` by walking the guest's page tables.
///
/// Checks are those of the CPU, in its order: a not-present entry faults with P = 0; a
/// reserved bit in a present entry faults with RSVD; a complete translation that does not
/// permit the access faults with P = 1. Outside 4-level paging, linear addresses are 32
/// bits and the upper half of `gva` is ignored.
pub fn translate<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
) -> Result<Translation, TranslateError> {
    let translation = match ctx.mode {
        PagingMode::Disabled => Translation {
            gpa: gva & 0xFFFF_FFFF,
            page_size: 1 << 32,
            access: Access::ALL,
        },
        PagingMode::Bits32 => walk_32bit(gva & 0xFFFF_FFFF, ctx, req, mem)?,
        PagingMode::Pae => walk_pae(gva & 0xFFFF_FFFF, ctx, req, mem)?,
        PagingMode::Level4 => walk_4level(gva, ctx, req, mem)?,
    };
    if !permitted(ctx, &req, &translation.access) {
        return Err(TranslateError::PageFault {
            error_code: pfec::PRESENT | access_bits(ctx, &req),
        });
    }
    Ok(translation)
}

/// Accumulates permissions over the levels of a walk.
struct Walk<'a> {
    ctx: &'a PagingContext,
    req: AccessRequest,
    access: Access,
}

impl<'a> Walk<'a> {
    fn new(ctx: &'a PagingContext, req: AccessRequest) -> Self {
        Self {
            ctx,
            req,
            access: Access::ALL,
        }
    }

    fn not_present(&self) -> TranslateError {
        TranslateError::PageFault {
            error_code: access_bits(self.ctx, &self.req),
        }
    }

    fn reserved(&self) -> TranslateError {
        TranslateError::PageFault {
            error_code: pfec::PRESENT | pfec::RSVD | access_bits(self.ctx, &self.req),
        }
    }

    /// Folds a present entry's R/W, U/S and XD into the running permissions.
    fn accumulate(&mut self, entry: u64, has_xd: bool) {
        self.access.writable &= entry & PTE_RW != 0;
        self.access.user &= entry & PTE_US != 0;
        if has_xd && self.ctx.nxe && entry & PTE_XD != 0 {
            self.access.executable = false;
        }
    }

    fn done(&self, gpa: u64, page_size: u64) -> Translation {
        Translation {
            gpa,
            page_size,
            access: self.access,
        }
    }
}

fn read_u64<M: GuestMemory + ?Sized>(mem: &M, gpa: u64) -> Result<u64, GuestMemoryError> {
    let mut b = [0u8; 8];
    mem.read(gpa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32<M: GuestMemory + ?Sized>(mem: &M, gpa: u64) -> Result<u32, GuestMemoryError> {
    let mut b = [0u8; 4];
    mem.read(gpa, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// 4-level paging (SDM Vol. 3A 4.5.4): PML4 (bits 47:39), PDPT (38:30), PD (29:21), PT
/// (20:12).
fn walk_4level<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
) -> Result<Translation, TranslateError> {
    // Bits 63:47 must all equal bit 47 (SDM Vol. 3A 3.3.7.1).
    let upper = gva >> 47;
    if upper != 0 && upper != 0x1_FFFF {
        return Err(TranslateError::NonCanonical);
    }

    let mut walk = Walk::new(ctx, req);
    let addr = ctx.addr_mask();
    // The XD bit is reserved unless EFER.NXE is set.
    let xd_reserved = if ctx.nxe { 0 } else { PTE_XD };
    let base_reserved = ctx.high_reserved() | xd_reserved;
    let mut table = ctx.cr3 & addr;

    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let index = (gva >> shift) & 0x1FF;
        let entry = read_u64(mem, table + index * 8)?;
        if entry & PTE_P == 0 {
            return Err(walk.not_present());
        }
        let large = entry & PTE_PS != 0 && (level == 2 || level == 3);
        let reserved = base_reserved
            | match level {
                // PS is reserved in a PML4E, and in a PDPTE where 1 GiB pages do not exist.
                4 => PTE_PS,
                3 if !ctx.page_1gb => PTE_PS,
                // Bits 29:13 of a 1 GiB page entry and 20:13 of a 2 MiB one are reserved
                // (bit 12 is PAT there).
                3 if large => ((1u64 << 30) - 1) & !((1u64 << 13) - 1),
                2 if large => ((1u64 << 21) - 1) & !((1u64 << 13) - 1),
                _ => 0,
            };
        if entry & reserved != 0 {
            return Err(walk.reserved());
        }
        walk.accumulate(entry, true);
        if level == 1 || large {
            let page_size = 1u64 << shift;
            let frame = entry & addr & !(page_size - 1);
            return Ok(walk.done(frame | (gva & (page_size - 1)), page_size));
        }
        table = entry & addr;
    }
    unreachable!("level 1 always ends the walk")
}

/// PAE paging (SDM Vol. 3A 4.4): a 4-entry PDPT at `CR3[31:5]` (bits 31:30), then PD
/// (29:21) and PT (20:12) with 64-bit entries.
fn walk_pae<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
) -> Result<Translation, TranslateError> {
    let mut walk = Walk::new(ctx, req);
    let addr = ctx.addr_mask();
    let xd_reserved = if ctx.nxe { 0 } else { PTE_XD };

    let pdpt = ctx.cr3 & 0xFFFF_FFE0;
    let pdpte = read_u64(mem, pdpt + ((gva >> 30) & 3) * 8)?;
    if pdpte & PTE_P == 0 {
        return Err(walk.not_present());
    }
    // PDPTE bits 2:1, 8:5 and 63 are reserved (Table 4-8), as are 51:MAXPHYADDR. A PDPTE
    // carries no R/W, U/S or XD: it does not restrict access.
    let pdpte_reserved = 0b1_1110_0110 | (1 << 63) | ctx.high_reserved();
    if pdpte & pdpte_reserved != 0 {
        return Err(walk.reserved());
    }

    let pde = read_u64(mem, (pdpte & addr) + ((gva >> 21) & 0x1FF) * 8)?;
    if pde & PTE_P == 0 {
        return Err(walk.not_present());
    }
    let mut reserved = ctx.high_reserved() | xd_reserved;
    if pde & PTE_PS != 0 {
        // Bits 20:13 of a 2 MiB page entry are reserved.
        reserved |= ((1u64 << 21) - 1) & !((1u64 << 13) - 1);
    }
    if pde & reserved != 0 {
        return Err(walk.reserved());
    }
    walk.accumulate(pde, true);
    if pde & PTE_PS != 0 {
        let page_size = 1 << 21;
        return Ok(walk.done(
            (pde & addr & !(page_size - 1)) | (gva & (page_size - 1)),
            page_size,
        ));
    }

    let pte = read_u64(mem, (pde & addr) + ((gva >> 12) & 0x1FF) * 8)?;
    if pte & PTE_P == 0 {
        return Err(walk.not_present());
    }
    if pte & (ctx.high_reserved() | xd_reserved) != 0 {
        return Err(walk.reserved());
    }
    walk.accumulate(pte, true);
    Ok(walk.done((pte & addr) | (gva & 0xFFF), GUEST_PAGE_SIZE))
}

/// 32-bit paging (SDM Vol. 3A 4.3): PD at `CR3[31:12]` (bits 31:22), PT (21:12), 32-bit
/// entries; with CR4.PSE a PDE with PS maps a 4 MiB page whose bits 20:13 hold physical
/// address bits 39:32 (PSE-36).
fn walk_32bit<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
) -> Result<Translation, TranslateError> {
    let mut walk = Walk::new(ctx, req);
    let pd = ctx.cr3 & 0xFFFF_F000;
    let pde = u64::from(read_u32(mem, pd + ((gva >> 22) & 0x3FF) * 4)?);
    if pde & PTE_P == 0 {
        return Err(walk.not_present());
    }
    if ctx.pse && pde & PTE_PS != 0 {
        // Bits 20:13 are physical address bits 39:32; those at or above MAXPHYADDR (capped
        // at 40 here) and bit 21 are reserved (Table 4-4).
        let width = u32::from(ctx.max_phys_bits.clamp(32, 40));
        let high_bits_allowed = (1u64 << (width - 32)) - 1;
        let high = (pde >> 13) & 0xFF;
        if high & !high_bits_allowed != 0 || pde & (1 << 21) != 0 {
            return Err(walk.reserved());
        }
        walk.accumulate(pde, false);
        let page_size = 1 << 22;
        let frame = (pde & 0xFFC0_0000) | (high << 32);
        return Ok(walk.done(frame | (gva & (page_size - 1)), page_size));
    }
    walk.accumulate(pde, false);

    let pte = u64::from(read_u32(
        mem,
        (pde & 0xFFFF_F000) + ((gva >> 12) & 0x3FF) * 4,
    )?);
    if pte & PTE_P == 0 {
        return Err(walk.not_present());
    }
    walk.accumulate(pte, false);
    Ok(walk.done((pte & 0xFFFF_F000) | (gva & 0xFFF), GUEST_PAGE_SIZE))
}

/// Copies `buf.len()` bytes from guest-virtual `gva` (translated page by page for `req`)
/// into `buf`. On error `buf` is zero-filled: no partial guest data is visible. (It cannot
/// be left unchanged without a bounce buffer, and the guest may change its page tables
/// between a check pass and the copy.)
pub fn read_virt<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
    buf: &mut [u8],
) -> Result<(), TranslateError> {
    let result = for_each_virt_chunk(gva, buf.len(), ctx, req, mem, |gpa, offset, len| {
        mem.read(gpa, &mut buf[offset..offset + len])
    });
    if result.is_err() {
        buf.fill(0);
    }
    result
}

/// Copies `buf` to guest-virtual `gva`. Every page is translated (and checked for `req`)
/// before anything is written, so page faults change nothing; only a page that translates
/// to a GPA outside guest RAM can leave an earlier part written (as Xen's
/// `copy_to_guest`, which reports the bytes not copied).
pub fn write_virt<M: GuestMemory + ?Sized>(
    gva: u64,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &mut M,
    buf: &[u8],
) -> Result<(), TranslateError> {
    for_each_virt_chunk(gva, buf.len(), ctx, req, &*mem, |_, _, _| Ok(()))?;
    let mut offset = 0;
    while offset < buf.len() {
        let va = virt_add(gva, offset as u64, ctx);
        let t = translate(va, ctx, req, &*mem)?;
        let len = chunk_len(va, buf.len() - offset);
        mem.write(t.gpa, &buf[offset..offset + len])?;
        offset += len;
    }
    Ok(())
}

/// Linear-address arithmetic: wraps at 2^32 outside 4-level paging and at 2^64 in it (a
/// range running past the canonical boundary faults on the non-canonical part).
fn virt_add(gva: u64, offset: u64, ctx: &PagingContext) -> u64 {
    let va = gva.wrapping_add(offset);
    match ctx.mode {
        PagingMode::Level4 => va,
        _ => va & 0xFFFF_FFFF,
    }
}

/// Bytes from `va` to the end of its 4 KiB page, at most `remaining`.
fn chunk_len(va: u64, remaining: usize) -> usize {
    let to_boundary = (GUEST_PAGE_SIZE - (va % GUEST_PAGE_SIZE)) as usize;
    to_boundary.min(remaining)
}

fn for_each_virt_chunk<M: GuestMemory + ?Sized>(
    gva: u64,
    len: usize,
    ctx: &PagingContext,
    req: AccessRequest,
    mem: &M,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), GuestMemoryError>,
) -> Result<(), TranslateError> {
    let mut offset = 0;
    while offset < len {
        let va = virt_add(gva, offset as u64, ctx);
        let t = translate(va, ctx, req, mem)?;
        let n = chunk_len(va, len - offset);
        f(t.gpa, offset, n)?;
        offset += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SparseGuestMemory;
    use super::*;

    type Mem = SparseGuestMemory<Vec<u8>, 4>;

    const P: u64 = PTE_P;
    const RW: u64 = PTE_RW;
    const US: u64 = PTE_US;
    const PS: u64 = PTE_PS;
    const XD: u64 = PTE_XD;

    /// 4 MiB of RAM at 0 and 4 MiB at 1 GiB (so 1 GiB and 2 MiB pages have somewhere to
    /// point), with a hole in between.
    fn mem() -> Mem {
        let mut m = Mem::new();
        m.add_region(0, vec![0; 4 << 20]).unwrap();
        m.add_region(1 << 30, vec![0; 4 << 20]).unwrap();
        m
    }

    fn set64(m: &mut Mem, table: u64, index: u64, entry: u64) {
        m.write(table + index * 8, &entry.to_le_bytes()).unwrap();
    }

    fn set32(m: &mut Mem, table: u64, index: u64, entry: u32) {
        m.write(table + index * 4, &entry.to_le_bytes()).unwrap();
    }

    fn long_ctx(cr3: u64) -> PagingContext {
        PagingContext::from_regs(CR0_PG | CR0_WP, cr3, CR4_PAE, EFER_LMA | EFER_NXE, 46, true)
            .unwrap()
    }

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT: u64 = 0x4000;

    // Builds: gva 0x0000_7F80_0040_1000 → PML4[255] → PDPT[0] → PD[2] → PT[1] → 0x10_0000,
    // all user + writable, plus a 2 MiB page at PD[3] → 0x20_0000 (supervisor,
    // read-only, NX) and a 1 GiB page at PDPT[1] → 1 GiB.
    fn long_tables() -> (Mem, PagingContext) {
        let mut m = mem();
        set64(&mut m, PML4, 255, PDPT | P | RW | US);
        set64(&mut m, PDPT, 0, PD | P | RW | US);
        set64(&mut m, PD, 2, PT | P | RW | US);
        set64(&mut m, PT, 1, 0x10_0000 | P | RW | US);
        set64(&mut m, PD, 3, 0x20_0000 | P | PS | XD);
        set64(&mut m, PDPT, 1, (1 << 30) | P | RW | PS);
        (m, long_ctx(PML4))
    }

    const VA_4K: u64 = (255 << 39) | (2 << 21) | (1 << 12) | 0x123;
    const VA_2M: u64 = (255 << 39) | (3 << 21) | 0x1_2345;
    const VA_1G: u64 = (255 << 39) | (1 << 30) | 0x3F_FFFF;

    #[test]
    fn long_mode_4k_2m_1g() {
        let (m, ctx) = long_tables();
        let t = translate(VA_4K, &ctx, AccessRequest::SUPERVISOR_READ, &m).unwrap();
        assert_eq!(t.gpa, 0x10_0123);
        assert_eq!(t.page_size, 4096);
        assert_eq!(
            t.access,
            Access {
                writable: true,
                user: true,
                executable: true
            }
        );

        let t = translate(VA_2M, &ctx, AccessRequest::SUPERVISOR_READ, &m).unwrap();
        assert_eq!(t.gpa, 0x21_2345);
        assert_eq!(t.page_size, 2 << 20);
        assert_eq!(
            t.access,
            Access {
                writable: false,
                user: false,
                executable: false
            }
        );

        let t = translate(VA_1G, &ctx, AccessRequest::SUPERVISOR_WRITE, &m).unwrap();
        assert_eq!(t.gpa, (1 << 30) | 0x3F_FFFF);
        assert_eq!(t.page_size, 1 << 30);
    }

    #[test]
    fn not_present_faults_with_access_bits() {
        let (m, ctx) = long_tables();
        let user_write = AccessRequest {
            kind: AccessKind::Write,
            user: true,
            smap_override: false,
        };
        // PT[0] is empty.
        let va = (255 << 39) | (2 << 21);
        assert_eq!(
            translate(va, &ctx, user_write, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::WRITE | pfec::USER
            })
        );
        // PML4[0] is empty; a fetch reports I/D since NXE is on.
        let fetch = AccessRequest {
            kind: AccessKind::Fetch,
            user: false,
            smap_override: false,
        };
        assert_eq!(
            translate(0x1000, &ctx, fetch, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::FETCH
            })
        );
    }

    #[test]
    fn protection_faults() {
        let (m, ctx) = long_tables();
        let write = AccessRequest::SUPERVISOR_WRITE;
        // Read-only 2 MiB page with CR0.WP: supervisor write faults (P=1, W=1).
        assert_eq!(
            translate(VA_2M, &ctx, write, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::WRITE
            })
        );
        // Without CR0.WP the supervisor may write it.
        let no_wp = PagingContext { wp: false, ..ctx };
        assert!(translate(VA_2M, &no_wp, write, &m).is_ok());
        // User access to a supervisor page.
        let user_read = AccessRequest {
            kind: AccessKind::Read,
            user: true,
            smap_override: false,
        };
        assert_eq!(
            translate(VA_2M, &ctx, user_read, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::USER
            })
        );
        // Fetch from an NX page.
        let fetch = AccessRequest {
            kind: AccessKind::Fetch,
            user: false,
            smap_override: false,
        };
        assert_eq!(
            translate(VA_2M, &ctx, fetch, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::FETCH
            })
        );
        // Without EFER.NXE the XD bit is reserved.
        let no_nx = PagingContext { nxe: false, ..ctx };
        assert_eq!(
            translate(VA_2M, &no_nx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
    }

    #[test]
    fn smep_and_smap() {
        let (m, ctx) = long_tables();
        let ctx = PagingContext {
            smep: true,
            smap: true,
            ..ctx
        };
        let fetch = AccessRequest {
            kind: AccessKind::Fetch,
            user: false,
            smap_override: false,
        };
        assert_eq!(
            translate(VA_4K, &ctx, fetch, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::FETCH
            })
        );
        assert_eq!(
            translate(VA_4K, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT
            })
        );
        let ac = AccessRequest {
            smap_override: true,
            ..AccessRequest::SUPERVISOR_READ
        };
        assert!(translate(VA_4K, &ctx, ac, &m).is_ok());
    }

    #[test]
    fn non_canonical_and_reserved_bits() {
        let (mut m, ctx) = long_tables();
        assert_eq!(
            translate(
                0x0000_8000_0000_0000,
                &ctx,
                AccessRequest::SUPERVISOR_READ,
                &m
            ),
            Err(TranslateError::NonCanonical)
        );
        assert_eq!(
            translate(
                0xFFFF_7FFF_FFFF_F000,
                &ctx,
                AccessRequest::SUPERVISOR_READ,
                &m
            ),
            Err(TranslateError::NonCanonical)
        );
        // Upper-half canonical addresses walk PML4[256..]: not present here.
        assert_eq!(
            translate(
                0xFFFF_8000_0000_0000,
                &ctx,
                AccessRequest::SUPERVISOR_READ,
                &m
            ),
            Err(TranslateError::PageFault { error_code: 0 })
        );
        // An address bit above MAXPHYADDR (46) in the PTE.
        set64(&mut m, PT, 1, (1 << 47) | 0x10_0000 | P | RW | US);
        assert_eq!(
            translate(VA_4K, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
        // PS in a PML4E.
        set64(&mut m, PML4, 255, PDPT | P | RW | US | PS);
        assert_eq!(
            translate(VA_4K, &ctx, AccessRequest::SUPERVISOR_WRITE, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD | pfec::WRITE
            })
        );
    }

    #[test]
    fn misaligned_large_pages_and_missing_1g_support() {
        let (mut m, ctx) = long_tables();
        // Bit 13 set in a 2 MiB PDE is reserved.
        set64(&mut m, PD, 3, 0x20_0000 | (1 << 13) | P | PS);
        assert_eq!(
            translate(VA_2M, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
        // Bit 12 (PAT) is allowed.
        set64(&mut m, PD, 3, 0x20_0000 | (1 << 12) | P | PS);
        assert_eq!(
            translate(VA_2M, &ctx, AccessRequest::SUPERVISOR_READ, &m).map(|t| t.gpa),
            Ok(0x21_2345)
        );
        // Without 1 GiB pages, PS in a PDPTE is reserved.
        let no_1g = PagingContext {
            page_1gb: false,
            ..ctx
        };
        assert_eq!(
            translate(VA_1G, &no_1g, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
    }

    #[test]
    fn tables_outside_ram_are_memory_errors() {
        let (mut m, ctx) = long_tables();
        set64(&mut m, PD, 2, 0x8000_0000 | P | RW | US);
        assert_eq!(
            translate(VA_4K, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::Memory(GuestMemoryError::NotRam {
                gpa: 0x8000_0008
            }))
        );
        assert_eq!(TranslateError::NonCanonical.errno(), XenErrno::EFAULT);
    }

    #[test]
    fn paging_disabled_is_identity_on_32_bits() {
        let ctx = PagingContext::from_regs(0, 0, 0, 0, 36, false).unwrap();
        assert_eq!(ctx.mode, PagingMode::Disabled);
        let m = mem();
        let t = translate(0x1_0000_1234, &ctx, AccessRequest::SUPERVISOR_WRITE, &m).unwrap();
        assert_eq!(t.gpa, 0x1234);
    }

    #[test]
    fn pae_paging() {
        let mut m = mem();
        // PDPT at 0x5020 (32-byte aligned, not page aligned).
        let pdpt = 0x5020;
        set64(&mut m, pdpt, 2, PD | P);
        set64(&mut m, PD, 1, PT | P | RW | US);
        set64(&mut m, PT, 3, 0x30_0000 | P | US | XD);
        set64(&mut m, PD, 4, 0x20_0000 | P | RW | PS);
        let ctx =
            PagingContext::from_regs(CR0_PG | CR0_WP, pdpt, CR4_PAE, EFER_NXE, 36, false).unwrap();
        assert_eq!(ctx.mode, PagingMode::Pae);
        let va = (2u64 << 30) | (1 << 21) | (3 << 12) | 0x456;
        let t = translate(va, &ctx, AccessRequest::SUPERVISOR_READ, &m).unwrap();
        assert_eq!(t.gpa, 0x30_0456);
        assert_eq!(
            t.access,
            Access {
                writable: false,
                user: true,
                executable: false
            }
        );
        let va2m = (2u64 << 30) | (4 << 21) | 0x1_0000;
        assert_eq!(
            translate(va2m, &ctx, AccessRequest::SUPERVISOR_WRITE, &m).map(|t| t.gpa),
            Ok(0x21_0000)
        );
        // Reserved PDPTE bit 1 (R/W does not exist in a PAE PDPTE).
        set64(&mut m, pdpt, 2, PD | P | RW);
        assert_eq!(
            translate(va, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
        // Not-present PDPTE.
        assert_eq!(
            translate(0, &ctx, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault { error_code: 0 })
        );
    }

    #[test]
    fn bits32_paging_4k_and_4m() {
        let mut m = mem();
        set32(&mut m, PD, 1, (PT | P | RW | US) as u32);
        set32(&mut m, PT, 2, (0x15_0000 | P | US) as u32);
        // A 4 MiB page at PDE[2] with PSE-36 bits: physical 0x1_0000_0000 + 0x80_0000.
        set32(&mut m, PD, 2, (0x80_0000 | (1 << 13) | P | RW | PS) as u32);
        let ctx = PagingContext::from_regs(CR0_PG | CR0_WP, PD, CR4_PSE, 0, 40, false).unwrap();
        assert_eq!(ctx.mode, PagingMode::Bits32);
        let va = (1 << 22) | (2 << 12) | 0x789;
        let t = translate(va, &ctx, AccessRequest::SUPERVISOR_READ, &m).unwrap();
        assert_eq!(t.gpa, 0x15_0789);
        assert_eq!(
            translate(va, &ctx, AccessRequest::SUPERVISOR_WRITE, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::WRITE
            })
        );
        let va4m = (2 << 22) | 0x12_3456;
        let t = translate(va4m, &ctx, AccessRequest::SUPERVISOR_READ, &m).unwrap();
        assert_eq!(t.gpa, 0x1_0080_0000 | 0x12_3456);
        assert_eq!(t.page_size, 4 << 20);
        // Without CR4.PSE, PS is ignored and the PDE points to a page table at 0x80_2000
        // (bit 13 is now an address bit), which is in the hole.
        let no_pse = PagingContext { pse: false, ..ctx };
        assert_eq!(
            translate(va4m, &no_pse, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::Memory(GuestMemoryError::NotRam {
                gpa: 0x80_2000 + 0x123 * 4
            }))
        );
        // PSE-36 bits beyond MAXPHYADDR are reserved.
        let narrow = PagingContext {
            max_phys_bits: 32,
            ..ctx
        };
        assert_eq!(
            translate(va4m, &narrow, AccessRequest::SUPERVISOR_READ, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::RSVD
            })
        );
        // No I/D bit without NXE or SMEP.
        let fetch = AccessRequest {
            kind: AccessKind::Fetch,
            user: true,
            smap_override: false,
        };
        assert_eq!(
            translate(0, &ctx, fetch, &m),
            Err(TranslateError::PageFault {
                error_code: pfec::USER
            })
        );
    }

    #[test]
    fn five_level_is_unsupported() {
        assert_eq!(
            PagingContext::from_regs(CR0_PG, 0, CR4_PAE | CR4_LA57, EFER_LMA, 52, true),
            Err(UnsupportedPaging::FiveLevel)
        );
    }

    #[test]
    fn virtual_copies_cross_pages() {
        let (mut m, ctx) = long_tables();
        // Map PT[2] to 0x10_3000 so VA_4K's page and the next are discontiguous in GPA.
        set64(&mut m, PT, 2, 0x10_3000 | P | RW | US);
        let va = (VA_4K & !0xFFF) + 0xFFC;
        write_virt(
            va,
            &ctx,
            AccessRequest::SUPERVISOR_WRITE,
            &mut m,
            b"ABCDEFGH",
        )
        .unwrap();
        let mut phys = [0u8; 4];
        m.read(0x10_0FFC, &mut phys).unwrap();
        assert_eq!(&phys, b"ABCD");
        m.read(0x10_3000, &mut phys).unwrap();
        assert_eq!(&phys, b"EFGH");
        let mut back = [0u8; 8];
        read_virt(va, &ctx, AccessRequest::SUPERVISOR_READ, &m, &mut back).unwrap();
        assert_eq!(&back, b"ABCDEFGH");
    }

    #[test]
    fn virtual_copies_fail_cleanly() {
        let (mut m, ctx) = long_tables();
        // PT[2] is not present: the second page faults.
        let va = (VA_4K & !0xFFF) + 0xFFC;
        let mut buf = [0xEEu8; 8];
        assert_eq!(
            read_virt(va, &ctx, AccessRequest::SUPERVISOR_READ, &m, &mut buf),
            Err(TranslateError::PageFault { error_code: 0 })
        );
        assert_eq!(buf, [0; 8], "no partial data");
        // A write that would fault on the second page writes nothing at all.
        assert_eq!(
            write_virt(
                va,
                &ctx,
                AccessRequest::SUPERVISOR_WRITE,
                &mut m,
                b"ABCDEFGH"
            ),
            Err(TranslateError::PageFault {
                error_code: pfec::WRITE
            })
        );
        let mut phys = [0u8; 4];
        m.read(0x10_0FFC, &mut phys).unwrap();
        assert_eq!(phys, [0; 4]);
        // A read-only mapping refuses the write.
        let mut ro = [0u8; 4];
        assert!(read_virt(VA_2M, &ctx, AccessRequest::SUPERVISOR_READ, &m, &mut ro).is_ok());
        assert_eq!(
            write_virt(VA_2M, &ctx, AccessRequest::SUPERVISOR_WRITE, &mut m, b"x"),
            Err(TranslateError::PageFault {
                error_code: pfec::PRESENT | pfec::WRITE
            })
        );
    }
}
