//! Fixed-capacity containers.
//!
//! The kernel parses the boot description before it has a heap, so every
//! collection in [`crate::BootInfo`] has a capacity fixed at compile time.
//! Both types are plain arrays plus a length: `Copy`, no `unsafe`, no
//! allocation.

use core::fmt;
use core::ops::Deref;

/// Returned by [`BoundedVec::push`] when the vector is full; carries the
/// element that did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError<T>(pub T);

/// A vector of at most `N` elements stored inline.
///
/// Elements must be `Copy + Default`: unused slots hold `T::default()`, which
/// keeps the type free of `MaybeUninit` and therefore of `unsafe`.
#[derive(Clone, Copy)]
pub struct BoundedVec<T, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> BoundedVec<T, N> {
    /// An empty vector.
    #[must_use]
    pub fn new() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
        }
    }

    /// Appends `item`.
    ///
    /// # Errors
    ///
    /// Hands `item` back if all `N` slots are taken.
    pub fn push(&mut self, item: T) -> Result<(), CapacityError<T>> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = item;
                self.len += 1;
                Ok(())
            }
            None => Err(CapacityError(item)),
        }
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<T: Copy, const N: usize> BoundedVec<T, N> {
    /// An empty vector whose unused slots hold `fill`; unlike
    /// [`BoundedVec::new`] this is `const`, for use in statics.
    #[must_use]
    pub const fn filled(fill: T) -> Self {
        Self {
            items: [fill; N],
            len: 0,
        }
    }
}

impl<T, const N: usize> BoundedVec<T, N> {
    /// The maximum number of elements.
    pub const CAPACITY: usize = N;

    /// The elements pushed so far.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// The elements pushed so far, mutably (e.g. to sort them in place).
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// Number of elements.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether all `N` slots are taken.
    #[must_use]
    pub const fn is_full(&self) -> bool {
        self.len == N
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    /// The last element, mutably.
    pub fn last_mut(&mut self) -> Option<&mut T> {
        self.as_mut_slice().last_mut()
    }
}

impl<T: Copy + Default, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a BoundedVec<T, N> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: PartialEq, const N: usize> PartialEq for BoundedVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Eq, const N: usize> Eq for BoundedVec<T, N> {}

impl<T: fmt::Debug, const N: usize> fmt::Debug for BoundedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A UTF-8 string of at most `N` bytes stored inline.
///
/// Appending more than fits keeps the longest prefix that ends on a
/// character boundary and sets [`BoundedStr::truncated`], so the kernel can
/// warn that e.g. a command line was cut short instead of silently acting on
/// part of it.
#[derive(Clone, Copy)]
pub struct BoundedStr<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> BoundedStr<N> {
    /// An empty string.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// A string holding as much of `s` as fits (see [`BoundedStr::push_str`]).
    #[must_use]
    pub fn from_str_truncating(s: &str) -> Self {
        let mut out = Self::new();
        out.push_str(s);
        out
    }

    /// Decodes `bytes` as UTF-8, replacing each invalid sequence with `'?'`,
    /// and keeps as much as fits.
    ///
    /// Boot loaders hand over arbitrary bytes; `'?'` (rather than U+FFFD,
    /// which costs three bytes) keeps the replacement visible in logs without
    /// eating into the fixed capacity.
    #[must_use]
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        let mut out = Self::new();
        for chunk in bytes.utf8_chunks() {
            out.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                out.push_str("?");
            }
        }
        out
    }

    /// Appends as much of `s` as fits; returns `false` (and records it) if
    /// anything was cut off.
    pub fn push_str(&mut self, s: &str) -> bool {
        let room = N - self.len;
        let take = if s.len() <= room {
            s.len()
        } else {
            self.truncated = true;
            // Largest char boundary <= room; index 0 is always a boundary.
            (0..=room)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0)
        };
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        take == s.len()
    }

    /// The stored text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only whole `&str` prefixes cut at char boundaries are ever copied
        // in, so this cannot fail; the fallback keeps it panic-free anyway.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }

    /// Empties the string and forgets any truncation.
    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    /// Whether some input did not fit and was dropped.
    #[must_use]
    pub const fn truncated(&self) -> bool {
        self.truncated
    }

    /// Length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for BoundedStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deref for BoundedStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> PartialEq for BoundedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() && self.truncated == other.truncated
    }
}

impl<const N: usize> Eq for BoundedStr<N> {}

impl<const N: usize> PartialEq<str> for BoundedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for BoundedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> fmt::Display for BoundedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for BoundedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)?;
        if self.truncated {
            f.write_str(" (truncated)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_push_until_full() {
        let mut v: BoundedVec<u32, 3> = BoundedVec::new();
        assert!(v.is_empty());
        assert_eq!(v.push(1), Ok(()));
        assert_eq!(v.push(2), Ok(()));
        assert_eq!(v.push(3), Ok(()));
        assert!(v.is_full());
        assert_eq!(v.push(4), Err(CapacityError(4)));
        assert_eq!(v.len(), 3);
        assert_eq!(v.as_slice(), &[1, 2, 3]);
        assert_eq!(v.iter().sum::<u32>(), 6);
        assert_eq!(format!("{v:?}"), "[1, 2, 3]");
        v.as_mut_slice().reverse();
        assert_eq!(&*v, &[3, 2, 1]);
        *v.last_mut().unwrap() = 9;
        assert_eq!(v.as_slice(), &[3, 2, 9]);
        v.clear();
        assert!(v.is_empty());
        assert_eq!(v, BoundedVec::new());
    }

    #[test]
    fn vec_zero_capacity() {
        let mut v: BoundedVec<u8, 0> = BoundedVec::default();
        assert!(v.is_full());
        assert_eq!(v.push(1), Err(CapacityError(1)));
    }

    #[test]
    fn str_fits() {
        let s = BoundedStr::<8>::from_str_truncating("hello");
        assert_eq!(s.as_str(), "hello");
        assert!(!s.truncated());
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn str_truncates_at_char_boundary() {
        // "é" is two bytes; cutting at 4 would split the second one.
        let s = BoundedStr::<4>::from_str_truncating("aéé");
        assert_eq!(s.as_str(), "aé");
        assert!(s.truncated());
        let mut s = BoundedStr::<3>::new();
        assert!(s.push_str("ab"));
        assert!(!s.push_str("€"));
        assert_eq!(s.as_str(), "ab");
        assert!(s.truncated());
        assert_eq!(format!("{s:?}"), "\"ab\" (truncated)");
    }

    #[test]
    fn str_lossy_replaces_invalid_utf8() {
        let s = BoundedStr::<16>::from_utf8_lossy(b"a\xffb\xc3");
        assert_eq!(s.as_str(), "a?b?");
        assert!(!s.truncated());
        let s = BoundedStr::<16>::from_utf8_lossy("grüß".as_bytes());
        assert_eq!(s, "grüß");
    }
}
