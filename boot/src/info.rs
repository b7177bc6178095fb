//! The vendor-neutral boot description and its error type.

use core::fmt;

use crate::bounded::{BoundedStr, BoundedVec};

/// Maximum number of memory map entries, before and after normalisation.
pub const MAX_MEMORY_REGIONS: usize = 128;
/// Maximum number of boot modules.
pub const MAX_MODULES: usize = 32;
/// Maximum number of recorded boot-structure ranges.
pub const MAX_BOOT_STRUCTURES: usize = 64;
/// Capacity of the kernel command line, in bytes.
pub const CMDLINE_CAPACITY: usize = 1024;
/// Capacity of a module's command line, in bytes.
pub const MODULE_CMDLINE_CAPACITY: usize = 256;
/// Capacity of the boot loader name, in bytes.
pub const BOOTLOADER_NAME_CAPACITY: usize = 64;

/// The protocol the boot loader used to start us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootProtocol {
    /// Multiboot 0.6.96 (GRUB `multiboot`, QEMU `-kernel` on a multiboot image).
    Multiboot1,
    /// Multiboot2 1.6 (GRUB `multiboot2`).
    Multiboot2,
    /// Xen's PVH direct boot (QEMU `-kernel` on a PVH ELF note, microvm, Xen).
    Pvh,
}

impl fmt::Display for BootProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Multiboot1 => "multiboot1",
            Self::Multiboot2 => "multiboot2",
            Self::Pvh => "pvh",
        })
    }
}

/// What a range of physical memory is, using the e820 vocabulary that all
/// three protocols share (Multiboot 0.6.96 §3.3, Multiboot2 1.6 §3.6.8 and
/// Xen's `XEN_HVM_MEMMAP_TYPE_*` all use the e820 type codes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// e820 type 1: RAM free for the OS.
    Usable,
    /// e820 type 2: must not be touched.
    #[default]
    Reserved,
    /// e820 type 3: ACPI tables; usable once they have been consumed.
    AcpiReclaimable,
    /// e820 type 4: ACPI non-volatile storage; must be preserved.
    AcpiNvs,
    /// e820 type 5: defective RAM.
    Defective,
    /// Any other type code (e.g. 7, persistent memory); never used as RAM.
    Other(u32),
}

impl MemoryKind {
    /// Maps an e820 / multiboot / PVH memory type code.
    #[must_use]
    pub const fn from_e820(code: u32) -> Self {
        match code {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Defective,
            other => Self::Other(other),
        }
    }

    /// Whether this is RAM (counted by [`BootInfo::ram_bytes`]).
    #[must_use]
    pub const fn is_ram(self) -> bool {
        matches!(self, Self::Usable | Self::AcpiReclaimable | Self::AcpiNvs)
    }
}

/// One entry of the (normalised) physical memory map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the memory is.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    /// One past the last byte. Parsers reject regions whose end would not
    /// fit in 64 bits, so this does not wrap for regions in a [`BootInfo`].
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.start.wrapping_add(self.len)
    }
}

/// A half-open range `[start, end)` of physical memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PhysRange {
    /// Length in bytes.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether `other` lies entirely inside `self`.
    #[must_use]
    pub const fn contains_range(&self, other: &PhysRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// A boot module (initrd, guest kernel, ...) loaded by the boot loader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// First byte of the module.
    pub start: u64,
    /// One past the last byte of the module.
    pub end: u64,
    /// The module's command line as given by the loader: conventionally its
    /// file name followed by arguments.
    pub cmdline: BoundedStr<MODULE_CMDLINE_CAPACITY>,
}

