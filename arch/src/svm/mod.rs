//! AMD SVM hardware descriptions (APM Vol. 2 Chapter 15, Appendices B and C).
//!
//! Plain data only: the VMCB layout with every offset checked at compile time, exit codes
//! and EXITINFO decoders, event injection, the MSR/I/O permission maps and nested-page-table
//! entries. Nothing executes VMRUN, so the module builds and is tested on the host.

pub mod bitmaps;
pub mod exit;
pub mod npt;
pub mod vmcb;
