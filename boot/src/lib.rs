#![cfg_attr(not(test), no_std)]
//! Boot protocols parsed into one vendor-neutral [`BootInfo`].
//!
//! Ferrovisor can be started three ways: Multiboot 0.6.96 (QEMU `-kernel`,
//! GRUB `multiboot`), Multiboot2 1.6 (GRUB `multiboot2`) and Xen's PVH
//! direct boot (QEMU `-kernel` via the PVH ELF note, microvm, Xen). The
//! 32-bit entry code records which entry point ran plus EAX and EBX and
//! then calls [`parse_into`] (or [`parse`]), which reads the loader's
//! structures through a [`PhysMemory`] and copies everything the kernel
//! needs into a fixed-size [`BootInfo`] (no heap: this runs before there is
//! one).
//!
//! Nothing from the boot loader is trusted: every pointer and length is
//! bounds-checked through [`PhysMemory`], and a malformed structure yields
//! a [`BootError`] naming what is wrong and where, never a panic.
//!
//! The command line is interpreted separately by [`cmdline::Options`].

/// The 32-bit entry path and boot headers (bare metal only).
#[cfg(target_os = "none")]
pub mod entry;

mod bounded;
pub mod cmdline;
mod info;
mod mb2;
pub mod memory_map;
mod multiboot1;
mod phys;
mod pvh;
#[cfg(test)]
mod test_mem;

pub use bounded::{BoundedStr, BoundedVec, CapacityError};
pub use info::{
    BOOTLOADER_NAME_CAPACITY, BootError, BootInfo, BootProtocol, CMDLINE_CAPACITY,
    MAX_BOOT_STRUCTURES, MAX_MEMORY_REGIONS, MAX_MODULES, MODULE_CMDLINE_CAPACITY, MemoryKind,
    MemoryRegion, Module, PhysRange,
};
pub use phys::{MAX_CSTR_LEN, PhysMemory};

/// EAX at the multiboot entry for a Multiboot 0.6.96 loader (§3.2 "Machine state").
pub const MULTIBOOT1_MAGIC: u32 = 0x2BAD_B002;
/// EAX at the multiboot entry for a Multiboot2 1.6 loader ("I386 machine state").
pub const MULTIBOOT2_MAGIC: u32 = 0x36D7_6289;
/// `hvm_start_info.magic` (Xen `XEN_HVM_START_MAGIC_VALUE`, `start_info.h`).
pub const PVH_START_INFO_MAGIC: u32 = 0x336E_C578;

/// Which ELF entry point ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPath {
    /// The multiboot entry, shared by multiboot1 and multiboot2; EAX tells
    /// them apart.
    Multiboot,
    /// The PVH ELF note's entry (`XEN_ELFNOTE_PHYS32_ENTRY`). EBX points at
    /// `hvm_start_info`; EAX is meaningless here (QEMU's microvm happens to
    /// pass the multiboot1 magic).
    Pvh,
}

/// Parses the boot loader's description of the machine.
///
/// `eax` and `ebx` are the register values at entry; `mem` gives access to
/// the physical memory EBX points into.
///
/// # Errors
///
/// A [`BootError`] if EAX holds no known magic, the loader passed no memory
/// map, or any structure is unreadable, malformed or exceeds a capacity.
///
/// [`BootInfo`] is about 14 KiB and returning it by value costs copies: on
/// the host this call peaks at roughly 30 KiB of stack in release builds and
/// 55 KiB in debug builds, against under 16 KiB for [`parse_into`]. On the
/// early boot stack prefer [`parse_into`] with a `BootInfo` in `.bss`.
pub fn parse(
    entry: EntryPath,
    eax: u32,
    ebx: u32,
    mem: &impl PhysMemory,
) -> Result<BootInfo, BootError> {
    let mut info = BootInfo::empty(BootProtocol::Multiboot1);
    parse_into(entry, eax, ebx, mem, &mut info)?;
    Ok(info)
}

/// Like [`parse`], but fills `out` in place, so no `BootInfo`-sized
/// temporaries are needed.
///
/// # Errors
///
/// As for [`parse`]. On error `out` holds a partial, meaningless result.
pub fn parse_into(
    entry: EntryPath,
    eax: u32,
    ebx: u32,
    mem: &impl PhysMemory,
    out: &mut BootInfo,
) -> Result<(), BootError> {
    let paddr = u64::from(ebx);
    match entry {
        EntryPath::Multiboot => match eax {
            MULTIBOOT1_MAGIC => {
                check_pointer(paddr, "multiboot1 information block")?;
                multiboot1::parse(paddr, mem, out)?;
            }
            MULTIBOOT2_MAGIC => {
                check_pointer(paddr, "multiboot2 boot information")?;
                mb2::parse(paddr, mem, out)?;
            }
            magic => return Err(BootError::UnknownMagic { magic }),
        },
        EntryPath::Pvh => {
            check_pointer(paddr, "PVH hvm_start_info")?;
            pvh::parse(paddr, mem, out)?;
        }
    }
    log::debug!(
        "boot: {} with {} memory map entries, {} modules",
        out.protocol,
        out.memory_map.len(),
        out.modules.len()
    );
    Ok(())
}

/// A null EBX means the loader passed no structure at all; say so instead
/// of parsing whatever happens to live at physical address 0.
fn check_pointer(paddr: u64, what: &'static str) -> Result<(), BootError> {
    if paddr == 0 {
        return Err(BootError::Malformed {
            what,
            paddr,
            detail: "EBX is a null pointer",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_mem::TestMem;

    #[test]
    fn unknown_magic() {
        let err = parse(EntryPath::Multiboot, 0xdead_beef, 0x9000, &TestMem::new()).unwrap_err();
        assert_eq!(err, BootError::UnknownMagic { magic: 0xdead_beef });
        assert!(err.to_string().contains("unknown boot magic 0xdeadbeef"));
        // The PVH start_info magic is not an EAX value.
        assert!(matches!(
            parse(
                EntryPath::Multiboot,
                PVH_START_INFO_MAGIC,
                0x9000,
                &TestMem::new()
            ),
            Err(BootError::UnknownMagic { .. })
        ));
    }

    #[test]
    fn null_ebx() {
        for (entry, eax) in [
            (EntryPath::Multiboot, MULTIBOOT1_MAGIC),
            (EntryPath::Multiboot, MULTIBOOT2_MAGIC),
            (EntryPath::Pvh, 0),
        ] {
            assert!(matches!(
                parse(entry, eax, 0, &TestMem::new()),
                Err(BootError::Malformed {
                    paddr: 0,
                    detail: "EBX is a null pointer",
                    ..
                })
            ));
        }
    }
}
