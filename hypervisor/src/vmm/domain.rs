//! A domain: its RAM (taken whole at creation, zeroed, returned whole at the end),
//! nested page tables, console, and the state its vCPUs share. Domains are shared
//! between CPUs (`Arc<Domain>`): each of its vCPUs may run on a different CPU, so what
//! they change together is atomic or locked.

use core::sync::atomic::{AtomicU8, Ordering};

use ferrovisor::cpuid_policy::CpuidPolicy;
use ferrovisor::guest_memory::{GuestMemory, GuestMemoryError};
use ferrovisor::nested_paging::{Access, AddressSpace, Ept, MappingCounts, MemoryType, Npt};
use ferrovisor::pvh::{StartInfoRequest, build_start_info, plan_load};
use ferrovisor::sched::VcpuId;
use ferrovisor::vcpu::VcpuInitState;

use super::{HostTables, Vendor};
use crate::memory::{alloc_zeroed, free, phys_to_virt};

/// Most RAM blocks a domain is built from.
const MAX_RAM_BLOCKS: usize = 64;

/// One naturally aligned block of a domain's RAM.
#[derive(Clone, Copy, Debug, Default)]
struct RamBlock {
    gpa: u64,
    hpa: u64,
    order: u8,
}

impl RamBlock {
    fn size(&self) -> u64 {
        4096 << self.order
    }
}

/// A domain's RAM, guest-physical `[0, size)`: naturally aligned blocks from the frame
/// allocator, largest first, so each block's guest-physical address is aligned to its
/// size and nested paging maps it with the largest pages. Taken whole and zeroed at
/// creation; returned whole when dropped.
pub struct GuestRam {
    blocks: [RamBlock; MAX_RAM_BLOCKS],
    count: usize,
    size: u64,
}

impl GuestRam {
    /// Allocates `size` bytes (a multiple of 4 KiB), zeroed; `None` if the frames or
    /// the block table run out (nothing is kept then).
    pub fn allocate(size: u64) -> Option<Self> {
        let mut ram = Self {
            blocks: [RamBlock::default(); MAX_RAM_BLOCKS],
            count: 0,
            size: 0,
        };
        while ram.size < size {
            let left_pages = (size - ram.size) / 4096;
            let largest = (63 - left_pages.leading_zeros()).min(18) as u8;
            let block = (0..=largest)
                .rev()
                .find_map(|order| alloc_zeroed(order).map(|hpa| (hpa, order)));
            let (Some((hpa, order)), true) = (block, ram.count < MAX_RAM_BLOCKS) else {
                if let Some((hpa, order)) = block {
                    free(hpa, order);
                }
                return None; // `ram` drops and frees what it holds
            };
            ram.blocks[ram.count] = RamBlock {
                gpa: ram.size,
                hpa,
                order,
            };
            ram.count += 1;
            ram.size += 4096 << order;
        }
        Some(ram)
    }

    /// Bytes of guest RAM.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn blocks(&self) -> &[RamBlock] {
        &self.blocks[..self.count]
    }

    /// Calls `f(host virtual address, offset in buf, length)` for each block piece of
    /// `[gpa, gpa + len)`, after checking the whole range is RAM.
    fn pieces(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(u64, usize, usize),
    ) -> Result<(), GuestMemoryError> {
        let end = gpa
            .checked_add(len as u64)
            .ok_or(GuestMemoryError::Overflow {
                gpa,
                len: len as u64,
            })?;
        if end > self.size {
            return Err(GuestMemoryError::NotRam {
                gpa: gpa.max(self.size),
            });
        }
        let mut at = gpa;
        for block in self.blocks() {
            let block_end = block.gpa + block.size();
            if at >= end {
                break;
            }
            if at < block.gpa || at >= block_end {
                continue;
            }
            let piece = (end.min(block_end) - at) as usize;
            f(
                phys_to_virt(block.hpa + (at - block.gpa)),
                (at - gpa) as usize,
                piece,
            );
            at += piece as u64;
        }
        Ok(())
    }
}

