//! Parsing the kernel's serial log.
//!
//! Lines are matched by substring: the logger may put prefixes (level, CPU, timestamp) in
//! front of them, and GRUB's terminal escape sequences may precede the first one. Values are
//! read as `key=value` tokens that start at a word boundary, so `rip=` never matches inside
//! `nrip=` and `cr2=` never matches `cr2-min=`.

/// The log's lines, without line terminators (`\n`, `\r\n`, stray `\r`).
pub fn lines(log: &str) -> impl Iterator<Item = &str> {
    log.split('\n').map(|l| l.trim_matches('\r'))
}

/// The value of `key=` in `line`: a double-quoted string (without the quotes), or the text
/// up to the next whitespace with trailing `,;)` removed. The key must start the line or
/// follow a character that cannot be part of a key.
pub fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat_len = key.len() + 1;
    let mut from = 0;
    while let Some(pos) = line[from..].find(key) {
        let start = from + pos;
        from = start + 1;
        let before_ok = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'));
        if !before_ok || line.as_bytes().get(start + key.len()) != Some(&b'=') {
            continue;
        }
        let rest = &line[start + pat_len..];
        if let Some(quoted) = rest.strip_prefix('"') {
            return Some(match quoted.rfind('"') {
                Some(end) => &quoted[..end],
                None => quoted,
            });
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        return Some(rest[..end].trim_end_matches([',', ';', ')']));
    }
    None
}

/// Parses `0x`-prefixed (or bare) hexadecimal.
pub fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits.replace('_', ""), 16).ok()
}

/// Parses a decimal number at the start of `s` (stops at the first non-digit).
pub fn parse_dec(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The first line containing `needle`.
pub fn find_line<'a>(log: &'a str, needle: &str) -> Option<&'a str> {
    lines(log).find(|l| l.contains(needle))
}

/// The text after the first `needle` on the first line containing it.
pub fn after<'a>(log: &'a str, needle: &str) -> Option<&'a str> {
    find_line(log, needle).map(|l| {
        let at = l.find(needle).unwrap_or(0);
        &l[at + needle.len()..]
    })
}

/// The XTF-style final verdict printed by the selftest kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestResult {
    /// `Test result: SUCCESS`
    Success,
    /// `Test result: FAILURE`
    Failure,
    /// `Test result: SKIP`
    Skip,
    /// `Test result: ERROR`
    Error,
}

impl TestResult {
    /// The word printed after `Test result: `.
    pub fn word(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Skip => "SKIP",
            Self::Error => "ERROR",
        }
    }
}

/// The last `Test result:` line's verdict, if any.
pub fn test_result(log: &str) -> Option<TestResult> {
    let line = lines(log).filter(|l| l.contains("Test result: ")).last()?;
    let word = line
        .split("Test result: ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    [
        TestResult::Success,
        TestResult::Failure,
        TestResult::Skip,
        TestResult::Error,
    ]
    .into_iter()
    .find(|r| r.word() == word)
}

/// The line the kernel prints last when it stops after a fatal error.
pub const HALTING: &str = "FATAL: halting all CPUs";

/// Whether the log contains a line after which the kernel stops: a test result or the
/// fatal halt. The harness uses it to stop an emulator that does not exit by itself.
pub fn finished(log: &str) -> bool {
    lines(log).any(|l| l.contains("Test result: ") || l.contains(HALTING))
}

/// What the virtualization line said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virt {
    /// `svm`, `vmx` or `none`.
    pub kind: String,
    /// The whole line after `virt: `, for `key=value` look-ups.
    pub rest: String,
}

impl Virt {
    /// The value of one fact, e.g. `npt`.
    pub fn fact(&self, key: &str) -> Option<&str> {
        value(&self.rest, key)
    }
}

/// One `module <i>: ...` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleFact {
    /// The index printed after `module `.
    pub index: u64,
    /// `addr=`
    pub addr: Option<u64>,
    /// `size=`
    pub size: Option<u64>,
    /// `cmdline="..."`
    pub cmdline: Option<String>,
}

/// The boot facts printed by every selftest kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootFacts {
    /// The version in `Ferrovisor <version> booted by <protocol>`.
    pub version: Option<String>,
    /// The protocol in that line.
    pub booted_by: Option<String>,
    /// `cpu: vendor=`
    pub vendor: Option<String>,
    /// The `virt:` line.
    pub virt: Option<Virt>,
    /// `memory: ram=<KiB>`
    pub ram_kib: Option<u64>,
    /// `modules: <N>`
    pub module_count: Option<u64>,
    /// The `module <i>:` lines in order.
    pub modules: Vec<ModuleFact>,
}

