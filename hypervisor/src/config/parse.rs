//! The parser: statements, values, and each key's checks.

use super::cpus::{CpuListError, CpuPinning, VcpuCpuLists, parse_cpu_list};
use super::error::{ConfigError, ConfigErrorKind};
use super::lexer::{LexErrorKind, Lexer, Tok, Token};
use super::text::ConfigStr;
use super::{Action, DomainConfig, DomainType, MAX_MEMORY_MIB, MAX_NAME_LEN, MAX_VCPUS};
use crate::sched::WEIGHT_NORMAL;

use ConfigErrorKind::{BadValue, OutOfRange, Syntax, Unsupported, WrongType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Name,
    Description,
    Type,
    Memory,
    Vcpus,
    Cpus,
    CpuWeight,
    Cap,
    Kernel,
    Ramdisk,
    Cmdline,
    OnPoweroff,
    OnReboot,
    OnCrash,
    StartOnBoot,
}

const KEYS: [(&str, Key); 15] = [
    ("name", Key::Name),
    ("description", Key::Description),
    ("type", Key::Type),
    ("memory", Key::Memory),
    ("vcpus", Key::Vcpus),
    ("cpus", Key::Cpus),
    ("cpu_weight", Key::CpuWeight),
    ("cap", Key::Cap),
    ("kernel", Key::Kernel),
    ("ramdisk", Key::Ramdisk),
    ("cmdline", Key::Cmdline),
    ("on_poweroff", Key::OnPoweroff),
    ("on_reboot", Key::OnReboot),
    ("on_crash", Key::OnCrash),
    ("start_on_boot", Key::StartOnBoot),
];

/// A value as parsed, before the key's checks.
#[derive(Clone, Copy, Debug)]
struct Value<'a> {
    kind: ValueKind<'a>,
    /// The value as written.
    source: &'a str,
    line: u32,
}

#[derive(Clone, Copy, Debug)]
enum ValueKind<'a> {
    Number(&'a str),
    Str(ConfigStr<'a>),
    List(VcpuCpuLists<'a>),
}

/// A failed check: what is wrong, and on which line (a list item's, or the value's).
type Check<'a, T> = Result<T, (u32, ConfigErrorKind<'a>)>;

/// Parses the configuration `text`, read from `file` (used only in messages).
pub fn parse<'a>(file: &'a str, text: &'a str) -> Result<DomainConfig<'a>, ConfigError<'a>> {
    let mut parser = Parser {
        file,
        text,
        lexer: Lexer::new(text),
        key: None,
    };
    let mut settings = Settings::default();
    loop {
        parser.key = None;
        let token = parser.next()?;
        let name = match token.kind {
            Tok::End => break,
            Tok::Newline | Tok::Semicolon => continue,
            Tok::Key(name) => name,
            _ => return Err(parser.error(token.line, Syntax(EXPECTED_KEY))),
        };
        parser.key = Some(name);
        let Some(&(_, key)) = KEYS.iter().find(|(k, _)| *k == name) else {
            return Err(parser.error(token.line, ConfigErrorKind::UnknownKey));
        };
        let equals = parser.next()?;
        if equals.kind != Tok::Equals {
            return Err(parser.error(equals.line, Syntax(EXPECTED_EQUALS)));
        }
        let value = parser.value()?;
        let end = parser.next()?;
        if !matches!(end.kind, Tok::Newline | Tok::Semicolon | Tok::End) {
            return Err(parser.error(end.line, Syntax(EXPECTED_END)));
        }
        let seen = &mut settings.lines[key as usize];
        if *seen != 0 {
            let first_line = *seen;
            return Err(parser.error(token.line, ConfigErrorKind::DuplicateKey { first_line }));
        }
        *seen = token.line;
        settings
            .set(key, value)
            .map_err(|(line, kind)| parser.error(line, kind))?;
        if end.kind == Tok::End {
            break;
        }
    }
    settings.finish(&mut parser)
}

