//! Narrow, typed wrappers around the VMX instructions (SDM Vol. 3C Chapter 31, "VMX
//! Instruction Reference"; conventions in §31.2).
//!
//! Every VMX instruction reports its outcome in RFLAGS: VMsucceed clears CF and ZF,
//! VMfailInvalid sets CF (there is no current VMCS to hold an error number), VMfailValid
//! sets ZF and stores an error number in the current VMCS's VM-instruction error field
//! (§31.4). The wrappers turn that into [`VmFail`], and VMREAD/VMWRITE failures carry
//! the field as well ([`VmcsError`]).
//!
//! VMREAD/VMWRITE take the typed field enums of `ferrovisor_arch::vmx::fields`, so a value
//! of the wrong width does not compile. Writing guest-state fields is safe (they only
//! shape the guest, which EPT confines); writing control and host-state fields is
//! `unsafe`, because a wrong EPT pointer, bitmap address, host RIP/RSP/CR3 or a dropped
//! intercept hands host memory or MSRs to the guest, or runs the host on garbage after the
//! next exit. Outside VMX operation these instructions raise #UD (a fatal trap): they are
//! reachable only through `VmxCpu`/`VmxVcpu`, which exist only after VMXON.

use core::arch::asm;

use ferrovisor_arch::vmx::exit::VmInstructionError;
use ferrovisor_arch::vmx::fields::{
    Control16, Control32, Control64, ControlNatural, Guest16, Guest32, Guest64, GuestNatural,
    Host16, Host32, Host64, HostNatural, ReadOnly32, ReadOnly64, ReadOnlyNatural, VmcsField,
};

/// How a VMX instruction failed (SDM Vol. 3C §31.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmFail {
    /// CF = 1: no current VMCS (or, for VMXON, a bad region or state).
    Invalid,
    /// ZF = 1: the VM-instruction error number from the current VMCS (§31.4).
    Valid(u32),
}

impl VmFail {
    /// The VM-instruction error number (0 for VMfailInvalid, which has none).
    pub const fn error_number(self) -> u32 {
        match self {
            Self::Invalid => 0,
            Self::Valid(n) => n,
        }
    }
}

impl core::fmt::Display for VmFail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Invalid => f.write_str("VMfailInvalid"),
            Self::Valid(n) => match VmInstructionError::from_raw(*n) {
                Some(e) => write!(f, "VMfailValid, {e}"),
                None => write!(f, "VMfailValid, VM-instruction error {n}"),
            },
        }
    }
}

/// A VMREAD or VMWRITE that failed, with the field's encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmcsError {
    /// The SDM encoding of the field (Vol. 3D Appendix B).
    pub field: u32,
    /// Whether it was a write.
    pub write: bool,
    pub fail: VmFail,
}

impl core::fmt::Display for VmcsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} of VMCS field {:#06x} failed: {}",
            if self.write { "VMWRITE" } else { "VMREAD" },
            self.field,
            self.fail
        )
    }
}

/// A VMCS field with the Rust type of its value (the field's width).
pub trait Field: VmcsField {
    type Value: Copy;
    fn to_raw(value: Self::Value) -> u64;
    fn from_raw(raw: u64) -> Self::Value;
}

/// Fields VMWRITE accepts (all but the VM-exit information fields).
pub trait Writable: Field {}

/// Guest-state fields: writing them cannot hurt the host.
pub trait GuestState: Writable {}

macro_rules! fields {
    ($($ty:ty => $value:ty, $($marker:ident)*;)+) => {$(
        impl Field for $ty {
            type Value = $value;
            fn to_raw(value: $value) -> u64 {
                u64::from(value)
            }
            fn from_raw(raw: u64) -> $value {
                // VMREAD zero-extends a narrower field (SDM Vol. 3C §31.3, VMREAD).
                raw as $value
            }
        }
        $(impl $marker for $ty {})*
    )+};
}

fields! {
    Control16 => u16, Writable;
    Control32 => u32, Writable;
    Control64 => u64, Writable;
    ControlNatural => u64, Writable;
    Host16 => u16, Writable;
    Host32 => u32, Writable;
    Host64 => u64, Writable;
    HostNatural => u64, Writable;
    Guest16 => u16, Writable GuestState;
    Guest32 => u32, Writable GuestState;
    Guest64 => u64, Writable GuestState;
    GuestNatural => u64, Writable GuestState;
    ReadOnly32 => u32,;
    ReadOnly64 => u64,;
    ReadOnlyNatural => u64,;
}

/// VMsucceed / VMfailInvalid / VMfailValid from the CF and ZF an instruction left.
fn outcome(cf: u8, zf: u8) -> Result<(), VmFail> {
    if cf != 0 {
        Err(VmFail::Invalid)
    } else if zf != 0 {
        Err(VmFail::Valid(instruction_error()))
    } else {
        Ok(())
    }
}