/// Reads the boot facts out of a log.
pub fn boot_facts(log: &str) -> BootFacts {
    let mut facts = BootFacts::default();
    for line in lines(log) {
        if facts.booted_by.is_none()
            && let Some(at) = line.find(" booted by ")
            && let Some(name_at) = line[..at].rfind("Ferrovisor ")
        {
            facts.version = Some(line[name_at + "Ferrovisor ".len()..at].trim().to_string());
            facts.booted_by = line[at + " booted by ".len()..]
                .split_whitespace()
                .next()
                .map(str::to_string);
        }
        if facts.vendor.is_none() && line.contains("cpu: ") {
            facts.vendor = value(line, "vendor").map(str::to_string);
        }
        if facts.virt.is_none()
            && let Some(at) = line.find("virt: ")
        {
            let rest = &line[at + "virt: ".len()..];
            facts.virt = Some(Virt {
                kind: rest.split_whitespace().next().unwrap_or("").to_string(),
                rest: rest.to_string(),
            });
        }
        if facts.ram_kib.is_none() && line.contains("memory: ") {
            facts.ram_kib = value(line, "ram").and_then(parse_dec);
        }
        if facts.module_count.is_none()
            && let Some(at) = line.find("modules: ")
        {
            facts.module_count = parse_dec(&line[at + "modules: ".len()..]);
        }
        if let Some(at) = line.find("module ") {
            let rest = &line[at + "module ".len()..];
            let colon = rest.find(':');
            if let Some(index) = colon.and_then(|c| rest[..c].parse::<u64>().ok()) {
                facts.modules.push(ModuleFact {
                    index,
                    addr: value(rest, "addr").and_then(parse_hex),
                    size: value(rest, "size").and_then(parse_dec),
                    cmdline: value(rest, "cmdline").map(str::to_string),
                });
            }
        }
    }
    facts
}

/// What the selftest announced before a deliberate fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// `selftest: expect vector=<dec> [rip=0x..] [cr2=0x..] [cr2-min=0x.. cr2-max=0x..] [stack=..]`
    Exception {
        /// The vector, decimal.
        vector: u64,
        /// The faulting RIP, when known exactly.
        rip: Option<u64>,
        /// CR2, when known exactly.
        cr2: Option<u64>,
        /// An inclusive range CR2 must fall in.
        cr2_range: Option<(u64, u64)>,
        /// The stack the handler must have run on.
        stack: Option<String>,
    },
    /// `selftest: expect panic="<message>" location=<file>:<line>`
    Panic {
        /// The panic message.
        message: String,
        /// The source file.
        file: String,
        /// The source line.
        line: u64,
    },
}

const EXPECT: &str = "selftest: expect ";

fn hex_value(line: &str, key: &str) -> Result<Option<u64>, String> {
    match value(line, key) {
        None => Ok(None),
        Some(v) => parse_hex(v)
            .map(Some)
            .ok_or_else(|| format!("bad {key}={v} in expectation")),
    }
}

/// Reads the first `selftest: expect` line. `Ok(None)` when there is none.
pub fn expectation(log: &str) -> Result<Option<Expectation>, String> {
    let Some(line) = after(log, EXPECT) else {
        return Ok(None);
    };
    if let Some(message) = value(line, "panic") {
        let location = value(line, "location").ok_or("panic expectation without location=")?;
        let (file, line_no) = location
            .rsplit_once(':')
            .ok_or("location= is not <file>:<line>")?;
        let line_no = line_no
            .parse()
            .map_err(|_| format!("bad line number in location={location}"))?;
        return Ok(Some(Expectation::Panic {
            message: message.to_string(),
            file: file.to_string(),
            line: line_no,
        }));
    }
    let vector = value(line, "vector")
        .ok_or("expectation names neither vector= nor panic=")?
        .parse()
        .map_err(|_| "bad vector= in expectation".to_string())?;
    let min = hex_value(line, "cr2-min")?;
    let max = hex_value(line, "cr2-max")?;
    let cr2_range = match (min, max) {
        (Some(a), Some(b)) => Some((a, b)),
        (None, None) => None,
        _ => return Err("expectation has only one of cr2-min= and cr2-max=".into()),
    };
    Ok(Some(Expectation::Exception {
        vector,
        rip: hex_value(line, "rip")?,
        cr2: hex_value(line, "cr2")?,
        cr2_range,
        stack: value(line, "stack").map(str::to_string),
    }))
}

