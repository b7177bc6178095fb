//! The hypercall page an HVM/PVH guest asks for by writing
//! [`XEN_HYPERCALL_PAGE_MSR`](super::cpuid::XEN_HYPERCALL_PAGE_MSR).
//!
//! Guests call `hypercall_page + 32 * nr` instead of executing VMCALL/VMMCALL themselves,
//! so the same kernel runs on Intel and AMD. The layout is Xen's (`init_hypercall_page()`
//! in `xen/arch/x86/domain.c`, then `vmx_init_hypercall_page()` /
//! `svm_init_hypercall_page()` in `xen/arch/x86/hvm/{vmx,svm}/`):
//!
//! - the page is first filled with `0xCC` (INT3), so a jump into the middle of a stub or
//!   past the last instruction traps instead of sliding;
//! - each of the 128 32-byte stubs `i` is `mov eax, i` (`B8 imm32`), then VMCALL
//!   (`0F 01 C1`) on Intel or VMMCALL (`0F 01 D9`) on AMD, then `ret` (`C3`): 9 bytes;
//! - `__HYPERVISOR_iret` (23) is a PV-only hypercall, so its stub is just `ud2` (`0F 0B`):
//!   a guest that calls it gets #UD.

use super::Hypercall;

/// Size of the hypercall page.
pub const HYPERCALL_PAGE_SIZE: usize = 4096;
/// Size of one stub; hypercall `nr` is at offset `nr * 32`.
pub const HYPERCALL_STUB_SIZE: usize = 32;
/// Number of stubs in the page.
pub const HYPERCALL_STUBS: usize = HYPERCALL_PAGE_SIZE / HYPERCALL_STUB_SIZE;

/// Which hypercall instruction the guest's CPU has: the virtualization extension in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// VMX: VMCALL, `0F 01 C1` (SDM Vol. 2B, VMCALL).
    Intel,
    /// SVM: VMMCALL, `0F 01 D9` (APM Vol. 3, VMMCALL).
    Amd,
}

impl Vendor {
    /// The hypercall instruction's bytes.
    pub const fn hypercall_instruction(self) -> [u8; 3] {
        match self {
            Self::Intel => [0x0F, 0x01, 0xC1],
            Self::Amd => [0x0F, 0x01, 0xD9],
        }
    }
}

/// `mov eax, imm32`.
const MOV_EAX_IMM32: u8 = 0xB8;
/// `ret`.
const RET: u8 = 0xC3;
/// `int3`: the filler.
const INT3: u8 = 0xCC;
/// `ud2`.
const UD2: [u8; 2] = [0x0F, 0x0B];

/// Fills `page` with the hypercall stubs for `vendor`.
pub fn write_hypercall_page(page: &mut [u8; HYPERCALL_PAGE_SIZE], vendor: Vendor) {
    page.fill(INT3);
    for (nr, stub) in page.chunks_exact_mut(HYPERCALL_STUB_SIZE).enumerate() {
        if nr == Hypercall::Iret as usize {
            stub[..2].copy_from_slice(&UD2);
            continue;
        }
        stub[0] = MOV_EAX_IMM32;
        // nr < 128, so the cast is exact.
        stub[1..5].copy_from_slice(&(nr as u32).to_le_bytes());
        stub[5..8].copy_from_slice(&vendor.hypercall_instruction());
        stub[8] = RET;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(vendor: Vendor) -> [u8; HYPERCALL_PAGE_SIZE] {
        let mut p = [0u8; HYPERCALL_PAGE_SIZE];
        write_hypercall_page(&mut p, vendor);
        p
    }

    fn stub(p: &[u8; HYPERCALL_PAGE_SIZE], nr: usize) -> &[u8] {
        &p[nr * 32..nr * 32 + 32]
    }

    #[test]
    fn intel_stubs() {
        let p = page(Vendor::Intel);
        let expect = |nr: u8| {
            let mut s = [0xCCu8; 32];
            s[..9].copy_from_slice(&[0xB8, nr, 0, 0, 0, 0x0F, 0x01, 0xC1, 0xC3]);
            s
        };
        assert_eq!(stub(&p, 0), &expect(0));
        assert_eq!(stub(&p, 17), &expect(17)); // xen_version
        assert_eq!(stub(&p, 29), &expect(29)); // sched_op
        assert_eq!(stub(&p, 34), &expect(34)); // hvm_op
        assert_eq!(stub(&p, 127), &expect(127));
    }

    #[test]
    fn amd_stubs_use_vmmcall() {
        let p = page(Vendor::Amd);
        assert_eq!(
            &stub(&p, 18)[..9],
            &[0xB8, 18, 0, 0, 0, 0x0F, 0x01, 0xD9, 0xC3]
        );
        assert!(stub(&p, 18)[9..].iter().all(|&b| b == 0xCC));
    }

    #[test]
    fn iret_slot_is_ud2() {
        for vendor in [Vendor::Intel, Vendor::Amd] {
            let p = page(vendor);
            let s = stub(&p, 23);
            assert_eq!(&s[..2], &[0x0F, 0x0B]);
            assert!(s[2..].iter().all(|&b| b == 0xCC));
        }
    }

    #[test]
    fn every_stub_is_well_formed() {
        let p = page(Vendor::Intel);
        assert_eq!(HYPERCALL_STUBS, 128);
        for nr in (0..HYPERCALL_STUBS).filter(|&nr| nr != 23) {
            let s = stub(&p, nr);
            assert_eq!(s[0], 0xB8);
            assert_eq!(u32::from_le_bytes([s[1], s[2], s[3], s[4]]) as usize, nr);
            assert_eq!(s[8], 0xC3);
            assert!(s[9..].iter().all(|&b| b == 0xCC), "stub {nr} padding");
        }
    }

    #[test]
    fn rewriting_replaces_old_contents() {
        let mut p = [0x90u8; HYPERCALL_PAGE_SIZE];
        write_hypercall_page(&mut p, Vendor::Amd);
        write_hypercall_page(&mut p, Vendor::Intel);
        assert_eq!(p, page(Vendor::Intel));
    }
}
