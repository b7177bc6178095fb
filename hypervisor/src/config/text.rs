//! Quoted strings, borrowed from the configuration text with their escapes undecoded.

use core::fmt;

/// The contents of a quoted string as written, between the quotes. The only escapes
/// the lexer lets through are `\"`, `\'` and `\\`; [`ConfigStr::chars`] decodes them.
/// No heap is needed: the value borrows the configuration text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> ConfigStr<'a> {
    pub(super) const fn from_raw(raw: &'a str, escaped: bool) -> Self {
        Self { raw, escaped }
    }

    /// The string as a plain `&str`, when it contains no escape (the common case).
    pub fn as_str(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }

    /// The text between the quotes, escapes undecoded.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded characters.
    pub fn chars(&self) -> impl Iterator<Item = char> + 'a {
        let mut chars = self.raw.chars();
        core::iter::from_fn(move || match chars.next()? {
            '\\' => chars.next(),
            c => Some(c),
        })
    }

    /// Length of the decoded string in bytes.
    pub fn len(&self) -> usize {
        if self.escaped {
            self.chars().map(char::len_utf8).sum()
        } else {
            self.raw.len()
        }
    }

    /// Whether the decoded string is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Writes the decoded string into `buf`, returning the part written, or `None` if
    /// it does not fit.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b str> {
        let mut len = 0;
        for c in self.chars() {
            let end = len + c.len_utf8();
            c.encode_utf8(buf.get_mut(len..end)?);
            len = end;
        }
        core::str::from_utf8(&buf[..len]).ok()
    }
}

impl PartialEq<str> for ConfigStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.chars().eq(other.chars())
    }
}

impl PartialEq<&str> for ConfigStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl fmt::Display for ConfigStr<'_> {
    /// The decoded string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.escaped {
            return f.write_str(self.raw);
        }
        self.chars().try_for_each(|c| fmt::Write::write_char(f, c))
    }
}

impl fmt::Debug for ConfigStr<'_> {
    /// The decoded string, quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.chars() {
            for e in c.escape_debug() {
                fmt::Write::write_char(f, e)?;
            }
        }
        f.write_str("\"")
    }
}
