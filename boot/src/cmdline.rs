//! The hypervisor's command line.
//!
//! Xen-like syntax: words separated by whitespace, each either `key=value`
//! or a bare `flag`. Keys are case-sensitive; when a key repeats, the last
//! occurrence wins. No quoting.
//!
//! | option            | value                                                | effect |
//! |-------------------|------------------------------------------------------|--------|
//! | `loglvl=LEVEL`    | `error`, `warn`/`warning`, `info`, `debug`, `trace`, `all` (= `trace`), `none` (= off); case-insensitive | maximum log level |
//! | `selftest=NAME`   | 1 to 32 bytes                                        | run the named self-test instead of booting guests |
//! | `maxcpus=N`       | decimal, at least 1                                  | bring up at most N CPUs (boot CPU included) |
//! | `nosmp`           | bare, or `nosmp=BOOL` (`1/0`, `yes/no`, `true/false`, `on/off`, `enable/disable`) | run on the boot CPU only |
//!
//! Parsing never fails: unknown keys land in [`Options::unknown`] and bad
//! values in [`Options::invalid`], so the kernel can boot and warn about
//! them once logging works.
//!
//! QEMU's multiboot loader and GRUB put the image path first
//! (`/boot/ferrovisor loglvl=debug`); a first word that contains `/` and no
//! `=` is therefore skipped.

use core::fmt;

use log::LevelFilter;

use crate::bounded::{BoundedStr, BoundedVec};

/// How many unknown / invalid words are kept.
pub const MAX_REPORTED: usize = 16;
/// Capacity of a reported word.
pub const REPORTED_WORD_CAPACITY: usize = 64;
/// Longest accepted self-test name.
pub const SELFTEST_NAME_CAPACITY: usize = 32;

/// A word whose key is known but whose value is not acceptable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidOption {
    /// The word as written (truncated to 64 bytes).
    pub word: BoundedStr<REPORTED_WORD_CAPACITY>,
    /// What is wrong, e.g. the accepted values.
    pub reason: &'static str,
}

impl fmt::Display for InvalidOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.word, self.reason)
    }
}

/// Parsed command line options; see the [module documentation](self) for
/// the table of options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `loglvl=`: the maximum log level, if given.
    pub loglvl: Option<LevelFilter>,
    /// `selftest=`: the self-test to run, if given.
    pub selftest: Option<BoundedStr<SELFTEST_NAME_CAPACITY>>,
    /// `maxcpus=`: the CPU limit, if given.
    pub maxcpus: Option<u32>,
    /// `nosmp`: run on the boot CPU only.
    pub nosmp: bool,
    /// `dom0_mem=`: memory kept for the control domain, as written (Xen's syntax; the
    /// hypervisor parses and checks it).
    pub dom0_mem: Option<BoundedStr<REPORTED_WORD_CAPACITY>>,
    /// Words with an unknown key, as written (each truncated to 64 bytes).
    pub unknown: BoundedVec<BoundedStr<REPORTED_WORD_CAPACITY>, MAX_REPORTED>,
    /// Words with a known key and a bad value.
    pub invalid: BoundedVec<InvalidOption, MAX_REPORTED>,
    /// Unknown or invalid words not kept because the lists were full.
    pub dropped: usize,
}

impl Options {
    /// Parses a command line. Never fails; see [`Options::unknown`] and
    /// [`Options::invalid`].
    #[must_use]
    pub fn parse(cmdline: &str) -> Self {
        let mut opts = Self::default();
        let mut words = cmdline.split_whitespace().peekable();
        if words
            .peek()
            .is_some_and(|w| w.contains('/') && !w.contains('='))
        {
            words.next();
        }
        for word in words {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            let result = match key {
                "loglvl" => value.ok_or(NEEDS_VALUE).and_then(parse_level).map(|l| {
                    opts.loglvl = Some(l);
                }),
                "selftest" => value.ok_or(NEEDS_VALUE).and_then(parse_selftest).map(|s| {
                    opts.selftest = Some(s);
                }),
                "maxcpus" => value.ok_or(NEEDS_VALUE).and_then(parse_maxcpus).map(|n| {
                    opts.maxcpus = Some(n);
                }),
                "nosmp" => value.map_or(Ok(true), parse_bool).map(|b| opts.nosmp = b),
                "dom0_mem" => value.ok_or(NEEDS_VALUE).map(|v| {
                    opts.dom0_mem = Some(BoundedStr::from_str_truncating(v));
                }),
                _ => {
                    let w = BoundedStr::from_str_truncating(word);
                    if opts.unknown.push(w).is_err() {
                        opts.dropped += 1;
                    }
                    Ok(())
                }
            };
            if let Err(reason) = result {
                let invalid = InvalidOption {
                    word: BoundedStr::from_str_truncating(word),
                    reason,
                };
                if opts.invalid.push(invalid).is_err() {
                    opts.dropped += 1;
                }
            }
        }
        opts
    }
}

const NEEDS_VALUE: &str = "needs a value (key=value)";

fn parse_level(v: &str) -> Result<LevelFilter, &'static str> {
    const LEVELS: [(&str, LevelFilter); 8] = [
        ("error", LevelFilter::Error),
        ("warn", LevelFilter::Warn),
        ("warning", LevelFilter::Warn),
        ("info", LevelFilter::Info),
        ("debug", LevelFilter::Debug),
        ("trace", LevelFilter::Trace),
        ("all", LevelFilter::Trace),
        ("none", LevelFilter::Off),
    ];
    LEVELS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|&(_, level)| level)
        .ok_or("expected error, warn, warning, info, debug, trace, all or none")
}

