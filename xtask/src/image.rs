//! Building the kernel ELF and the images made from it (GRUB ISO, PVH copy, shim files).

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrovisor_tests::cmdline::{GrubModule, grub_cfg, grub_mkrescue_args};
use ferrovisor_tests::{BadBoot, ModuleSpec, shim};

use crate::util::{self, BUILD, Captured};

/// The bare-metal target.
pub const TARGET: &str = "x86_64-unknown-none";

/// `build/ferrovisor` or `build/ferrovisor-selftest` (relative to the workspace root).
pub fn elf_path(selftest: bool) -> PathBuf {
    Path::new(BUILD).join(if selftest {
        "ferrovisor-selftest"
    } else {
        "ferrovisor"
    })
}

/// Installs the rustup target when rustup lacks it (quietly; nothing when rustup is absent).
pub fn ensure_target() -> Result<(), String> {
    let Ok(list) =
        util::run_captured(Command::new("rustup").args(["target", "list", "--installed"]))
    else {
        return Ok(());
    };
    if list.ok && list.output.lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    let add = util::run_captured(Command::new("rustup").args(["target", "add", TARGET]))?;
    if add.ok {
        Ok(())
    } else {
        Err(format!(
            "rustup target add {TARGET} {}:\n{}",
            add.status, add.output
        ))
    }
}

/// The cargo command that builds the kernel, run from the workspace root so its
/// `.cargo/config.toml` applies, into the workspace's own `target/`.
fn kernel_build_command(selftest: bool) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(util::root())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .args(["build", "-p", "ferrovisor", "--target", TARGET, "--release"]);
    if selftest {
        cmd.args(["--features", "selftest"]);
    }
    cmd
}

/// Copies the freshly built ELF to `build/`.
fn install_elf(selftest: bool) -> Result<PathBuf, String> {
    let root = util::root();
    let built = root
        .join("target")
        .join(TARGET)
        .join("release")
        .join("ferrovisor");
    let dest = elf_path(selftest);
    util::mkdir(&root.join(BUILD))?;
    std::fs::copy(&built, root.join(&dest))
        .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), dest.display()))?;
    Ok(dest)
}

/// Builds the kernel with cargo's output on the terminal.
pub fn build_interactive(selftest: bool) -> Result<PathBuf, String> {
    ensure_target()?;
    util::run_inherit(&mut kernel_build_command(selftest))?;
    install_elf(selftest)
}

/// Builds the kernel with cargo's output captured: `Err` carries a reason and the output.
pub fn build_captured(selftest: bool) -> Result<PathBuf, (String, String)> {
    ensure_target().map_err(|e| (e, String::new()))?;
    let mut cmd = kernel_build_command(selftest);
    let Captured { ok, status, output } =
        util::run_captured(&mut cmd).map_err(|e| (e, String::new()))?;
    if !ok {
        return Err((format!("`{}` {status}", util::describe(&cmd)), output));
    }
    install_elf(selftest).map_err(|e| (e, output))
}

/// Builds the test guests (`tests/guests`, one binary per guest) and copies each named
/// one to `build/guests/<name>`; returns them as modules.
pub fn build_guests(names: &[&str]) -> Result<Vec<Module>, (String, String)> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(util::root())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .args([
            "build",
            "-p",
            "ferrovisor-test-guests",
            "--bins",
            "--target",
            TARGET,
            "--release",
        ]);
    let Captured { ok, status, output } =
        util::run_captured(&mut cmd).map_err(|e| (e, String::new()))?;
    if !ok {
        return Err((format!("`{}` {status}", util::describe(&cmd)), output));
    }
    let root = util::root();
    let dir = Path::new(BUILD).join("guests");
    util::mkdir(&root.join(&dir)).map_err(|e| (e, String::new()))?;
    names
        .iter()
        .map(|name| {
            let built = root.join("target").join(TARGET).join("release").join(name);
            let path = dir.join(name);
            std::fs::copy(&built, root.join(&path)).map_err(|e| {
                (
                    format!("cannot copy guest {}: {e}", built.display()),
                    String::new(),
                )
            })?;
            // The module's command line starts with its name (QEMU prefixes the
            // path anyway); the hypervisor names the domain after it.
            Ok(Module {
                path,
                name: name.to_string(),
                args: name.to_string(),
            })
        })
        .collect()
}

/// A module to put on an image: source file, name on the ISO, arguments.
#[derive(Clone, Debug)]
pub struct Module {
    /// The file (relative to the workspace root, or absolute).
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    /// Its command-line arguments.
    pub args: String,
}

impl Module {
    /// Parses `PATH[:ARGS]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (path, args) = spec.split_once(':').unwrap_or((spec, ""));
        let path = PathBuf::from(path);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("--module {spec}: no file name"))?;
        Ok(Self {
            path,
            name,
            args: args.to_string(),
        })
    }

    /// QEMU's `-initrd` entry: `PATH ARGS`.
    pub fn initrd_entry(&self) -> String {
        let path = self.path.to_string_lossy();
        if self.args.is_empty() {
            path.into_owned()
        } else {
            format!("{path} {}", self.args)
        }
    }
}

