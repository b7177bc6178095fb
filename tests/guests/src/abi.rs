//! The Xen guest ABI numbers test guests use, from Xen's public headers
//! (xen/include/public/xen.h, sched.h, version.h, vcpu.h, hvm/hvm_vcpu.h,
//! arch-x86/cpuid.h).

use core::sync::atomic::{AtomicI8, AtomicU8, AtomicU32, AtomicU64};

/// `__HYPERVISOR_xen_version` (xen.h).
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
/// `__HYPERVISOR_console_io` (xen.h).
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
/// `__HYPERVISOR_vcpu_op` (xen.h): `vcpu_op(cmd, vcpuid, arg)`.
pub const HYPERVISOR_VCPU_OP: u32 = 24;
/// `__HYPERVISOR_sched_op` (xen.h).
pub const HYPERVISOR_SCHED_OP: u32 = 29;

/// `CONSOLEIO_write` (xen.h).
pub const CONSOLEIO_WRITE: u64 = 0;
/// `SCHEDOP_yield`, `SCHEDOP_block` (may return spuriously), `SCHEDOP_shutdown`
/// (sched.h).
pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_BLOCK: u64 = 1;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SCHEDOP_poll` (sched.h): arg points to a [`SchedPoll`].
pub const SCHEDOP_POLL: u64 = 3;
/// `SHUTDOWN_*` reasons (sched.h).
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_CRASH: u32 = 3;

/// `XENVER_version`, `XENVER_extraversion`, `XENVER_get_features` (version.h).
pub const XENVER_VERSION: u64 = 0;
pub const XENVER_EXTRAVERSION: u64 = 1;
pub const XENVER_GET_FEATURES: u64 = 6;

/// `VCPUOP_initialise` (arg: `vcpu_hvm_context` for HVM/PVH), `VCPUOP_up` (arg
/// NULL), `VCPUOP_down`, `VCPUOP_is_up` (returns 1 or 0) (vcpu.h).
pub const VCPUOP_INITIALISE: u64 = 0;
pub const VCPUOP_UP: u64 = 1;
pub const VCPUOP_DOWN: u64 = 2;
pub const VCPUOP_IS_UP: u64 = 3;
/// `VCPUOP_register_vcpu_time_memory_area` (vcpu.h): arg points to a
/// [`VcpuRegisterTimeMemoryArea`]; the hypervisor then keeps a [`VcpuTimeInfo`] at that
/// guest-virtual address up to date.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;

/// `XEN_PVCLOCK_TSC_STABLE_BIT` (xen.h), in [`VcpuTimeInfo::flags`].
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;

/// `XEN_HVM_CPUID_VCPU_ID_PRESENT`: leaf base+4 EBX holds the vCPU id (cpuid.h).
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;

/// First CPUID leaf Xen may place its leaves at; Xen searches in 0x100 steps up to
/// 0x40010000 (arch-x86/cpuid.h, XEN_CPUID_FIRST_LEAF).
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;
/// The signature in EBX, ECX, EDX of the base leaf.
pub const XEN_CPUID_SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";

/// Bytes per hypercall stub in the hypercall page (32: Xen's layout).
pub const HYPERCALL_STUB_SIZE: u64 = 32;

/// `-ENOSYS` as Xen returns it.
pub const ENOSYS: i64 = -38;
/// `-ENOENT` (vcpu_op: no such vCPU).
pub const ENOENT: i64 = -2;
/// `-EFAULT`.
pub const EFAULT: i64 = -14;
/// `-EEXIST` (VCPUOP_initialise: already initialised).
pub const EEXIST: i64 = -17;
/// `-EINVAL`.
pub const EINVAL: i64 = -22;

/// `VCPU_HVM_MODE_32B`, `VCPU_HVM_MODE_64B`: `vcpu_hvm_context.mode` (hvm_vcpu.h).
pub const VCPU_HVM_MODE_32B: u32 = 0;
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_32` (hvm_vcpu.h): the 32-bit start state; segments are given
/// as base, limit and access rights.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_32 {
    pub eax: u32,
    pub ecx: u32,
    pub edx: u32,
    pub ebx: u32,
    pub esp: u32,
    pub ebp: u32,
    pub esi: u32,
    pub edi: u32,
    pub eip: u32,
    pub eflags: u32,
    pub cr0: u32,
    pub cr3: u32,
    pub cr4: u32,
    pub pad1: u32,
    pub efer: u64,
    pub cs_base: u32,
    pub ds_base: u32,
    pub ss_base: u32,
    pub es_base: u32,
    pub tr_base: u32,
    pub cs_limit: u32,
    pub ds_limit: u32,
    pub ss_limit: u32,
    pub es_limit: u32,
    pub tr_limit: u32,
    pub cs_ar: u16,
    pub ds_ar: u16,
    pub ss_ar: u16,
    pub es_ar: u16,
    pub tr_ar: u16,
    pub pad2: [u16; 3],
}

