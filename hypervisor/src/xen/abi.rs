//! Argument structures of `xen_version` and `sched_op`, as the guest lays them out.
//!
//! Each is `#[repr(C)]` with the header's field order and types, a compile-time size and
//! offset check against the header, and a byte codec
//! ([`GuestAbi`](crate::guest_memory::GuestAbi)) so it is read from guest memory by copy
//! and decode. Layouts are those of a 64-bit guest (`__x86_64__`), where a guest handle
//! (`XEN_GUEST_HANDLE(t)`, `struct { t *p; }` in `public/arch-x86/xen.h`) is 8 bytes. A
//! 32-bit guest uses 4-byte handles and `unsigned long`s (Xen's "compat" layouts); where
//! that changes a layout a `*Compat` type is given.

use core::mem::{offset_of, size_of};

use crate::guest_memory::abi::impl_guest_abi;

/// `xen_extraversion_t` (`public/version.h`): `char[16]`, NUL-padded.
pub type XenExtraversion = [u8; 16];
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = size_of::<XenExtraversion>();

/// `xen_capabilities_info_t` (`public/version.h`): `char[1024]`.
pub type XenCapabilitiesInfo = [u8; 1024];
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = size_of::<XenCapabilitiesInfo>();

/// `xen_changeset_info_t` (`public/version.h`): `char[64]`.
pub type XenChangesetInfo = [u8; 64];
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = size_of::<XenChangesetInfo>();

/// `xen_commandline_t` (`public/version.h`): `char[1024]`.
pub type XenCommandline = [u8; 1024];

/// `xen_domain_handle_t` (`public/xen.h`): 16 bytes, the domain's UUID, returned by
/// `XENVER_guest_handle`.
pub type XenDomainHandle = [u8; 16];

/// `struct xen_compile_info` (`public/version.h`), filled by `XENVER_compile_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenCompileInfo {
    /// `char compiler[64]`.
    pub compiler: [u8; 64],
    /// `char compile_by[16]`.
    pub compile_by: [u8; 16],
    /// `char compile_domain[32]`.
    pub compile_domain: [u8; 32],
    /// `char compile_date[32]`.
    pub compile_date: [u8; 32],
}
impl_guest_abi!(XenCompileInfo {
    compiler,
    compile_by,
    compile_domain,
    compile_date
});
const _: () = assert!(size_of::<XenCompileInfo>() == 144);
const _: () = assert!(offset_of!(XenCompileInfo, compile_by) == 64);
const _: () = assert!(offset_of!(XenCompileInfo, compile_domain) == 80);
const _: () = assert!(offset_of!(XenCompileInfo, compile_date) == 112);

/// `struct xen_platform_parameters` (`public/version.h`) for a 64-bit guest:
/// `xen_ulong_t virt_start` (8 bytes; 4 for a 32-bit guest).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor's reserved virtual area (PV only; meaningless for HVM).
    pub virt_start: u64,
}
impl_guest_abi!(XenPlatformParameters { virt_start });
const _: () = assert!(size_of::<XenPlatformParameters>() == 8);

/// `struct xen_feature_info` (`public/version.h`), for `XENVER_get_features`: the guest
/// fills `submap_idx`, Xen fills `submap` with `XENFEAT_*` bits (see
/// [`features`](super::features)).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap to return (`unsigned int`).
    pub submap_idx: u32,
    /// OUT: the 32-bit submap.
    pub submap: u32,
}
impl_guest_abi!(XenFeatureInfo { submap_idx, submap });
const _: () = assert!(size_of::<XenFeatureInfo>() == 8);
const _: () = assert!(offset_of!(XenFeatureInfo, submap) == 4);

/// `struct sched_shutdown` (`public/sched.h`), for `SCHEDOP_shutdown` and
/// `SCHEDOP_shutdown_code`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*` ([`ShutdownReason`](super::ShutdownReason)), unvalidated.
    pub reason: u32,
}
impl_guest_abi!(SchedShutdown { reason });
const _: () = assert!(size_of::<SchedShutdown>() == 4);

/// `struct sched_poll` (`public/sched.h`), for `SCHEDOP_poll`, 64-bit layout: the 8-byte
/// handle, `unsigned int nr_ports`, then 4 bytes of padding so that the `uint64_t`
/// timeout is 8-aligned. Size 24.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedPoll {
    /// `XEN_GUEST_HANDLE(evtchn_port_t) ports`: guest-virtual address of an array of
    /// `nr_ports` 32-bit event channel ports.
    pub ports: u64,
    /// `unsigned int nr_ports`.
    pub nr_ports: u32,
    /// `uint64_t timeout`: absolute system time in ns, 0 for none.
    pub timeout: u64,
}
impl_guest_abi!(SchedPoll {
    ports,
    nr_ports,
    timeout
});
const _: () = assert!(size_of::<SchedPoll>() == 24);
const _: () = assert!(offset_of!(SchedPoll, nr_ports) == 8);
const _: () = assert!(offset_of!(SchedPoll, timeout) == 16);