impl GuestRam {
    /// Copies `buf` into guest RAM at `gpa`. Guest RAM is shared with the domain's
    /// running vCPUs anyway (no Rust reference to it ever exists), so a shared borrow
    /// suffices: concurrent writers see each other's bytes as the guest would.
    pub fn write_bytes(&self, gpa: u64, buf: &[u8]) -> Result<(), GuestMemoryError> {
        let source = buf.as_ptr();
        self.pieces(gpa, buf.len(), |target, offset, len| {
            // SAFETY: `pieces` checked the range lies inside this domain's RAM blocks,
            // which the domain owns and the direct map covers, and that `offset + len`
            // lies inside `buf`; guest RAM is only ever accessed through raw copies.
            unsafe {
                core::ptr::copy_nonoverlapping(source.wrapping_add(offset), target as *mut u8, len)
            };
        })
    }
}

/// Guest RAM through a shared borrow, for code that copies into a running domain
/// (hypercalls of one vCPU while others run).
pub struct SharedRam<'a>(pub &'a GuestRam);

impl GuestMemory for SharedRam<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.0.read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), GuestMemoryError> {
        self.0.write_bytes(gpa, buf)
    }
}

impl GuestMemory for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let target = buf.as_mut_ptr();
        self.pieces(gpa, buf.len(), |source, offset, len| {
            // SAFETY: `pieces` checked the range lies inside this domain's RAM blocks,
            // which the domain owns and the direct map covers, and that `offset + len`
            // lies inside `buf`; a racing guest write can only change the bytes copied.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    source as *const u8,
                    target.wrapping_add(offset),
                    len,
                )
            };
        })
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), GuestMemoryError> {
        self.write_bytes(gpa, buf)
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        for block in self.blocks() {
            free(block.hpa, block.order);
        }
    }
}

enum NestedSpace {
    Ept(AddressSpace<Ept>),
    Npt(AddressSpace<Npt>),
}

/// Most vCPUs one domain may have.
pub const MAX_VCPUS_PER_DOMAIN: usize = 16;

/// Where a vCPU is in Xen's life cycle (`VCPUOP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VcpuLife {
    /// Never given a state.
    Down = 0,
    /// `VCPUOP_initialise` is copying its state in.
    Initialising = 1,
    /// Has a state, not yet up.
    Initialised = 2,
    /// Up: runs whenever it is not blocked and the domain is not paused.
    Up = 3,
}

/// A version-4 (random) UUID, RFC 9562.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// 122 random bits: from RDRAND when the CPU has it, else the TSC and a counter
    /// mixed by SplitMix64 (unique, not unpredictable).
    pub fn random() -> Self {
        static COUNTER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
        let has_rdrand = raw_cpuid::CpuId::new()
            .get_feature_info()
            .is_some_and(|f| f.has_rdrand());
        let word = |salt: u64| -> u64 {
            if has_rdrand {
                for _ in 0..10 {
                    let (value, ok): (u64, u8);
                    // SAFETY: CPUID reports RDRAND; it only writes its output and CF.
                    unsafe {
                        core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value,
                            ok = out(reg_byte) ok, options(nomem, nostack))
                    };
                    if ok != 0 {
                        return value;
                    }
                }
            }
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut z = crate::time::tsc() ^ salt ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&word(1).to_le_bytes());
        bytes[8..].copy_from_slice(&word(2).to_le_bytes());
        bytes[6] = (bytes[6] & 0x0F) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80; // RFC variant
        Self(bytes)
    }
}

impl core::fmt::Display for Uuid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why a vCPU is not runnable though up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Blocked {
    No = 0,
    /// HLT, `SCHEDOP_block`: until an event.
    UntilEvent = 1,
    /// `SCHEDOP_poll` with a timeout: until an event or its timer.
    UntilDeadline = 2,
}

/// The domain as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DomainState {
    Running = 0,
    Paused = 1,
    /// Shut down or crashed: its vCPUs never run again; it is destroyed once every one
    /// has stopped.
    Dying = 2,
}

/// How a domain's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SCHEDOP_shutdown` with this reason.
    Shutdown(u32),
    /// Crashed by the hypervisor (reason logged).
    Crashed,
}