const EXPECTED_KEY: &str = "expected a key at the start of a setting (KEY = VALUE)";
const EXPECTED_EQUALS: &str = "expected '=' after the key";
const EXPECTED_VALUE: &str = "expected a value after '=': a number, a quoted string or a [list]";
const EXPECTED_END: &str =
    "expected the end of the setting after the value (a newline, ';' or a # comment)";
pub(super) const NESTED_LIST: &str = "lists inside lists: no supported key takes one";
pub(super) const UNTERMINATED_LIST: &str = "unterminated list: expected ']'";
pub(super) const EXPECTED_ITEM: &str = "expected a list item (a number or a quoted string) or ']'";
pub(super) const EXPECTED_COMMA: &str = "expected ',' or ']' after a list item";

struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    lexer: Lexer<'a>,
    /// The key being set, named in errors.
    key: Option<&'a str>,
}

impl<'a> Parser<'a> {
    fn error(&self, line: u32, kind: ConfigErrorKind<'a>) -> ConfigError<'a> {
        ConfigError {
            file: self.file,
            line,
            key: self.key,
            kind,
        }
    }

    fn next(&mut self) -> Result<Token<'a>, ConfigError<'a>> {
        self.lexer.next_token().map_err(|e| {
            let kind = match e.kind {
                LexErrorKind::UnexpectedChar(c) => ConfigErrorKind::UnexpectedChar(c),
                LexErrorKind::BadString(why) => ConfigErrorKind::BadString(why),
            };
            self.error(e.line, kind)
        })
    }

    /// `atom | '[' newlines* (atom newlines* (',' newlines* atom newlines*)* ','?)? ']'`,
    /// as libxlu's grammar (`libxlu_cfg_y.y`): lists may span lines and end with a comma.
    fn value(&mut self) -> Result<Value<'a>, ConfigError<'a>> {
        let first = self.next()?;
        let kind = match first.kind {
            Tok::Number(n) => ValueKind::Number(n),
            Tok::Str(s) => ValueKind::Str(s),
            Tok::Open => return self.list(first),
            _ => return Err(self.error(first.line, Syntax(EXPECTED_VALUE))),
        };
        Ok(Value {
            kind,
            source: &self.text[first.start..first.end],
            line: first.line,
        })
    }

    fn list(&mut self, open: Token<'a>) -> Result<Value<'a>, ConfigError<'a>> {
        let mut len = 0;
        let mut want_item = true;
        loop {
            let token = self.next()?;
            let problem = match token.kind {
                Tok::Newline => continue,
                Tok::Close => {
                    let items = VcpuCpuLists::new(self.text, open.end, token.start, open.line, len);
                    return Ok(Value {
                        kind: ValueKind::List(items),
                        source: &self.text[open.start..token.end],
                        line: open.line,
                    });
                }
                Tok::Number(_) | Tok::Str(_) if want_item => {
                    len += 1;
                    want_item = false;
                    continue;
                }
                Tok::Comma if !want_item => {
                    want_item = true;
                    continue;
                }
                Tok::Open => NESTED_LIST,
                Tok::End => UNTERMINATED_LIST,
                _ if want_item => EXPECTED_ITEM,
                _ => EXPECTED_COMMA,
            };
            return Err(self.error(token.line, Syntax(problem)));
        }
    }
}

/// What the keys set so far.
#[derive(Default)]
struct Settings<'a> {
    /// Line each key was set on; 0 when not set.
    lines: [u32; KEYS.len()],
    name: Option<&'a str>,
    description: Option<ConfigStr<'a>>,
    memory_mib: Option<u64>,
    vcpus: Option<u32>,
    cpus: Option<(CpuPinning<'a>, &'a str)>,
    cpu_weight: Option<u16>,
    cap: Option<(u16, &'a str)>,
    kernel: Option<&'a str>,
    ramdisk: Option<&'a str>,
    cmdline: Option<ConfigStr<'a>>,
    on_poweroff: Option<Action>,
    on_reboot: Option<Action>,
    on_crash: Option<Action>,
    start_on_boot: Option<bool>,
}

/// A numeric key: how it is described in messages, and its range.
struct Number {
    what: &'static str,
    range: &'static str,
    min: u64,
    max: u64,
}

const MEMORY: Number = Number {
    what: "a number of MiB",
    range: "a number of MiB from 1 to 16777216",
    min: 1,
    max: MAX_MEMORY_MIB,
};
const VCPUS: Number = Number {
    what: "a number of vCPUs",
    range: "a number of vCPUs from 1 to 128",
    min: 1,
    max: MAX_VCPUS as u64,
};
const WEIGHT: Number = Number {
    what: "a weight",
    range: "a weight from 1 to 65535",
    min: 1,
    max: 65535,
};
const CAP: Number = Number {
    what: "a percentage of one CPU",
    range: "a percentage of one CPU from 0 (no cap) to 100 × vcpus",
    min: 0,
    max: 65535,
};
const BOOLEAN: Number = Number {
    what: "0 or 1",
    range: "0 or 1",
    min: 0,
    max: 1,
};

const QUOTED: &str = "a quoted string";
const ACTIONS: &str = "\"destroy\", \"restart\" or \"preserve\"";
const XL_ONLY_ACTION: &str = "the supported actions are destroy, restart and preserve \
     (not xl's rename-restart, coredump-destroy, coredump-restart or soft-reset)";
const PVH_ONLY: &str = "Ferrovisor runs PVH guests only (type = \"pvh\")";
const NAME: &str = "a name of 1 to 64 ASCII letters, digits, '.', '_' or '-', not all digits";
const MODULE: &str = "the name of a boot module (not empty, no spaces or escapes)";
const CPU_LIST: &str = "a CPU list such as \"all\", \"3\", \"0-3\" or \"0,2,5-7,^1\"";
const CPU_NUMBER: &str = "CPU numbers from 0 to 255";
const CPU_NONE: &str = "a CPU list that selects at least one CPU";
const CPU_NODES: &str = "NUMA node selections (node:, nodes:) are not implemented";
const PER_VCPU: &str = "at most one CPU list per vCPU";

impl<'a> Settings<'a> {
    fn set(&mut self, key: Key, value: Value<'a>) -> Check<'a, ()> {
        match key {
            Key::Name => self.name = Some(name(value)?),
            Key::Description => self.description = Some(string(value)?),
            Key::Type => {
                let got = value.source;
                let ty = string(value)?;
                if ty == "pv" || ty == "hvm" {
                    return Err((value.line, Unsupported { why: PVH_ONLY, got }));
                }
                if ty != "pvh" {
                    return Err((
                        value.line,
                        BadValue {
                            expected: "\"pvh\"",
                            got,
                        },
                    ));
                }
            }
            Key::Memory => self.memory_mib = Some(number(value, &MEMORY)?),
            Key::Vcpus => self.vcpus = Some(number(value, &VCPUS)? as u32),
            Key::Cpus => self.cpus = Some((cpus(value)?, value.source)),
            Key::CpuWeight => self.cpu_weight = Some(number(value, &WEIGHT)? as u16),
            Key::Cap => self.cap = Some((number(value, &CAP)? as u16, value.source)),
            Key::Kernel => self.kernel = Some(module(value)?),
            Key::Ramdisk => self.ramdisk = Some(module(value)?),
            Key::Cmdline => self.cmdline = Some(string(value)?),
            Key::OnPoweroff => self.on_poweroff = Some(action(value)?),
            Key::OnReboot => self.on_reboot = Some(action(value)?),
            Key::OnCrash => self.on_crash = Some(action(value)?),
            Key::StartOnBoot => self.start_on_boot = Some(number(value, &BOOLEAN)? == 1),
        }
        Ok(())
    }

    /// Checks what involves several keys, and applies the defaults.
    fn finish(self, parser: &mut Parser<'a>) -> Result<DomainConfig<'a>, ConfigError<'a>> {
        let missing = |parser: &mut Parser<'a>, key| {
            parser.key = Some(key);
            parser.error(0, ConfigErrorKind::MissingKey)
        };
        let name = self.name.ok_or_else(|| missing(parser, "name"))?;
        let memory_mib = self.memory_mib.ok_or_else(|| missing(parser, "memory"))?;
        let kernel = self.kernel.ok_or_else(|| missing(parser, "kernel"))?;
        let vcpus = self.vcpus.unwrap_or(1);
        let (cap, cap_source) = self.cap.unwrap_or((0, ""));
        if u32::from(cap) > 100 * vcpus {
            parser.key = Some("cap");
            let line = self.lines[Key::Cap as usize];
            let got = cap_source;
            return Err(parser.error(
                line,
                OutOfRange {
                    expected: CAP.range,
                    got,
                },
            ));
        }
        if let Some((CpuPinning::PerVcpu(lists), got)) = self.cpus
            && lists.len() > vcpus
        {
            parser.key = Some("cpus");
            let line = self.lines[Key::Cpus as usize];
            return Err(parser.error(
                line,
                OutOfRange {
                    expected: PER_VCPU,
                    got,
                },
            ));
        }
        Ok(DomainConfig {
            name,
            description: self.description,
            kind: DomainType::Pvh,
            memory_mib,
            vcpus,
            cpus: self.cpus.map(|(pinning, _)| pinning),
            cpu_weight: self.cpu_weight.unwrap_or(WEIGHT_NORMAL),
            cap,
            kernel,
            ramdisk: self.ramdisk,
            cmdline: self.cmdline,
            on_poweroff: self.on_poweroff.unwrap_or(Action::Destroy),
            on_reboot: self.on_reboot.unwrap_or(Action::Restart),
            on_crash: self.on_crash.unwrap_or(Action::Destroy),
            start_on_boot: self.start_on_boot.unwrap_or(true),
        })
    }
}

fn string(value: Value<'_>) -> Check<'_, ConfigStr<'_>> {
    match value.kind {
        ValueKind::Str(s) => Ok(s),
        _ => Err(wrong_type(value, QUOTED)),
    }
}

fn wrong_type<'a>(value: Value<'a>, expected: &'static str) -> (u32, ConfigErrorKind<'a>) {
    let got = value.source;
    (value.line, WrongType { expected, got })
}

