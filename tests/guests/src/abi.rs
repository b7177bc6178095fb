//! The Xen guest ABI numbers test guests use, from Xen's public headers
//! (xen/include/public/xen.h, sched.h, version.h, arch-x86/cpuid.h).

/// `__HYPERVISOR_xen_version` (xen.h).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io` (xen.h).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_sched_op` (xen.h).
pub const HYPERVISOR_SCHED_OP: u32 = 29;

/// `CONSOLEIO_write` (xen.h).
pub const CONSOLEIO_WRITE: u64 = 0;
/// `SCHEDOP_yield`, `SCHEDOP_shutdown` (sched.h).
pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SHUTDOWN_*` reasons (sched.h).
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_CRASH: u32 = 3;

/// `XENVER_version`, `XENVER_extraversion`, `XENVER_get_features` (version.h).
pub const XENVER_VERSION: u64 = 0;
pub const XENVER_EXTRAVERSION: u64 = 1;
pub const XENVER_GET_FEATURES: u64 = 6;

/// First CPUID leaf Xen may place its leaves at; Xen searches in 0x100 steps up to
/// 0x40010000 (arch-x86/cpuid.h, XEN_CPUID_FIRST_LEAF).
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;
/// The signature in EBX, ECX, EDX of the base leaf.
pub const XEN_CPUID_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";

/// Bytes per hypercall stub in the hypercall page (32: Xen's layout).
pub const HYPERCALL_STUB_SIZE: u64 = 32;

/// `-ENOSYS` as Xen returns it.
pub const ENOSYS: i64 = -38;
/// `-EFAULT`.
pub const EFAULT: i64 = -14;
/// `-EINVAL`.
pub const EINVAL: i64 = -22;