/// A domain, shared by the CPUs running its vCPUs.
pub struct Domain {
    pub id: u16,
    pub name: ferrovisor_boot::BoundedStr<64>,
    /// Its UUID (Xen's domain handle, `XENVER_guest_handle`): a fresh random one for
    /// every domain built, as xl gives each domain it creates.
    pub uuid: Uuid,
    pub ram: GuestRam,
    space: Option<NestedSpace>,
    /// Root of the nested page tables (EPT PML4 / nCR3), physical.
    pub nested_root: u64,
    pub vendor: Vendor,
    pub console: spin::Mutex<GuestConsole>,
    /// What CPUID shows its vCPUs.
    pub cpuid_policy: CpuidPolicy,
    /// The guest TSC frequency (Xen leaf 0x40000003).
    pub tsc_khz: u32,
    /// How many vCPUs it has (Xen's `max_vcpus`).
    pub vcpu_count: u32,
    /// The scheduler's id of each vCPU, by vCPU index.
    vcpu_ids: [VcpuId; MAX_VCPUS_PER_DOMAIN],
    life: [AtomicU8; MAX_VCPUS_PER_DOMAIN],
    /// Blocked in HLT, `SCHEDOP_block` or `SCHEDOP_poll` ([`Blocked`] as u8).
    blocked: [AtomicU8; MAX_VCPUS_PER_DOMAIN],
    state: AtomicU8,
    ending: spin::Once<Ending>,
    /// Where each vCPU wants its `vcpu_time_info` (guest-virtual, 0: nowhere) and the
    /// version of the last record written there.
    time_areas: [core::sync::atomic::AtomicU64; MAX_VCPUS_PER_DOMAIN],
    time_versions: [core::sync::atomic::AtomicU32; MAX_VCPUS_PER_DOMAIN],
}

// SAFETY: the nested address space is only touched by `build` (before the domain is
// shared) and by `Drop` (after the last reference is gone); everything else is atomic,
// locked, or plain data fixed at creation. Guest RAM is reached by raw copies only.
unsafe impl Sync for Domain {}
// SAFETY: see Sync; nothing in a Domain is tied to the CPU that created it.
unsafe impl Send for Domain {}

impl Domain {
    /// The scheduler's id of vCPU `index`.
    pub fn vcpu_id(&self, index: u32) -> VcpuId {
        self.vcpu_ids[index as usize]
    }

    /// The scheduler ids of all its vCPUs.
    pub fn vcpu_ids(&self) -> &[VcpuId] {
        &self.vcpu_ids[..self.vcpu_count as usize]
    }

    pub fn life(&self, index: u32) -> VcpuLife {
        match self.life[index as usize].load(Ordering::Acquire) {
            0 => VcpuLife::Down,
            1 => VcpuLife::Initialising,
            2 => VcpuLife::Initialised,
            _ => VcpuLife::Up,
        }
    }

