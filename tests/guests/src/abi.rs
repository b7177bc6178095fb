//! The Xen guest ABI numbers test guests use, from Xen's public headers
//! (xen/include/public/xen.h, sched.h, version.h, vcpu.h, hvm/hvm_vcpu.h,
//! arch-x86/cpuid.h).

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
