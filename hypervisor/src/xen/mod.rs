//! The Xen guest ABI, as facts.
//!
//! Ferrovisor runs unmodified Xen-aware guests (PVH boot, Xen hypercalls), so every number
//! and layout here is taken from Xen's public headers (`xen/include/public/`) and must
//! match them exactly; each item names its header. This module holds no behaviour beyond
//! encoding and decoding: the hypercall handlers that use it come later.
//!
//! - [`errno`]: `public/errno.h`, [`XenErrno`].
//! - [`hypercall`]: hypercall numbers (`public/xen.h`) and the sub-ops of `xen_version`,
//!   `console_io` and `sched_op`, with the shutdown reasons.
//! - [`features`]: `XENFEAT_*` (`public/features.h`).
//! - [`abi`]: the `xen_version` and `sched_op` argument structures.
//! - [`start_info`]: the PVH start-of-day structures
//!   (`public/arch-x86/hvm/start_info.h`).
//! - [`cpuid`]: the hypervisor CPUID leaves (`public/arch-x86/cpuid.h`).
//! - [`hypercall_page`]: the bytes of the hypercall page.

pub mod abi;
pub mod cpuid;
pub mod errno;
pub mod features;
pub mod hypercall;
pub mod hypercall_page;
pub mod poll;
pub mod start_info;
pub mod time;
pub mod vcpu_op;

pub use abi::{
    SchedPinOverride, SchedPoll, SchedPollCompat, SchedRemoteShutdown, SchedShutdown,
    SchedWatchdog, XenCompileInfo, XenExtraversion, XenFeatureInfo, XenPlatformParameters,
};
pub use cpuid::xen_leaf;
pub use errno::XenErrno;
pub use hypercall::{ConsoleIoOp, Hypercall, SchedOp, ShutdownReason, XenVersionOp};
pub use hypercall_page::{Vendor, write_hypercall_page};
pub use start_info::{HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo};
pub use vcpu_op::{VcpuOp, parse_hvm_context};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_values_match_errno_h() {
        let expected: [(XenErrno, u32); 49] = [
            (XenErrno::EPERM, 1),
            (XenErrno::ENOENT, 2),
            (XenErrno::ESRCH, 3),
            (XenErrno::EINTR, 4),
            (XenErrno::EIO, 5),
            (XenErrno::ENXIO, 6),
            (XenErrno::E2BIG, 7),
            (XenErrno::ENOEXEC, 8),
            (XenErrno::EBADF, 9),
            (XenErrno::ECHILD, 10),
            (XenErrno::EAGAIN, 11),
            (XenErrno::ENOMEM, 12),
            (XenErrno::EACCES, 13),
            (XenErrno::EFAULT, 14),
            (XenErrno::EBUSY, 16),
            (XenErrno::EEXIST, 17),
            (XenErrno::EXDEV, 18),
            (XenErrno::ENODEV, 19),
            (XenErrno::ENOTDIR, 20),
            (XenErrno::EISDIR, 21),
            (XenErrno::EINVAL, 22),
            (XenErrno::ENFILE, 23),
            (XenErrno::EMFILE, 24),
            (XenErrno::ENOSPC, 28),
            (XenErrno::EROFS, 30),
            (XenErrno::EMLINK, 31),
            (XenErrno::EDOM, 33),
            (XenErrno::ERANGE, 34),
            (XenErrno::EDEADLK, 35),
            (XenErrno::ENAMETOOLONG, 36),
            (XenErrno::ENOLCK, 37),
            (XenErrno::ENOSYS, 38),
            (XenErrno::ENOTEMPTY, 39),
            (XenErrno::ENODATA, 61),
            (XenErrno::ETIME, 62),
            (XenErrno::EBADMSG, 74),
            (XenErrno::EOVERFLOW, 75),
            (XenErrno::EILSEQ, 84),
            (XenErrno::ERESTART, 85),
            (XenErrno::ENOTSOCK, 88),
            (XenErrno::EMSGSIZE, 90),
            (XenErrno::EOPNOTSUPP, 95),
            (XenErrno::EADDRINUSE, 98),
            (XenErrno::EADDRNOTAVAIL, 99),
            (XenErrno::ENOBUFS, 105),
            (XenErrno::EISCONN, 106),
            (XenErrno::ENOTCONN, 107),
            (XenErrno::ETIMEDOUT, 110),
            (XenErrno::ECONNREFUSED, 111),
        ];
        for (e, v) in expected {
            assert_eq!(e.value(), v);
            assert_eq!(e.as_return(), -i64::from(v));
            assert_eq!(XenErrno::from_value(v), Some(e));
        }
        assert_eq!(XenErrno::ALL.len(), expected.len());
        assert_eq!(XenErrno::from_value(15), None);
        assert_eq!(XenErrno::EWOULDBLOCK, XenErrno::EAGAIN);
        assert_eq!(XenErrno::EDEADLOCK, XenErrno::EDEADLK);
        assert_eq!(XenErrno::ENOSYS.as_return() as u64, 0xFFFF_FFFF_FFFF_FFDA);
        assert!(!XenErrno::ERESTART.is_guest_visible());
        assert!(XenErrno::EFAULT.is_guest_visible());
    }
}
