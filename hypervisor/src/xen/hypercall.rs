//! Hypercall numbers and the sub-operation numbers of the simple hypercalls.
//!
//! Sources: `xen/include/public/xen.h` (hypercall numbers, `CONSOLEIO_*`),
//! `public/version.h` (`XENVER_*`) and `public/sched.h` (`SCHEDOP_*`, `SHUTDOWN_*`).
//!
//! Calling convention for HVM/PVH guests (`public/xen.h`, "HYPERCALLS"): the hypercall
//! number is in EAX/RAX. A 64-bit caller passes arguments in RDI, RSI, RDX, R10, R8 (and R9);
//! a 32-bit caller in EBX, ECX, EDX, ESI, EDI. The result comes back in RAX; negative values
//! are `-errno` ([`XenErrno::as_return`](super::XenErrno::as_return)).

/// A hypercall number (`__HYPERVISOR_*` in `public/xen.h`). Number 11 has never been
/// assigned; 43..=47 and anything at or above 56 are unassigned too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Hypercall {
    /// `__HYPERVISOR_set_trap_table` (PV only).
    SetTrapTable = 0,
    /// `__HYPERVISOR_mmu_update` (PV only).
    MmuUpdate = 1,
    /// `__HYPERVISOR_set_gdt` (PV only).
    SetGdt = 2,
    /// `__HYPERVISOR_stack_switch` (PV only).
    StackSwitch = 3,
    /// `__HYPERVISOR_set_callbacks` (PV only).
    SetCallbacks = 4,
    /// `__HYPERVISOR_fpu_taskswitch` (PV only).
    FpuTaskswitch = 5,
    /// `__HYPERVISOR_sched_op_compat`: the pre-3.0.2 `sched_op`, kept for old guests.
    SchedOpCompat = 6,
    /// `__HYPERVISOR_platform_op` (was `dom0_op`); control domain only.
    PlatformOp = 7,
    /// `__HYPERVISOR_set_debugreg` (PV only).
    SetDebugreg = 8,
    /// `__HYPERVISOR_get_debugreg` (PV only).
    GetDebugreg = 9,
    /// `__HYPERVISOR_update_descriptor` (PV only).
    UpdateDescriptor = 10,
    /// `__HYPERVISOR_memory_op`: reservations, physmap changes, memory maps.
    MemoryOp = 12,
    /// `__HYPERVISOR_multicall`: a batch of hypercalls.
    Multicall = 13,
    /// `__HYPERVISOR_update_va_mapping` (PV only).
    UpdateVaMapping = 14,
    /// `__HYPERVISOR_set_timer_op`: one-shot timer.
    SetTimerOp = 15,
    /// `__HYPERVISOR_event_channel_op_compat`: the pre-3.2.2 event channel call.
    EventChannelOpCompat = 16,
    /// `__HYPERVISOR_xen_version`: sub-ops in [`XenVersionOp`].
    XenVersion = 17,
    /// `__HYPERVISOR_console_io`: sub-ops in [`ConsoleIoOp`].
    ConsoleIo = 18,
    /// `__HYPERVISOR_physdev_op_compat`: the pre-3.2.2 physdev call.
    PhysdevOpCompat = 19,
    /// `__HYPERVISOR_grant_table_op`.
    GrantTableOp = 20,
    /// `__HYPERVISOR_vm_assist`.
    VmAssist = 21,
    /// `__HYPERVISOR_update_va_mapping_otherdomain` (PV only).
    UpdateVaMappingOtherdomain = 22,
    /// `__HYPERVISOR_iret` (x86 PV only). The HVM hypercall page holds `ud2` in its slot.
    Iret = 23,
    /// `__HYPERVISOR_vcpu_op`.
    VcpuOp = 24,
    /// `__HYPERVISOR_set_segment_base` (x86-64 PV only).
    SetSegmentBase = 25,
    /// `__HYPERVISOR_mmuext_op` (PV only).
    MmuextOp = 26,
    /// `__HYPERVISOR_xsm_op` (was `acm_op`).
    XsmOp = 27,
    /// `__HYPERVISOR_nmi_op`.
    NmiOp = 28,
    /// `__HYPERVISOR_sched_op`: sub-ops in [`SchedOp`].
    SchedOp = 29,
    /// `__HYPERVISOR_callback_op`.
    CallbackOp = 30,
    /// `__HYPERVISOR_xenoprof_op`.
    XenoprofOp = 31,
    /// `__HYPERVISOR_event_channel_op`.
    EventChannelOp = 32,
    /// `__HYPERVISOR_physdev_op`.
    PhysdevOp = 33,
    /// `__HYPERVISOR_hvm_op`.
    HvmOp = 34,
    /// `__HYPERVISOR_sysctl`; control domain only.
    Sysctl = 35,
    /// `__HYPERVISOR_domctl`; control domain only.
    Domctl = 36,
    /// `__HYPERVISOR_kexec_op`.
    KexecOp = 37,
    /// `__HYPERVISOR_tmem_op` (removed from Xen, number still reserved).
    TmemOp = 38,
    /// `__HYPERVISOR_argo_op` (was `xc_reserved_op`).
    ArgoOp = 39,
    /// `__HYPERVISOR_xenpmu_op`.
    XenpmuOp = 40,
    /// `__HYPERVISOR_dm_op`: device-model operations.
    DmOp = 41,
    /// `__HYPERVISOR_hypfs_op`.
    HypfsOp = 42,
    /// `__HYPERVISOR_arch_0`; on x86 this is `__HYPERVISOR_mca` (`public/arch-x86/xen-mca.h`).
    Arch0 = 48,
    /// `__HYPERVISOR_arch_1`.
    Arch1 = 49,
    /// `__HYPERVISOR_arch_2`.
    Arch2 = 50,
    /// `__HYPERVISOR_arch_3`.
    Arch3 = 51,
    /// `__HYPERVISOR_arch_4`.
    Arch4 = 52,
    /// `__HYPERVISOR_arch_5`.
    Arch5 = 53,
    /// `__HYPERVISOR_arch_6`.
    Arch6 = 54,
    /// `__HYPERVISOR_arch_7`.
    Arch7 = 55,
}

