//! `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h), as handed to a PVH
//! guest in EBX: read by value, validated.

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const START_MAGIC: u32 = 0x336e_c578;

/// What a test guest needs from `hvm_start_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
}

impl StartInfo {
    /// Decodes the 56-byte version-1 structure from `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let u32_at = |o: usize| {
            bytes
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        };
        let u64_at = |o: usize| {
            bytes
                .get(o..o + 8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        };
        if u32_at(0).ok_or("truncated")? != START_MAGIC {
            return Err("magic is not 0x336ec578");
        }
        let version = u32_at(4).ok_or("truncated")?;
        let (memmap_paddr, memmap_entries) = if version >= 1 {
            (
                u64_at(40).ok_or("truncated")?,
                u32_at(48).ok_or("truncated")?,
            )
        } else {
            (0, 0)
        };
        Ok(Self {
            version,
            flags: u32_at(8).ok_or("truncated")?,
            nr_modules: u32_at(12).ok_or("truncated")?,
            modlist_paddr: u64_at(16).ok_or("truncated")?,
            cmdline_paddr: u64_at(24).ok_or("truncated")?,
            rsdp_paddr: u64_at(32).ok_or("truncated")?,
            memmap_paddr,
            memmap_entries,
        })
    }

    /// Reads the structure at guest-physical `paddr` through the identity map.
    #[cfg(target_os = "none")]
    pub fn from_identity_mapped(paddr: u64) -> Result<Self, &'static str> {
        if paddr == 0 || paddr >= 1 << 30 {
            return Err("start_info pointer outside the identity-mapped first GiB");
        }
        // SAFETY: the guest identity-maps its first GiB; the PVH loader put 56 bytes of
        // start_info there (and the magic is checked before anything is trusted).
        let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, 56) };
        Self::parse(bytes)
    }

    /// The guest's free RAM `[start, end)`: from the end of its image (page-aligned) to
    /// the end of the first RAM entry of the memory map (the start-info page and
    /// beyond are reserved), capped at the identity-mapped first GiB. `None` without a
    /// memory map.
    #[cfg(target_os = "none")]
    pub fn free_ram(&self) -> Option<(u64, u64)> {
        if self.memmap_entries == 0 || self.memmap_paddr == 0 || self.memmap_paddr >= 1 << 30 {
            return None;
        }
        // SAFETY: the memory map lies in identity-mapped guest RAM (start-info page).
        let entry = unsafe { core::slice::from_raw_parts(self.memmap_paddr as *const u8, 24) };
        let size = u64::from_le_bytes(entry[8..16].try_into().unwrap_or([0; 8]));
        unsafe extern "C" {
            static __guest_end: u8;
        }
        let start = ((&raw const __guest_end) as u64).div_ceil(4096) * 4096;
        Some((start, size.min(1 << 30)))
    }

    /// The command line, if any (identity-mapped, NUL-terminated, at most 1 KiB).
    #[cfg(target_os = "none")]
    pub fn cmdline(&self) -> &'static str {
        if self.cmdline_paddr == 0 || self.cmdline_paddr >= 1 << 30 {
            return "";
        }
        // SAFETY: as above; the loader placed the string in guest RAM.
        let bytes = unsafe { core::slice::from_raw_parts(self.cmdline_paddr as *const u8, 1024) };
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(0);
        core::str::from_utf8(&bytes[..end]).unwrap_or("")
    }

    /// The number a `key=N` word of the command line gives ([`cmdline_value`]).
    #[cfg(target_os = "none")]
    pub fn cmdline_value(&self, key: &str) -> Option<u64> {
        cmdline_value(self.cmdline(), key)
    }
}

/// The number in a `key=N` word of `cmdline` (whitespace-separated words; N decimal or
/// `0x` hex). The last such word wins, as kernels treat repeated options; `None` when
/// the key is absent or its value is not a number.
pub fn cmdline_value(cmdline: &str, key: &str) -> Option<u64> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .and_then(|value| match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_1() {
        let mut b = [0u8; 56];
        b[0..4].copy_from_slice(&START_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&0x2000u64.to_le_bytes());
        b[40..48].copy_from_slice(&0x3000u64.to_le_bytes());
        b[48..52].copy_from_slice(&3u32.to_le_bytes());
        let s = StartInfo::parse(&b).unwrap();
        assert_eq!(
            (s.version, s.cmdline_paddr, s.memmap_paddr, s.memmap_entries),
            (1, 0x2000, 0x3000, 3)
        );
        b[0] = 0;
        assert!(StartInfo::parse(&b).is_err());
        assert!(StartInfo::parse(&b[..3]).is_err());
    }

    #[test]
    fn cmdline_values() {
        let line = "console=hvc0 vcpus=4 window-ms=0x20 windows=3 windows=5 gap-us=x";
        assert_eq!(cmdline_value(line, "vcpus"), Some(4));
        assert_eq!(cmdline_value(line, "window-ms"), Some(0x20));
        assert_eq!(cmdline_value(line, "windows"), Some(5));
        assert_eq!(cmdline_value(line, "gap-us"), None);
        assert_eq!(cmdline_value(line, "window"), None);
        assert_eq!(cmdline_value(line, "vcpu"), None);
        assert_eq!(cmdline_value("", "vcpus"), None);
        assert_eq!(cmdline_value("vcpus", "vcpus"), None);
    }
}