fn name(value: Value<'_>) -> Check<'_, &str> {
    let bad = (
        value.line,
        BadValue {
            expected: NAME,
            got: value.source,
        },
    );
    let name = string(value)?.as_str().ok_or(bad)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.bytes().all(allowed)
        // xl takes an all-digit argument for a domain id.
        || name.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad);
    }
    Ok(name)
}

/// A boot module's name: matched against the first word of the module's command line,
/// so it cannot contain spaces.
fn module(value: Value<'_>) -> Check<'_, &str> {
    let bad = (
        value.line,
        BadValue {
            expected: MODULE,
            got: value.source,
        },
    );
    let name = string(value)?.as_str().ok_or(bad)?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(bad);
    }
    Ok(name)
}

fn action(value: Value<'_>) -> Check<'_, Action> {
    let got = value.source;
    let s = match value.kind {
        ValueKind::Str(s) => s,
        _ => return Err(wrong_type(value, ACTIONS)),
    };
    for action in [Action::Destroy, Action::Restart, Action::Preserve] {
        if s == action.name() {
            return Ok(action);
        }
    }
    let xl_only = [
        "rename-restart",
        "coredump-destroy",
        "coredump-restart",
        "soft-reset",
    ];
    if xl_only.iter().any(|a| s == *a) {
        return Err((
            value.line,
            Unsupported {
                why: XL_ONLY_ACTION,
                got,
            },
        ));
    }
    Err((
        value.line,
        BadValue {
            expected: ACTIONS,
            got,
        },
    ))
}

/// Why a number was refused.
#[derive(Debug, PartialEq, Eq)]
enum NumberError {
    /// Not a number at all (`512M`, `1.5`).
    Malformed,
    /// `0` followed by digits: octal to xl (strtol base 0), refused rather than guessed.
    LeadingZero,
    /// Negative, or beyond `u64`.
    Range,
}

/// An unsigned number, decimal or `0x` hex.
fn parse_number(s: &str) -> Result<u64, NumberError> {
    if let Some(digits) = s.strip_prefix('-') {
        return match parse_number(digits) {
            Ok(_) | Err(NumberError::Range) => Err(NumberError::Range),
            Err(e) => Err(e),
        };
    }
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumberError::Malformed);
    }
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        return Err(NumberError::LeadingZero);
    }
    u64::from_str_radix(digits, radix).map_err(|_| NumberError::Range)
}

