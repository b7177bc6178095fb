//! SVM MSR permissions map (APM Vol. 2 §15.11) and I/O permissions map (APM Vol. 2
//! §15.10.1), with the same API shape as [`crate::vmx::bitmaps`].
//!
//! A set bit means "intercept". They take effect only with the MSR_PROT and IOIO_PROT
//! intercepts ([`super::exit::Intercepts1`]); the VMCB holds their physical addresses in
//! MSRPM_BASE_PA and IOPM_BASE_PA.

/// An MSR the MSRPM has no bits for: RDMSR/WRMSR of it always exits under MSR_PROT
/// (APM Vol. 2 §15.11), so it cannot be passed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrNotCovered(pub u32);

/// The covered MSR ranges: first MSR and the byte offset of its vector in the map.
const RANGES: [(u32, usize); 3] = [
    (0x0000_0000, 0x0000),
    (0xC000_0000, 0x0800),
    (0xC001_0000, 0x1000),
];
/// MSRs per range: 2 bits each in a 2 KiB vector.
const RANGE_LEN: u32 = 0x2000;

/// The MSR permissions map: 8 KiB, two bits per MSR (even = read, odd = write) for MSRs
/// 0000_0000h-0000_1FFFh (bytes 0x000-0x7FF), C000_0000h-C000_1FFFh (0x800-0xFFF) and
/// C001_0000h-C001_1FFFh (0x1000-0x17FF); bytes 0x1800-0x1FFF are reserved.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct MsrPermissionsMap([u8; 8192]);

const _: () = assert!(size_of::<MsrPermissionsMap>() == 8192);
const _: () = assert!(align_of::<MsrPermissionsMap>() == 4096);

impl MsrPermissionsMap {
    /// Every covered MSR read and write is intercepted.
    pub const fn intercept_all() -> Self {
        Self([0xFF; 8192])
    }

    /// No covered MSR access is intercepted.
    pub const fn allow_all() -> Self {
        Self([0; 8192])
    }

    /// The raw map.
    pub const fn as_bytes(&self) -> &[u8; 8192] {
        &self.0
    }

    /// Byte and mask of `msr`'s read (or write) bit.
    const fn bit(msr: u32, write: bool) -> Option<(usize, u8)> {
        let mut i = 0;
        while i < RANGES.len() {
            let (first, offset) = RANGES[i];
            let index = msr.wrapping_sub(first);
            if index < RANGE_LEN {
                let bit = index as usize * 2 + write as usize;
                return Some((offset + bit / 8, 1 << (bit % 8)));
            }
            i += 1;
        }
        None
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
            // Uncovered MSRs are always intercepted already.
            None if intercept => Ok(()),
            None => Err(MsrNotCovered(msr)),
        }
    }

    /// Intercepts RDMSR of `msr`. Uncovered MSRs always are, so this cannot fail.
    pub fn intercept_read(&mut self, msr: u32) {
        let _always_ok = self.set(msr, false, true);
    }

    /// Intercepts WRMSR of `msr`. Uncovered MSRs always are, so this cannot fail.
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

    /// Whether RDMSR of `msr` is intercepted (always, for uncovered MSRs).
    pub const fn intercepts_read(&self, msr: u32) -> bool {
        match Self::bit(msr, false) {
            Some((byte, mask)) => self.0[byte] & mask != 0,
            None => true,
        }
    }

    /// Whether WRMSR of `msr` is intercepted (always, for uncovered MSRs).
    pub const fn intercepts_write(&self, msr: u32) -> bool {
        match Self::bit(msr, true) {
            Some((byte, mask)) => self.0[byte] & mask != 0,
            None => true,
        }
    }
}

impl core::fmt::Debug for MsrPermissionsMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let set = self.0.iter().map(|b| b.count_ones()).sum::<u32>();
        write!(f, "MsrPermissionsMap {{ {set} bits set }}")
    }
}

/// Number of ports.
const PORTS: usize = 0x1_0000;
/// Bits past port FFFFh that a multi-byte access starting near FFFFh also checks.
const PAD_BITS: usize = 3;

/// The I/O permissions map: 12 KiB, bit `p` for port `p` (APM Vol. 2 §15.10.1).
///
/// An access of N bytes at port P is intercepted if any of bits P..P+N-1 is set. An access
/// starting near FFFFh therefore checks up to three bits past the last port instead of
/// wrapping to port 0; this map always sets those pad bits, so such accesses are always
/// intercepted, as VMX does for wrapping accesses.
#[derive(Clone, PartialEq, Eq)]
#[repr(C, align(4096))]
pub struct IoPermissionsMap([u8; 12288]);

const _: () = assert!(size_of::<IoPermissionsMap>() == 12288);
const _: () = assert!(align_of::<IoPermissionsMap>() == 4096);

impl IoPermissionsMap {
    /// Every port is intercepted.
    pub const fn intercept_all() -> Self {
        Self([0xFF; 12288])
    }

    /// No port is intercepted, except accesses running past FFFFh.
    pub const fn allow_all() -> Self {
        let mut map = [0; 12288];
        map[PORTS / 8] = (1 << PAD_BITS) - 1;
        Self(map)
    }

    /// The raw map.
    pub const fn as_bytes(&self) -> &[u8; 12288] {
        &self.0
    }

