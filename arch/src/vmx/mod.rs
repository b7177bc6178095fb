//! Intel VMX hardware descriptions (SDM Vol. 3C Chapters 24-31, Vol. 3D Appendices A-C).
//!
//! Everything here is plain data: VMCS field encodings, exit-information decoders, control
//! bit sets with the capability-MSR adjustment rule, EPT entries and the MSR/I/O bitmaps.
//! Nothing executes a VMX instruction, so the whole module builds and is tested on the host;
//! the world switch that uses it lives elsewhere and stays vendor-specific only as far as
//! translating these types into the hypervisor's common exit vocabulary.

pub mod bitmaps;
pub mod controls;
pub mod ept;
pub mod exit;
pub mod fields;
