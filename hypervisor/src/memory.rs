//! Taking ownership of physical memory at boot: the hypervisor's own page tables (W^X
//! image, direct map, no page 0, unmapped stack guards), the buddy frame allocator, and
//! the heap behind `alloc`.
//!
//! Order matters, because each step needs the one before:
//! 1. An early bump allocator, on a window below 4 GiB that the boot structures and
//!    modules do not use, supplies page-table frames while the 32-bit entry's identity
//!    map of 0..4 GiB is still live (so a frame's physical address is also its address).
//! 2. The new tables are loaded. The identity map is gone: from here physical memory is
//!    reached only through the direct map at [`DIRECT_MAP_BASE`].
//! 3. The buddy allocator's metadata is carved out of RAM (reached through the direct
//!    map), and the allocator takes every usable frame except the image, modules, boot
//!    structures, the first MiB, the page tables and its own metadata.
//! 4. The heap is one block from the buddy allocator.

use core::mem::MaybeUninit;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use ferrovisor::mm::{BuddyAllocator, BumpAllocator, FRAME_SIZE, FrameMeta, pick_early_range};
use ferrovisor_boot::{BootInfo, MemoryKind};
use linked_list_allocator::LockedHeap;
use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags, PhysFrame,
    Size1GiB, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

/// Base of the direct map: physical address `p` is reachable at `DIRECT_MAP_BASE + p`.
/// PML4 slot 256, the first of the upper half, as in Xen and Linux.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;

/// Bytes the early bump allocator may spend on page tables: 4 MiB covers a direct map of
/// 2 TiB even without 1 GiB pages.
const EARLY_PAGE_TABLE_BUDGET: u64 = 4 << 20;
/// The early identity map covers 0..4 GiB.
const EARLY_IDENTITY_LIMIT: u64 = 4 << 30;
/// Heap size; the heap serves hypervisor bookkeeping, never guest memory.
const HEAP_ORDER: u8 = 12; // 16 MiB
const MIN_HEAP_ORDER: u8 = 8; // 1 MiB, for small machines

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The frame allocator, once [`init`] has run.
pub static FRAMES: Mutex<Option<BuddyAllocator<'static>>> = Mutex::new(None);

/// What [`init`] set up, for the banner.
pub struct MemorySummary {
    pub ram_bytes: u64,
    pub usable_bytes: u64,
    pub free_bytes: u64,
    pub heap_bytes: u64,
    pub page_table_bytes: u64,
    pub metadata_bytes: u64,
}

/// Why memory could not be set up.
#[derive(Debug)]
pub enum MemoryError {
    TooManyRanges,
    NoEarlyWindow,
    PageTables(&'static str),
    NoMetadataWindow { bytes: u64 },
    Allocator(ferrovisor::mm::FrameError),
    NoHeap,
}

impl core::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyRanges => f.write_str("too many memory ranges to track"),
            Self::NoEarlyWindow => {
                f.write_str("no free 4 MiB window below 4 GiB for the initial page tables")
            }
            Self::PageTables(what) => write!(f, "building the page tables failed: {what}"),
            Self::NoMetadataWindow { bytes } => {
                write!(
                    f,
                    "no free window of {bytes} bytes for frame-allocator metadata"
                )
            }
            Self::Allocator(e) => write!(f, "frame allocator: {e:?}"),
            Self::NoHeap => f.write_str("no free block for the hypervisor heap"),
        }
    }
}

/// Fixed-size list of ranges (no heap exists yet).
struct Ranges {
    items: [Range<u64>; 192],
    len: usize,
}

impl Ranges {
    const fn new() -> Self {
        Self {
            items: [const { 0..0 }; 192],
            len: 0,
        }
    }
    fn push(&mut self, range: Range<u64>) -> Result<(), MemoryError> {
        if range.start >= range.end {
            return Ok(());
        }
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(MemoryError::TooManyRanges)?;
        *slot = range;
        self.len += 1;
        Ok(())
    }
    fn as_slice(&self) -> &[Range<u64>] {
        &self.items[..self.len]
    }
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn symbol(address: *const u8) -> u64 {
    address as u64
}

/// The image's extent and section boundaries, from the linker script.
struct ImageLayout {
    start: u64,
    text_end: u64,
    rodata_end: u64,
    end: u64,
}

impl ImageLayout {
    fn get() -> Self {
        Self {
            start: symbol(&raw const __image_start),
            text_end: symbol(&raw const __text_end),
            rodata_end: symbol(&raw const __rodata_end),
            end: symbol(&raw const __image_end),
        }
    }