    const fn bit(index: usize) -> (usize, u8) {
        (index / 8, 1 << (index % 8))
    }

    /// Intercepts accesses to `port`.
    pub fn intercept(&mut self, port: u16) {
        let (byte, mask) = Self::bit(port as usize);
        self.0[byte] |= mask;
    }

    /// Lets the guest access `port` without an exit.
    pub fn allow(&mut self, port: u16) {
        let (byte, mask) = Self::bit(port as usize);
        self.0[byte] &= !mask;
    }

    /// Intercepts every port in `ports`.
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
        let (byte, mask) = Self::bit(port as usize);
        self.0[byte] & mask != 0
    }

    /// Whether an access of `size` bytes (1, 2 or 4) at `port` is intercepted, checking
    /// the same bits the processor does.
    pub const fn intercepts_access(&self, port: u16, size: u8) -> bool {
        let mut i = 0;
        while i < size as usize {
            let (byte, mask) = Self::bit(port as usize + i);
            if self.0[byte] & mask != 0 {
                return true;
            }
            i += 1;
        }
        false
    }
}

impl core::fmt::Debug for IoPermissionsMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let set = self.0[..PORTS / 8]
            .iter()
            .map(|b| b.count_ones())
            .sum::<u32>();
        write!(f, "IoPermissionsMap {{ {set} of 65536 ports intercepted }}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IA32_EFER: u32 = 0xC000_0080;
    const HWCR: u32 = 0xC001_0015;

    #[test]
    fn msrpm_bit_positions() {
        let mut m = Box::new(MsrPermissionsMap::allow_all());
        // MSR 0x10 (TSC): bit 32 read, 33 write -> byte 4.
        m.intercept_read(0x10);
        assert_eq!(m.as_bytes()[4], 0b01);
        m.intercept_write(0x10);
        assert_eq!(m.as_bytes()[4], 0b11);
        // EFER: index 0x80 in the second range -> bits 0x100/0x101 -> byte 0x800 + 0x20.
        m.intercept_write(IA32_EFER);
        assert_eq!(m.as_bytes()[0x820], 0b10);
        // HWCR: index 0x15 in the third range -> bit 0x2A -> byte 0x1005, bit 2.
        m.intercept_read(HWCR);
        assert_eq!(m.as_bytes()[0x1005], 1 << 2);
        // Last MSR of the first range: byte 0x7FF, bits 6 and 7.
        m.intercept_read(0x1FFF);
        m.intercept_write(0x1FFF);
        assert_eq!(m.as_bytes()[0x7FF], 0xC0);
        let set: u32 = m.as_bytes().iter().map(|b| b.count_ones()).sum();
        assert_eq!(set, 6);
    }

    #[test]
    fn msrpm_read_write_independent_and_uncovered() {
        let mut m = Box::new(MsrPermissionsMap::intercept_all());
        m.allow_read(IA32_EFER).unwrap();
        assert!(!m.intercepts_read(IA32_EFER) && m.intercepts_write(IA32_EFER));
        m.allow_write(HWCR).unwrap();
        assert!(m.intercepts_read(HWCR) && !m.intercepts_write(HWCR));
        let mut open = Box::new(MsrPermissionsMap::allow_all());
        for msr in [0x2000, 0xC000_2000, 0xC001_2000, 0xC002_0000, u32::MAX] {
            assert!(open.intercepts_read(msr) && open.intercepts_write(msr));
            assert_eq!(open.allow_read(msr), Err(MsrNotCovered(msr)));
            assert_eq!(open.allow_write(msr), Err(MsrNotCovered(msr)));
            open.intercept_write(msr);
        }
        assert!(open.as_bytes().iter().all(|&b| b == 0));
    }

    #[test]
    fn iopm_bit_positions() {
        let mut m = Box::new(IoPermissionsMap::allow_all());
        assert_eq!(m.as_bytes()[0x2000], 0b111, "pad bits always set");
        m.intercept(0x3F8);
        assert_eq!(m.as_bytes()[0x7F], 1);
        m.intercept(0xFFFF);
        assert_eq!(m.as_bytes()[0x1FFF], 0x80);
        assert!(m.intercepts(0x3F8) && !m.intercepts(0x3F9));
        m.allow(0x3F8);
        assert!(!m.intercepts(0x3F8));
        m.intercept_range(0x60..=0x64);
        m.allow_range(0x61..=0x63);
        assert!(m.intercepts(0x60) && !m.intercepts(0x62) && m.intercepts(0x64));
    }

    #[test]
    fn iopm_multi_byte_and_past_the_end() {
        let mut m = Box::new(IoPermissionsMap::allow_all());
        m.intercept(0xCFE);
        assert!(!m.intercepts_access(0xCFC, 2));
        assert!(m.intercepts_access(0xCFC, 4));
        assert!(!m.intercepts_access(0xFFFF, 1));
        assert!(m.intercepts_access(0xFFFF, 2));
        assert!(m.intercepts_access(0xFFFD, 4));
        assert!(!m.intercepts_access(0xFFFC, 4));
        let all = Box::new(IoPermissionsMap::intercept_all());
        assert!((0..=u16::MAX).all(|p| all.intercepts(p)));
    }
}
