//! Tokens of the xl.cfg syntax, following libxlu's flex scanner (`libxlu_cfg_l.l`) with
//! the differences listed in `docs/domain-config.md`: CRLF line ends are accepted, a
//! comment may end the file without a newline, and strings may not hold control
//! characters or the escapes that produce them.

use super::text::ConfigStr;

/// One token. Positions are byte offsets into the whole configuration text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Token<'a> {
    pub kind: Tok<'a>,
    /// 1-based line the token starts on.
    pub line: u32,
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    /// `[A-Za-z_][A-Za-z0-9_]*`. xl only lexes lower-case keys; taking any letter here
    /// turns `Memory = 1` into "unknown key 'Memory'" rather than a lexical error.
    Key(&'a str),
    /// `-?[0-9][A-Za-z0-9_.]*`: wider than a number, so that `512M`, `1.5` and `-1`
    /// reach the key's checks and are reported with the value as written.
    Number(&'a str),
    Str(ConfigStr<'a>),
    Equals,
    Comma,
    Open,
    Close,
    Semicolon,
    /// The end of a line (`\n` or `\r\n`); a comment runs up to it.
    Newline,
    End,
}

/// A lexical error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LexError {
    pub line: u32,
    pub kind: LexErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LexErrorKind {
    UnexpectedChar(char),
    /// What is wrong with a quoted string.
    BadString(&'static str),
}

pub(super) const UNTERMINATED: &str =
    "unterminated string (a string ends with its opening quote, on the same line)";
pub(super) const CONTROL_ESCAPE: &str =
    "escape for a control character (\\a \\b \\f \\n \\r \\t \\v): no key takes control characters";
pub(super) const NUMERIC_ESCAPE: &str =
    "numeric escapes (\\xHH, \\NNN) are not supported (xl does not decode them either)";
pub(super) const UNKNOWN_ESCAPE: &str = "unknown escape; the escapes are \\\" \\' and \\\\";
pub(super) const CONTROL_CHAR: &str = "control character in a string";

/// Splits `text[start..end]` into tokens.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    end: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    /// A lexer over the whole text.
    pub fn new(text: &'a str) -> Self {
        Self::range(text, 0, text.len(), 1)
    }

    /// A lexer over `text[start..end]`, whose first line is `line`: used to walk the
    /// items of a list again. `start` and `end` must be token boundaries.
    pub fn range(text: &'a str, start: usize, end: usize, line: u32) -> Self {
        Self {
            text,
            pos: start,
            end,
            line,
        }
    }

    pub fn next_token(&mut self) -> Result<Token<'a>, LexError> {
        let bytes = self.text.as_bytes();
        loop {
            let start = self.pos;
            let Some(&b) = bytes.get(start).filter(|_| start < self.end) else {
                return Ok(self.token(Tok::End, start, start));
            };
            let single = |kind| Some((kind, 1));
            let simple = match b {
                b' ' | b'\t' => {
                    self.pos += 1;
                    continue;
                }
                b'#' => {
                    while self.pos < self.end && bytes[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                    continue;
                }
                b'\n' => single(Tok::Newline),
                b'\r' if bytes.get(start + 1) == Some(&b'\n') && start + 1 < self.end => {
                    Some((Tok::Newline, 2))
                }
                b'=' => single(Tok::Equals),
                b',' => single(Tok::Comma),
                b'[' => single(Tok::Open),
                b']' => single(Tok::Close),
                b';' => single(Tok::Semicolon),
                _ => None,
            };
            if let Some((kind, len)) = simple {
                let token = self.token(kind, start, start + len);
                self.pos += len;
                if kind == Tok::Newline {
                    self.line += 1;
                }
                return Ok(token);
            }
            let negative_number =
                b == b'-' && start + 1 < self.end && bytes[start + 1].is_ascii_digit();
            return if b.is_ascii_alphabetic() || b == b'_' {
                let end = self.scan_while(start, |c| c.is_ascii_alphanumeric() || c == b'_');
                Ok(self.token(Tok::Key(&self.text[start..end]), start, end))
            } else if b.is_ascii_digit() || negative_number {
                let end = self.scan_while(start + 1, |c| {
                    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
                });
                Ok(self.token(Tok::Number(&self.text[start..end]), start, end))
            } else if b == b'"' || b == b'\'' {
                self.string(start)
            } else {
                let c = self.text[start..].chars().next().unwrap_or('\0');
                Err(self.error(LexErrorKind::UnexpectedChar(c)))
            };
        }
    }

    fn token(&self, kind: Tok<'a>, start: usize, end: usize) -> Token<'a> {
        Token {
            kind,
            line: self.line,
            start,
            end,
        }
    }

    fn error(&self, kind: LexErrorKind) -> LexError {
        LexError {
            line: self.line,
            kind,
        }
    }

    fn scan_while(&mut self, from: usize, accept: impl Fn(u8) -> bool) -> usize {
        let bytes = self.text.as_bytes();
        let mut end = from;
        while end < self.end && accept(bytes[end]) {
            end += 1;
        }
        self.pos = end;
        end
    }

    /// A quoted string starting at `start`. The escapes are those of libxlu's
    /// `xlu__cfgl_dequote` that yield a printable character: `\"`, `\'` and `\\`.
    fn string(&mut self, start: usize) -> Result<Token<'a>, LexError> {
        let quote = char::from(self.text.as_bytes()[start]);
        let body = start + 1;
        let mut chars = self.text[body..self.end].char_indices();
        let mut escaped = false;
        while let Some((i, c)) = chars.next() {
            let bad = match c {
                c if c == quote => {
                    let raw = &self.text[body..body + i];
                    let end = body + i + 1;
                    self.pos = end;
                    let value = ConfigStr::from_raw(raw, escaped);
                    return Ok(self.token(Tok::Str(value), start, end));
                }
                '\\' => match chars.next() {
                    Some((_, '"' | '\'' | '\\')) => {
                        escaped = true;
                        continue;
                    }
                    Some((_, 'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v')) => CONTROL_ESCAPE,
                    Some((_, 'x' | '0'..='7')) => NUMERIC_ESCAPE,
                    Some((_, '\n' | '\r')) | None => UNTERMINATED,
                    Some(_) => UNKNOWN_ESCAPE,
                },
                '\n' => UNTERMINATED,
                '\r' if self.text[body + i + 1..].starts_with('\n') => UNTERMINATED,
                c if c.is_control() => CONTROL_CHAR,
                _ => continue,
            };
            return Err(self.error(LexErrorKind::BadString(bad)));
        }
        Err(self.error(LexErrorKind::BadString(UNTERMINATED)))
    }
}
