//! `SCHEDOP_poll` (`public/sched.h`, sub-op 3): block the calling vCPU until one of a set
//! of event channel ports is pending, or until an absolute system time.
//!
//! The argument is a `struct sched_poll` ([`SchedPoll`]: a guest handle to an array of
//! `evtchn_port_t`, `unsigned int nr_ports`, `uint64_t timeout`; 24 bytes for a 64-bit
//! guest, [`SchedPollCompat`](super::SchedPollCompat) for a 32-bit one). This module
//! decides what the hypercall does, in the order Xen's `do_poll()`
//! (`xen/common/sched/core.c`) checks:
//!
//! 1. `nr_ports > 128` → `-EINVAL` ("fairly arbitrary limit"), before any port is read;
//! 2. `guest_handle_okay(ports, nr_ports)`, which for HVM/PVH guests (paging mode
//!    external) is always true, so a bad array is only noticed when it is read;
//! 3. an event already waiting for the vCPU (`local_events_need_delivery()`) → return 0
//!    at once, without reading the ports;
//! 4. for each port in order: copy it from the guest (`-EFAULT`), then
//!    `evtchn_port_poll()`: `-EINVAL` unless the port is a usable channel of the domain
//!    (in range and neither free, reserved nor owned by the hypervisor), and if it is
//!    pending, return 0 at once;
//! 5. otherwise block: with one port, only that port wakes the vCPU
//!    (`v->poll_evtchn = port`); with any other count, any port of the domain becoming
//!    pending does (`evtchn_check_pollers()`); a non-zero `timeout` arms the poll timer
//!    at that absolute system time. The hypercall returns 0 when the vCPU wakes,
//!    whether by event or by timeout.
//!
//! The caller supplies what this module cannot know: the guest's memory (reading a port)
//! and the domain's event channels. A domain without event channels answers
//! [`PortState::Unusable`] for every port, so any `nr_ports > 0` call that gets past the
//! copy fails with `-EINVAL`, as it does on Xen (port 0 is always reserved, and an
//! unbound port is free).

use super::abi::{SchedPoll, SchedPollCompat};
use super::errno::XenErrno;
use crate::guest_memory::GuestAbi;

/// The most ports one `SCHEDOP_poll` may name (Xen's `do_poll()`).
pub const SCHED_POLL_MAX_PORTS: u32 = 128;

/// Decodes a 64-bit guest's `struct sched_poll` (padding ignored).
pub fn parse_sched_poll(bytes: &[u8; 24]) -> SchedPoll {
    SchedPoll::from_bytes(bytes)
}

/// Decodes a 32-bit guest's `struct sched_poll` into the native form (the 4-byte handle
/// zero-extended), as Xen's `compat_poll()` converts it before `do_poll()`.
pub fn parse_sched_poll_compat(bytes: &[u8; 16]) -> SchedPoll {
    let compat = SchedPollCompat::from_bytes(bytes);
    SchedPoll {
        ports: u64::from(compat.ports),
        nr_ports: compat.nr_ports,
        timeout: compat.timeout,
    }
}

/// What `evtchn_port_poll()` finds for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    /// Not a channel the guest may use: beyond the domain's ports, free (unbound),
    /// reserved (port 0) or consumed by the hypervisor. The poll fails with `-EINVAL`.
    Unusable,
    /// A usable channel with nothing pending.
    Idle,
    /// A usable channel with its pending bit set: the poll returns 0 at once.
    Pending,
}

/// What to do with a `SCHEDOP_poll` that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAction {
    /// Return 0 now without blocking: an event is already waiting for the vCPU, or one
    /// of the ports is pending.
    Ready,
    /// Block the vCPU; the hypercall returns 0 when it wakes.
    Block {
        /// The absolute system time (ns) at which the vCPU wakes regardless of events;
        /// `None` for no timeout (`timeout` 0). Xen's timers take a signed `s_time_t`,
        /// so a `timeout` with bit 63 set lies in the past: it is given as `Some(0)`.
        /// A deadline at or before the current system time wakes the vCPU at once; the
        /// caller compares it with the time.
        deadline_ns: Option<u64>,
        /// With exactly one port, only that port wakes the vCPU; `None` when any port of
        /// the domain becoming pending does (zero or several ports). An event for the
        /// vCPU itself (its upcall) wakes it in both cases.
        wake_port: Option<u32>,
    },
}