/// An exception report (`FATAL: exception ...` and the lines after it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExceptionReport {
    /// E.g. `#PF`.
    pub mnemonic: String,
    /// `vector=`
    pub vector: Option<u64>,
    /// `error=`
    pub error: Option<u64>,
    /// `cpu=`
    pub cpu: Option<u64>,
    /// The first `rip=` after the FATAL line.
    pub rip: Option<u64>,
    /// The first `cr2=` after the FATAL line.
    pub cr2: Option<u64>,
    /// The first `stack=` after the FATAL line.
    pub stack: Option<String>,
    /// Whether a `backtrace:` line follows.
    pub backtrace: bool,
}

/// A panic report (`PANIC at <file>:<line>:<col>: <message>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PanicReport {
    /// Source file.
    pub file: String,
    /// Source line.
    pub line: u64,
    /// Source column.
    pub col: u64,
    /// The message (first line only).
    pub message: String,
    /// Whether a `backtrace:` line follows.
    pub backtrace: bool,
}

/// The first fatal report in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FatalReport {
    /// A CPU exception.
    Exception(ExceptionReport),
    /// A Rust panic.
    Panic(PanicReport),
}

/// Parses `<file>:<line>:<col>: <message>` (the text after `PANIC at `).
pub fn parse_panic_location(text: &str) -> Option<PanicReport> {
    let (location, message) = text.split_once(": ").unwrap_or((text, ""));
    let mut parts = location.rsplitn(3, ':');
    let col = parts.next()?.trim().parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some(PanicReport {
        file,
        line,
        col,
        message: message.to_string(),
        backtrace: false,
    })
}

/// Finds the first fatal report (exception or panic).
pub fn fatal_report(log: &str) -> Option<FatalReport> {
    let all: Vec<&str> = lines(log).collect();
    let (index, report) = all.iter().enumerate().find_map(|(i, l)| {
        if let Some(at) = l.find("FATAL: exception ") {
            let rest = &l[at + "FATAL: exception ".len()..];
            let r = ExceptionReport {
                mnemonic: rest.split_whitespace().next().unwrap_or("").to_string(),
                vector: value(rest, "vector").and_then(parse_dec),
                error: value(rest, "error").and_then(parse_hex),
                cpu: value(rest, "cpu").and_then(parse_dec),
                ..ExceptionReport::default()
            };
            return Some((i, FatalReport::Exception(r)));
        }
        let at = l.find("PANIC at ")?;
        let r = parse_panic_location(&l[at + "PANIC at ".len()..]).unwrap_or_default();
        Some((i, FatalReport::Panic(r)))
    })?;
    let tail = &all[index + 1..];
    let backtrace = tail.iter().any(|l| l.contains("backtrace:"));
    Some(match report {
        FatalReport::Exception(mut r) => {
            // The expectation line (printed before the fault) also carries rip=/cr2=/stack=,
            // so only lines after the FATAL line count.
            r.rip = tail
                .iter()
                .find_map(|l| value(l, "rip"))
                .and_then(parse_hex);
            r.cr2 = tail
                .iter()
                .find_map(|l| value(l, "cr2"))
                .and_then(parse_hex);
            r.stack = tail
                .iter()
                .find_map(|l| value(l, "stack"))
                .map(str::to_string);
            r.backtrace = backtrace;
            FatalReport::Exception(r)
        }
        FatalReport::Panic(mut r) => {
            r.backtrace = backtrace;
            FatalReport::Panic(r)
        }
    })
}