fn parse_selftest(v: &str) -> Result<BoundedStr<SELFTEST_NAME_CAPACITY>, &'static str> {
    if v.is_empty() {
        return Err(NEEDS_VALUE);
    }
    // Truncating would silently select a different test.
    if v.len() > SELFTEST_NAME_CAPACITY {
        return Err("self-test name is longer than 32 bytes");
    }
    Ok(BoundedStr::from_str_truncating(v))
}

fn parse_maxcpus(v: &str) -> Result<u32, &'static str> {
    match v.parse::<u32>() {
        Ok(0) => Err("must be at least 1 (use nosmp to run on the boot CPU only)"),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a decimal number of CPUs"),
    }
}

/// Xen's boolean spellings.
fn parse_bool(v: &str) -> Result<bool, &'static str> {
    const TRUE: [&str; 5] = ["1", "yes", "true", "on", "enable"];
    const FALSE: [&str; 5] = ["0", "no", "false", "off", "disable"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(v)) {
        Ok(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(v)) {
        Ok(false)
    } else {
        Err("expected a boolean: 1/0, yes/no, true/false, on/off or enable/disable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty() {
        assert_eq!(Options::parse(""), Options::default());
        assert_eq!(Options::parse("   \t "), Options::default());
    }

    #[test]
    fn all_options() {
        let o =
            Options::parse("loglvl=debug selftest=vmx-smoke maxcpus=4 nosmp dom0_mem=1G,max:2G");
        assert_eq!(o.loglvl, Some(LevelFilter::Debug));
        assert_eq!(o.dom0_mem.unwrap(), "1G,max:2G");
        assert_eq!(o.selftest.unwrap(), "vmx-smoke");
        assert_eq!(o.maxcpus, Some(4));
        assert!(o.nosmp);
        assert!(o.unknown.is_empty());
        assert!(o.invalid.is_empty());
    }

    #[test]
    fn levels_case_insensitive() {
        for (v, want) in [
            ("ERROR", LevelFilter::Error),
            ("Warn", LevelFilter::Warn),
            ("warning", LevelFilter::Warn),
            ("info", LevelFilter::Info),
            ("trace", LevelFilter::Trace),
            ("ALL", LevelFilter::Trace),
            ("none", LevelFilter::Off),
        ] {
            let o = Options::parse(&format!("loglvl={v}"));
            assert_eq!(o.loglvl, Some(want), "{v}");
        }
    }

    #[test]
    fn image_path_is_skipped() {
        let o = Options::parse("/boot/ferrovisor.elf loglvl=info");
        assert_eq!(o.loglvl, Some(LevelFilter::Info));
        assert!(o.unknown.is_empty());
        // Only the first word, and only if it looks like a path.
        let o = Options::parse("ferrovisor /boot/x");
        assert_eq!(o.unknown.len(), 2);
        let o = Options::parse("root=/dev/vda");
        assert_eq!(o.unknown[0], "root=/dev/vda");
    }

    #[test]
    fn unknown_and_invalid() {
        let o = Options::parse("foo=bar loglvl=loud quiet maxcpus=0 maxcpus=x loglvl selftest=");
        assert_eq!(o.unknown.len(), 2);
        assert_eq!(o.unknown[0], "foo=bar");
        assert_eq!(o.unknown[1], "quiet");
        let words: Vec<&str> = o.invalid.iter().map(|i| i.word.as_str()).collect();
        assert_eq!(
            words,
            [
                "loglvl=loud",
                "maxcpus=0",
                "maxcpus=x",
                "loglvl",
                "selftest="
            ]
        );
        assert_eq!(o.loglvl, None);
        assert_eq!(o.maxcpus, None);
        assert_eq!(
            o.invalid[0].to_string(),
            "`loglvl=loud`: expected error, warn, warning, info, debug, trace, all or none"
        );
        assert_eq!(o.dropped, 0);
    }

    #[test]
    fn last_occurrence_wins() {
        let o = Options::parse("loglvl=error loglvl=trace maxcpus=2 maxcpus=8");
        assert_eq!(o.loglvl, Some(LevelFilter::Trace));
        assert_eq!(o.maxcpus, Some(8));
        // A bad later value keeps the earlier good one and is reported.
        let o = Options::parse("loglvl=info loglvl=bogus");
        assert_eq!(o.loglvl, Some(LevelFilter::Info));
        assert_eq!(o.invalid.len(), 1);
    }

    #[test]
    fn nosmp_values() {
        assert!(Options::parse("nosmp=yes").nosmp);
        assert!(!Options::parse("nosmp nosmp=off").nosmp);
        let o = Options::parse("nosmp=maybe");
        assert!(!o.nosmp);
        assert_eq!(o.invalid[0].word, "nosmp=maybe");
    }

    #[test]
    fn selftest_too_long() {
        let name = "x".repeat(33);
        let o = Options::parse(&format!("selftest={name}"));
        assert_eq!(o.selftest, None);
        assert_eq!(
            o.invalid[0].reason,
            "self-test name is longer than 32 bytes"
        );
        let o = Options::parse(&format!("selftest={}", "y".repeat(32)));
        assert_eq!(o.selftest.unwrap().len(), 32);
    }

    #[test]
    fn lists_overflow_is_counted() {
        let line: String = (0..20).map(|i| format!("k{i} ")).collect();
        let o = Options::parse(&line);
        assert_eq!(o.unknown.len(), 16);
        assert_eq!(o.dropped, 4);
        let long = format!("{}=1", "z".repeat(100));
        let o = Options::parse(&long);
        assert_eq!(o.unknown[0].len(), 64);
        assert!(o.unknown[0].truncated());
    }
}
