//! General-purpose registers the world switch saves and restores around every guest
//! run. RSP, RIP and RFLAGS live in the VMCS/VMCB (and RAX too on AMD-V, where the
//! backend copies it here on exit and back on entry), so handlers see one layout.

/// A guest's general-purpose registers. The world-switch assembly hard-codes this
/// layout (offsets are asserted below).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegisters>() == 15 * 8);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, rax) == 0);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, rsi) == 0x20);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, rdi) == 0x28);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, r8) == 0x38);
const _: () = assert!(core::mem::offset_of!(GuestRegisters, r15) == 0x70);

impl GuestRegisters {
    /// Xen's x86-64 hypercall arguments (RDI, RSI, RDX, R10, R8) — the guest ABI for
    /// HVM/PVH 64-bit guests (xen/include/public/arch-x86/xen-x86_64.h).
    pub fn hypercall_args(&self) -> [u64; 5] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8]
    }

    /// Writes the CPUID result into RAX, RBX, RCX, RDX (upper halves cleared, as the
    /// instruction does).
    pub fn set_cpuid_result(&mut self, result: [u32; 4]) {
        self.rax = u64::from(result[0]);
        self.rbx = u64::from(result[1]);
        self.rcx = u64::from(result[2]);
        self.rdx = u64::from(result[3]);
    }
}