impl Module {
    /// The first whitespace-separated word of the command line (the file
    /// name, by GRUB's and QEMU's convention), or `""`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.cmdline.split_whitespace().next().unwrap_or("")
    }

    /// Everything after the name, trimmed.
    #[must_use]
    pub fn args(&self) -> &str {
        let s = self.cmdline.trim_start();
        match s.find(char::is_whitespace) {
            Some(i) => s[i..].trim(),
            None => "",
        }
    }

    /// Size in bytes.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the module is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The memory the module occupies.
    #[must_use]
    pub const fn range(&self) -> PhysRange {
        PhysRange {
            start: self.start,
            end: self.end,
        }
    }
}

/// Everything the kernel needs from the boot loader, independent of the
/// protocol used. All data is copied out of the loader's structures, so they
/// may be overwritten once parsing is done (but see `boot_structures`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// How we were booted.
    pub protocol: BootProtocol,
    /// Physical memory map: sorted, non-overlapping, no empty entries,
    /// adjacent entries of the same kind merged (see [`crate::memory_map`]).
    pub memory_map: BoundedVec<MemoryRegion, MAX_MEMORY_REGIONS>,
    /// The kernel command line (possibly prefixed by the image path; see
    /// [`crate::cmdline::Options::parse`]).
    pub cmdline: BoundedStr<CMDLINE_CAPACITY>,
    /// Boot modules, in the loader's order.
    pub modules: BoundedVec<Module, MAX_MODULES>,
    /// Physical address of an ACPI RSDP, unvalidated: the ACPI code must
    /// check its signature and checksum. For multiboot2 this is the copy
    /// inside the info structure's ACPI tag (v2 preferred over v1).
    pub rsdp: Option<u64>,
    /// The boot loader's name, if it gave one (multiboot1/2 only).
    pub bootloader: Option<BoundedStr<BOOTLOADER_NAME_CAPACITY>>,
    /// Byte ranges occupied by the loader's own structures (info block,
    /// memory map array, module list, strings, `start_info`, ...), with
    /// overlapping or touching ranges merged. Module *contents* are not
    /// listed here; see [`BootInfo::occupied_ranges`].
    pub boot_structures: BoundedVec<PhysRange, MAX_BOOT_STRUCTURES>,
}

impl BootInfo {
    /// An empty description for `protocol`. `const` so the kernel can keep
    /// its `BootInfo` in a static rather than on the early boot stack.
    #[must_use]
    pub const fn empty(protocol: BootProtocol) -> Self {
        Self {
            protocol,
            memory_map: BoundedVec::filled(MemoryRegion {
                start: 0,
                len: 0,
                kind: MemoryKind::Usable,
            }),
            cmdline: BoundedStr::new(),
            modules: BoundedVec::filled(Module {
                start: 0,
                end: 0,
                cmdline: BoundedStr::new(),
            }),
            rsdp: None,
            bootloader: None,
            boot_structures: BoundedVec::filled(PhysRange { start: 0, end: 0 }),
        }
    }

    /// Empties `self` in place for `protocol`. Unlike `*self =
    /// BootInfo::empty(..)` this builds no 14 KiB temporary on the stack.
    pub(crate) fn reset(&mut self, protocol: BootProtocol) {
        self.protocol = protocol;
        self.memory_map.clear();
        self.cmdline.clear();
        self.modules.clear();
        self.rsdp = None;
        self.bootloader = None;
        self.boot_structures.clear();
    }

    /// Bytes of RAM: usable, ACPI reclaimable and ACPI NVS regions.
    #[must_use]
    pub fn ram_bytes(&self) -> u64 {
        self.memory_map
            .iter()
            .filter(|r| r.kind.is_ram())
            .fold(0u64, |acc, r| acc.saturating_add(r.len))
    }

    /// Bytes of usable RAM.
    #[must_use]
    pub fn usable_bytes(&self) -> u64 {
        self.memory_map
            .iter()
            .filter(|r| r.kind == MemoryKind::Usable)
            .fold(0u64, |acc, r| acc.saturating_add(r.len))
    }