/// Checks a `SCHEDOP_poll` as Xen's `do_poll()` does (see the module comment for the
/// order) and says whether to return at once or to block.
///
/// - `local_events_pending`: an event is waiting for delivery to this vCPU (Xen's
///   `local_events_need_delivery()`); false while the hypervisor has no event channels.
/// - `read_port(i)`: the `i`-th port of the guest's array (`poll.ports + 4 * i`), or the
///   error reading it gives (`-EFAULT` for memory the guest cannot access). Called for
///   each index in order, and not at all past the first error, pending port or when an
///   event is already waiting.
/// - `port_state(port)`: what the domain's event channels say about `port`.
///
/// `Err` is the hypercall's result (`-errno`); nothing has been armed then.
pub fn check_poll(
    poll: &SchedPoll,
    local_events_pending: bool,
    mut read_port: impl FnMut(u32) -> Result<u32, XenErrno>,
    mut port_state: impl FnMut(u32) -> PortState,
) -> Result<PollAction, XenErrno> {
    if poll.nr_ports > SCHED_POLL_MAX_PORTS {
        return Err(XenErrno::EINVAL);
    }
    if local_events_pending {
        return Ok(PollAction::Ready);
    }
    let mut last_port = None;
    for index in 0..poll.nr_ports {
        let port = read_port(index)?;
        match port_state(port) {
            PortState::Unusable => return Err(XenErrno::EINVAL),
            PortState::Pending => return Ok(PollAction::Ready),
            PortState::Idle => last_port = Some(port),
        }
    }
    let deadline_ns = match poll.timeout {
        0 => None,
        timeout if timeout > i64::MAX as u64 => Some(0),
        timeout => Some(timeout),
    };
    let wake_port = if poll.nr_ports == 1 { last_port } else { None };
    Ok(PollAction::Block {
        deadline_ns,
        wake_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(ports: u64, nr_ports: u32, timeout: u64) -> SchedPoll {
        SchedPoll {
            ports,
            nr_ports,
            timeout,
        }
    }

    /// The guest's array of ports: an index past its end faults.
    fn array(ports: &[u32]) -> impl FnMut(u32) -> Result<u32, XenErrno> + '_ {
        move |index| ports.get(index as usize).copied().ok_or(XenErrno::EFAULT)
    }

    fn faulting(_: u32) -> Result<u32, XenErrno> {
        Err(XenErrno::EFAULT)
    }

    fn no_channels(_: u32) -> PortState {
        PortState::Unusable
    }

    /// Ports 1..=8 bound, 5 pending; 0 reserved; the rest free.
    fn some_channels(port: u32) -> PortState {
        match port {
            5 => PortState::Pending,
            1..=8 => PortState::Idle,
            _ => PortState::Unusable,
        }
    }

    #[test]
    fn parses_the_native_and_compat_layouts() {
        let mut native = [0u8; 24];
        native[..8].copy_from_slice(&0xdead_0000_0000u64.to_le_bytes());
        native[8..12].copy_from_slice(&2u32.to_le_bytes());
        native[12..16].copy_from_slice(&[0xAA; 4]); // padding, ignored
        native[16..].copy_from_slice(&20_000_000u64.to_le_bytes());
        assert_eq!(
            parse_sched_poll(&native),
            poll(0xdead_0000_0000, 2, 20_000_000)
        );
        let mut compat = [0u8; 16];
        compat[..4].copy_from_slice(&0x8000_1000u32.to_le_bytes());
        compat[4..8].copy_from_slice(&1u32.to_le_bytes());
        compat[8..].copy_from_slice(&7u64.to_le_bytes());
        assert_eq!(parse_sched_poll_compat(&compat), poll(0x8000_1000, 1, 7));
    }

    #[test]
    fn too_many_ports_is_einval_before_any_port_is_read() {
        let mut reads = 0;
        let result = check_poll(
            &poll(0xdead_0000_0000, 129, 0),
            false,
            |_| {
                reads += 1;
                Err(XenErrno::EFAULT)
            },
            no_channels,
        );
        assert_eq!(result, Err(XenErrno::EINVAL));
        assert_eq!(reads, 0);
        // Even with an event waiting: the count is checked first.
        assert_eq!(
            check_poll(&poll(0, u32::MAX, 0), true, faulting, no_channels),
            Err(XenErrno::EINVAL)
        );
        // 128 is allowed.
        let ports = [1u32; 128];
        assert_eq!(
            check_poll(&poll(0x1000, 128, 0), false, array(&ports), some_channels),
            Ok(PollAction::Block {
                deadline_ns: None,
                wake_port: None
            })
        );
    }

    #[test]
    fn a_bad_array_is_efault() {
        assert_eq!(
            check_poll(&poll(0xdead_0000_0000, 1, 0), false, faulting, no_channels),
            Err(XenErrno::EFAULT)
        );
        // A fault part-way through: the earlier ports were fine.
        assert_eq!(
            check_poll(&poll(0x1000, 3, 0), false, array(&[1, 2]), some_channels),
            Err(XenErrno::EFAULT)
        );
    }

    #[test]
    fn an_unusable_port_is_einval() {
        // No event channels: port 1 is free, port 0 reserved.
        for port in [0, 1, 4095, u32::MAX] {
            assert_eq!(
                check_poll(&poll(0x1000, 1, 0), false, array(&[port]), no_channels),
                Err(XenErrno::EINVAL),
                "port {port}"
            );
        }
        assert_eq!(
            check_poll(&poll(0x1000, 2, 0), false, array(&[1, 9]), some_channels),
            Err(XenErrno::EINVAL)
        );
    }

    #[test]
    fn checks_stop_at_the_first_outcome_in_array_order() {
        // Pending before a bad port: ready. Bad port before a pending one: the error.
        assert_eq!(
            check_poll(&poll(0x1000, 2, 0), false, array(&[5, 0]), some_channels),
            Ok(PollAction::Ready)
        );
        assert_eq!(
            check_poll(&poll(0x1000, 2, 0), false, array(&[0, 5]), some_channels),
            Err(XenErrno::EINVAL)
        );
        // A pending port before an unreadable entry: ready.
        assert_eq!(
            check_poll(&poll(0x1000, 3, 0), false, array(&[1, 5]), some_channels),
            Ok(PollAction::Ready)
        );
    }

    #[test]
    fn a_waiting_event_returns_at_once_without_reading_ports() {
        assert_eq!(
            check_poll(&poll(0xdead_0000_0000, 4, 0), true, faulting, no_channels),
            Ok(PollAction::Ready)
        );
    }

    #[test]
    fn blocks_with_the_timeout_as_deadline() {
        // No ports, no timeout: until any event.
        assert_eq!(
            check_poll(&poll(0, 0, 0), false, faulting, no_channels),
            Ok(PollAction::Block {
                deadline_ns: None,
                wake_port: None
            })
        );
        // No ports: a pure sleep until an absolute time (the array is never read).
        assert_eq!(
            check_poll(
                &poll(0xdead_0000_0000, 0, 20_000_000),
                false,
                faulting,
                no_channels
            ),
            Ok(PollAction::Block {
                deadline_ns: Some(20_000_000),
                wake_port: None
            })
        );
        // A deadline in the past is still a deadline: the caller wakes the vCPU at once.
        assert_eq!(
            check_poll(&poll(0, 0, 1), false, faulting, no_channels),
            Ok(PollAction::Block {
                deadline_ns: Some(1),
                wake_port: None
            })
        );
        // Negative as s_time_t: in the past.
        assert_eq!(
            check_poll(&poll(0, 0, 1 << 63), false, faulting, no_channels),
            Ok(PollAction::Block {
                deadline_ns: Some(0),
                wake_port: None
            })
        );
        assert_eq!(
            check_poll(&poll(0, 0, i64::MAX as u64), false, faulting, no_channels),
            Ok(PollAction::Block {
                deadline_ns: Some(i64::MAX as u64),
                wake_port: None
            })
        );
    }

    #[test]
    fn one_idle_port_is_the_only_wake_port() {
        assert_eq!(
            check_poll(&poll(0x1000, 1, 99), false, array(&[3]), some_channels),
            Ok(PollAction::Block {
                deadline_ns: Some(99),
                wake_port: Some(3)
            })
        );
        assert_eq!(
            check_poll(&poll(0x1000, 2, 0), false, array(&[3, 4]), some_channels),
            Ok(PollAction::Block {
                deadline_ns: None,
                wake_port: None
            })
        );
    }
}
