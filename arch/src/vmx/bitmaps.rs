//! VMX MSR bitmap (SDM Vol. 3C §25.6.9) and I/O bitmaps A/B (SDM Vol. 3C §25.6.4).
//!
//! A set bit means "exit". Both start either all-intercepted, the safe default for a
//! guest whose MSR/port policy is still being built, or all-allowed. The hypervisor's
//! policy code, not this module, decides which MSRs and ports a guest may touch.

/// An MSR the VMX MSR bitmap has no bit for.
///
/// Only MSRs 0000_0000h-0000_1FFFh and C000_0000h-C000_1FFFh are covered; RDMSR/WRMSR of
/// any other MSR always exits when "use MSR bitmaps" is set (SDM Vol. 3C §26.1.3), so it
/// cannot be passed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrNotCovered(pub u32);

/// Byte offsets of the four 1 KiB bitmaps within the page (SDM Vol. 3C §25.6.9).
const READ_LOW: usize = 0x000;
const READ_HIGH: usize = 0x400;
const WRITE_LOW: usize = 0x800;
const WRITE_HIGH: usize = 0xC00;

const LOW_FIRST: u32 = 0x0000_0000;
const HIGH_FIRST: u32 = 0xC000_0000;
/// MSRs per covered range: one bit each in a 1 KiB bitmap.
const RANGE_LEN: u32 = 0x2000;

/// Which covered range `msr` is in, and its bit index within that range's bitmap.
const fn locate(msr: u32) -> Option<(bool, usize)> {
    if msr.wrapping_sub(LOW_FIRST) < RANGE_LEN {
        Some((false, (msr - LOW_FIRST) as usize))
    } else if msr.wrapping_sub(HIGH_FIRST) < RANGE_LEN {
        Some((true, (msr - HIGH_FIRST) as usize))
    } else {
        None
    }
}

/// The MSR bitmaps: one 4 KiB page, 4 KiB aligned as the VMCS field requires.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct MsrBitmap([u8; 4096]);

const _: () = assert!(size_of::<MsrBitmap>() == 4096 && align_of::<MsrBitmap>() == 4096);

impl MsrBitmap {
    /// Every covered MSR read and write exits.
    pub const fn intercept_all() -> Self {
        Self([0xFF; 4096])
    }

    /// No covered MSR access exits.
    pub const fn allow_all() -> Self {
        Self([0; 4096])
    }

    /// The raw page, for copying into the frame the VMCS points at.
    pub const fn as_bytes(&self) -> &[u8; 4096] {
        &self.0
    }

    const fn bit(msr: u32, write: bool) -> Option<(usize, u8)> {
        match locate(msr) {
            Some((high, index)) => {
                let base = match (write, high) {
                    (false, false) => READ_LOW,
                    (false, true) => READ_HIGH,
                    (true, false) => WRITE_LOW,
                    (true, true) => WRITE_HIGH,
                };
                Some((base + index / 8, 1 << (index % 8)))
            }
            None => None,
        }
    }

    fn set(&mut self, msr: u32, write: bool, intercept: bool) -> Result<(), MsrNotCovered> {
        match Self::bit(msr, write) {
            Some((byte, mask)) => {
                if intercept {
                    self.0[byte] |= mask;
                } else {
                    self.0[byte] &= !mask;
                }
                Ok(())
            }
            // Uncovered MSRs always exit, so intercepting them is already true.
            None if intercept => Ok(()),
            None => Err(MsrNotCovered(msr)),
        }
    }

    /// Makes RDMSR of `msr` exit. Uncovered MSRs always exit, so this cannot fail.
    pub fn intercept_read(&mut self, msr: u32) {
        let _always_ok = self.set(msr, false, true);
    }

    /// Makes WRMSR of `msr` exit. Uncovered MSRs always exit, so this cannot fail.
    pub fn intercept_write(&mut self, msr: u32) {
        let _always_ok = self.set(msr, true, true);
    }

    /// Lets the guest RDMSR `msr` without an exit.
    pub fn allow_read(&mut self, msr: u32) -> Result<(), MsrNotCovered> {
        self.set(msr, false, false)
    }

    /// Lets the guest WRMSR `msr` without an exit.
    pub fn allow_write(&mut self, msr: u32) -> Result<(), MsrNotCovered> {
        self.set(msr, true, false)
    }