/// `struct vcpu_hvm_x86_64` (hvm_vcpu.h): the 64-bit start state. Segments are implied
/// flat (64-bit CS, flat DS/ES/SS, busy TSS); GDTR and IDTR are not set, so the new
/// vCPU loads its own before reloading a segment or taking an exception.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuHvmX86_64 {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// The `cpu_regs` union of `vcpu_hvm_context`: `mode` says which member is meant.
#[repr(C)]
#[derive(Clone, Copy)]
pub union VcpuHvmCpuRegs {
    pub x86_32: VcpuHvmX86_32,
    pub x86_64: VcpuHvmX86_64,
}

/// `struct vcpu_hvm_context` (hvm_vcpu.h): VCPUOP_initialise's argument for HVM and
/// PVH guests.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuHvmContext {
    pub mode: u32,
    pub pad: u32,
    pub cpu_regs: VcpuHvmCpuRegs,
}

impl VcpuHvmContext {
    /// A `VCPU_HVM_MODE_64B` context. The union's bytes past the 64-bit member are
    /// zeroed (the 32-bit member is written first) so no stale stack reaches the
    /// hypervisor.
    pub fn new_64(regs: VcpuHvmX86_64) -> Self {
        let mut cpu_regs = VcpuHvmCpuRegs {
            x86_32: VcpuHvmX86_32::default(),
        };
        cpu_regs.x86_64 = regs;
        Self {
            mode: VCPU_HVM_MODE_64B,
            pad: 0,
            cpu_regs,
        }
    }
}

// The layouts Xen's headers define (hvm_vcpu.h); a mistake here would make the
// hypervisor read the wrong registers.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<VcpuHvmX86_32>() == 120);
    assert!(offset_of!(VcpuHvmX86_32, efer) == 56);
    assert!(offset_of!(VcpuHvmX86_32, cs_base) == 64);
    assert!(offset_of!(VcpuHvmX86_32, cs_ar) == 104);
    assert!(offset_of!(VcpuHvmX86_32, pad2) == 114);
    assert!(size_of::<VcpuHvmX86_64>() == 112);
    assert!(offset_of!(VcpuHvmX86_64, rip) == 64);
    assert!(offset_of!(VcpuHvmX86_64, efer) == 104);
    assert!(size_of::<VcpuHvmCpuRegs>() == 120);
    assert!(offset_of!(VcpuHvmContext, cpu_regs) == 8);
    assert!(size_of::<VcpuHvmContext>() == 128);
};

/// `struct sched_poll` (sched.h), 64-bit layout: `XEN_GUEST_HANDLE(evtchn_port_t)
/// ports` (an 8-byte pointer to `u32` ports), `unsigned int nr_ports`, 4 bytes of
/// padding, `uint64_t timeout` (absolute system time in ns; 0 for none).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub timeout: u64,
}

/// `struct vcpu_register_time_memory_area` (vcpu.h): a union of a guest handle, a
/// pointer and a `uint64_t`, all the guest-virtual address of a `vcpu_time_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterTimeMemoryArea {
    pub addr: u64,
}

/// `struct vcpu_time_info` (xen.h), 32 bytes. The hypervisor rewrites it while the
/// guest runs, so every field is an atomic of the C field's size (same size and
/// alignment as the plain integer): the guest reads it through a shared reference
/// without a data race. Read it with [`crate::time`], which follows the version
/// protocol.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VcpuTimeInfo {
    /// Odd while the hypervisor is updating the record.
    pub version: AtomicU32,
    pub pad0: AtomicU32,
    /// The TSC at the last update.
    pub tsc_timestamp: AtomicU64,
    /// System time (ns) at `tsc_timestamp`.
    pub system_time: AtomicU64,
    /// 0.32 fixed-point ns per (shifted) TSC tick.
    pub tsc_to_system_mul: AtomicU32,
    /// Shift applied to a TSC delta before the multiply (negative: right).
    pub tsc_shift: AtomicI8,
    /// `XEN_PVCLOCK_*`.
    pub flags: AtomicU8,
    pub pad1: [AtomicU8; 2],
}

impl VcpuTimeInfo {
    /// All zeroes (version 0: never written).
    pub const fn new() -> Self {
        Self {
            version: AtomicU32::new(0),
            pad0: AtomicU32::new(0),
            tsc_timestamp: AtomicU64::new(0),
            system_time: AtomicU64::new(0),
            tsc_to_system_mul: AtomicU32::new(0),
            tsc_shift: AtomicI8::new(0),
            flags: AtomicU8::new(0),
            pad1: [AtomicU8::new(0), AtomicU8::new(0)],
        }
    }
}

// The layouts of sched.h, vcpu.h and xen.h for a 64-bit guest.
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<SchedPoll>() == 24);
    assert!(offset_of!(SchedPoll, nr_ports) == 8);
    assert!(offset_of!(SchedPoll, timeout) == 16);
    assert!(size_of::<VcpuRegisterTimeMemoryArea>() == 8);
    assert!(size_of::<VcpuTimeInfo>() == 32);
    assert!(offset_of!(VcpuTimeInfo, pad0) == 4);
    assert!(offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
    assert!(offset_of!(VcpuTimeInfo, system_time) == 16);
    assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
    assert!(offset_of!(VcpuTimeInfo, tsc_shift) == 28);
    assert!(offset_of!(VcpuTimeInfo, flags) == 29);
    assert!(offset_of!(VcpuTimeInfo, pad1) == 30);
};
