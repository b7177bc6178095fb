//! `dom0_mem=` from the hypervisor command line, in Xen's syntax.

use core::fmt;

/// A parsed `dom0_mem=`: Xen's comma-separated list of `SIZE`, `min:SIZE` and
/// `max:SIZE` (`dom0_mem=512M`, `dom0_mem=1G,max:2G`, `dom0_mem=min:256M,max:1G`).
/// Each part may appear once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0Mem {
    /// The amount asked for, in bytes.
    pub size: Option<u64>,
    /// Lower bound in bytes.
    pub min: Option<u64>,
    /// Upper bound in bytes.
    pub max: Option<u64>,
}

/// Why a `dom0_mem=` value was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dom0MemError<'a> {
    /// A part that is not a size, e.g. `lots` or `512Q`.
    BadSize(&'a str),
    /// Xen's relative forms (`-512M`: all but; `10%`), which are not implemented.
    Unsupported(&'a str),
    /// A part given twice.
    Repeated(&'a str),
    /// `min:` above `max:`.
    MinAboveMax,
    /// Nothing after `dom0_mem=`.
    Empty,
}

impl fmt::Display for Dom0MemError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSize(s) => write!(
                f,
                "`{s}` is not a size (a number with an optional B, K, M, G or T suffix)"
            ),
            Self::Unsupported(s) => write!(
                f,
                "`{s}`: relative sizes (a leading '-', or '%') are not supported; give an amount"
            ),
            Self::Repeated(s) => write!(f, "`{s}` is given twice"),
            Self::MinAboveMax => f.write_str("min: is above max:"),
            Self::Empty => f.write_str("needs a value, e.g. dom0_mem=512M"),
        }
    }
}

impl Dom0Mem {
    /// Parses the value after `dom0_mem=`.
    pub fn parse(value: &str) -> Result<Self, Dom0MemError<'_>> {
        if value.is_empty() {
            return Err(Dom0MemError::Empty);
        }
        let mut result = Self::default();
        for part in value.split(',') {
            if part.is_empty() {
                return Err(Dom0MemError::BadSize(part));
            }
            let (slot, size) = if let Some(s) = part.strip_prefix("min:") {
                (&mut result.min, s)
            } else if let Some(s) = part.strip_prefix("max:") {
                (&mut result.max, s)
            } else {
                (&mut result.size, part)
            };
            if slot.is_some() {
                return Err(Dom0MemError::Repeated(part));
            }
            *slot = Some(parse_size(size).map_err(|e| match e {
                SizeError::Bad => Dom0MemError::BadSize(part),
                SizeError::Relative => Dom0MemError::Unsupported(part),
            })?);
        }
        if let (Some(min), Some(max)) = (result.min, result.max)
            && min > max
        {
            return Err(Dom0MemError::MinAboveMax);
        }
        Ok(result)
    }

    /// The memory to keep for dom0 out of `free_bytes`, as Xen computes it: `size` if
    /// given, else everything but Xen's reserve of `min(free / 16, 128 MiB)`; then
    /// raised to `min:` and lowered to `max:`; never more than `free_bytes`.
    pub fn resolve(&self, free_bytes: u64) -> u64 {
        let default = free_bytes - (free_bytes / 16).min(128 << 20);
        let mut amount = self.size.unwrap_or(default);
        if let Some(min) = self.min {
            amount = amount.max(min);
        }
        if let Some(max) = self.max {
            amount = amount.min(max);
        }
        amount.min(free_bytes)
    }
}

enum SizeError {
    Bad,
    Relative,
}

/// A size as Xen's `parse_size_and_unit` reads it: a decimal or `0x` hex number and
/// an optional unit `B`, `K`, `M`, `G` or `T` (either case, powers of 1024). Without
/// a unit the number is KiB, as in Xen; after hex digits a `B` is a digit, as in Xen.
/// Unlike Xen, a leading `0` is not octal (it is refused), trailing text is an error
/// rather than ignored, and overflow is an error rather than wrapping.
fn parse_size(s: &str) -> Result<u64, SizeError> {
    if s.starts_with('-') || s.ends_with('%') {
        return Err(SizeError::Relative);
    }
    let (digits, radix, unit) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => {
            let end = hex
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(hex.len());
            (&hex[..end], 16, &hex[end..])
        }
        None => {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            if end > 1 && s.starts_with('0') {
                return Err(SizeError::Bad);
            }
            (&s[..end], 10, &s[end..])
        }
    };
    let shift = match unit {
        "" | "k" | "K" => 10,
        "b" | "B" => 0,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return Err(SizeError::Bad),
    };
    u64::from_str_radix(digits, radix)
        .ok()
        .and_then(|value| value.checked_mul(1 << shift))
        .ok_or(SizeError::Bad)
}
