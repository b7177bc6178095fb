//! Paths and process helpers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrovisor_tests::cmdline::shell_line;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `build/` under the workspace root, as a path relative to it (commands run there).
pub const BUILD: &str = "build";

/// Makes a directory and its parents.
pub fn mkdir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

/// Removes a directory tree if it exists, then makes it again, empty.
pub fn fresh_dir(path: &Path) -> Result<(), String> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    mkdir(path)
}

/// Writes a file.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a file as text (lossy); empty when it does not exist.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Reads a file.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A command's printable form.
pub fn describe(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    shell_line(&cmd.get_program().to_string_lossy(), &args)
}

/// A finished command whose output was captured.
pub struct Captured {
    /// Whether it exited with status 0.
    pub ok: bool,
    /// "exited with status N" or "was killed by a signal".
    pub status: String,
    /// stdout, then stderr.
    pub output: String,
}

/// Runs a command to completion with its output captured.
pub fn run_captured(cmd: &mut Command) -> Result<Captured, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Captured {
        ok: out.status.success(),
        status: match out.status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".into(),
        },
        output,
    })
}

/// Runs a command with the terminal attached; `Err` unless it exits 0.
pub fn run_inherit(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The last `n` lines of `text`, each indented by four spaces.
pub fn indented_tail(text: &str, n: usize) -> String {
    // Cargo's progress lines say nothing about a failure; leave them out.
    let progress = [
        "Compiling ",
        "Checking ",
        "Finished ",
        "Downloaded ",
        "Downloading ",
        "Updating ",
        "Locking ",
    ];
    let text: String = text
        .lines()
        .filter(|l| !progress.iter().any(|p| l.trim_start().starts_with(p)))
        .map(|l| format!("{l}\n"))
        .collect();
    ferrovisor_tests::serial::tail(&text, n)
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}
