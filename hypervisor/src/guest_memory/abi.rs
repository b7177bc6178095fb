//! Types with a fixed byte layout shared with guests, decoded and encoded without `unsafe`.
//!
//! Instead of an `unsafe trait Pod` that would reinterpret guest bytes as a Rust value,
//! every ABI type says how to build itself from its little-endian bytes and back, field by
//! field, using `core::mem::offset_of!` on its own `#[repr(C)]` definition for the
//! positions. So:
//!
//! - any bytes a guest supplies decode to *some* value (no invalid bit patterns, no
//!   undefined behaviour), which is then validated like any other input;
//! - padding is never read from the guest and is written as zero, so no hypervisor stack
//!   bytes leak into guest memory through a struct's padding;
//! - there is no alignment requirement on the guest address.
//!
//! x86 is little-endian, and so is every Xen ABI structure on x86.

/// A fixed-size byte array `[u8; N]`: the byte image of a [`GuestAbi`] type.
pub trait ByteArray: AsRef<[u8]> + AsMut<[u8]> + Copy {
    /// Number of bytes.
    const LEN: usize;
    /// All zeroes.
    fn zeroed() -> Self;
}

impl<const N: usize> ByteArray for [u8; N] {
    const LEN: usize = N;

    fn zeroed() -> Self {
        [0; N]
    }
}

/// A type that crosses the guest boundary as bytes in a fixed little-endian layout.
///
/// `Bytes` is `[u8; size_of::<Self>()]` for the `#[repr(C)]` ABI structs; each
/// implementation asserts that at compile time, so the Rust definition (with its size and
/// offset asserts) and the byte codec cannot drift apart.
pub trait GuestAbi: Sized {
    /// The byte image.
    type Bytes: ByteArray;

    /// Decodes the byte image. Total: every input decodes.
    fn from_bytes(bytes: &Self::Bytes) -> Self;

    /// Encodes into the byte image; padding and reserved bytes not modelled as fields are
    /// zero.
    fn to_bytes(&self) -> Self::Bytes;
}

