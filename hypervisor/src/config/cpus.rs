//! `cpus =`: xl's CPU lists (`"all"`, `"3"`, `"0-3"`, `"0,2,5-7,^1"`) and per-vCPU lists.

use super::lexer::{Lexer, Tok};
use crate::sched::cpumask::MAX_CPUS;
use crate::sched::{CpuId, CpuMask};

/// Why a CPU list was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CpuListError {
    /// Not of the form `all`, `N`, `N-M`, `^...`, separated by commas.
    Syntax,
    /// A CPU number at or above [`MAX_CPUS`].
    TooHigh,
    /// `node:` / `nodes:` selections (NUMA placement is not implemented).
    Nodes,
    /// The list selects no CPU, e.g. `"0,^0"`.
    Empty,
}

/// Parses one CPU list the way xl's `parse_cpurange` does: items separated by commas,
/// applied left to right; `all` adds every CPU, `N` and `N-M` add CPUs, and a `^`
/// prefix removes them instead (`"all,^7"` is every CPU but 7, `"^1,0-3"` is 0-3).
/// Spaces around items are ignored.
pub(super) fn parse_cpu_list(list: &str) -> Result<CpuMask, CpuListError> {
    let mut mask = CpuMask::EMPTY;
    for item in list.split(',') {
        let item = item.trim_matches(' ');
        let (remove, item) = match item.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        if item.starts_with("node:") || item.starts_with("nodes:") {
            return Err(CpuListError::Nodes);
        }
        let selected = if item == "all" {
            CpuMask::ALL
        } else {
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (cpu_number(a)?, cpu_number(b)?),
                None => {
                    let n = cpu_number(item)?;
                    (n, n)
                }
            };
            if first > last {
                return Err(CpuListError::Syntax);
            }
            (first..=last).fold(CpuMask::EMPTY, |m, c| m.with(CpuId(c)))
        };
        mask = if remove {
            // Keep the CPUs that are not selected.
            let mut kept = mask;
            selected.iter().for_each(|c| kept.remove(c));
            kept
        } else {
            mask.or(selected)
        };
    }
    if mask.is_empty() {
        return Err(CpuListError::Empty);
    }
    Ok(mask)
}

fn cpu_number(s: &str) -> Result<u16, CpuListError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::Syntax);
    }
    match s.parse::<u32>() {
        Ok(n) if (n as usize) < MAX_CPUS => Ok(n as u16),
        _ => Err(CpuListError::TooHigh),
    }
}

/// Where a domain's vCPUs may run (xl's `cpus =`, hard affinity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPinning<'a> {
    /// `cpus = "0-3"`: every vCPU may run on these CPUs.
    Every(CpuMask),
    /// `cpus = ["2", "3-8,^5"]`: vCPU `i` may run on the CPUs of item `i`; vCPUs past
    /// the end of the list are not pinned.
    PerVcpu(VcpuCpuLists<'a>),
}

/// The items of a `cpus = [...]` list, borrowed from the configuration text and
/// already checked; [`VcpuCpuLists::get`] parses an item again when asked, so no
/// per-vCPU storage is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuCpuLists<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    line: u32,
    len: u32,
}

impl<'a> VcpuCpuLists<'a> {
    /// `text[start..end]` holds the list's items, between its brackets.
    pub(super) fn new(text: &'a str, start: usize, end: usize, line: u32, len: u32) -> Self {
        Self {
            text,
            start,
            end,
            line,
            len,
        }
    }

    /// How many items the list has.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the list is empty (then no vCPU is pinned).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The CPUs of vCPU `vcpu`'s item, or `None` past the end of the list.
    pub fn get(&self, vcpu: u32) -> Option<CpuMask> {
        self.items()
            .nth(vcpu as usize)
            .and_then(|(item, _)| parse_cpu_list(item).ok())
    }

    /// The items as written (without quotes) and their lines.
    pub(super) fn items(&self) -> impl Iterator<Item = (&'a str, u32)> + 'a {
        let mut lexer = Lexer::range(self.text, self.start, self.end, self.line);
        core::iter::from_fn(move || {
            loop {
                let token = lexer.next_token().ok()?;
                match token.kind {
                    Tok::Str(s) => return Some((s.raw(), token.line)),
                    Tok::Number(n) => return Some((n, token.line)),
                    Tok::Comma | Tok::Newline => {}
                    _ => return None,
                }
            }
        })
    }
}