/// Writes the catalogue's generated modules to `build/modules/` and describes them.
pub fn generated_modules(specs: &[ModuleSpec]) -> Result<Vec<Module>, String> {
    let dir = Path::new(BUILD).join("modules");
    util::mkdir(&util::root().join(&dir))?;
    specs
        .iter()
        .map(|m| {
            let path = dir.join(m.name);
            util::write(&util::root().join(&path), m.bytes())?;
            // Every module's command line starts with its name, as with GRUB's usual
            // `module2 /boot/x x args`: the hypervisor names domains after it.
            Ok(Module {
                path,
                name: m.name.to_string(),
                args: format!("{} {}", m.name, m.args),
            })
        })
        .collect()
}

/// Builds a GRUB rescue ISO at `iso` that boots `kernel` by multiboot2, staging its files in
/// `staging` (both relative to the workspace root).
pub fn make_iso(
    iso: &Path,
    staging: &Path,
    kernel: &Path,
    cmdline: &str,
    modules: &[Module],
) -> Result<(), String> {
    let root = util::root();
    let stage = root.join(staging);
    util::fresh_dir(&stage.join("boot").join("grub"))?;
    let copy = |from: &Path, to: &str| {
        std::fs::copy(root.join(from), stage.join("boot").join(to))
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} to the ISO: {e}", from.display()))
    };
    copy(kernel, "ferrovisor")?;
    let mut grub_modules = Vec::new();
    for m in modules {
        copy(&m.path, &m.name)?;
        grub_modules.push(GrubModule {
            name: m.name.clone(),
            args: m.args.clone(),
        });
    }
    util::write(
        &stage.join("boot").join("grub").join("grub.cfg"),
        grub_cfg(cmdline, &grub_modules),
    )?;
    let mut cmd = Command::new("grub-mkrescue");
    cmd.current_dir(&root).args(grub_mkrescue_args(
        &iso.to_string_lossy(),
        &staging.to_string_lossy(),
    ));
    let out = util::run_captured(&mut cmd)?;
    if !out.ok {
        return Err(format!(
            "`{}` {}:\n{}",
            util::describe(&cmd),
            out.status,
            util::indented_tail(&out.output, 20)
        ));
    }
    // Keep grub.cfg next to the ISO; the staged copy of the kernel is not worth its size.
    if let Some(dir) = iso.parent() {
        let cfg = stage.join("boot").join("grub").join("grub.cfg");
        let _ = std::fs::copy(cfg, root.join(dir).join("grub.cfg"));
    }
    std::fs::remove_dir_all(&stage).map_err(|e| format!("cannot remove {}: {e}", stage.display()))
}

/// Writes a copy of the ELF without its multiboot1 header, so QEMU boots it by PVH.
pub fn pvh_copy(elf: &Path, out: &Path) -> Result<(), String> {
    let root = util::root();
    let bytes = util::read(&root.join(elf))?;
    if !shim::has_pvh_note(&bytes) {
        return Err(format!(
            "{} has no PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY)",
            elf.display()
        ));
    }
    util::write(&root.join(out), shim::without_multiboot1(&bytes))
}

/// The files of a shim boot, relative to the workspace root.
pub struct ShimFiles {
    /// The flat multiboot1 shim, booted with `-kernel`.
    pub shim: PathBuf,
    /// The parameter block, loaded at [`shim::PARAMS_ADDR`].
    pub params: PathBuf,
    /// The kernel's loadable image, loaded at its `load_addr`.
    pub kernel: PathBuf,
    /// The kernel's load address.
    pub kernel_addr: u32,
}

/// Writes the shim, its parameters and the kernel image into `dir`.
pub fn shim_files(elf: &Path, dir: &Path, bad: BadBoot) -> Result<ShimFiles, String> {
    let root = util::root();
    let bytes = util::read(&root.join(elf))?;
    let kernel = shim::kludge_image(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    shim::check_layout(&kernel)?;
    let files = ShimFiles {
        shim: dir.join("shim.bin"),
        params: dir.join("params.bin"),
        kernel: dir.join("kernel.img"),
        kernel_addr: kernel.addr,
    };
    util::write(&root.join(&files.shim), shim::shim_image())?;
    util::write(&root.join(&files.params), shim::params(bad, kernel.entry))?;
    util::write(&root.join(&files.kernel), &kernel.bytes)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_specs() {
        let m = Module::parse("build/modules/mod-a.bin:role=alpha x=1").unwrap();
        assert_eq!(m.name, "mod-a.bin");
        assert_eq!(m.args, "role=alpha x=1");
        assert_eq!(m.initrd_entry(), "build/modules/mod-a.bin role=alpha x=1");
        let bare = Module::parse("initrd.img").unwrap();
        assert_eq!(bare.initrd_entry(), "initrd.img");
        assert!(Module::parse("/").is_err());
    }
}