/// A field type of an ABI struct: read and written little-endian at a byte offset.
///
/// Offsets come from `offset_of!` on the struct's own definition, so they are in bounds
/// by construction; an out-of-bounds offset would be a layout bug and panics.
pub trait AbiField: Sized {
    /// Reads the field at `offset`.
    fn get(bytes: &[u8], offset: usize) -> Self;
    /// Writes the field at `offset`.
    fn put(&self, bytes: &mut [u8], offset: usize);
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl AbiField for $t {
            fn get(bytes: &[u8], offset: usize) -> Self {
                const N: usize = core::mem::size_of::<$t>();
                let mut b = [0u8; N];
                b.copy_from_slice(&bytes[offset..offset + N]);
                <$t>::from_le_bytes(b)
            }
            fn put(&self, bytes: &mut [u8], offset: usize) {
                let b = self.to_le_bytes();
                bytes[offset..offset + b.len()].copy_from_slice(&b);
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, i8, i16, i32, i64);

impl<const N: usize> AbiField for [u8; N] {
    fn get(bytes: &[u8], offset: usize) -> Self {
        let mut b = [0u8; N];
        b.copy_from_slice(&bytes[offset..offset + N]);
        b
    }
    fn put(&self, bytes: &mut [u8], offset: usize) {
        bytes[offset..offset + N].copy_from_slice(self);
    }
}

/// Implements [`GuestAbi`] for a `#[repr(C)]` struct from the list of *all* its fields:
/// `Bytes` is `[u8; size_of::<T>()]` and each field is coded at its `offset_of!`. Leaving
/// a field out fails to compile (the decode builds the struct by name), and bytes not
/// covered by a field (padding) are written as zero.
macro_rules! impl_guest_abi {
    ($ty:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::guest_memory::abi::GuestAbi for $ty {
            type Bytes = [u8; core::mem::size_of::<$ty>()];

            fn from_bytes(bytes: &Self::Bytes) -> Self {
                Self {
                    $($field: $crate::guest_memory::abi::AbiField::get(
                        bytes,
                        core::mem::offset_of!($ty, $field),
                    ),)+
                }
            }

            fn to_bytes(&self) -> Self::Bytes {
                let mut bytes = [0u8; core::mem::size_of::<$ty>()];
                $($crate::guest_memory::abi::AbiField::put(
                    &self.$field,
                    &mut bytes,
                    core::mem::offset_of!($ty, $field),
                );)+
                bytes
            }
        }
    };
}
pub(crate) use impl_guest_abi;

impl GuestAbi for u8 {
    type Bytes = [u8; 1];
    fn from_bytes(bytes: &[u8; 1]) -> Self {
        bytes[0]
    }
    fn to_bytes(&self) -> [u8; 1] {
        [*self]
    }
}

impl GuestAbi for u16 {
    type Bytes = [u8; 2];
    fn from_bytes(bytes: &[u8; 2]) -> Self {
        u16::from_le_bytes(*bytes)
    }
    fn to_bytes(&self) -> [u8; 2] {
        self.to_le_bytes()
    }
}

impl GuestAbi for u32 {
    type Bytes = [u8; 4];
    fn from_bytes(bytes: &[u8; 4]) -> Self {
        u32::from_le_bytes(*bytes)
    }
    fn to_bytes(&self) -> [u8; 4] {
        self.to_le_bytes()
    }
}

impl GuestAbi for u64 {
    type Bytes = [u8; 8];
    fn from_bytes(bytes: &[u8; 8]) -> Self {
        u64::from_le_bytes(*bytes)
    }
    fn to_bytes(&self) -> [u8; 8] {
        self.to_le_bytes()
    }
}

/// Character arrays such as `xen_extraversion_t` (`char[16]`) are their own bytes.
impl<const N: usize> GuestAbi for [u8; N] {
    type Bytes = [u8; N];
    fn from_bytes(bytes: &[u8; N]) -> Self {
        *bytes
    }
    fn to_bytes(&self) -> [u8; N] {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Debug, PartialEq)]
    struct Sample {
        a: u16,
        b: u64,
        c: [u8; 3],
        d: i32,
    }
    impl_guest_abi!(Sample { a, b, c, d });

    #[test]
    fn struct_codec_follows_repr_c_layout() {
        // a@0 (2, then 6 bytes padding), b@8, c@16 (3, then 1 padding), d@20; size 24.
        let s = Sample {
            a: 0x0201,
            b: 0x1817_1615_1413_1211,
            c: [0x21, 0x22, 0x23],
            d: -2,
        };
        let bytes = s.to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(
            &bytes[..8],
            &[0x01, 0x02, 0, 0, 0, 0, 0, 0],
            "padding written as zero"
        );
        assert_eq!(
            &bytes[8..16],
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        assert_eq!(
            &bytes[16..24],
            &[0x21, 0x22, 0x23, 0, 0xFE, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(Sample::from_bytes(&bytes), s);
        // Garbage in the padding is ignored.
        let mut dirty = bytes;
        dirty[2..8].fill(0xCC);
        dirty[19] = 0xCC;
        assert_eq!(Sample::from_bytes(&dirty), s);
    }

    #[test]
    fn primitives_round_trip() {
        assert_eq!(
            u64::from_bytes(&0x1122_3344_5566_7788u64.to_bytes()),
            0x1122_3344_5566_7788
        );
        assert_eq!(
            <u32 as GuestAbi>::to_bytes(&0xAABB_CCDD),
            [0xDD, 0xCC, 0xBB, 0xAA]
        );
        assert_eq!(<[u8; 3]>::from_bytes(&[1, 2, 3]), [1, 2, 3]);
        assert_eq!(<[u8; 4096] as ByteArray>::LEN, 4096);
    }
}