/// The current VMCS's VM-instruction error field (SDM Vol. 3C §31.4), 0 if unreadable.
pub fn instruction_error() -> u32 {
    // SAFETY: VMREAD only reads the current VMCS; with none it fails without effect.
    unsafe { vmread_raw(ReadOnly32::VmInstructionError.encoding()) }.map_or(0, |v| v as u32)
}

/// VMREAD of `encoding` (SDM Vol. 3C §31.3, VMREAD).
///
/// # Safety
/// The CPU must be in VMX operation (else #UD).
unsafe fn vmread_raw(encoding: u32) -> Result<u64, ()> {
    let value: u64;
    let ok: u8;
    // SAFETY: the caller guarantees VMX operation; VMREAD writes only the output
    // register and RFLAGS. SETA is 1 exactly when CF = ZF = 0 (VMsucceed, §31.2): one
    // flag test on the exit path instead of two.
    unsafe {
        asm!(
            "vmread {value}, {field}",
            "seta {ok}",
            field = in(reg) u64::from(encoding),
            value = out(reg) value,
            ok = out(reg_byte) ok,
            options(nostack)
        )
    };
    if ok != 0 { Ok(value) } else { Err(()) }
}

/// Why a VMX instruction just failed: VMfailValid leaves an error number in the
/// current VMCS; without a current VMCS (VMfailInvalid) that read fails too.
fn classify_failure() -> VmFail {
    // SAFETY: VMREAD only reads the current VMCS; with none it fails without effect.
    match unsafe { vmread_raw(ReadOnly32::VmInstructionError.encoding()) } {
        Ok(error) => VmFail::Valid(error as u32),
        Err(()) => VmFail::Invalid,
    }
}

/// Reads a field of the current VMCS.
pub fn read<F: Field>(field: F) -> Result<F::Value, VmcsError> {
    // SAFETY: only VmxCpu/VmxVcpu code calls this, after VMXON on this CPU; VMREAD
    // has no effect besides its output.
    match unsafe { vmread_raw(field.encoding()) } {
        Ok(raw) => Ok(F::from_raw(raw)),
        Err(()) => Err(VmcsError {
            field: field.encoding(),
            write: false,
            fail: classify_failure(),
        }),
    }
}

/// Reads a field on the exit fast path, where failure cannot happen: the caller's VMCS
/// is current on this CPU (the vCPU is loaded) and `field` is one every VT-x
/// implementation has (SDM Vol. 3C Appendix B lists no condition for it), so VMREAD
/// succeeds (§31.3: it fails only without a current VMCS or for an unsupported field).
/// Skipping the status test saves three instructions per access on every exit; debug
/// builds still check.
pub fn read_on_exit<F: Field>(field: F) -> F::Value {
    if cfg!(debug_assertions) {
        return read(field).expect("VMREAD on the exit path failed");
    }
    let value: u64;
    // SAFETY: as for `read`; VMREAD writes only the output register and RFLAGS.
    unsafe {
        asm!(
            "vmread {value}, {field}",
            field = in(reg) u64::from(field.encoding()),
            value = out(reg) value,
            options(nostack, nomem)
        )
    };
    F::from_raw(value)
}

/// Writes a guest-state field on the exit fast path; see [`read_on_exit`] for why it
/// cannot fail (VMWRITE also fails for read-only fields, which `GuestState` excludes).
pub fn write_guest_on_exit<F: GuestState>(field: F, value: F::Value) {
    if cfg!(debug_assertions) {
        return write_guest(field, value).expect("VMWRITE on the exit path failed");
    }
    // SAFETY: as for `write_guest`; VMWRITE changes only the current VMCS and RFLAGS.
    unsafe {
        asm!(
            "vmwrite {field}, {value}",
            field = in(reg) u64::from(field.encoding()),
            value = in(reg) F::to_raw(value),
            options(nostack)
        )
    };
}

/// VMWRITE of `value` to `encoding` (SDM Vol. 3C §31.3, VMWRITE).
///
/// # Safety
/// VMX operation, and the value must not break the host (see the module comment).
unsafe fn vmwrite_raw(encoding: u32, value: u64) -> Result<(), VmcsError> {
    let ok: u8;
    // SAFETY: the caller vouches for VMX operation and for the value; VMWRITE changes
    // only the current VMCS and RFLAGS (SETA: see `vmread_raw`).
    unsafe {
        asm!(
            "vmwrite {field}, {value}",
            "seta {ok}",
            field = in(reg) u64::from(encoding),
            value = in(reg) value,
            ok = out(reg_byte) ok,
            options(nostack)
        )
    };
    if ok != 0 {
        Ok(())
    } else {
        Err(VmcsError {
            field: encoding,
            write: true,
            fail: classify_failure(),
        })
    }
}

/// Writes a guest-state field of the current VMCS.
pub fn write_guest<F: GuestState>(field: F, value: F::Value) -> Result<(), VmcsError> {
    // SAFETY: only VmxVcpu code calls this, in VMX operation; guest-state fields shape
    // only the guest, whose memory accesses EPT confines and whose state VM entry
    // checks (SDM Vol. 3C §27.3.1).
    unsafe { vmwrite_raw(field.encoding(), F::to_raw(value)) }
}

