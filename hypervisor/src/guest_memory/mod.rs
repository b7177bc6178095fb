//! Copying to and from guest memory, safely.
//!
//! The hypervisor never trusts guest memory and never forms a Rust reference into it: it
//! *copies in, validates, then acts*. Everything here works on copies:
//!
//! - [`GuestMemory`] is a guest's physical memory as the hypervisor sees it: byte copies at
//!   guest-physical addresses (GPAs), failing with [`GuestMemoryError`] when any byte is
//!   not guest RAM. The real implementation (a later issue) maps the guest's frames through
//!   the direct map; [`SparseGuestMemory`] is a pure implementation over caller-provided
//!   buffers with holes, used by the tests.
//! - [`GuestAbi`] types (the `#[repr(C)]` structs of [`crate::xen`]) are
//!   decoded from and encoded to little-endian bytes field by field, so reading a structure
//!   is a byte copy followed by a decode, with no `unsafe` and no alignment assumption.
//! - [`paging`] walks the guest's own page tables, because hypercall arguments are
//!   guest-*virtual* pointers.
//!
//! # Copy semantics
//!
//! [`GuestMemory::read`] is all or nothing: an implementation checks the whole range
//! before copying, so on error the destination buffer is unchanged and no partial guest
//! data is visible. [`GuestMemory::write`] likewise modifies nothing when it fails.
//! Zero-length accesses succeed at any address without touching memory (as Xen's
//! `copy_from_guest` with a count of 0 does). Ranges whose end would pass 2^64 are
//! rejected as [`GuestMemoryError::Overflow`] before anything else, so the last byte of
//! the 64-bit space is never addressable.
//!
//! Every error maps to the errno a hypercall returns ([`GuestMemoryError::errno`]): an
//! inaccessible guest buffer is `-EFAULT`, as in Xen.

pub mod abi;
pub mod paging;
pub mod sparse;

pub use abi::{ByteArray, GuestAbi};
pub use sparse::{RegionError, SparseGuestMemory};

use crate::xen::XenErrno;

/// Size of a guest page: the granularity in which guest RAM exists.
pub const GUEST_PAGE_SIZE: u64 = 4096;

/// Why a guest memory access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMemoryError {
    /// The byte at `gpa` (the first one found) is not guest RAM: a hole, MMIO, or beyond
    /// the end of memory.
    NotRam {
        /// The first inaccessible guest-physical address.
        gpa: u64,
    },
    /// `gpa + len` overflows the 64-bit address space.
    Overflow {
        /// Start of the rejected range.
        gpa: u64,
        /// Length of the rejected range.
        len: u64,
    },
    /// A string had no NUL terminator within the allowed length.
    Unterminated {
        /// The bound that was reached.
        max_len: usize,
    },
}

impl GuestMemoryError {
    /// The Xen errno a hypercall reports for this failure: `EFAULT` for memory that cannot
    /// be accessed (Xen's `copy_from_guest` failures), `EINVAL` for an over-long string
    /// (the argument itself is malformed, the memory is fine).
    pub const fn errno(self) -> XenErrno {
        match self {
            Self::NotRam { .. } | Self::Overflow { .. } => XenErrno::EFAULT,
            Self::Unterminated { .. } => XenErrno::EINVAL,
        }
    }
}

/// A guest-physical byte range `[start, start + len)` whose end is known not to overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRange {
    start: u64,
    len: u64,
}

impl GuestRange {
    /// The range of `len` bytes at `start`; [`GuestMemoryError::Overflow`] if
    /// `start + len` does not fit in 64 bits.
    pub const fn new(start: u64, len: u64) -> Result<Self, GuestMemoryError> {
        match start.checked_add(len) {
            Some(_) => Ok(Self { start, len }),
            None => Err(GuestMemoryError::Overflow { gpa: start, len }),
        }
    }

    /// [`Self::new`] for a buffer length.
    pub fn for_buf(start: u64, len: usize) -> Result<Self, GuestMemoryError> {
        // usize is at most 64 bits on every target this builds for.
        Self::new(start, len as u64)
    }

    /// First address.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last address (cannot overflow: checked on construction).
    pub const fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Whether `other` lies entirely within `self` (an empty range lies within any range
    /// that contains its start, or ends at it).
    pub const fn contains_range(&self, other: &GuestRange) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    /// The pieces of the range split at guest page boundaries, in ascending order, as
    /// `(start, len)`; nothing for an empty range.
    pub fn page_chunks(&self) -> PageChunks {
        PageChunks {
            next: self.start,
            end: self.end(),
        }
    }
}

/// Iterator returned by [`GuestRange::page_chunks`].
#[derive(Debug, Clone)]
pub struct PageChunks {
    next: u64,
    end: u64,
}

impl Iterator for PageChunks {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.next >= self.end {
            return None;
        }
        let to_boundary = GUEST_PAGE_SIZE - (self.next % GUEST_PAGE_SIZE);
        let len = to_boundary.min(self.end - self.next);
        let chunk = (self.next, len);
        self.next += len;
        Some(chunk)
    }
}

/// A guest's physical memory as the hypervisor sees it.
///
/// Guest RAM exists in whole [`GUEST_PAGE_SIZE`] frames: an implementation never reports
/// part of a page as RAM and the rest as a hole. The helpers in [`GuestMemoryExt`] rely on
/// that (they read strings a page at a time).
pub trait GuestMemory {
    /// Copies guest-physical `[gpa, gpa + buf.len())` into `buf`.
    ///
    /// Fails if any byte is outside guest RAM or the range overflows; then `buf` is
    /// unchanged. A zero-length read succeeds.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), GuestMemoryError>;