/// `struct sched_poll` as a 32-bit guest lays it out: a 4-byte handle, so `timeout` is at
/// offset 8 with no padding. Size 16.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedPollCompat {
    /// 32-bit guest-virtual address of the ports array.
    pub ports: u32,
    /// `unsigned int nr_ports`.
    pub nr_ports: u32,
    /// `uint64_t timeout`.
    pub timeout: u64,
}
impl_guest_abi!(SchedPollCompat {
    ports,
    nr_ports,
    timeout
});
const _: () = assert!(size_of::<SchedPollCompat>() == 16);
const _: () = assert!(offset_of!(SchedPollCompat, timeout) == 8);

/// `struct sched_remote_shutdown` (`public/sched.h`): `domid_t` (16 bits), 2 bytes of
/// padding, `unsigned int reason`. Size 8.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain to shut down.
    pub domain_id: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}
impl_guest_abi!(SchedRemoteShutdown { domain_id, reason });
const _: () = assert!(size_of::<SchedRemoteShutdown>() == 8);
const _: () = assert!(offset_of!(SchedRemoteShutdown, reason) == 4);

/// `struct sched_watchdog` (`public/sched.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// Watchdog id (0 to create one).
    pub id: u32,
    /// Timeout in seconds (0 to destroy).
    pub timeout: u32,
}
impl_guest_abi!(SchedWatchdog { id, timeout });
const _: () = assert!(size_of::<SchedWatchdog>() == 8);

/// `struct sched_pin_override` (`public/sched.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Physical CPU to pin to; negative to undo the override.
    pub pcpu: i32,
}
impl_guest_abi!(SchedPinOverride { pcpu });
const _: () = assert!(size_of::<SchedPinOverride>() == 4);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory::{GuestAbi, GuestMemory, GuestMemoryExt, SparseGuestMemory};

    #[test]
    fn sched_poll_decodes_with_padding_ignored() {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&0xFFFF_8000_1234_5678u64.to_le_bytes());
        bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]); // padding
        bytes[16..].copy_from_slice(&1_000_000u64.to_le_bytes());
        let poll = SchedPoll::from_bytes(&bytes);
        assert_eq!(
            poll,
            SchedPoll {
                ports: 0xFFFF_8000_1234_5678,
                nr_ports: 3,
                timeout: 1_000_000
            }
        );
        let mut clean = bytes;
        clean[12..16].fill(0);
        assert_eq!(poll.to_bytes(), clean);
    }

    #[test]
    fn compat_sched_poll_layout() {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&0x8000_1000u32.to_le_bytes());
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        bytes[8..].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(
            SchedPollCompat::from_bytes(&bytes),
            SchedPollCompat {
                ports: 0x8000_1000,
                nr_ports: 1,
                timeout: 5
            }
        );
    }

    #[test]
    fn structs_round_trip_through_guest_memory() {
        let mut mem: SparseGuestMemory<Vec<u8>, 1> = SparseGuestMemory::new();
        mem.add_region(0, vec![0; 4096]).unwrap();
        let info = XenFeatureInfo {
            submap_idx: 0,
            submap: 0x0001_0305,
        };
        mem.write_obj(0x10, &info).unwrap();
        let mut raw = [0u8; 8];
        mem.read(0x10, &mut raw).unwrap();
        assert_eq!(raw, [0, 0, 0, 0, 0x05, 0x03, 0x01, 0x00]);
        assert_eq!(mem.read_obj::<XenFeatureInfo>(0x10), Ok(info));

        mem.write(0x40, &[2, 0, 0, 0]).unwrap();
        assert_eq!(
            mem.read_obj::<SchedShutdown>(0x40),
            Ok(SchedShutdown { reason: 2 })
        );

        let remote = SchedRemoteShutdown {
            domain_id: 0x7FF0,
            reason: 3,
        };
        mem.write_obj(0x80, &remote).unwrap();
        mem.read(0x80, &mut raw).unwrap();
        assert_eq!(raw, [0xF0, 0x7F, 0, 0, 3, 0, 0, 0]);

        let ev: XenExtraversion = *b".0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        mem.write_obj(0x100, &ev).unwrap();
        assert_eq!(mem.read_obj::<XenExtraversion>(0x100), Ok(ev));
        assert_eq!(XEN_EXTRAVERSION_LEN, 16);
        assert_eq!(XEN_CAPABILITIES_INFO_LEN, 1024);
        assert_eq!(XEN_CHANGESET_INFO_LEN, 64);
    }
}
