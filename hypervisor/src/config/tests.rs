use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use super::*;
use crate::sched::CpuId;

const FULL: &str = r#"# A complete configuration: every supported key.
name = "web1"
description = 'Front-end web server'
type = "pvh"
memory = 512            # MiB
vcpus = 4
cpus = "0-3,^2"
cpu_weight = 512
cap = 150
kernel = "vmlinuz-web"
ramdisk = "initrd-web"
cmdline = "console=hvc0 root=/dev/xvda1"
on_poweroff = "preserve"
on_reboot = "destroy"
on_crash = "restart"
start_on_boot = 0
"#;

fn ok(text: &str) -> DomainConfig<'_> {
    match parse("t.cfg", text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(text: &str) -> ConfigError<'_> {
    match parse("t.cfg", text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e,
    }
}

/// The error's message, checked to name file, line and key as given.
fn message(text: &str, line: u32, key: Option<&str>) -> String {
    let e = err(text);
    assert_eq!((e.line, e.key), (line, key), "{e}");
    let m = e.to_string();
    let prefix = match key {
        Some(k) if line != 0 => format!("t.cfg:{line}: key '{k}': "),
        Some(k) => format!("t.cfg: key '{k}': "),
        None => format!("t.cfg:{line}: "),
    };
    assert!(
        m.starts_with(&prefix),
        "{m:?} does not start with {prefix:?}"
    );
    m
}

const MINIMAL: &str = "name = \"d1\"\nmemory = 64\nkernel = \"k\"\n";

#[test]
fn full_config() {
    let c = ok(FULL);
    assert_eq!(c.name, "web1");
    assert_eq!(c.description.unwrap(), "Front-end web server");
    assert_eq!(c.kind, DomainType::Pvh);
    assert_eq!(c.memory_mib, 512);
    assert_eq!(c.memory_bytes(), 512 << 20);
    assert_eq!(c.vcpus, 4);
    let mask = CpuMask::EMPTY.with(CpuId(0)).with(CpuId(1)).with(CpuId(3));
    assert_eq!(c.cpus, Some(CpuPinning::Every(mask)));
    assert_eq!(c.vcpu_affinity(3), mask);
    assert_eq!((c.cpu_weight, c.cap), (512, 150));
    assert_eq!(
        c.sched_params(),
        SchedParams {
            weight: 512,
            cap_percent: 150
        }
    );
    assert_eq!(c.kernel, "vmlinuz-web");
    assert_eq!(c.ramdisk, Some("initrd-web"));
    assert_eq!(c.cmdline.unwrap(), "console=hvc0 root=/dev/xvda1");
    assert_eq!(
        c.cmdline.unwrap().as_str(),
        Some("console=hvc0 root=/dev/xvda1")
    );
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (Action::Preserve, Action::Destroy, Action::Restart)
    );
    assert!(!c.start_on_boot);
}

#[test]
fn minimal_config_takes_xl_defaults() {
    let c = ok(MINIMAL);
    assert_eq!((c.name, c.memory_mib, c.kernel), ("d1", 64, "k"));
    assert_eq!(c.description, None);
    assert_eq!(c.kind, DomainType::Pvh);
    assert_eq!(c.vcpus, 1);
    assert_eq!(c.cpus, None);
    assert_eq!(c.vcpu_affinity(0), CpuMask::ALL);
    assert_eq!(c.sched_params(), SchedParams::DEFAULT);
    assert_eq!((c.ramdisk, c.cmdline), (None, None));
    // xl's defaults (xl_parse.c): destroy, restart, destroy.
    assert_eq!(
        (c.on_poweroff, c.on_reboot, c.on_crash),
        (Action::Destroy, Action::Restart, Action::Destroy)
    );
    assert!(c.start_on_boot);
}

#[test]
fn comments_blank_lines_and_separators() {
    let text = "\n\n# comment only\n   \t\n#\nname=\"a\";memory=1 ; kernel='k' # trailing\n;;\n\t# indented comment\n";
    let c = ok(text);
    assert_eq!((c.name, c.memory_mib, c.kernel), ("a", 1, "k"));
    // A '#' inside a string is not a comment.
    let c = ok("name=\"a\"\nmemory=1\nkernel=\"k\"\ncmdline = \"a # b\" # c\n");
    assert_eq!(c.cmdline.unwrap(), "a # b");
}

