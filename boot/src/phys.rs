//! Bounds-checked reads of boot-loader memory.

use crate::bounded::BoundedStr;
use crate::info::{BootError, BootInfo};

/// How the parsers read boot-loader memory by physical address.
///
/// In the kernel this is backed by the early identity map of 0..4 GiB; in
/// tests by synthetic memory. Parsers never touch memory any other way.
pub trait PhysMemory {
    /// The `len` bytes starting at physical address `paddr`, or `None` if
    /// any of them is not readable (including when the range wraps).
    fn bytes(&self, paddr: u64, len: usize) -> Option<&[u8]>;
}

/// Longest C string we look for a NUL in. Command lines are limited to a
/// few hundred bytes by every loader we know; a missing terminator within
/// this bound means the pointer is bogus.
pub const MAX_CSTR_LEN: usize = 4096;

/// Reads `len` bytes at `paddr`, naming `what` if they are not readable.
pub(crate) fn read<'m, M: PhysMemory + ?Sized>(
    mem: &'m M,
    what: &'static str,
    paddr: u64,
    len: usize,
) -> Result<&'m [u8], BootError> {
    let unreadable = BootError::Unreadable { what, paddr, len };
    // A range that wraps past 2^64 can only come from a corrupt pointer.
    paddr.checked_add(len as u64).ok_or(unreadable)?;
    match mem.bytes(paddr, len) {
        Some(b) if b.len() == len => Ok(b),
        _ => Err(unreadable),
    }
}

/// Little-endian `u32` at `off` in `b`; callers have checked the length.
pub(crate) fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0; 4];
    if let Some(s) = b.get(off..off + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// Little-endian `u64` at `off` in `b`; callers have checked the length.
pub(crate) fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0; 8];
    if let Some(s) = b.get(off..off + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// The bytes of the NUL-terminated string in `b`, without the NUL, or
/// `None` if there is no NUL.
pub(crate) fn until_nul(b: &[u8]) -> Option<&[u8]> {
    b.iter().position(|&c| c == 0).map(|n| &b[..n])
}

/// Reads the NUL-terminated string at `paddr` (at most [`MAX_CSTR_LEN`]
/// bytes including the NUL).
///
/// Returns the string's bytes without the NUL; the string occupies
/// `returned.len() + 1` bytes at `paddr`.
pub(crate) fn read_cstr<'m, M: PhysMemory + ?Sized>(
    mem: &'m M,
    what: &'static str,
    paddr: u64,
) -> Result<&'m [u8], BootError> {
    // Fast path: the whole window is readable (always the case with the
    // kernel's identity map unless the string sits at the very top of it).
    let len = match mem.bytes(paddr, MAX_CSTR_LEN) {
        Some(window) => until_nul(window).map(<[u8]>::len),
        None => {
            // Slow path: the readable memory ends within the window, so
            // probe byte by byte up to the first unreadable byte.
            let mut found = None;
            for i in 0..MAX_CSTR_LEN {
                let byte = paddr
                    .checked_add(i as u64)
                    .and_then(|a| mem.bytes(a, 1))
                    .and_then(|b| b.first().copied());
                match byte {
                    Some(0) => {
                        found = Some(i);
                        break;
                    }
                    Some(_) => {}
                    None => {
                        return Err(BootError::Unreadable {
                            what,
                            paddr,
                            len: i + 1,
                        });
                    }
                }
            }
            found
        }
    };
    let len = len.ok_or(BootError::Malformed {
        what,
        paddr,
        detail: "string is not NUL-terminated within 4096 bytes",
    })?;
    // The string must also be readable as one range, as the parsers record
    // it as a single boot structure.
    read(mem, what, paddr, len)
}

/// Copies a string into a [`BoundedStr`], replacing invalid UTF-8 with `'?'`
/// (see [`BoundedStr::from_utf8_lossy`]) and logging if it had to be cut.
pub(crate) fn to_bounded<const N: usize>(what: &str, bytes: &[u8]) -> BoundedStr<N> {
    let s = BoundedStr::from_utf8_lossy(bytes);
    if s.truncated() {
        log::warn!("boot: {what} truncated to {N} bytes");
    }
    s
}

/// Reads an optional C string at `paddr` (0 means "no string": no loader puts one at
/// physical address 0) and records the bytes it occupies as a boot structure.
pub(crate) fn cstr<'m, M: PhysMemory + ?Sized>(
    mem: &'m M,
    info: &mut BootInfo,
    what: &'static str,
    paddr: u64,
) -> Result<Option<&'m [u8]>, BootError> {
    if paddr == 0 {
        return Ok(None);
    }
    let s = read_cstr(mem, what, paddr)?;
    info.add_structure(paddr, s.len() as u64 + 1)?;
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_mem::TestMem;

    #[test]
    fn read_checks_bounds() {
        let mut m = TestMem::new();
        m.add(0x1000, &[1, 2, 3, 4]);
        assert_eq!(read(&m, "x", 0x1000, 4).unwrap(), &[1, 2, 3, 4]);
        assert_eq!(
            read(&m, "x", 0x1002, 4),
            Err(BootError::Unreadable {
                what: "x",
                paddr: 0x1002,
                len: 4
            })
        );
        assert!(read(&m, "x", u64::MAX, 2).is_err());
    }

    #[test]
    fn cstr_fast_and_slow_path() {
        let mut m = TestMem::new();
        let mut big = vec![b'a'; 8192];
        big[10] = 0;
        m.add(0x10_000, &big);
        assert_eq!(read_cstr(&m, "s", 0x10_000).unwrap(), &[b'a'; 10]);
        // Near the end of a chunk: the 4096-byte window is not readable.
        m.add(0x20_000, b"hello\0");
        assert_eq!(read_cstr(&m, "s", 0x20_000).unwrap(), b"hello");
        assert_eq!(read_cstr(&m, "s", 0x20_005).unwrap(), b"");
    }

    #[test]
    fn cstr_errors() {
        let mut m = TestMem::new();
        m.add(0x1000, b"no terminator");
        assert_eq!(
            read_cstr(&m, "s", 0x1000),
            Err(BootError::Unreadable {
                what: "s",
                paddr: 0x1000,
                len: 14
            })
        );
        m.add(0x10_000, &[b'x'; 5000]);
        assert!(matches!(
            read_cstr(&m, "s", 0x10_000),
            Err(BootError::Malformed {
                paddr: 0x10_000,
                ..
            })
        ));
        assert!(matches!(
            read_cstr(&m, "s", 0x9999_0000),
            Err(BootError::Unreadable { len: 1, .. })
        ));
    }

    #[test]
    fn le_helpers() {
        let b = [1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(le_u32(&b, 4), 2);
        assert_eq!(le_u64(&b, 0), 0x2_0000_0001);
        assert_eq!(le_u64(&b, 4), 0); // out of range reads as 0, never panics
    }
}