/// Writes any writable field of the current VMCS.
///
/// # Safety
/// For control fields: addresses (EPT pointer, bitmaps) name frames owned by this VMCS's
/// vCPU, and intercepts keep the guest away from host state. For host-state fields: the
/// values are this CPU's live host state and the exit stub, so the host resumes intact.
pub unsafe fn write<F: Writable>(field: F, value: F::Value) -> Result<(), VmcsError> {
    // SAFETY: the caller upholds this function's contract; VMX operation holds because
    // only VmxVcpu code, created after VMXON, calls this.
    unsafe { vmwrite_raw(field.encoding(), F::to_raw(value)) }
}

/// VMXON with the VMXON region at physical `region` (SDM Vol. 3C §31.3, VMXON; §25.11.5).
///
/// # Safety
/// CR4.VMXE and the CR0/CR4 fixed bits are set, IA32_FEATURE_CONTROL allows VMXON, and
/// `region` is a 4 KiB-aligned frame owned for as long as VMX operation lasts, holding the
/// VMCS revision identifier.
pub unsafe fn vmxon(region: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller's contract; VMXON reads the 64-bit pointer operand.
    unsafe {
        asm!(
            "vmxon qword ptr [{region}]",
            "setc {cf}",
            "setz {zf}",
            region = in(reg) &region,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        )
    };
    outcome(cf, zf)
}

/// VMCLEAR of the VMCS at physical `vmcs` (SDM Vol. 3C §31.3, VMCLEAR; §25.11.3).
///
/// # Safety
/// `vmcs` is a VMCS region owned by the caller (the CPU writes its launch state and any
/// cached data into it).
pub unsafe fn vmclear(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller's contract.
    unsafe {
        asm!(
            "vmclear qword ptr [{vmcs}]",
            "setc {cf}",
            "setz {zf}",
            vmcs = in(reg) &vmcs,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        )
    };
    outcome(cf, zf)
}

/// VMPTRLD: makes the VMCS at physical `vmcs` current (SDM Vol. 3C §31.3, VMPTRLD).
///
/// # Safety
/// `vmcs` is a VMCS region owned by the caller, with the revision identifier, not
/// active on another CPU.
pub unsafe fn vmptrld(vmcs: u64) -> Result<(), VmFail> {
    let (cf, zf): (u8, u8);
    // SAFETY: the caller's contract.
    unsafe {
        asm!(
            "vmptrld qword ptr [{vmcs}]",
            "setc {cf}",
            "setz {zf}",
            vmcs = in(reg) &vmcs,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        )
    };
    outcome(cf, zf)
}

/// VMPTRST: the physical address of the current VMCS, all ones if there is none.
pub fn vmptrst() -> u64 {
    let mut current: u64 = 0;
    // SAFETY: VMPTRST stores 8 bytes to the operand, a local; in VMX operation it
    // cannot fail (callers are VmxVcpu methods, after VMXON).
    unsafe {
        asm!(
            "vmptrst qword ptr [{out}]",
            out = in(reg) &mut current,
            options(nostack)
        )
    };
    current
}

/// INVEPT types (SDM Vol. 3C §31.3, INVEPT; use in §29.4.3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InveptType {
    SingleContext = 1,
    AllContext = 2,
}

/// Invalidates EPT-derived translations for `eptp` (single context) or all.
pub fn invept(kind: InveptType, eptp: u64) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [eptp, 0];
    let (cf, zf): (u8, u8);
    // SAFETY: INVEPT only drops cached translations (always safe to do) and reads the
    // 16-byte descriptor, a local.
    unsafe {
        asm!(
            "invept {kind}, xmmword ptr [{descriptor}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) kind as u64,
            descriptor = in(reg) &descriptor,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        )
    };
    outcome(cf, zf)
}

/// INVVPID types (SDM Vol. 3C §31.3, INVVPID; use in §29.4.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum InvvpidType {
    SingleContext = 1,
    AllContext = 2,
}

/// Invalidates linear translations tagged with `vpid` (single context) or all VPIDs.
pub fn invvpid(kind: InvvpidType, vpid: u16) -> Result<(), VmFail> {
    let descriptor: [u64; 2] = [u64::from(vpid), 0];
    let (cf, zf): (u8, u8);
    // SAFETY: INVVPID only drops cached translations and reads the descriptor, a local.
    unsafe {
        asm!(
            "invvpid {kind}, xmmword ptr [{descriptor}]",
            "setc {cf}",
            "setz {zf}",
            kind = in(reg) kind as u64,
            descriptor = in(reg) &descriptor,
            cf = out(reg_byte) cf,
            zf = out(reg_byte) zf,
            options(nostack)
        )
    };
    outcome(cf, zf)
}