#[test]
fn crlf_line_endings() {
    let text = FULL.replace('\n', "\r\n");
    assert_eq!(ok(&text), ok(FULL));
    // Line numbers count CRLF lines.
    let e = err("name = \"a\"\r\nmemory = lots\r\n");
    assert_eq!(e.line, 2);
    // A lone CR is not a line end.
    let e = err("name = \"a\"\rmemory = 1\n");
    assert_eq!(e.kind, ConfigErrorKind::UnexpectedChar('\r'));
}

#[test]
fn last_line_without_newline() {
    let c = ok("name = \"a\"\nmemory = 8\nkernel = \"k\"");
    assert_eq!(c.kernel, "k");
    let c = ok("name = \"a\"\nkernel = \"k\"\nmemory = 8");
    assert_eq!(c.memory_mib, 8);
    let c = ok("name = \"a\"\nkernel = \"k\"\nmemory = 8 # no newline after this comment");
    assert_eq!(c.memory_mib, 8);
    let c = ok("name = \"a\"\nkernel = \"k\"\nmemory = 8\n# final comment");
    assert_eq!(c.memory_mib, 8);
}

#[test]
fn quoting_forms() {
    let with = |cmdline: &str| {
        let text = format!("{MINIMAL}cmdline = {cmdline}\n");
        let c = parse("t.cfg", &text).map(|c| c.cmdline.unwrap().to_string());
        c.map_err(|e| e.to_string())
    };
    assert_eq!(with(r#""double""#).unwrap(), "double");
    assert_eq!(with("'single'").unwrap(), "single");
    assert_eq!(
        with(r#"'has "double" quotes'"#).unwrap(),
        r#"has "double" quotes"#
    );
    assert_eq!(
        with(r#""has 'single' quotes""#).unwrap(),
        "has 'single' quotes"
    );
    assert_eq!(with(r#""init=\"/bin/sh\"""#).unwrap(), r#"init="/bin/sh""#);
    assert_eq!(with(r"'it\'s'").unwrap(), "it's");
    assert_eq!(with(r#""back\\slash""#).unwrap(), r"back\slash");
    assert_eq!(with(r#""""#).unwrap(), "");
    assert_eq!(with(r#""ünïcödé ✓""#).unwrap(), "ünïcödé ✓");

    let text = format!("{MINIMAL}cmdline = \"a\\\"b\\\\c\"\n");
    let s = ok(&text).cmdline.unwrap();
    assert_eq!(s.as_str(), None, "escaped strings are not borrowed as &str");
    assert_eq!(s.raw(), r#"a\"b\\c"#);
    assert_eq!(s.len(), 5);
    assert_eq!(format!("{s:?}"), r#""a\"b\\c""#);
    let mut buf = [0u8; 8];
    assert_eq!(s.decode_into(&mut buf), Some(r#"a"b\c"#));
    assert_eq!(s.decode_into(&mut [0u8; 4]), None);
}

#[test]
fn bad_strings() {
    let cases: [(&str, &str); 8] = [
        ("\"unterminated\n", lexer::UNTERMINATED),
        ("\"unterminated at the end", lexer::UNTERMINATED),
        ("\"tab\there\"", lexer::CONTROL_CHAR),
        ("\"bell\u{7}\"", lexer::CONTROL_CHAR),
        ("\"c1\u{85}\"", lexer::CONTROL_CHAR),
        ("\"a\\nb\"", lexer::CONTROL_ESCAPE),
        ("\"\\x41\"", lexer::NUMERIC_ESCAPE),
        ("\"\\q\"", lexer::UNKNOWN_ESCAPE),
    ];
    for (value, why) in cases {
        let text = format!("{MINIMAL}cmdline = {value}\n");
        let e = err(&text);
        assert_eq!(e.kind, ConfigErrorKind::BadString(why), "{value:?}");
        assert_eq!((e.line, e.key), (4, Some("cmdline")));
    }
    let e = err("name = \"a\\101\"\n");
    assert_eq!(e.kind, ConfigErrorKind::BadString(lexer::NUMERIC_ESCAPE));
    let e = err("name = \"trailing backslash\\\n\"\n");
    assert_eq!(e.kind, ConfigErrorKind::BadString(lexer::UNTERMINATED));
}

#[test]
fn lists() {
    let base = "name = \"a\"\nmemory = 8\nkernel = \"k\"\nvcpus = 4\n";
    let c = ok(leak(&format!("{base}cpus = [\"2\", \"3-8,^5\"]\n")));
    let Some(CpuPinning::PerVcpu(lists)) = c.cpus else {
        panic!("{:?}", c.cpus)
    };
    assert_eq!(lists.len(), 2);
    assert_eq!(lists.get(0), Some(CpuMask::single(CpuId(2))));
    let v1 = CpuMask::EMPTY
        .with(CpuId(3))
        .with(CpuId(4))
        .with(CpuId(6))
        .with(CpuId(7))
        .with(CpuId(8));
    assert_eq!(lists.get(1), Some(v1));
    assert_eq!(lists.get(2), None);
    assert_eq!(c.vcpu_affinity(1), v1);
    assert_eq!(
        c.vcpu_affinity(3),
        CpuMask::ALL,
        "past the list: not pinned"
    );

    // Spanning lines, with comments, bare numbers and a trailing comma.
    let c = ok(leak(&format!(
        "{base}cpus = [\n  \"0\",   # vCPU 0\n  1,\n\n  'all,^0',\n]\n"
    )));
    let Some(CpuPinning::PerVcpu(lists)) = c.cpus else {
        panic!()
    };
    assert_eq!(lists.len(), 3);
    assert_eq!(c.vcpu_affinity(0), CpuMask::single(CpuId(0)));
    assert_eq!(c.vcpu_affinity(1), CpuMask::single(CpuId(1)));
    assert_eq!(c.vcpu_affinity(2), CpuMask::ALL.without(CpuId(0)));

    // Empty list: nothing pinned.
    let c = ok(leak(&format!("{base}cpus = []\n")));
    assert!(matches!(c.cpus, Some(CpuPinning::PerVcpu(l)) if l.is_empty()));
    assert_eq!(c.vcpu_affinity(0), CpuMask::ALL);

    // A bad item is reported on its own line.
    let m = message(
        &format!("{base}cpus = [\n\"0\",\n\"x\"\n]\n"),
        7,
        Some("cpus"),
    );
    assert!(m.ends_with("got x"), "{m}");

    // Grammar errors inside lists.
    let syntax = |text: &str| err_owned(text);
    assert_eq!(
        syntax(&format!("{base}cpus = [\"0\" \"1\"]\n")),
        ConfigErrorKind::Syntax(parse::EXPECTED_COMMA)
    );
    assert_eq!(
        syntax(&format!("{base}cpus = [,]\n")),
        ConfigErrorKind::Syntax(parse::EXPECTED_ITEM)
    );
    assert_eq!(
        syntax(&format!("{base}cpus = [[\"0\"]]\n")),
        ConfigErrorKind::Syntax(parse::NESTED_LIST)
    );
    assert_eq!(
        syntax(&format!("{base}cpus = [\"0\",\n")),
        ConfigErrorKind::Syntax(parse::UNTERMINATED_LIST)
    );
}

#[test]
fn cpu_list_forms() {
    let mask = |spec: &str| {
        let text = format!("{MINIMAL}cpus = {spec}\n");
        match parse("t.cfg", leak(&text)) {
            Ok(c) => Ok(c.vcpu_affinity(0)),
            Err(e) => Err(e.kind),
        }
    };
    let set = |cpus: &[u16]| cpus.iter().fold(CpuMask::EMPTY, |m, &c| m.with(CpuId(c)));
    assert_eq!(mask("\"all\""), Ok(CpuMask::ALL));
    assert_eq!(mask("\"3\""), Ok(set(&[3])));
    assert_eq!(mask("3"), Ok(set(&[3])), "a bare number, as xl");
    assert_eq!(mask("\"0-3\""), Ok(set(&[0, 1, 2, 3])));
    assert_eq!(mask("\"0,2,5-7\""), Ok(set(&[0, 2, 5, 6, 7])));
    assert_eq!(mask("\"0-3,5,^1\""), Ok(set(&[0, 2, 3, 5])));
    assert_eq!(mask("\"all,^7\""), Ok(CpuMask::ALL.without(CpuId(7))));
    assert_eq!(mask("\"all,^1-254\""), Ok(set(&[0, 255])));
    // Applied left to right, as xl: a removal before an addition removes nothing.
    assert_eq!(mask("\"^1,0-3\""), Ok(set(&[0, 1, 2, 3])));
    assert_eq!(mask("\" 1 , 2 \""), Ok(set(&[1, 2])));
    assert_eq!(mask("\"255\""), Ok(set(&[255])));

    let bad = |spec: &str| match mask(spec) {
        Err(ConfigErrorKind::BadValue { expected, .. }) => expected,
        other => panic!("{spec}: {other:?}"),
    };
    for spec in [
        "\"\"", "\"1-\"", "\"-1\"", "\"3-1\"", "\"1,,2\"", "\"a\"", "\"0x1\"",
    ] {
        bad(spec);
    }
    assert!(bad("\"0,^0\"").contains("at least one CPU"));
    assert!(matches!(
        mask("\"256\""),
        Err(ConfigErrorKind::OutOfRange { .. })
    ));
    assert!(matches!(
        mask("\"0-99999999999\""),
        Err(ConfigErrorKind::OutOfRange { .. })
    ));
    assert!(matches!(
        mask("\"nodes:0-3\""),
        Err(ConfigErrorKind::Unsupported { .. })
    ));
    assert!(matches!(
        mask("\"^node:1\""),
        Err(ConfigErrorKind::Unsupported { .. })
    ));
}

#[test]
fn every_error_names_file_line_and_key() {
    // Unknown key.
    let m = message("name = \"a\"\n\nmaxmem = 1024\n", 3, Some("maxmem"));
    assert!(
        m.contains("unknown key (the supported keys are name, "),
        "{m}"
    );
    let m = message("Memory = 1\n", 1, Some("Memory"));
    assert!(m.contains("unknown key"), "{m}");

    // Duplicate key.
    let m = message(
        "name = \"a\"\nmemory = 1\n# again\nmemory = 2\n",
        4,
        Some("memory"),
    );
    assert!(m.ends_with("set again (first set on line 2); a key may be set only once"));

    // Missing required keys, in the order name, memory, kernel.
    let m = message("memory = 1\nkernel = \"k\"\n", 0, Some("name"));
    assert_eq!(m, "t.cfg: key 'name': required, but not set");
    message("name = \"a\"\nkernel = \"k\"\n", 0, Some("memory"));
    message("name = \"a\"\nmemory = 1\n", 0, Some("kernel"));
    message("", 0, Some("name"));

    // Wrong type: the brief's example message.
    let m = message(
        "name = \"a\"\n\n\n\n\n\nmemory = \"lots\"\n",
        7,
        Some("memory"),
    );
    assert_eq!(
        m,
        "t.cfg:7: key 'memory': expected a number of MiB, got \"lots\""
    );
    let m = message("name = 42\n", 1, Some("name"));
    assert!(m.ends_with("expected a quoted string, got 42"), "{m}");
    let m = message("vcpus = [1]\n", 1, Some("vcpus"));
    assert!(m.ends_with("expected a number of vCPUs, got [1]"), "{m}");
    let m = message("on_crash = 1\n", 1, Some("on_crash"));
    assert!(
        m.contains("expected \"destroy\", \"restart\" or \"preserve\""),
        "{m}"
    );

    // Bad values.
    let m = message("memory = 512M\n", 1, Some("memory"));
    assert!(m.ends_with("expected a number of MiB, got 512M"), "{m}");
    let m = message("memory = 1.5\n", 1, Some("memory"));
    assert!(m.ends_with("got 1.5"), "{m}");
    let m = message("memory = 0512\n", 1, Some("memory"));
    assert!(m.contains("leading 0"), "{m}");
    let m = message("type = \"xen\"\n", 1, Some("type"));
    assert!(m.ends_with("expected \"pvh\", got \"xen\""), "{m}");
    let m = message("on_reboot = \"reboot\"\n", 1, Some("on_reboot"));
    assert!(m.contains("\"destroy\", \"restart\" or \"preserve\", got \"reboot\""));

    // Out of range.
    for (text, key) in [
        ("memory = 0\n", "memory"),
        ("memory = 16777217\n", "memory"),
        ("memory = 99999999999999999999999\n", "memory"),
        ("vcpus = 0\n", "vcpus"),
        ("vcpus = 129\n", "vcpus"),
        ("vcpus = -1\n", "vcpus"),
        ("cpu_weight = 0\n", "cpu_weight"),
        ("cpu_weight = 65536\n", "cpu_weight"),
        ("cap = 65536\n", "cap"),
        ("start_on_boot = 2\n", "start_on_boot"),
    ] {
        let e = err(text);
        assert!(
            matches!(e.kind, ConfigErrorKind::OutOfRange { .. }),
            "{text}: {e}"
        );
        assert_eq!((e.line, e.key), (1, Some(key)));
    }
    let m = message("vcpus = 129\n", 1, Some("vcpus"));
    assert!(
        m.ends_with("expected a number of vCPUs from 1 to 128, got 129"),
        "{m}"
    );

    // Unsupported xl values, with what is supported.
    let m = message("on_crash = \"coredump-restart\"\n", 1, Some("on_crash"));
    assert_eq!(
        m,
        "t.cfg:1: key 'on_crash': \"coredump-restart\" is not supported: the supported \
         actions are destroy, restart and preserve (not xl's rename-restart, \
         coredump-destroy, coredump-restart or soft-reset)"
    );
    for action in ["rename-restart", "coredump-destroy", "soft-reset"] {
        let e = err_owned(&format!("on_poweroff = '{action}'\n"));
        assert!(matches!(e, ConfigErrorKind::Unsupported { .. }), "{action}");
    }
    let m = message("type = \"hvm\"\n", 1, Some("type"));
    assert!(m.contains("PVH guests only"), "{m}");

    // Syntax errors name the line, and the key when one is being set.
    let m = message("name \"a\"\n", 1, Some("name"));
    assert!(m.ends_with("expected '=' after the key"), "{m}");
    message("name =\n", 1, Some("name"));
    message("name = \"a\" \"b\"\n", 1, Some("name"));
    message("memory = 1 MiB\n", 1, Some("memory"));
    message("= 1\n", 1, None);
    message("\"name\" = 1\n", 1, None);
    let m = message("name = \"a\"\nmemory = (1)\n", 2, Some("memory"));
    assert!(m.ends_with("unexpected character '('"), "{m}");
    let m = message("name = \"a\"\n@\n", 2, None);
    assert!(m.ends_with("unexpected character '@'"), "{m}");
}

fn err_owned(text: &str) -> ConfigErrorKind<'static> {
    parse("t.cfg", leak(text)).unwrap_err().kind
}

/// Keeps a formatted text alive for the rest of the test run, so that the borrowed
/// configuration (or error) can outlive the helper that formatted it.
fn leak(text: &str) -> &'static str {
    String::from(text).leak()
}

#[test]
fn cross_key_checks() {
    let base = "name = \"a\"\nmemory = 8\nkernel = \"k\"\n";
    ok(&format!("{base}vcpus = 2\ncap = 200\n"));
    let m = message(&format!("{base}cap = 101\nvcpus = 1\n"), 4, Some("cap"));
    assert!(m.contains("to 100 × vcpus, got 101"), "{m}");
    // Default vcpus is 1.
    message(&format!("{base}cap = 150\n"), 4, Some("cap"));
    let m = message(
        &format!("{base}cpus = [\"0\", \"1\", \"2\"]\nvcpus = 2\n"),
        4,
        Some("cpus"),
    );
    assert!(m.contains("at most one CPU list per vCPU"), "{m}");
    ok(&format!("{base}cpus = [\"0\", \"1\"]\nvcpus = 2\n"));
}

#[test]
fn names_and_modules() {
    let name = |n: &str| {
        let text = format!("name = {n}\nmemory = 1\nkernel = \"k\"\n");
        parse("t.cfg", &text).map(|_| ()).map_err(|e| e.to_string())
    };
    for good in [
        "\"a\"",
        "\"web-1.example_A\"",
        "\"1a\"",
        &format!("\"{}\"", "x".repeat(64)),
    ] {
        name(good).unwrap();
    }
    for bad in [
        "\"\"",
        "\"has space\"",
        "\"123\"",
        "\"a/b\"",
        "\"ünï\"",
        "\"q\\\"\"",
        &format!("\"{}\"", "x".repeat(65)),
    ] {
        let m = name(bad).unwrap_err();
        assert!(m.contains("expected a name of 1 to 64"), "{bad}: {m}");
    }
    let kernel = |k: &str| {
        let text = format!("name = \"a\"\nmemory = 1\nkernel = {k}\n");
        parse("t.cfg", &text).map(|_| ()).map_err(|e| e.to_string())
    };
    kernel("\"/boot/vmlinuz-6.1\"").unwrap();
    for bad in ["\"\"", "\"two words\"", "\"esc\\\\aped\""] {
        let m = kernel(bad).unwrap_err();
        assert!(m.contains("the name of a boot module"), "{bad}: {m}");
    }
}

#[test]
fn numbers_in_hex_and_boolean() {
    let c = ok("name=\"a\"\nkernel=\"k\"\nmemory = 0x200\nstart_on_boot = 1\n");
    assert_eq!(c.memory_mib, 512);
    assert!(c.start_on_boot);
    let c = ok("name=\"a\"\nkernel=\"k\"\nmemory = 16777216\ncap = 0\n");
    assert_eq!((c.memory_mib, c.cap), (MAX_MEMORY_MIB, 0));
}

#[test]
fn very_long_lines() {
    let long = "x".repeat(100_000);
    let text = format!("name = \"a\"\nmemory = 1\nkernel = \"k\"\ncmdline = \"{long}\"\n");
    assert_eq!(ok(&text).cmdline.unwrap().len(), 100_000);
    let comment = format!("# {long}\n{MINIMAL}");
    ok(&comment);
    // A long bad value is quoted back shortened, so the message stays readable.
    let text = format!("name = \"a\"\ndescription = 1{long}\n");
    let m = message(&text, 2, Some("description"));
    assert!(m.len() < 200, "{} bytes", m.len());
    assert!(m.ends_with("..."), "{m}");
    // Long unknown keys too.
    let text = format!("{long} = 1\n");
    let m = err(&text).to_string();
    assert!(m.len() < 400, "{} bytes", m.len());
}

#[test]
fn line_numbers_count_every_line() {
    let mut text = String::new();
    for i in 0..1000 {
        text.push_str(&format!("# line {}\n", i + 1));
    }
    text.push_str("bogus = 1\n");
    let e = err(&text);
    assert_eq!(e.line, 1001);
    // Lines inside a list count too.
    let text = "name = \"a\"\ncpus = [\n\n\n\"0\"]\nmemory = 1\nmemory = 2\n";
    assert_eq!(err(text).line, 7);
}

#[test]
fn first_error_wins_and_parsing_is_total() {
    // Random printable and structural bytes never panic, and errors are always
    // positioned within the text.
    let alphabet: Vec<char> = "ab_=[],;#\"'\\\n\r\t 0x9-^.é".chars().collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut text = String::new();
        let len = (state % 40) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        let lines = text.split('\n').count() as u32;
        if let Err(e) = parse("fuzz.cfg", &text) {
            assert!(e.line <= lines, "{text:?}: {e}");
            let _ = e.to_string();
        }
        state = state.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    }
}

#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../docs/domain-config.md");
    let start = doc.find("```text\n# /boot/web1.cfg\n").unwrap() + "```text\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let c = ok(example);
    assert_eq!(
        (c.name, c.memory_mib, c.vcpus, c.cap),
        ("web1", 512, 2, 150)
    );
    assert_eq!(
        c.vcpu_affinity(1),
        CpuMask::EMPTY.with(CpuId(2)).with(CpuId(3))
    );
    assert_eq!(c.on_crash, Action::Preserve);
}