    /// Moves vCPU `index` from `from` to `to`; false if it was not in `from`.
    pub fn change_life(&self, index: u32, from: VcpuLife, to: VcpuLife) -> bool {
        self.life[index as usize]
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn is_blocked(&self, index: u32) -> bool {
        self.blocked[index as usize].load(Ordering::Acquire) != Blocked::No as u8
    }

    pub fn set_blocked(&self, index: u32, blocked: Blocked) {
        self.blocked[index as usize].store(blocked as u8, Ordering::Release);
    }

    /// Unblocks vCPU `index` if it is blocked with a deadline (its timer fired);
    /// returns whether it was.
    pub fn timer_expired(&self, index: u32) -> bool {
        self.blocked[index as usize]
            .compare_exchange(
                Blocked::UntilDeadline as u8,
                Blocked::No as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    pub fn state(&self) -> DomainState {
        match self.state.load(Ordering::Acquire) {
            0 => DomainState::Running,
            1 => DomainState::Paused,
            _ => DomainState::Dying,
        }
    }

    pub fn is_dying(&self) -> bool {
        self.state() == DomainState::Dying
    }

    /// Running → Paused or back; false if the domain was not in `from` (e.g. dying).
    pub fn change_state(&self, from: DomainState, to: DomainState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the domain dying with `ending`; false if it already was (the first
    /// ending wins, as Xen keeps the first shutdown reason).
    pub fn begin_dying(&self, ending: Ending) -> bool {
        let previous = self.state.swap(DomainState::Dying as u8, Ordering::AcqRel);
        if previous == DomainState::Dying as u8 {
            return false;
        }
        self.ending.call_once(|| ending);
        true
    }

    /// How it ended, once it is dying.
    pub fn ending(&self) -> Option<Ending> {
        self.ending.get().copied()
    }

    /// Whether vCPU `index` should be on a run queue: up, not blocked, domain running.
    pub fn runnable(&self, index: u32) -> bool {
        self.state() == DomainState::Running
            && self.life(index) == VcpuLife::Up
            && !self.is_blocked(index)
    }

    /// Sets where vCPU `index` wants its `vcpu_time_info`.
    pub fn set_time_area(&self, index: u32, gva: u64) {
        self.time_areas[index as usize].store(gva, Ordering::Release);
    }

    /// Where vCPU `index` wants its `vcpu_time_info`, and the next (even) version to
    /// write there; `None` if it registered no area.
    pub fn next_time_record(&self, index: u32) -> Option<(u64, u32)> {
        let gva = self.time_areas[index as usize].load(Ordering::Acquire);
        (gva != 0).then(|| {
            let version = self.time_versions[index as usize].fetch_add(2, Ordering::AcqRel);
            (gva, version.wrapping_add(2))
        })
    }

    /// Whether no vCPU can ever run again: every vCPU that is up is blocked without a
    /// deadline (and nothing exists yet that could send it an event).
    pub fn all_blocked(&self) -> bool {
        (0..self.vcpu_count)
            .filter(|&i| self.life(i) == VcpuLife::Up)
            .all(|i| self.blocked[i as usize].load(Ordering::Acquire) == Blocked::UntilEvent as u8)
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.console.lock().flush();
        match self.space.take() {
            Some(NestedSpace::Ept(space)) => space.destroy(&mut HostTables),
            Some(NestedSpace::Npt(space)) => space.destroy(&mut HostTables),
            None => {}
        }
    }
}

/// Guest RAM when nothing says otherwise (test guests without a configuration).
pub const DEFAULT_RAM: u64 = 16 << 20;
/// The least RAM a domain may have: its image, start-info page and stack must fit.
const MIN_RAM: u64 = 1 << 20;

/// Maps every RAM block into a new nested address space (each block with the largest
/// pages its alignment allows). On failure the tables built so far are freed.
fn map_ram<F: ferrovisor::nested_paging::EntryFormat>(
    format: F,
    ram: &GuestRam,
) -> Result<AddressSpace<F>, BuildError> {
    let mut tables = HostTables;
    let oom = BuildError::OutOfMemory { bytes: 4096 };
    let mut space = AddressSpace::new(format, &mut tables).map_err(|_| oom)?;
    for block in ram.blocks() {
        if space
            .map(
                &mut tables,
                block.gpa,
                block.hpa,
                block.size(),
                Access::RWX,
                MemoryType::WriteBack,
            )
            .is_err()
        {
            space.destroy(&mut tables);
            return Err(BuildError::OutOfMemory { bytes: 4096 });
        }
    }
    Ok(space)
}

/// Why a domain could not be built.
#[derive(Debug)]
pub enum BuildError {
    Image(ferrovisor::pvh::PvhImageError),
    StartInfo(&'static str),
    OutOfMemory { bytes: u64 },
    Vcpus(&'static str),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "kernel image: {e}"),
            Self::StartInfo(e) => write!(f, "start info: {e}"),
            Self::OutOfMemory { bytes } => {
                write!(f, "needs {} KiB that are not free", bytes / 1024)
            }
            Self::Vcpus(e) => write!(f, "vCPUs: {e}"),
        }
    }
}

/// What a domain is built from.
pub struct BuildRequest<'a> {
    pub id: u16,
    pub name: &'a str,
    pub image: &'a [u8],
    pub cmdline: &'a str,
    pub memory_bytes: u64,
    pub vendor: Vendor,
    /// Scheduler ids for its vCPUs (one per vCPU, at most [`MAX_VCPUS_PER_DOMAIN`]).
    pub vcpu_ids: &'a [VcpuId],
}

impl Domain {
    /// Builds a domain from a PVH kernel image: RAM taken whole and zeroed, the image
    /// loaded, `hvm_start_info` written, nested page tables built. Returns it with the
    /// first vCPU's starting state (the PVH entry) and the nested mapping counts.
    pub fn build(
        request: &BuildRequest<'_>,
    ) -> Result<(Domain, VcpuInitState, MappingCounts), BuildError> {
        let memory_bytes = request.memory_bytes;
        if memory_bytes < MIN_RAM || !memory_bytes.is_multiple_of(4096) {
            return Err(BuildError::StartInfo(
                "memory must be a multiple of 4 KiB and at least 1 MiB",
            ));
        }
        let count = request.vcpu_ids.len();
        if count == 0 || count > MAX_VCPUS_PER_DOMAIN {
            return Err(BuildError::Vcpus("a domain has 1 to 16 vCPUs"));
        }
        let ram = GuestRam::allocate(memory_bytes).ok_or(BuildError::OutOfMemory {
            bytes: memory_bytes,
        })?;
        let mut vcpu_ids = [VcpuId(u32::MAX); MAX_VCPUS_PER_DOMAIN];
        vcpu_ids[..count].copy_from_slice(request.vcpu_ids);
        let id = request.id;
        let mut domain = Domain {
            id,
            name: ferrovisor_boot::BoundedStr::from_str_truncating(request.name),
            uuid: Uuid::random(),
            ram,
            space: None,
            nested_root: 0,
            vendor: request.vendor,
            console: spin::Mutex::new(GuestConsole {
                id,
                line: [0; 256],
                len: 0,
            }),
            cpuid_policy: CpuidPolicy {
                // Extended state is switched per vCPU (`fpu`), so XSAVE, AVX and
                // AVX-512 may be shown where the host has them.
                xsave: super::fpu::host_xcr0() != 0,
                avx512: super::fpu::host_xcr0() & super::fpu::XCR0_AVX512 != 0,
                ..CpuidPolicy::new(count as u32)
            },
            tsc_khz: (crate::time::tsc_hz() / 1000).min(u64::from(u32::MAX)) as u32,
            vcpu_count: count as u32,
            vcpu_ids,
            life: [const { AtomicU8::new(VcpuLife::Down as u8) }; MAX_VCPUS_PER_DOMAIN],
            blocked: [const { AtomicU8::new(Blocked::No as u8) }; MAX_VCPUS_PER_DOMAIN],
            state: AtomicU8::new(DomainState::Running as u8),
            ending: spin::Once::new(),
            time_areas: [const { core::sync::atomic::AtomicU64::new(0) }; MAX_VCPUS_PER_DOMAIN],
            time_versions: [const { core::sync::atomic::AtomicU32::new(0) }; MAX_VCPUS_PER_DOMAIN],
        };
        let size = domain.ram.size();
        let start_info_gpa = size - 4096;
        let image = request.image;
        let plan = plan_load(image, size, start_info_gpa).map_err(BuildError::Image)?;
        for segment in plan.segments() {
            let bytes =
                &image[segment.offset as usize..(segment.offset + segment.file_size) as usize];
            domain
                .ram
                .write(segment.paddr, bytes)
                .map_err(|_| BuildError::Image(ferrovisor::pvh::PvhImageError::NothingToLoad))?;
        }
        let layout = build_start_info(&StartInfoRequest {
            ram_end: size,
            reserved_start: start_info_gpa,
            cmdline: request.cmdline,
            modules: &[],
        })
        .map_err(BuildError::StartInfo)?;
        domain
            .ram
            .write(layout.gpa, &layout.page)
            .map_err(|_| BuildError::StartInfo("does not fit"))?;

        let gib = ferrovisor_arch::cpu::has_1gib_pages();
        let (root, counts, space) = match request.vendor {
            Vendor::Vmx => {
                let space = map_ram(Ept { gib_pages: gib }, &domain.ram)?;
                (space.root(), space.counts(), NestedSpace::Ept(space))
            }
            Vendor::Svm => {
                let space = map_ram(Npt { gib_pages: gib }, &domain.ram)?;
                (space.root(), space.counts(), NestedSpace::Npt(space))
            }
        };
        domain.space = Some(space);
        domain.nested_root = root;
        // The first vCPU starts at the PVH entry, up; the others wait for
        // VCPUOP_initialise and VCPUOP_up.
        domain.life[0].store(VcpuLife::Up as u8, Ordering::Release);
        let entry = VcpuInitState::pvh_entry(plan.entry, layout.gpa as u32);
        Ok((domain, entry, counts))
    }
}
/// A domain's console: output is buffered per line and printed as `(dN) text`.
pub struct GuestConsole {
    id: u16,
    /// Output not yet ended by a newline.
    line: [u8; 256],
    len: usize,
}

impl GuestConsole {
    /// Buffers console output and prints complete lines as `(dN) text`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' || self.len == self.line.len() {
                self.flush();
                if byte == b'\n' {
                    continue;
                }
            }
            // Keep the hypervisor's log readable: control characters become '?'.
            self.line[self.len] = if byte.is_ascii_graphic() || byte == b' ' {
                byte
            } else {
                b'?'
            };
            self.len += 1;
        }
    }

    /// Prints a pending partial line.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        let text = core::str::from_utf8(&self.line[..self.len]).unwrap_or("?");
        ferrovisor_drivers::console_print!("(d{}) {text}\n", self.id);
        self.len = 0;
    }
}