    /// W^X: text is read+execute, rodata read-only, data and bss read+write, never
    /// executable.
    fn flags_for(&self, address: u64) -> PageTableFlags {
        let base = PageTableFlags::PRESENT | PageTableFlags::GLOBAL;
        if address < self.text_end {
            base
        } else if address < self.rodata_end {
            base | PageTableFlags::NO_EXECUTE
        } else {
            base | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE
        }
    }
}

/// Pages of the image left unmapped so that running off a stack faults.
fn guard_pages() -> [u64; 4] {
    let [df, nmi, mc] = ferrovisor_arch::descriptors::guard_pages();
    [ferrovisor_boot::entry::boot_stack().0, df, nmi, mc]
}

struct EarlyFrames<'a>(&'a mut BumpAllocator);

// SAFETY: the bump allocator hands out each frame of its window once; the window was
// chosen inside usable RAM, outside every reserved range, and below 4 GiB so the early
// identity map reaches it.
unsafe impl FrameAllocator<Size4KiB> for EarlyFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let paddr = self.0.alloc_frame()?;
        // SAFETY: the frame is ours (see the impl's SAFETY) and identity-mapped; a page
        // table must start zeroed.
        unsafe { core::ptr::write_bytes(paddr as *mut u8, 0, FRAME_SIZE as usize) };
        PhysFrame::from_start_address(PhysAddr::new(paddr)).ok()
    }
}

/// Takes over memory as described in the module comment.
pub fn init(boot: &BootInfo) -> Result<MemorySummary, MemoryError> {
    let image = ImageLayout::get();

    let mut usable = Ranges::new();
    for region in boot
        .memory_map
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
    {
        usable.push(region.start..region.end())?;
    }
    let mut reserved = Ranges::new();
    reserved.push(image.start..image.end)?;
    for range in boot.occupied_ranges() {
        reserved.push(range.start..range.end)?;
    }

    // 1-2: page tables from the early window, then switch.
    let window = pick_early_range(
        usable.as_slice(),
        reserved.as_slice(),
        EARLY_PAGE_TABLE_BUDGET,
        EARLY_IDENTITY_LIMIT,
    )
    .ok_or(MemoryError::NoEarlyWindow)?;
    let mut bump = BumpAllocator::new(window.clone());
    let root = build_and_load_page_tables(boot, &image, &mut bump)?;
    reserved.push(bump.used())?;
    // SAFETY: `root` is the PML4 just loaded into CR3; its frame is reachable through the
    // direct map, and from now on only KERNEL_PAGE_TABLES (under its lock) edits it.
    let root_table =
        unsafe { &mut *(phys_to_virt(root.start_address().as_u64()) as *mut PageTable) };
    // SAFETY: every frame of the live tables is RAM covered by the direct map at
    // DIRECT_MAP_BASE, so physical + DIRECT_MAP_BASE is its virtual address.
    *KERNEL_PAGE_TABLES.lock() =
        Some(unsafe { OffsetPageTable::new(root_table, VirtAddr::new(DIRECT_MAP_BASE)) });

    // 3: buddy allocator with metadata reached through the direct map.
    let entries = BuddyAllocator::metadata_len(usable.as_slice());
    let metadata_bytes = (entries * core::mem::size_of::<FrameMeta>()) as u64;
    let metadata_window = pick_early_range(
        usable.as_slice(),
        reserved.as_slice(),
        metadata_bytes.div_ceil(FRAME_SIZE) * FRAME_SIZE,
        u64::MAX,
    )
    .ok_or(MemoryError::NoMetadataWindow {
        bytes: metadata_bytes,
    })?;
    reserved.push(metadata_window.clone())?;
    let metadata_ptr = phys_to_virt(metadata_window.start) as *mut MaybeUninit<FrameMeta>;
    // SAFETY: the window is usable RAM that nothing else owns (outside every reserved
    // range, now reserved itself), mapped read-write by the direct map just loaded,
    // suitably aligned (page-aligned) and large enough for `entries` FrameMeta.
    let uninit: &'static mut [MaybeUninit<FrameMeta>] =
        unsafe { core::slice::from_raw_parts_mut(metadata_ptr, entries) };
    for entry in uninit.iter_mut() {
        entry.write(FrameMeta::UNUSED);
    }
    // SAFETY: every element was initialised just above; MaybeUninit<T> has T's layout.
    let metadata: &'static mut [FrameMeta] =
        unsafe { &mut *(uninit as *mut [MaybeUninit<FrameMeta>] as *mut [FrameMeta]) };
    let mut frames = BuddyAllocator::new(metadata, usable.as_slice(), reserved.as_slice())
        .map_err(MemoryError::Allocator)?;

    // 4: the heap.
    let (heap_paddr, heap_order) = (MIN_HEAP_ORDER..=HEAP_ORDER)
        .rev()
        .find_map(|order| frames.alloc(order).map(|paddr| (paddr, order)))
        .ok_or(MemoryError::NoHeap)?;
    let heap_bytes = FRAME_SIZE << heap_order;
    // SAFETY: the block was just handed to us by the frame allocator, is mapped
    // read-write through the direct map, and is never freed: the heap owns it for good.
    unsafe {
        HEAP.lock()
            .init(phys_to_virt(heap_paddr) as *mut u8, heap_bytes as usize)
    };

    let summary = MemorySummary {
        ram_bytes: boot.ram_bytes(),
        usable_bytes: boot.usable_bytes(),
        free_bytes: frames.free_frames() * FRAME_SIZE,
        heap_bytes,
        page_table_bytes: bump.used().end - bump.used().start,
        metadata_bytes,
    };
    *FRAMES.lock() = Some(frames);
    Ok(summary)
}

