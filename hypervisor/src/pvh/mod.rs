//! Loading PVH guests: validating a kernel image (an ELF with the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note), planning where its segments go in guest-physical
//! memory, and laying out `hvm_start_info` (Xen's `arch-x86/hvm/start_info.h`, version 1:
//! memory map, command line, modules) for the guest to find in EBX.
//!
//! Everything here is pure: the image is a byte slice copied from a boot module, the
//! result is a plan of copies and zero-fills that the domain builder applies to guest
//! memory. A module that is not a valid PVH ELF is refused with the reason.

mod elf;
mod start_info;

pub use elf::{LoadPlan, PvhImageError, Segment, plan_load};
pub use start_info::{
    E820_RAM, E820_RESERVED, StartInfoLayout, StartInfoRequest, build_start_info,
};
