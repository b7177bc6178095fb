//! Building a domain from a PVH kernel module and running its vCPU to completion.
//!
//! This is the virtualization core's minimal domain: contiguous RAM taken whole at
//! creation and zeroed, mapped into nested page tables with the largest pages
//! alignment allows, the kernel's segments copied in, `hvm_start_info` in the top
//! page, one vCPU at the PVH entry. Domains with several vCPUs, lifecycles and
//! configuration files build on this.

use ferrovisor::guest_memory::{GuestMemory, GuestMemoryError};
use ferrovisor::nested_paging::{Access, AddressSpace, Ept, MappingCounts, MemoryType, Npt};
use ferrovisor::pvh::{StartInfoRequest, build_start_info, plan_load};
use ferrovisor::vcpu::Exit;
use log::{info, warn};

use super::exits::{self, Outcome};
use super::{HostTables, VcpuBackend, VcpuConfig, Vendor};
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
        let source = buf.as_ptr();
        self.pieces(gpa, buf.len(), |target, offset, len| {
            // SAFETY: as in `read`, with the copy going the other way.
            unsafe {
                core::ptr::copy_nonoverlapping(source.wrapping_add(offset), target as *mut u8, len)
            };
        })
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

/// A running domain.
pub struct Domain {
    pub id: u16,
    pub name: ferrovisor_boot::BoundedStr<64>,
    pub ram: GuestRam,
    space: Option<NestedSpace>,
    pub console: GuestConsole,
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

impl Drop for Domain {
    fn drop(&mut self) {
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
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "kernel image: {e}"),
            Self::StartInfo(e) => write!(f, "start info: {e}"),
            Self::OutOfMemory { bytes } => {
                write!(f, "needs {} KiB that are not free", bytes / 1024)
            }
        }
    }
}

impl Domain {
    /// Builds a domain from a PVH kernel image; returns it with its vCPU configuration.
    pub fn build(
        id: u16,
        name: &str,
        image: &[u8],
        cmdline: &str,
        vendor: Vendor,
        memory_bytes: u64,
    ) -> Result<(Domain, VcpuConfig, MappingCounts), BuildError> {
        if memory_bytes < MIN_RAM || !memory_bytes.is_multiple_of(4096) {
            return Err(BuildError::StartInfo(
                "memory must be a multiple of 4 KiB and at least 1 MiB",
            ));
        }
        let ram = GuestRam::allocate(memory_bytes).ok_or(BuildError::OutOfMemory {
            bytes: memory_bytes,
        })?;
        let name = ferrovisor_boot::BoundedStr::from_str_truncating(name);
        let mut domain = Domain {
            id,
            name,
            ram,
            space: None,
            console: GuestConsole {
                id,
                line: [0; 256],
                len: 0,
            },
        };
        let size = domain.ram.size();
        let start_info_gpa = size - 4096;
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
            cmdline,
            modules: &[],
        })
        .map_err(BuildError::StartInfo)?;
        domain
            .ram
            .write(layout.gpa, &layout.page)
            .map_err(|_| BuildError::StartInfo("does not fit"))?;

        let gib = ferrovisor_arch::cpu::has_1gib_pages();
        let (root, counts, space) = match vendor {
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
        let config = VcpuConfig {
            nested_root: root,
            tag: id.max(1),
            entry: plan.entry,
            ebx: layout.gpa as u32,
        };
        Ok((domain, config, counts))
    }
}

/// How a domain's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `SCHEDOP_shutdown` with this reason.
    Shutdown(u32),
    /// Crashed by the hypervisor (reason logged).
    Crashed,
}

/// Runs a domain's vCPU until it shuts down or is crashed.
pub fn run(domain: &mut Domain, vcpu: &mut impl VcpuBackend, vendor: Vendor) -> Ending {
    loop {
        x86_64::instructions::interrupts::disable();
        let exit = vcpu.run();
        // A host interrupt that caused the exit is delivered here.
        x86_64::instructions::interrupts::enable();
        if exit == Exit::ExternalInterrupt {
            continue;
        }
        match exits::handle(domain, vcpu, exit, vendor) {
            Outcome::Continue => {}
            Outcome::Shutdown(reason) => {
                domain.console.flush();
                info!(
                    "domain {} ({}): shutdown, reason {reason}",
                    domain.id,
                    domain.name.as_str()
                );
                return Ending::Shutdown(reason);
            }
            Outcome::Crash(why) => {
                domain.console.flush();
                warn!(
                    "domain {} ({}): crashed: {why} at rip {:#x}",
                    domain.id,
                    domain.name.as_str(),
                    vcpu.rip()
                );
                let r = *vcpu.regs();
                warn!(
                    "domain {}: rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x} rbp={:#x}",
                    domain.id, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp
                );
                return Ending::Crashed;
            }
        }
    }
}