/// The direct-map address of physical address `paddr`.
pub const fn phys_to_virt(paddr: u64) -> u64 {
    DIRECT_MAP_BASE + paddr
}

fn build_and_load_page_tables(
    boot: &BootInfo,
    image: &ImageLayout,
    bump: &mut BumpAllocator,
) -> Result<PhysFrame, MemoryError> {
    let mut frames = EarlyFrames(bump);
    let root = frames
        .allocate_frame()
        .ok_or(MemoryError::PageTables("out of early frames"))?;
    // SAFETY: `root` is a zeroed frame we own, identity-mapped like every frame
    // `frames` returns; nothing else references it.
    let root_table = unsafe { &mut *(root.start_address().as_u64() as *mut PageTable) };
    // SAFETY: while the early identity map is live, physical = virtual (offset 0) for
    // every frame the tables will reference (all come from the bump window below 4 GiB).
    let mut tables = unsafe { OffsetPageTable::new(root_table, VirtAddr::new(0)) };

    // The image at its physical address, page by page, W^X, guards left out. Nothing
    // else goes in the lower half, so page 0 stays unmapped and null dereferences fault.
    let guards = guard_pages();
    let mut address = image.start;
    while address < image.end {
        if !guards.contains(&address) {
            map::<Size4KiB>(
                &mut tables,
                &mut frames,
                address,
                address,
                image.flags_for(address),
            )?;
        }
        address += Size4KiB::SIZE;
    }

    // The direct map: every RAM-like range (rounded out to pages and merged so no page
    // is mapped twice), with the largest pages alignment allows.
    let mut ram = Ranges::new();
    for region in boot.memory_map.iter().filter(|r| {
        matches!(
            r.kind,
            MemoryKind::Usable | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs
        )
    }) {
        ram.push(region.start & !(FRAME_SIZE - 1)..region.end().div_ceil(FRAME_SIZE) * FRAME_SIZE)?;
    }
    for module in boot.modules.iter() {
        ram.push(module.start & !(FRAME_SIZE - 1)..module.end.div_ceil(FRAME_SIZE) * FRAME_SIZE)?;
    }
    let ram_len = ram.len;
    let merged = merge_sorted(&mut ram.items[..ram_len]);
    let huge = ferrovisor_arch::cpu::has_1gib_pages();
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_EXECUTE
        | PageTableFlags::GLOBAL;
    for range in &ram.items[..merged] {
        let mut paddr = range.start;
        while paddr < range.end {
            let left = range.end - paddr;
            let vaddr = phys_to_virt(paddr);
            if huge && paddr % Size1GiB::SIZE == 0 && left >= Size1GiB::SIZE {
                map::<Size1GiB>(&mut tables, &mut frames, vaddr, paddr, flags)?;
                paddr += Size1GiB::SIZE;
            } else if paddr % Size2MiB::SIZE == 0 && left >= Size2MiB::SIZE {
                map::<Size2MiB>(&mut tables, &mut frames, vaddr, paddr, flags)?;
                paddr += Size2MiB::SIZE;
            } else {
                map::<Size4KiB>(&mut tables, &mut frames, vaddr, paddr, flags)?;
                paddr += Size4KiB::SIZE;
            }
        }
    }

    // SAFETY: the new tables map the running code (image text, identity), the stack
    // we are on (image bss) and all RAM through the direct map; CR4.PGE-governed global
    // entries are flushed by the CR3 write as the tables themselves change. Nothing
    // after this uses an identity address outside the image.
    unsafe { Cr3::write(root, Cr3Flags::empty()) };
    // SAFETY: CR4.PGE only lets TLB entries of GLOBAL pages (the image and the direct
    // map, identical in every address space the hypervisor will use) survive CR3 writes.
    unsafe { Cr4::update(|flags| flags.insert(Cr4Flags::PAGE_GLOBAL)) };
    Ok(root)
}