impl Hypercall {
    /// Decodes the number a guest put in RAX. The whole 64-bit register is checked, so a
    /// 64-bit guest with garbage in the upper half gets `None` (and so `-ENOSYS`), not a
    /// truncated match.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            0 => Self::SetTrapTable,
            1 => Self::MmuUpdate,
            2 => Self::SetGdt,
            3 => Self::StackSwitch,
            4 => Self::SetCallbacks,
            5 => Self::FpuTaskswitch,
            6 => Self::SchedOpCompat,
            7 => Self::PlatformOp,
            8 => Self::SetDebugreg,
            9 => Self::GetDebugreg,
            10 => Self::UpdateDescriptor,
            12 => Self::MemoryOp,
            13 => Self::Multicall,
            14 => Self::UpdateVaMapping,
            15 => Self::SetTimerOp,
            16 => Self::EventChannelOpCompat,
            17 => Self::XenVersion,
            18 => Self::ConsoleIo,
            19 => Self::PhysdevOpCompat,
            20 => Self::GrantTableOp,
            21 => Self::VmAssist,
            22 => Self::UpdateVaMappingOtherdomain,
            23 => Self::Iret,
            24 => Self::VcpuOp,
            25 => Self::SetSegmentBase,
            26 => Self::MmuextOp,
            27 => Self::XsmOp,
            28 => Self::NmiOp,
            29 => Self::SchedOp,
            30 => Self::CallbackOp,
            31 => Self::XenoprofOp,
            32 => Self::EventChannelOp,
            33 => Self::PhysdevOp,
            34 => Self::HvmOp,
            35 => Self::Sysctl,
            36 => Self::Domctl,
            37 => Self::KexecOp,
            38 => Self::TmemOp,
            39 => Self::ArgoOp,
            40 => Self::XenpmuOp,
            41 => Self::DmOp,
            42 => Self::HypfsOp,
            48 => Self::Arch0,
            49 => Self::Arch1,
            50 => Self::Arch2,
            51 => Self::Arch3,
            52 => Self::Arch4,
            53 => Self::Arch5,
            54 => Self::Arch6,
            55 => Self::Arch7,
            _ => return None,
        })
    }

    /// The hypercall number.
    pub const fn number(self) -> u32 {
        self as u32
    }
}