    /// Whether RDMSR of `msr` exits (always, for uncovered MSRs).
    pub const fn intercepts_read(&self, msr: u32) -> bool {
        match Self::bit(msr, false) {
            Some((byte, mask)) => self.0[byte] & mask != 0,
            None => true,
        }
    }

    /// Whether WRMSR of `msr` exits (always, for uncovered MSRs).
    pub const fn intercepts_write(&self, msr: u32) -> bool {
        match Self::bit(msr, true) {
            Some((byte, mask)) => self.0[byte] & mask != 0,
            None => true,
        }
    }
}

impl core::fmt::Debug for MsrBitmap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let set = self.0.iter().map(|b| b.count_ones()).sum::<u32>();
        write!(f, "MsrBitmap {{ {set} of 32768 bits set }}")
    }
}

/// I/O bitmaps A and B, back to back: A (ports 0000h-7FFFh) is the first page and B (ports
/// 8000h-FFFFh) the second (SDM Vol. 3C §25.6.4). The VMCS takes two addresses; with this
/// layout they are the structure's address and that plus [`IoBitmaps::B_OFFSET`].
///
/// A multi-byte access exits if any of its ports' bits is set, and an access that wraps
/// from FFFFh to 0000h always exits (SDM Vol. 3C §26.1.3); see
/// [`IoBitmaps::intercepts_access`].
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct IoBitmaps {
    a: [u8; 4096],
    b: [u8; 4096],
}

const _: () = assert!(size_of::<IoBitmaps>() == 8192 && align_of::<IoBitmaps>() == 4096);
const _: () = assert!(core::mem::offset_of!(IoBitmaps, b) == IoBitmaps::B_OFFSET);

impl IoBitmaps {
    /// Offset of bitmap B from bitmap A.
    pub const B_OFFSET: usize = 4096;

    /// Every port exits.
    pub const fn intercept_all() -> Self {
        Self {
            a: [0xFF; 4096],
            b: [0xFF; 4096],
        }
    }

    /// No port exits.
    pub const fn allow_all() -> Self {
        Self {
            a: [0; 4096],
            b: [0; 4096],
        }
    }

    /// Bitmap A, ports 0000h-7FFFh.
    pub const fn bitmap_a(&self) -> &[u8; 4096] {
        &self.a
    }

    /// Bitmap B, ports 8000h-FFFFh.
    pub const fn bitmap_b(&self) -> &[u8; 4096] {
        &self.b
    }

    /// Which bitmap holds `port` (true = B), the byte within it and the bit mask.
    const fn bit(port: u16) -> (bool, usize, u8) {
        let index = (port & 0x7FFF) as usize;
        (port >= 0x8000, index / 8, 1 << (index % 8))
    }

    fn byte_mut(&mut self, port: u16) -> (&mut u8, u8) {
        let (in_b, byte, mask) = Self::bit(port);
        let bitmap = if in_b { &mut self.b } else { &mut self.a };
        (&mut bitmap[byte], mask)
    }

    /// Makes accesses to `port` exit.
    pub fn intercept(&mut self, port: u16) {
        let (byte, mask) = self.byte_mut(port);
        *byte |= mask;
    }

    /// Lets the guest access `port` without an exit.
    pub fn allow(&mut self, port: u16) {
        let (byte, mask) = self.byte_mut(port);
        *byte &= !mask;
    }

    /// Makes every port in `ports` exit.
    pub fn intercept_range(&mut self, ports: core::ops::RangeInclusive<u16>) {
        for port in ports {
            self.intercept(port);
        }
    }

    /// Lets the guest access every port in `ports`.
    pub fn allow_range(&mut self, ports: core::ops::RangeInclusive<u16>) {
        for port in ports {
            self.allow(port);
        }
    }

    /// Whether `port`'s bit is set.
    pub const fn intercepts(&self, port: u16) -> bool {
        let (in_b, byte, mask) = Self::bit(port);
        let bitmap = if in_b { &self.b } else { &self.a };
        bitmap[byte] & mask != 0
    }

    /// Whether an access of `size` bytes (1, 2 or 4) starting at `port` exits: if any
    /// covered port's bit is set, or the access wraps past FFFFh.
    pub const fn intercepts_access(&self, port: u16, size: u8) -> bool {
        if port as u32 + size as u32 > 0x1_0000 {
            return true;
        }
        let mut i = 0;
        while i < size as u16 {
            if self.intercepts(port + i) {
                return true;
            }
            i += 1;
        }
        false
    }
}