    /// Copies `buf` to guest-physical `[gpa, gpa + buf.len())`.
    ///
    /// Fails if any byte is outside guest RAM or the range overflows; then guest memory is
    /// unchanged. A zero-length write succeeds.
    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), GuestMemoryError>;
}

/// Typed and string helpers over any [`GuestMemory`].
pub trait GuestMemoryExt: GuestMemory {
    /// Reads a `T` at `gpa`: a byte copy of `size_of::<T>()` bytes, then a field-by-field
    /// decode. Any alignment is accepted (guests may pass unaligned structures).
    fn read_obj<T: GuestAbi>(&self, gpa: u64) -> Result<T, GuestMemoryError> {
        let mut bytes = T::Bytes::zeroed();
        self.read(gpa, bytes.as_mut())?;
        Ok(T::from_bytes(&bytes))
    }

    /// Writes `obj` at `gpa`, encoded as its ABI bytes (padding written as zero).
    fn write_obj<T: GuestAbi>(&mut self, gpa: u64, obj: &T) -> Result<(), GuestMemoryError> {
        self.write(gpa, obj.to_bytes().as_ref())
    }

    /// Reads a NUL-terminated string at `gpa` into `buf` and returns its length (without
    /// the NUL). The string plus its NUL must fit in `buf`; otherwise the result is
    /// [`GuestMemoryError::Unterminated`]. Reads stop at the NUL, a page at a time, so a
    /// string that ends just before a hole is read successfully.
    ///
    /// On error `buf` is zero-filled, so no partial string is visible.
    fn read_cstring_bounded(&self, gpa: u64, buf: &mut [u8]) -> Result<usize, GuestMemoryError> {
        let result = read_cstring_pages(self, gpa, buf);
        if result.is_err() {
            buf.fill(0);
        }
        result
    }
}

/// The page-at-a-time loop of [`GuestMemoryExt::read_cstring_bounded`].
fn read_cstring_pages<M: GuestMemory + ?Sized>(
    mem: &M,
    gpa: u64,
    buf: &mut [u8],
) -> Result<usize, GuestMemoryError> {
    // The whole window must be addressable without overflow; a guest cannot make the walk
    // wrap around the address space.
    let window = GuestRange::for_buf(gpa, buf.len())?;
    let mut filled = 0usize;
    for (chunk_gpa, chunk_len) in window.page_chunks() {
        // chunk_len <= GUEST_PAGE_SIZE, so the cast cannot truncate.
        let chunk = &mut buf[filled..filled + chunk_len as usize];
        mem.read(chunk_gpa, chunk)?;
        if let Some(nul) = chunk.iter().position(|&b| b == 0) {
            return Ok(filled + nul);
        }
        filled += chunk.len();
    }
    Err(GuestMemoryError::Unterminated { max_len: buf.len() })
}

impl<M: GuestMemory + ?Sized> GuestMemoryExt for M {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_overflow_is_rejected() {
        assert_eq!(
            GuestRange::new(u64::MAX, 1),
            Err(GuestMemoryError::Overflow {
                gpa: u64::MAX,
                len: 1
            })
        );
        assert_eq!(
            GuestRange::new(u64::MAX - 7, 16),
            Err(GuestMemoryError::Overflow {
                gpa: u64::MAX - 7,
                len: 16
            })
        );
        let r = GuestRange::new(u64::MAX - 15, 15).unwrap();
        assert_eq!(r.end(), u64::MAX);
        assert!(GuestRange::new(u64::MAX, 0).unwrap().is_empty());
    }

    #[test]
    fn page_chunks_split_at_boundaries() {
        let r = GuestRange::new(0xFF0, 0x2020).unwrap();
        let chunks: Vec<_> = r.page_chunks().collect();
        assert_eq!(
            chunks,
            vec![
                (0xFF0, 0x10),
                (0x1000, 0x1000),
                (0x2000, 0x1000),
                (0x3000, 0x10)
            ]
        );
        assert_eq!(GuestRange::new(0x5000, 0).unwrap().page_chunks().count(), 0);
        let near_top = GuestRange::new(u64::MAX - 0x1FFF, 0x1000).unwrap();
        assert_eq!(
            near_top.page_chunks().collect::<Vec<_>>(),
            vec![(u64::MAX - 0x1FFF, 0x1000)]
        );
    }

    #[test]
    fn contains_range() {
        let outer = GuestRange::new(0x1000, 0x1000).unwrap();
        assert!(outer.contains_range(&GuestRange::new(0x1000, 0x1000).unwrap()));
        assert!(outer.contains_range(&GuestRange::new(0x1800, 0).unwrap()));
        assert!(!outer.contains_range(&GuestRange::new(0xFFF, 2).unwrap()));
        assert!(!outer.contains_range(&GuestRange::new(0x1FFF, 2).unwrap()));
    }

    #[test]
    fn errors_map_to_xen_errnos() {
        assert_eq!(
            GuestMemoryError::NotRam { gpa: 0 }.errno(),
            XenErrno::EFAULT
        );
        assert_eq!(
            GuestMemoryError::Overflow { gpa: 0, len: 0 }.errno(),
            XenErrno::EFAULT
        );
        assert_eq!(GuestMemoryError::NotRam { gpa: 0 }.errno().as_return(), -14);
        assert_eq!(
            GuestMemoryError::Unterminated { max_len: 1 }.errno(),
            XenErrno::EINVAL
        );
    }
}