/// Sub-ops of `xen_version` (`XENVER_*`, `public/version.h`). All return 0 on success
/// except `version` (the version word), `pagesize` (the page size) and `build_id` (a
/// length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum XenVersionOp {
    /// `XENVER_version`: arg is NULL; returns `major << 16 | minor`.
    Version = 0,
    /// `XENVER_extraversion`: fills a `xen_extraversion_t` (16 chars).
    Extraversion = 1,
    /// `XENVER_compile_info`: fills a `xen_compile_info_t`.
    CompileInfo = 2,
    /// `XENVER_capabilities`: fills a `xen_capabilities_info_t` (1024 chars).
    Capabilities = 3,
    /// `XENVER_changeset`: fills a `xen_changeset_info_t` (64 chars).
    Changeset = 4,
    /// `XENVER_platform_parameters`: fills a `xen_platform_parameters_t`.
    PlatformParameters = 5,
    /// `XENVER_get_features`: reads and fills a `xen_feature_info_t`.
    GetFeatures = 6,
    /// `XENVER_pagesize`: arg must be NULL; returns the page size.
    Pagesize = 7,
    /// `XENVER_guest_handle`: fills a `xen_domain_handle_t` (16 bytes, the domain UUID).
    GuestHandle = 8,
    /// `XENVER_commandline`: fills a `xen_commandline_t` (1024 chars).
    Commandline = 9,
    /// `XENVER_build_id`: fills a `xen_build_id`; returns the length written.
    BuildId = 10,
}

impl XenVersionOp {
    /// Decodes the sub-op argument (`cmd`, an `int` in the C prototype, so 32 bits).
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Version,
            1 => Self::Extraversion,
            2 => Self::CompileInfo,
            3 => Self::Capabilities,
            4 => Self::Changeset,
            5 => Self::PlatformParameters,
            6 => Self::GetFeatures,
            7 => Self::Pagesize,
            8 => Self::GuestHandle,
            9 => Self::Commandline,
            10 => Self::BuildId,
            _ => return None,
        })
    }
}

/// Sub-ops of `console_io` (`CONSOLEIO_*`, `public/xen.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ConsoleIoOp {
    /// `CONSOLEIO_write`: `(count, buffer)` bytes to the hypervisor console.
    Write = 0,
    /// `CONSOLEIO_read`: reads from the hypervisor console (control domain only).
    Read = 1,
}

impl ConsoleIoOp {
    /// Decodes the sub-op argument.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Write),
            1 => Some(Self::Read),
            _ => None,
        }
    }
}

/// Sub-ops of `sched_op` (`SCHEDOP_*`, `public/sched.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SchedOp {
    /// `SCHEDOP_yield`: arg NULL.
    Yield = 0,
    /// `SCHEDOP_block`: arg NULL; atomically unmasks event delivery and blocks until an
    /// event is pending (no wakeup-waiting race).
    Block = 1,
    /// `SCHEDOP_shutdown`: arg points to a `sched_shutdown` ([`super::SchedShutdown`]).
    Shutdown = 2,
    /// `SCHEDOP_poll`: arg points to a `sched_poll` ([`super::SchedPoll`]).
    Poll = 3,
    /// `SCHEDOP_remote_shutdown`: arg points to a `sched_remote_shutdown`.
    RemoteShutdown = 4,
    /// `SCHEDOP_shutdown_code`: latches a shutdown reason (a `sched_shutdown`) for later.
    ShutdownCode = 5,
    /// `SCHEDOP_watchdog`: arg points to a `sched_watchdog`.
    Watchdog = 6,
    /// `SCHEDOP_pin_override`: arg points to a `sched_pin_override` (hardware domain).
    PinOverride = 7,
}

impl SchedOp {
    /// Decodes the sub-op argument.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Yield,
            1 => Self::Block,
            2 => Self::Shutdown,
            3 => Self::Poll,
            4 => Self::RemoteShutdown,
            5 => Self::ShutdownCode,
            6 => Self::Watchdog,
            7 => Self::PinOverride,
            _ => return None,
        })
    }
}

/// Reason codes of `SCHEDOP_shutdown` (`SHUTDOWN_*`, `public/sched.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`: the domain exited normally.
    Poweroff = 0,
    /// `SHUTDOWN_reboot`: clean up, kill, and restart.
    Reboot = 1,
    /// `SHUTDOWN_suspend`: clean up, save suspend info, kill.
    Suspend = 2,
    /// `SHUTDOWN_crash`: the domain crashed.
    Crash = 3,
    /// `SHUTDOWN_watchdog`: restart because a watchdog expired.
    Watchdog = 4,
    /// `SHUTDOWN_soft_reset`: reset Xen state but keep memory and vCPU contexts.
    SoftReset = 5,
}