const LEADING_ZERO: &str =
    "a number without a leading 0 (xl reads 0-prefixed numbers as octal; use 0x for hex)";

fn number<'a>(value: Value<'a>, spec: &Number) -> Check<'a, u64> {
    let ValueKind::Number(text) = value.kind else {
        return Err(wrong_type(value, spec.what));
    };
    let got = value.source;
    match parse_number(text) {
        Ok(n) if (spec.min..=spec.max).contains(&n) => Ok(n),
        Ok(_) | Err(NumberError::Range) => Err((
            value.line,
            OutOfRange {
                expected: spec.range,
                got,
            },
        )),
        Err(NumberError::Malformed) => Err((
            value.line,
            BadValue {
                expected: spec.what,
                got,
            },
        )),
        Err(NumberError::LeadingZero) => Err((
            value.line,
            BadValue {
                expected: LEADING_ZERO,
                got,
            },
        )),
    }
}

/// `cpus = "LIST"`, `cpus = N` or `cpus = ["LIST", ...]`.
fn cpus(value: Value<'_>) -> Check<'_, CpuPinning<'_>> {
    let check = |list: &str, got, line| {
        parse_cpu_list(list).map_err(|e| {
            let kind = match e {
                CpuListError::Syntax => BadValue {
                    expected: CPU_LIST,
                    got,
                },
                CpuListError::TooHigh => OutOfRange {
                    expected: CPU_NUMBER,
                    got,
                },
                CpuListError::Empty => BadValue {
                    expected: CPU_NONE,
                    got,
                },
                CpuListError::Nodes => Unsupported {
                    why: CPU_NODES,
                    got,
                },
            };
            (line, kind)
        })
    };
    match value.kind {
        ValueKind::Str(s) => check(s.raw(), value.source, value.line).map(CpuPinning::Every),
        ValueKind::Number(n) => check(n, value.source, value.line).map(CpuPinning::Every),
        ValueKind::List(lists) => {
            for (item, line) in lists.items() {
                check(item, item, line)?;
            }
            Ok(CpuPinning::PerVcpu(lists))
        }
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Ok(0));
        assert_eq!(parse_number("512"), Ok(512));
        assert_eq!(parse_number("0x200"), Ok(512));
        assert_eq!(parse_number("0XfF"), Ok(255));
        assert_eq!(parse_number("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_number("18446744073709551616"),
            Err(NumberError::Range)
        );
        assert_eq!(parse_number("-1"), Err(NumberError::Range));
        assert_eq!(parse_number("-0x"), Err(NumberError::Malformed));
        assert_eq!(parse_number("010"), Err(NumberError::LeadingZero));
        assert_eq!(parse_number("0x"), Err(NumberError::Malformed));
        assert_eq!(parse_number("512M"), Err(NumberError::Malformed));
        assert_eq!(parse_number("1.5"), Err(NumberError::Malformed));
        assert_eq!(parse_number("1_000"), Err(NumberError::Malformed));
        assert_eq!(parse_number(""), Err(NumberError::Malformed));
    }

    #[test]
    fn range_texts_match_the_limits() {
        assert!(MEMORY.range.ends_with(&std::format!("to {MAX_MEMORY_MIB}")));
        assert!(VCPUS.range.ends_with(&std::format!("to {MAX_VCPUS}")));
        assert_eq!(KEYS.len(), super::super::SUPPORTED_KEYS.split(", ").count());
        for (name, _) in KEYS {
            assert!(super::super::SUPPORTED_KEYS.contains(name));
        }
    }
}