impl core::fmt::Debug for IoBitmaps {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let set = (self.a.iter().chain(&self.b))
            .map(|b| b.count_ones())
            .sum::<u32>();
        write!(f, "IoBitmaps {{ {set} of 65536 ports intercepted }}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IA32_EFER: u32 = 0xC000_0080;
    const IA32_APIC_BASE: u32 = 0x1B;

    fn boxed_msr(intercept: bool) -> Box<MsrBitmap> {
        Box::new(if intercept {
            MsrBitmap::intercept_all()
        } else {
            MsrBitmap::allow_all()
        })
    }

    #[test]
    fn msr_bit_positions() {
        let mut b = boxed_msr(false);
        b.intercept_read(IA32_APIC_BASE);
        // Low read bitmap at 0x000: MSR 0x1B is byte 3, bit 3.
        assert_eq!(b.as_bytes()[0x003], 1 << 3);
        b.intercept_write(IA32_EFER);
        // High write bitmap at 0xC00: MSR C000_0080h is index 0x80 -> byte 0x10, bit 0.
        assert_eq!(b.as_bytes()[0xC10], 1);
        b.intercept_read(0xC000_1FFF);
        assert_eq!(b.as_bytes()[0x7FF], 0x80);
        b.intercept_write(0x1FFF);
        assert_eq!(b.as_bytes()[0xBFF], 0x80);
        let set: u32 = b.as_bytes().iter().map(|x| x.count_ones()).sum();
        assert_eq!(set, 4);
    }

    #[test]
    fn msr_read_and_write_are_independent() {
        let mut b = boxed_msr(true);
        b.allow_read(IA32_EFER).unwrap();
        assert!(!b.intercepts_read(IA32_EFER));
        assert!(b.intercepts_write(IA32_EFER));
        b.allow_write(IA32_EFER).unwrap();
        assert!(!b.intercepts_write(IA32_EFER));
        b.intercept_read(IA32_EFER);
        assert!(b.intercepts_read(IA32_EFER));
        assert!(!b.intercepts_write(IA32_EFER));
        assert!(b.intercepts_read(IA32_EFER + 1));
    }

    #[test]
    fn uncovered_msrs_always_exit() {
        let mut b = boxed_msr(false);
        for msr in [0x2000, 0xBFFF_FFFF, 0xC000_2000, 0xC001_0000, u32::MAX] {
            assert!(b.intercepts_read(msr) && b.intercepts_write(msr));
            assert_eq!(b.allow_read(msr), Err(MsrNotCovered(msr)));
            assert_eq!(b.allow_write(msr), Err(MsrNotCovered(msr)));
            b.intercept_read(msr);
        }
        assert!(b.as_bytes().iter().all(|&x| x == 0));
    }

    #[test]
    fn io_bit_positions() {
        let mut b = Box::new(IoBitmaps::allow_all());
        b.intercept(0x3F8);
        assert_eq!(b.bitmap_a()[0x7F], 1);
        b.intercept(0x8000);
        assert_eq!(b.bitmap_b()[0], 1);
        b.intercept(0xFFFF);
        assert_eq!(b.bitmap_b()[0xFFF], 0x80);
        assert!(b.intercepts(0x3F8) && !b.intercepts(0x3F9));
        b.allow(0x3F8);
        assert!(!b.intercepts(0x3F8));
    }

    #[test]
    fn io_multi_byte_and_wrapping_accesses() {
        let mut b = Box::new(IoBitmaps::allow_all());
        b.intercept(0xCFE);
        assert!(!b.intercepts_access(0xCFC, 2));
        assert!(b.intercepts_access(0xCFC, 4));
        assert!(b.intercepts_access(0xCFD, 2));
        // Wrapping from FFFFh to 0000h exits even with every bit clear.
        assert!(!b.intercepts_access(0xFFFF, 1));
        assert!(b.intercepts_access(0xFFFF, 2));
        assert!(b.intercepts_access(0xFFFE, 4));
        b.intercept_range(0x60..=0x64);
        assert!((0x60..=0x64).all(|p| b.intercepts(p)));
        b.allow_range(0x61..=0x63);
        assert!(b.intercepts(0x60) && !b.intercepts(0x62) && b.intercepts(0x64));
        let all = Box::new(IoBitmaps::intercept_all());
        assert!((0..=u16::MAX).all(|p| all.intercepts(p)));
    }
}