fn map<S: PageSize>(
    tables: &mut OffsetPageTable<'_>,
    frames: &mut impl FrameAllocator<Size4KiB>,
    vaddr: u64,
    paddr: u64,
    flags: PageTableFlags,
) -> Result<(), MemoryError>
where
    for<'a> OffsetPageTable<'a>: Mapper<S>,
{
    let page = Page::<S>::from_start_address(VirtAddr::new(vaddr))
        .map_err(|_| MemoryError::PageTables("unaligned page"))?;
    let frame = PhysFrame::<S>::from_start_address(PhysAddr::new(paddr))
        .map_err(|_| MemoryError::PageTables("unaligned frame"))?;
    let parent_flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    // SAFETY: callers map each page once, either into tables that are not live yet or
    // into the never-before-used vmap region, so no existing access is invalidated.
    unsafe { tables.map_to_with_table_flags(page, frame, flags, parent_flags, frames) }
        .map_err(|e| {
            MemoryError::PageTables(match e {
                MapToError::FrameAllocationFailed => "out of early frames",
                MapToError::ParentEntryHugePage => "parent entry is a huge page",
                MapToError::PageAlreadyMapped(_) => "page already mapped",
            })
        })?
        .ignore(); // not live: nothing to flush
    Ok(())
}

/// Sorts and merges overlapping or touching ranges in place; returns the merged count.
fn merge_sorted(ranges: &mut [Range<u64>]) -> usize {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out = 0;
    for i in 0..ranges.len() {
        let r = ranges[i].clone();
        if out > 0 && r.start <= ranges[out - 1].end {
            ranges[out - 1].end = ranges[out - 1].end.max(r.end);
        } else {
            ranges[out] = r;
            out += 1;
        }
    }
    out
}

/// The live page tables (shared by every CPU), once [`init`] has run. Lock order: take
/// this before [`FRAMES`].
static KERNEL_PAGE_TABLES: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(None);

/// Base of the region for mappings made after boot (stacks with guard pages, device
/// MMIO): PML4 slot 384, 512 GiB. Addresses are handed out once and never reused.
pub const VMAP_BASE: u64 = 0xffff_c000_0000_0000;
const VMAP_END: u64 = VMAP_BASE + (1 << 39);
static VMAP_NEXT: AtomicU64 = AtomicU64::new(VMAP_BASE);

/// Frames for page tables after boot: from the buddy allocator, zeroed through the
/// direct map.
struct LiveFrames<'a>(&'a mut BuddyAllocator<'static>);

// SAFETY: each frame comes from the buddy allocator, which hands a frame out once; it
// is zeroed before use as a page table.
unsafe impl FrameAllocator<Size4KiB> for LiveFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let paddr = self.0.alloc(0)?;
        // SAFETY: the frame was just allocated to us and is mapped by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(paddr) as *mut u8, 0, FRAME_SIZE as usize) };
        PhysFrame::from_start_address(PhysAddr::new(paddr)).ok()
    }
}

fn reserve_vmap(bytes: u64) -> Result<u64, MemoryError> {
    let bytes = bytes.div_ceil(FRAME_SIZE) * FRAME_SIZE;
    let start = VMAP_NEXT.fetch_add(bytes, Ordering::Relaxed);
    if start.checked_add(bytes).is_none_or(|end| end > VMAP_END) {
        return Err(MemoryError::PageTables("vmap region exhausted"));
    }
    Ok(start)
}

/// Maps `len` bytes of firmware tables at physical `paddr` read-only and cacheable
/// (ACPI tables live in RAM the firmware marks reserved or ACPI, which the direct map
/// may not cover) and returns the virtual address of `paddr`. The mapping stays.
pub fn map_firmware(paddr: u64, len: u64) -> Result<u64, MemoryError> {
    map_physical(
        paddr,
        len,
        PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE | PageTableFlags::GLOBAL,
    )
}