    /// Every range the frame allocator must keep away from while the boot
    /// data is still needed: the loader's structures and the modules.
    pub fn occupied_ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.boot_structures
            .iter()
            .copied()
            .chain(self.modules.iter().map(Module::range))
    }

    /// Records that the loader's structures occupy `[start, start + len)`,
    /// merging with an overlapping or touching range already recorded.
    pub(crate) fn add_structure(&mut self, start: u64, len: u64) -> Result<(), BootError> {
        if len == 0 {
            return Ok(());
        }
        let new = PhysRange {
            start,
            end: start.saturating_add(len),
        };
        for r in self.boot_structures.as_mut_slice() {
            if new.start <= r.end && r.start <= new.end {
                r.start = r.start.min(new.start);
                r.end = r.end.max(new.end);
                return Ok(());
            }
        }
        self.boot_structures
            .push(new)
            .map_err(|_| BootError::TooMany {
                what: "boot loader structures",
                limit: MAX_BOOT_STRUCTURES,
            })
    }

    /// Appends a module, failing if there are more than [`MAX_MODULES`].
    pub(crate) fn add_module(&mut self, module: Module) -> Result<(), BootError> {
        self.modules.push(module).map_err(|_| BootError::TooMany {
            what: "boot modules",
            limit: MAX_MODULES,
        })
    }
}

/// Why the boot description could not be parsed.
///
/// Every variant renders (via `Display`) as one line meant for whoever
/// configured the boot loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The multiboot entry point ran with an EAX that is no known magic.
    UnknownMagic {
        /// The value of EAX.
        magic: u32,
    },
    /// The PVH entry point ran but `hvm_start_info.magic` is wrong.
    BadStartInfoMagic {
        /// Where `hvm_start_info` was expected (EBX).
        paddr: u64,
        /// The magic found there.
        magic: u32,
    },
    /// The loader gave no (or an empty) memory map. We never guess one from
    /// legacy fields such as `mem_lower`/`mem_upper`.
    NoMemoryMap {
        /// The protocol in use.
        protocol: BootProtocol,
    },
    /// A structure the loader pointed at is not in readable memory.
    Unreadable {
        /// Which structure.
        what: &'static str,
        /// Its physical address.
        paddr: u64,
        /// How many bytes were needed.
        len: usize,
    },
    /// A structure is inconsistent.
    Malformed {
        /// Which structure.
        what: &'static str,
        /// Its physical address.
        paddr: u64,
        /// What is wrong with it.
        detail: &'static str,
    },
    /// More items than the fixed capacity allows.
    TooMany {
        /// Which items.
        what: &'static str,
        /// The capacity.
        limit: usize,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownMagic { magic } => write!(
                f,
                "unknown boot magic {magic:#010x} in EAX (expected multiboot1 {:#010x}, \
                 multiboot2 {:#010x}, or a PVH start_info with magic {:#010x})",
                crate::MULTIBOOT1_MAGIC,
                crate::MULTIBOOT2_MAGIC,
                crate::PVH_START_INFO_MAGIC,
            ),
            Self::BadStartInfoMagic { paddr, magic } => write!(
                f,
                "PVH entry: hvm_start_info at physical address {paddr:#x} has bad magic \
                 {magic:#010x} (expected {:#010x})",
                crate::PVH_START_INFO_MAGIC,
            ),
            Self::NoMemoryMap { protocol } => {
                write!(f, "the boot loader ({protocol}) passed no memory map")?;
                f.write_str(match protocol {
                    BootProtocol::Multiboot1 => " (multiboot info flags bit 6 clear or empty map)",
                    BootProtocol::Multiboot2 => " (no memory map tag, type 6, or it is empty)",
                    BootProtocol::Pvh => {
                        " (hvm_start_info version 0 has none, version >= 1 is required; or it is empty)"
                    }
                })
            }
            Self::Unreadable { what, paddr, len } => write!(
                f,
                "cannot read the {what}: {len} bytes at physical address {paddr:#x} are not accessible"
            ),
            Self::Malformed {
                what,
                paddr,
                detail,
            } => write!(
                f,
                "malformed {what} at physical address {paddr:#x}: {detail}"
            ),
            Self::TooMany { what, limit } => {
                write!(f, "too many {what}: at most {limit} are supported")
            }
        }
    }
}