/// Compares a fatal report with the selftest's expectation; `Err` says what differs.
pub fn match_expectation(expect: &Expectation, report: &FatalReport) -> Result<(), String> {
    let hex = |v: Option<u64>| v.map_or("none".to_string(), |v| format!("{v:#x}"));
    match (expect, report) {
        (
            Expectation::Exception {
                vector,
                rip,
                cr2,
                cr2_range,
                stack,
            },
            FatalReport::Exception(r),
        ) => {
            if r.vector != Some(*vector) {
                return Err(format!(
                    "expected vector {vector}, got {} ({})",
                    r.vector.map_or("none".to_string(), |v| v.to_string()),
                    r.mnemonic
                ));
            }
            if let Some(rip) = rip
                && r.rip != Some(*rip)
            {
                return Err(format!("expected rip={rip:#x}, got rip={}", hex(r.rip)));
            }
            if let Some(cr2) = cr2
                && r.cr2 != Some(*cr2)
            {
                return Err(format!("expected cr2={cr2:#x}, got cr2={}", hex(r.cr2)));
            }
            if let Some((min, max)) = cr2_range
                && !r.cr2.is_some_and(|c| (*min..=*max).contains(&c))
            {
                return Err(format!(
                    "expected cr2 in [{min:#x}, {max:#x}], got cr2={}",
                    hex(r.cr2)
                ));
            }
            if let Some(stack) = stack
                && r.stack.as_deref() != Some(stack.as_str())
            {
                return Err(format!(
                    "expected stack={stack}, got stack={}",
                    r.stack.as_deref().unwrap_or("none")
                ));
            }
            Ok(())
        }
        (
            Expectation::Panic {
                message,
                file,
                line,
            },
            FatalReport::Panic(r),
        ) => {
            if r.file != *file || r.line != *line {
                return Err(format!(
                    "expected panic at {file}:{line}, got {}:{}",
                    r.file, r.line
                ));
            }
            if r.message != *message {
                return Err(format!(
                    "expected panic message {message:?}, got {:?}",
                    r.message
                ));
            }
            Ok(())
        }
        (Expectation::Exception { vector, .. }, FatalReport::Panic(r)) => Err(format!(
            "expected exception vector {vector}, got a panic at {}:{}: {}",
            r.file, r.line, r.message
        )),
        (Expectation::Panic { message, .. }, FatalReport::Exception(r)) => Err(format!(
            "expected panic {message:?}, got exception {} vector={}",
            r.mnemonic,
            r.vector.map_or("?".to_string(), |v| v.to_string())
        )),
    }
}