/// Maps `len` bytes of device memory at physical `paddr` uncached (PCD|PWT selects UC
/// with the power-on PAT, SDM Vol. 3A §12.12.3) and returns its virtual address.
pub fn map_mmio(paddr: u64, len: u64) -> Result<u64, MemoryError> {
    map_physical(
        paddr,
        len,
        PageTableFlags::PRESENT
            | PageTableFlags::WRITABLE
            | PageTableFlags::NO_EXECUTE
            | PageTableFlags::NO_CACHE
            | PageTableFlags::WRITE_THROUGH
            | PageTableFlags::GLOBAL,
    )
}

fn map_physical(paddr: u64, len: u64, flags: PageTableFlags) -> Result<u64, MemoryError> {
    let first = paddr & !(FRAME_SIZE - 1);
    let end = paddr
        .checked_add(len.max(1))
        .ok_or(MemoryError::PageTables("range overflows"))?;
    let span = end.div_ceil(FRAME_SIZE) * FRAME_SIZE - first;
    let virt = reserve_vmap(span)?;
    let mut tables = KERNEL_PAGE_TABLES.lock();
    let tables = tables
        .as_mut()
        .ok_or(MemoryError::PageTables("not initialised"))?;
    let mut frames = FRAMES.lock();
    let frames = frames
        .as_mut()
        .ok_or(MemoryError::PageTables("not initialised"))?;
    for offset in (0..span).step_by(FRAME_SIZE as usize) {
        map::<Size4KiB>(
            tables,
            &mut LiveFrames(frames),
            virt + offset,
            first + offset,
            flags,
        )?;
    }
    Ok(virt + (paddr - first))
}

/// Allocates a stack of `bytes` (rounded up to pages) in the vmap region with an
/// unmapped guard page below it; returns `bottom..top`.
pub fn alloc_stack(bytes: u64) -> Result<Range<u64>, MemoryError> {
    let bytes = bytes.div_ceil(FRAME_SIZE) * FRAME_SIZE;
    let guard = reserve_vmap(FRAME_SIZE + bytes)?;
    let bottom = guard + FRAME_SIZE;
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_EXECUTE
        | PageTableFlags::GLOBAL;
    let mut tables = KERNEL_PAGE_TABLES.lock();
    let tables = tables
        .as_mut()
        .ok_or(MemoryError::PageTables("not initialised"))?;
    let mut frames = FRAMES.lock();
    let frames = frames
        .as_mut()
        .ok_or(MemoryError::PageTables("not initialised"))?;
    for offset in (0..bytes).step_by(FRAME_SIZE as usize) {
        let frame = frames
            .alloc(0)
            .ok_or(MemoryError::PageTables("out of memory for a stack"))?;
        map::<Size4KiB>(
            tables,
            &mut LiveFrames(frames),
            bottom + offset,
            frame,
            flags,
        )?;
    }
    Ok(bottom..bottom + bytes)
}

/// Allocates 2^`order` contiguous zeroed frames (naturally aligned) for hypervisor
/// structures (VMCBs, VMCSs, bitmaps, guest memory); returns the physical address.
pub fn alloc_zeroed(order: u8) -> Option<u64> {
    let paddr = FRAMES.lock().as_mut()?.alloc(order)?;
    // SAFETY: the block was just allocated to us and is RAM covered by the direct map.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(paddr) as *mut u8,
            0,
            (FRAME_SIZE << order) as usize,
        )
    };
    Some(paddr)
}

/// Returns a block from [`alloc_zeroed`].
pub fn free(paddr: u64, order: u8) {
    if let Some(frames) = FRAMES.lock().as_mut()
        && let Err(e) = frames.free(paddr, order)
    {
        log::error!("memory: freeing {paddr:#x} (order {order}) failed: {e}");
    }
}

/// Free memory in bytes.
#[cfg_attr(
    not(feature = "selftest"),
    allow(dead_code, reason = "reported by self tests until domains are managed")
)]
pub fn free_bytes() -> u64 {
    FRAMES
        .lock()
        .as_ref()
        .map_or(0, |f| f.free_frames() * FRAME_SIZE)
}

/// Physical address of the live PML4 (what an AP loads into CR3).
pub fn kernel_cr3() -> u64 {
    Cr3::read().0.start_address().as_u64()
}