impl core::error::Error for BootError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(cmdline: &str) -> Module {
        Module {
            start: 0x1000,
            end: 0x3000,
            cmdline: BoundedStr::from_str_truncating(cmdline),
        }
    }

    #[test]
    fn module_name_and_args() {
        let m = module("/boot/guest.elf  console=hvc0  quiet ");
        assert_eq!(m.name(), "/boot/guest.elf");
        assert_eq!(m.args(), "console=hvc0  quiet");
        assert_eq!(m.len(), 0x2000);
        let m = module("  initrd.img");
        assert_eq!(m.name(), "initrd.img");
        assert_eq!(m.args(), "");
        let m = module("");
        assert_eq!(m.name(), "");
        assert_eq!(m.args(), "");
    }

    #[test]
    fn memory_kind_codes() {
        assert_eq!(MemoryKind::from_e820(1), MemoryKind::Usable);
        assert_eq!(MemoryKind::from_e820(2), MemoryKind::Reserved);
        assert_eq!(MemoryKind::from_e820(3), MemoryKind::AcpiReclaimable);
        assert_eq!(MemoryKind::from_e820(4), MemoryKind::AcpiNvs);
        assert_eq!(MemoryKind::from_e820(5), MemoryKind::Defective);
        assert_eq!(MemoryKind::from_e820(7), MemoryKind::Other(7));
    }

    #[test]
    fn error_messages() {
        let e = BootError::UnknownMagic { magic: 0xdeadbeef };
        assert_eq!(
            e.to_string(),
            "unknown boot magic 0xdeadbeef in EAX (expected multiboot1 0x2badb002, \
             multiboot2 0x36d76289, or a PVH start_info with magic 0x336ec578)"
        );
        let e = BootError::UnknownMagic { magic: 0x12 };
        assert!(e.to_string().contains("unknown boot magic 0x00000012"));
        let e = BootError::NoMemoryMap {
            protocol: BootProtocol::Multiboot1,
        };
        assert!(
            e.to_string()
                .starts_with("the boot loader (multiboot1) passed no memory map")
        );
        let e = BootError::Malformed {
            what: "multiboot1 memory map",
            paddr: 0x9000,
            detail: "entry size field is smaller than 20 bytes",
        };
        assert_eq!(
            e.to_string(),
            "malformed multiboot1 memory map at physical address 0x9000: \
             entry size field is smaller than 20 bytes"
        );
        assert_eq!(BootProtocol::Pvh.to_string(), "pvh");
        assert_eq!(BootProtocol::Multiboot2.to_string(), "multiboot2");
    }

    #[test]
    fn empty_is_const() {
        static EMPTY: BootInfo = BootInfo::empty(BootProtocol::Pvh);
        assert!(EMPTY.memory_map.is_empty() && EMPTY.modules.is_empty());
        assert_eq!(EMPTY.ram_bytes(), 0);
        assert_eq!(EMPTY.occupied_ranges().count(), 0);
    }

    #[test]
    fn structures_merge() {
        let mut info = BootInfo::empty(BootProtocol::Pvh);
        info.add_structure(0x1000, 0x10).unwrap();
        info.add_structure(0x1010, 0x8).unwrap(); // touching
        info.add_structure(0x2000, 0x8).unwrap();
        info.add_structure(0x0ff8, 0x10).unwrap(); // overlapping
        info.add_structure(0x3000, 0).unwrap(); // empty: ignored
        assert_eq!(
            info.boot_structures.as_slice(),
            &[
                PhysRange {
                    start: 0x0ff8,
                    end: 0x1018
                },
                PhysRange {
                    start: 0x2000,
                    end: 0x2008
                }
            ]
        );
    }
}