/// Removes terminal escape sequences and control characters (except tab) from a line, so a
/// log tail can be shown on a terminal.
pub fn sanitize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// The last `n` non-empty lines of a log, sanitized.
pub fn tail(log: &str, n: usize) -> Vec<String> {
    let all: Vec<String> = lines(log)
        .map(sanitize)
        .filter(|l| !l.trim().is_empty())
        .collect();
    all[all.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT_LOG: &str = "\u{1b}[H\u{1b}[J\u{1b}[1;1H  Booting `Ferrovisor'\r\n\r\n\
        (XEN) [0.001] Ferrovisor 0.1.0 booted by multiboot2\r\n\
        [ INFO] cpu: vendor=AuthenticAMD family=0x17 model=0x01 stepping=0x02 brand=\"AMD EPYC Processor\"\r\n\
        [ INFO] virt: svm npt=yes nrips=no asids=16\r\n\
        [ INFO] memory: ram=261631 KiB usable=259583 KiB free=250000 KiB\r\n\
        modules: 2\r\n\
        module 0: addr=0x00108000 size=5000 cmdline=\"mod-a.bin role=alpha\"\r\n\
        module 1: addr=0x0010a000 size=70000 cmdline=\"role=beta\"\r\n\
        Test result: SUCCESS\r\n";

    #[test]
    fn value_respects_word_boundaries() {
        let l = "nrip=0x1 rip=0x2 cr2-min=0x3 cr2=0x4 x=\"a b\" y=5,";
        assert_eq!(value(l, "rip"), Some("0x2"));
        assert_eq!(value(l, "cr2"), Some("0x4"));
        assert_eq!(value(l, "cr2-min"), Some("0x3"));
        assert_eq!(value(l, "x"), Some("a b"));
        assert_eq!(value(l, "y"), Some("5"));
        assert_eq!(value(l, "z"), None);
        assert_eq!(value("rip=", "rip"), Some(""));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_hex("0xffffffff80001234"), Some(0xffff_ffff_8000_1234));
        assert_eq!(parse_hex("DEAD"), Some(0xdead));
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_dec("261631 KiB"), Some(261631));
        assert_eq!(parse_dec("x"), None);
    }

    #[test]
    fn reads_boot_facts() {
        let f = boot_facts(BOOT_LOG);
        assert_eq!(f.version.as_deref(), Some("0.1.0"));
        assert_eq!(f.booted_by.as_deref(), Some("multiboot2"));
        assert_eq!(f.vendor.as_deref(), Some("AuthenticAMD"));
        let virt = f.virt.unwrap();
        assert_eq!(virt.kind, "svm");
        assert_eq!(virt.fact("npt"), Some("yes"));
        assert_eq!(virt.fact("nrips"), Some("no"));
        assert_eq!(f.ram_kib, Some(261631));
        assert_eq!(f.module_count, Some(2));
        assert_eq!(f.modules.len(), 2);
        assert_eq!(f.modules[1].size, Some(70000));
        assert_eq!(f.modules[0].addr, Some(0x108000));
        assert_eq!(
            f.modules[0].cmdline.as_deref(),
            Some("mod-a.bin role=alpha")
        );
        assert_eq!(test_result(BOOT_LOG), Some(TestResult::Success));
        assert!(finished(BOOT_LOG));
        assert!(!finished("modules: 0\n"));
    }

    #[test]
    fn reads_exception_report() {
        let log = "selftest: expect vector=14 rip=0xffffffff80101000 cr2=0x0 stack=kernel\n\
            [ERROR] FATAL: exception #PF vector=14 error=0x0 cpu=0\n\
            [ERROR]   rip=0xffffffff80101000 rsp=0xffffffff80200000 rflags=0x0000000000010002\n\
            [ERROR]   cr0=0x0000000080000011 cr2=0x0000000000000000 cr3=0x0000000000001000\n\
            [ERROR] stack=kernel\n[ERROR] backtrace:\n[ERROR]   0xffffffff80101234\nFATAL: halting all CPUs\n";
        let e = expectation(log).unwrap().unwrap();
        let r = fatal_report(log).unwrap();
        let FatalReport::Exception(ref x) = r else {
            panic!()
        };
        assert_eq!(x.mnemonic, "#PF");
        assert_eq!(x.vector, Some(14));
        assert_eq!(x.error, Some(0));
        assert_eq!(x.cpu, Some(0));
        assert_eq!(x.rip, Some(0xffff_ffff_8010_1000));
        assert_eq!(x.cr2, Some(0));
        assert_eq!(x.stack.as_deref(), Some("kernel"));
        assert!(x.backtrace);
        assert_eq!(match_expectation(&e, &r), Ok(()));
    }

    #[test]
    fn mismatches_are_explained() {
        let report = |cr2: &str, stack: &str| {
            fatal_report(&format!(
                "FATAL: exception #DF vector=8 error=0x0 cpu=1\n rip=0x0000000000001000\n cr2={cr2}\nstack={stack}\n"
            ))
            .unwrap()
        };
        let expect =
            expectation("selftest: expect vector=8 cr2-min=0x1000 cr2-max=0x1fff stack=df-ist")
                .unwrap()
                .unwrap();
        assert_eq!(
            match_expectation(&expect, &report("0x0000000000001ff8", "df-ist")),
            Ok(())
        );
        let err = match_expectation(&expect, &report("0x0000000000002000", "df-ist")).unwrap_err();
        assert!(err.contains("expected cr2 in [0x1000, 0x1fff]"), "{err}");
        let err = match_expectation(&expect, &report("0x1ff8", "kernel")).unwrap_err();
        assert_eq!(err, "expected stack=df-ist, got stack=kernel");
        let wrong_vector = expectation("selftest: expect vector=14").unwrap().unwrap();
        let err = match_expectation(&wrong_vector, &report("0x1ff8", "df-ist")).unwrap_err();
        assert_eq!(err, "expected vector 14, got 8 (#DF)");
        let rip = expectation("selftest: expect vector=8 rip=0x2000")
            .unwrap()
            .unwrap();
        let err = match_expectation(&rip, &report("0x1ff8", "df-ist")).unwrap_err();
        assert_eq!(err, "expected rip=0x2000, got rip=0x1000");
    }

    #[test]
    fn reads_panic_report() {
        let log = "selftest: expect panic=\"selftest: deliberate panic\" location=hypervisor/src/selftest.rs:42\n\
            PANIC at hypervisor/src/selftest.rs:42:9: selftest: deliberate panic\nbacktrace:\n  0x1\nFATAL: halting all CPUs\n";
        let e = expectation(log).unwrap().unwrap();
        assert_eq!(
            e,
            Expectation::Panic {
                message: "selftest: deliberate panic".into(),
                file: "hypervisor/src/selftest.rs".into(),
                line: 42
            }
        );
        let r = fatal_report(log).unwrap();
        assert_eq!(match_expectation(&e, &r), Ok(()));
        let other =
            fatal_report("PANIC at hypervisor/src/selftest.rs:43:9: selftest: deliberate panic")
                .unwrap();
        assert_eq!(
            match_expectation(&e, &other).unwrap_err(),
            "expected panic at hypervisor/src/selftest.rs:42, got hypervisor/src/selftest.rs:43"
        );
        let msg = fatal_report("PANIC at hypervisor/src/selftest.rs:42:1: other").unwrap();
        assert!(
            match_expectation(&e, &msg)
                .unwrap_err()
                .contains("expected panic message")
        );
        let exc = fatal_report("FATAL: exception #GP vector=13 error=0x0 cpu=0").unwrap();
        assert!(
            match_expectation(&e, &exc)
                .unwrap_err()
                .contains("got exception #GP vector=13")
        );
    }

    #[test]
    fn bad_expectations() {
        assert_eq!(expectation("nothing here"), Ok(None));
        assert!(expectation("selftest: expect cr2=0x1").is_err());
        assert!(expectation("selftest: expect vector=14 cr2-min=0x1").is_err());
        assert!(expectation("selftest: expect panic=\"x\"").is_err());
        assert!(expectation("selftest: expect vector=14 rip=zz").is_err());
    }

    #[test]
    fn sanitizes_tails() {
        assert_eq!(sanitize("\u{1b}[1;1H  Booting\r"), "  Booting");
        let t = tail(BOOT_LOG, 2);
        assert_eq!(
            t,
            vec![
                "module 1: addr=0x0010a000 size=70000 cmdline=\"role=beta\"",
                "Test result: SUCCESS"
            ]
        );
        assert_eq!(tail("a\n\nb", 40), vec!["a", "b"]);
    }
}