impl ShutdownReason {
    /// `SHUTDOWN_MAX`: the highest valid reason.
    pub const MAX: u32 = 5;

    /// Decodes a reason; values above [`Self::MAX`] are invalid (Xen answers `-EINVAL`).
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Poweroff,
            1 => Self::Reboot,
            2 => Self::Suspend,
            3 => Self::Crash,
            4 => Self::Watchdog,
            5 => Self::SoftReset,
            _ => return None,
        })
    }
}

/// The Xen release whose ABI Ferrovisor reports (`XENVER_version`, CPUID leaf
/// 0x40000001): 4.17, so that guests enable every interface they know from that release
/// on; each interface is still checked and refused with `-ENOSYS` where not implemented.
pub const XEN_VERSION_MAJOR: u16 = 4;
/// Minor half of [`XEN_VERSION_MAJOR`].
pub const XEN_VERSION_MINOR: u16 = 17;

/// The version word `major << 16 | minor` returned by `XENVER_version` and CPUID leaf
/// 0x40000001 EAX (`public/version.h`, `public/arch-x86/cpuid.h`).
pub const fn xen_version_word() -> u32 {
    ((XEN_VERSION_MAJOR as u32) << 16) | XEN_VERSION_MINOR as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_numbers_match_xen_h() {
        let expected: [(u64, Hypercall); 12] = [
            (0, Hypercall::SetTrapTable),
            (12, Hypercall::MemoryOp),
            (17, Hypercall::XenVersion),
            (18, Hypercall::ConsoleIo),
            (20, Hypercall::GrantTableOp),
            (23, Hypercall::Iret),
            (24, Hypercall::VcpuOp),
            (29, Hypercall::SchedOp),
            (32, Hypercall::EventChannelOp),
            (34, Hypercall::HvmOp),
            (42, Hypercall::HypfsOp),
            (55, Hypercall::Arch7),
        ];
        for (raw, hc) in expected {
            assert_eq!(Hypercall::from_raw(raw), Some(hc));
            assert_eq!(u64::from(hc.number()), raw);
        }
    }

    #[test]
    fn from_raw_round_trips_and_rejects_unassigned() {
        let mut assigned = 0;
        for raw in 0..=300u64 {
            match Hypercall::from_raw(raw) {
                Some(hc) => {
                    assigned += 1;
                    assert_eq!(u64::from(hc.number()), raw);
                }
                None => assert!(raw == 11 || (43..=47).contains(&raw) || raw >= 56, "{raw}"),
            }
        }
        assert_eq!(assigned, 42 + 8);
        // Upper bits of RAX are not ignored.
        assert_eq!(Hypercall::from_raw((1 << 32) | 17), None);
    }

    #[test]
    fn sub_ops_match_headers() {
        assert_eq!(XenVersionOp::from_raw(0), Some(XenVersionOp::Version));
        assert_eq!(XenVersionOp::from_raw(6), Some(XenVersionOp::GetFeatures));
        assert_eq!(XenVersionOp::from_raw(10), Some(XenVersionOp::BuildId));
        assert_eq!(XenVersionOp::from_raw(11), None);
        assert_eq!(ConsoleIoOp::from_raw(0), Some(ConsoleIoOp::Write));
        assert_eq!(ConsoleIoOp::from_raw(1), Some(ConsoleIoOp::Read));
        assert_eq!(ConsoleIoOp::from_raw(2), None);
        for raw in 0..8 {
            assert_eq!(SchedOp::from_raw(raw).map(|op| op as u32), Some(raw));
        }
        assert_eq!(SchedOp::from_raw(8), None);
        for raw in 0..=ShutdownReason::MAX {
            assert_eq!(ShutdownReason::from_raw(raw).map(|r| r as u32), Some(raw));
        }
        assert_eq!(ShutdownReason::from_raw(6), None);
    }

    #[test]
    fn version_word_is_4_17() {
        assert_eq!(xen_version_word(), 0x0004_0011);
    }
}
