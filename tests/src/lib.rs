//! Emulator test catalogue and harness logic for Ferrovisor.
//!
//! Everything here is pure: it describes platforms and tests, builds emulator command lines
//! and configuration files, generates the bad-boot shim, parses serial logs and turns an
//! emulator run into a verdict. Running processes is `xtask`'s job (`cargo xtask test`).
//!
//! The serial contract checked here is described in `docs/testing.md`.

pub mod catalogue;
pub mod cmdline;
pub mod platform;
pub mod serial;
pub mod shim;
pub mod verdict;

pub use catalogue::{Case, Check, ModuleSpec, Test, cases, catalogue};
pub use platform::{BadBoot, Boot, Emulator, Platform};
pub use verdict::{Exit, Outcome, Verdict};
