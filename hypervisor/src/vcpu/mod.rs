//! The vendor-neutral vCPU vocabulary: what the VT-x and AMD-V backends translate
//! hardware state into, and what the rest of the hypervisor handles once (STYLE.md:
//! Barevisor's split). The backends live with the bare-metal code; everything here is
//! plain data, host-tested.

mod exit;
pub mod init;
mod regs;

pub use exit::{Exit, InvalidStateReason, IoAccess, IoSize, NestedFault};
pub use init::{DescriptorTable, Segment, VcpuInitState};
pub use regs::GuestRegisters;
