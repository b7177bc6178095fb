//! Configuration errors: each names the file, the line and (when there is one) the key.

use core::fmt;

/// Why a domain configuration was rejected. Displays as
/// `dom1.cfg:7: key 'memory': expected a number of MiB, got "lots"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError<'a> {
    /// The file name given to [`parse`](super::parse).
    pub file: &'a str,
    /// 1-based line of the offending text; 0 when no line is at fault (a missing key).
    pub line: u32,
    /// The key being set, or the missing key.
    pub key: Option<&'a str>,
    pub kind: ConfigErrorKind<'a>,
}

/// What is wrong. `got` fields hold the value exactly as written (strings with their
/// quotes, lists with their brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind<'a> {
    /// A character that starts no token.
    UnexpectedChar(char),
    /// A malformed quoted string (unterminated, control character, bad escape).
    BadString(&'static str),
    /// Tokens in the wrong order, e.g. a key without `=`.
    Syntax(&'static str),
    /// A key outside the supported subset.
    UnknownKey,
    /// A key set twice (xl silently keeps the last; see `docs/domain-config.md`).
    DuplicateKey { first_line: u32 },
    /// A required key is not set.
    MissingKey,
    /// The value is of the wrong kind: a list for a number, a number for a string.
    WrongType {
        expected: &'static str,
        got: &'a str,
    },
    /// The value is of the right kind but not acceptable.
    BadValue {
        expected: &'static str,
        got: &'a str,
    },
    /// A number outside the key's range.
    OutOfRange {
        expected: &'static str,
        got: &'a str,
    },
    /// A value xl knows that Ferrovisor does not implement.
    Unsupported { why: &'static str, got: &'a str },
}

/// Longest value quoted back in a message; longer ones are cut with `...`.
const QUOTE_MAX: usize = 60;

struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= QUOTE_MAX {
            return f.write_str(self.0);
        }
        let mut cut = QUOTE_MAX;
        while !self.0.is_char_boundary(cut) {
            cut -= 1;
        }
        write!(f, "{}...", &self.0[..cut])
    }
}

impl fmt::Display for ConfigErrorKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            Self::BadString(why) | Self::Syntax(why) => f.write_str(why),
            Self::UnknownKey => write!(
                f,
                "unknown key (the supported keys are {})",
                super::SUPPORTED_KEYS
            ),
            Self::DuplicateKey { first_line } => write!(
                f,
                "set again (first set on line {first_line}); a key may be set only once"
            ),
            Self::MissingKey => f.write_str("required, but not set"),
            Self::WrongType { expected, got }
            | Self::BadValue { expected, got }
            | Self::OutOfRange { expected, got } => {
                write!(f, "expected {expected}, got {}", Quoted(got))
            }
            Self::Unsupported { why, got } => write!(f, "{} is not supported: {why}", Quoted(got)),
        }
    }
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if self.line != 0 {
            write!(f, ":{}", self.line)?;
        }
        f.write_str(": ")?;
        if let Some(key) = self.key {
            write!(f, "key '{}': ", Quoted(key))?;
        }
        write!(f, "{}", self.kind)
    }
}
