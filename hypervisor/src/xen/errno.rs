//! Xen's error numbers (`xen/include/public/errno.h`).
//!
//! Hypercalls return `-errno` in RAX on failure. The values originate from x86 Linux, which
//! is why Linux guests can hand them straight to their callers; they are *not* the host's
//! errno values and must never be confused with them.

/// An error number of the Xen guest ABI (`enum xen_errno` in `public/errno.h`).
///
/// `EWOULDBLOCK` and `EDEADLOCK` are aliases in the header (of `EAGAIN` and `EDEADLK`) and
/// so are not separate variants: see [`XenErrno::EWOULDBLOCK`] and [`XenErrno::EDEADLOCK`].
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XenErrno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such file or directory.
    ENOENT = 2,
    /// No such process.
    ESRCH = 3,
    /// Interrupted system call. Internal to Xen: the header hides it from guests
    /// (`#ifdef __XEN__`), see [`XenErrno::is_guest_visible`].
    EINTR = 4,
    /// I/O error.
    EIO = 5,
    /// No such device or address.
    ENXIO = 6,
    /// Argument list too long.
    E2BIG = 7,
    /// Exec format error.
    ENOEXEC = 8,
    /// Bad file number.
    EBADF = 9,
    /// No child processes.
    ECHILD = 10,
    /// Try again.
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Permission denied.
    EACCES = 13,
    /// Bad address: the error for any guest memory that cannot be accessed.
    EFAULT = 14,
    /// Device or resource busy.
    EBUSY = 16,
    /// File exists.
    EEXIST = 17,
    /// Cross-device link.
    EXDEV = 18,
    /// No such device.
    ENODEV = 19,
    /// Not a directory.
    ENOTDIR = 20,
    /// Is a directory.
    EISDIR = 21,
    /// Invalid argument.
    EINVAL = 22,
    /// File table overflow.
    ENFILE = 23,
    /// Too many open files.
    EMFILE = 24,
    /// No space left on device.
    ENOSPC = 28,
    /// Read-only file system.
    EROFS = 30,
    /// Too many links.
    EMLINK = 31,
    /// Math argument out of domain of function.
    EDOM = 33,
    /// Math result not representable.
    ERANGE = 34,
    /// Resource deadlock would occur.
    EDEADLK = 35,
    /// File name too long.
    ENAMETOOLONG = 36,
    /// No record locks available.
    ENOLCK = 37,
    /// Function not implemented: the answer to unknown hypercalls and sub-ops.
    ENOSYS = 38,
    /// Directory not empty.
    ENOTEMPTY = 39,
    /// No data available.
    ENODATA = 61,
    /// Timer expired.
    ETIME = 62,
    /// Not a data message.
    EBADMSG = 74,
    /// Value too large for defined data type.
    EOVERFLOW = 75,
    /// Illegal byte sequence.
    EILSEQ = 84,
    /// Interrupted system call should be restarted. Internal to Xen (hypercall
    /// continuations); hidden from guests by the header.
    ERESTART = 85,
    /// Socket operation on non-socket.
    ENOTSOCK = 88,
    /// Message too large.
    EMSGSIZE = 90,
    /// Operation not supported on transport endpoint.
    EOPNOTSUPP = 95,
    /// Address already in use.
    EADDRINUSE = 98,
    /// Cannot assign requested address.
    EADDRNOTAVAIL = 99,
    /// No buffer space available.
    ENOBUFS = 105,
    /// Transport endpoint is already connected.
    EISCONN = 106,
    /// Transport endpoint is not connected.
    ENOTCONN = 107,
    /// Connection timed out.
    ETIMEDOUT = 110,
    /// Connection refused.
    ECONNREFUSED = 111,
}

impl XenErrno {
    /// `XEN_EWOULDBLOCK`: an alias of `EAGAIN` in `public/errno.h`.
    pub const EWOULDBLOCK: Self = Self::EAGAIN;
    /// `XEN_EDEADLOCK`: an alias of `EDEADLK` in `public/errno.h`.
    pub const EDEADLOCK: Self = Self::EDEADLK;

    /// Every variant, in ascending numeric order (for lookups and exhaustive tests).
    pub const ALL: [Self; 49] = [
        Self::EPERM,
        Self::ENOENT,
        Self::ESRCH,
        Self::EINTR,
        Self::EIO,
        Self::ENXIO,
        Self::E2BIG,
        Self::ENOEXEC,
        Self::EBADF,
        Self::ECHILD,
        Self::EAGAIN,
        Self::ENOMEM,
        Self::EACCES,
        Self::EFAULT,
        Self::EBUSY,
        Self::EEXIST,
        Self::EXDEV,
        Self::ENODEV,
        Self::ENOTDIR,
        Self::EISDIR,
        Self::EINVAL,
        Self::ENFILE,
        Self::EMFILE,
        Self::ENOSPC,
        Self::EROFS,
        Self::EMLINK,
        Self::EDOM,
        Self::ERANGE,
        Self::EDEADLK,
        Self::ENAMETOOLONG,
        Self::ENOLCK,
        Self::ENOSYS,
        Self::ENOTEMPTY,
        Self::ENODATA,
        Self::ETIME,
        Self::EBADMSG,
        Self::EOVERFLOW,
        Self::EILSEQ,
        Self::ERESTART,
        Self::ENOTSOCK,
        Self::EMSGSIZE,
        Self::EOPNOTSUPP,
        Self::EADDRINUSE,
        Self::EADDRNOTAVAIL,
        Self::ENOBUFS,
        Self::EISCONN,
        Self::ENOTCONN,
        Self::ETIMEDOUT,
        Self::ECONNREFUSED,
    ];

    /// The positive error number.
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// What a hypercall returns in RAX for this error: `-errno`, sign-extended.
    pub const fn as_return(self) -> i64 {
        -(self as i64)
    }

    /// The error whose number is `value`, if `public/errno.h` defines one.
    pub fn from_value(value: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.value() == value)
    }

    /// Whether a guest may ever see this error. `EINTR` and `ERESTART` are defined only
    /// `#ifdef __XEN__` in the header: they drive hypercall continuations inside the
    /// hypervisor and must be turned into a retry before returning to the guest.
    pub const fn is_guest_visible(self) -> bool {
        !matches!(self, Self::EINTR | Self::ERESTART)
    }
}