/// `N` from the kernel's `smp: N CPU(s) online` line.
pub fn online_cpus(log: &str) -> Option<u64> {
    lines(log).find_map(|l| {
        let rest = l.split("smp: ").nth(1)?;
        rest.strip_suffix(" CPU(s) online")?.trim().parse().ok()
    })
}

/// The TSC frequency from `time: tsc N kHz`.
pub fn tsc_khz(log: &str) -> Option<u64> {
    lines(log).find_map(|l| {
        let rest = l.split("time: tsc ").nth(1)?;
        rest.split(" kHz").next()?.trim().parse().ok()
    })
}

/// The PIT's second opinion from `pit cross-check N kHz`, when printed.
pub fn pit_cross_check_khz(log: &str) -> Option<u64> {
    lines(log).find_map(|l| {
        let rest = l.split("pit cross-check ").nth(1)?;
        rest.split(" kHz").next()?.trim().parse().ok()
    })
}

/// The AP-panic plan: `selftest: ap-panic victim=V others=a,b,c`.
pub fn ap_panic_plan(log: &str) -> Option<(u32, Vec<u32>)> {
    lines(log).find_map(|l| {
        let rest = l.split("selftest: ap-panic ").nth(1)?;
        let mut victim = None;
        let mut others = None;
        for word in rest.split_whitespace() {
            if let Some(v) = word.strip_prefix("victim=") {
                victim = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("others=") {
                others = v
                    .split(',')
                    .map(|n| n.parse().ok())
                    .collect::<Option<Vec<u32>>>();
            }
        }
        Some((victim?, others?))
    })
}

#[cfg(test)]
mod smp_line_tests {
    use super::*;

    #[test]
    fn parses_smp_lines() {
        let log = "(FV) time: tsc 4000 kHz (source: acpi pm timer; pit cross-check 3998 kHz)\n\
                   (FV) smp: 4 CPU(s) online\nselftest: ap-panic victim=3 others=0,1,2\n";
        assert_eq!(online_cpus(log), Some(4));
        assert_eq!(tsc_khz(log), Some(4000));
        assert_eq!(pit_cross_check_khz(log), Some(3998));
        assert_eq!(ap_panic_plan(log), Some((3, vec![0, 1, 2])));
        assert_eq!(online_cpus("nothing"), None);
    }
}
