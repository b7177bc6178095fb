//! Leaf 0xD (processor extended state enumeration, SDM Vol. 1 13.2 and Vol. 2A CPUID
//! leaf 0DH) restricted to the state components the policy allows.
//!
//! Sizes depend on which components are enabled, so they are recomputed from the host's
//! per-component sub-leaves (size in EAX, standard-format offset in EBX, 64-byte
//! alignment in the compacted format in ECX bit 1) rather than passed through: the host
//! value reflects the *host's* XCR0 at the time of the query.

use super::features::xsave_eax1;
use super::{CpuidPolicy, CpuidResult, EMPTY};

/// The legacy region (512 bytes: x87 and SSE) plus the XSAVE header (64 bytes).
const LEGACY_AND_HEADER: u32 = 512 + 64;

/// Size of a standard-format XSAVE area holding the components in `mask` (SDM Vol. 1
/// 13.4.1): the end of the furthest component, at least the legacy area and header.
fn standard_size(host: &dyn Fn(u32, u32) -> CpuidResult, mask: u64) -> u32 {
    (2..63)
        .filter(|i| mask & (1u64 << i) != 0)
        .map(|i| {
            let c = host(0xD, i);
            c.ebx.saturating_add(c.eax)
        })
        .fold(LEGACY_AND_HEADER, u32::max)
}

/// Size of a compacted-format XSAVE area holding the components in `mask` (SDM Vol. 1
/// 13.4.3): components packed in order after the header, each 64-byte aligned if its
/// ECX bit 1 says so.
fn compacted_size(host: &dyn Fn(u32, u32) -> CpuidResult, mask: u64) -> u32 {
    (2..63)
        .filter(|i| mask & (1u64 << i) != 0)
        .fold(LEGACY_AND_HEADER, |offset, i| {
            let c = host(0xD, i);
            let start = if c.ecx & 0b10 != 0 {
                offset.next_multiple_of(64)
            } else {
                offset
            };
            start.saturating_add(c.eax)
        })
}

/// Leaf 0xD sub-leaf `subleaf` for a guest with XCR0 = `guest_xcr0`.
pub(super) fn leaf_0d(
    policy: &CpuidPolicy,
    host: &dyn Fn(u32, u32) -> CpuidResult,
    subleaf: u32,
    guest_xcr0: u64,
) -> CpuidResult {
    if !policy.xsave {
        return EMPTY;
    }
    let host0 = host(0xD, 0);
    let supported = ((u64::from(host0.edx) << 32) | u64::from(host0.eax)) & policy.xcr0_allowed();
    let enabled = guest_xcr0 & supported;
    match subleaf {
        0 => CpuidResult {
            eax: supported as u32,
            ebx: standard_size(host, enabled),
            ecx: standard_size(host, supported),
            edx: (supported >> 32) as u32,
        },
        1 => {
            let eax = host(0xD, 1).eax
                & (xsave_eax1::XSAVEOPT | xsave_eax1::XSAVEC | xsave_eax1::XGETBV1);
            // EBX: size for XCR0 | IA32_XSS in the compacted format; IA32_XSS is always 0
            // for the guest (XSAVES hidden), and ECX:EDX (supported XSS bits) are 0.
            let ebx = if eax & xsave_eax1::XSAVEC != 0 {
                compacted_size(host, enabled)
            } else {
                0
            };
            CpuidResult {
                eax,
                ebx,
                ecx: 0,
                edx: 0,
            }
        }
        2..=62 if supported & (1u64 << subleaf) != 0 => {
            let c = host(0xD, subleaf);
            // ECX bit 0 (supervisor component) cannot be set for an XCR0 component; keep
            // only the alignment bit.
            CpuidResult {
                eax: c.eax,
                ebx: c.ebx,
                ecx: c.ecx & 0b10,
                edx: 0,
            }
        }
        _ => EMPTY,
    }
}
