//! The register frame every trap stub saves, in the order the stubs push it.

/// All general registers plus the hardware exception frame, as laid out on the stack by
/// the entry stubs (lowest address first). SDM Vol. 3A §6.14.1: in 64-bit mode the CPU
/// pushes SS, RSP, RFLAGS, CS, RIP and, for some vectors, an error code; the stubs push a
/// zero error code for the others so every frame has one shape.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// The stubs in `stubs.rs` hard-code this layout: 15 registers, vector, error code, then
// the five-quadword hardware frame.
const _: () = assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, vector) == 15 * 8);
const _: () = assert!(core::mem::offset_of!(TrapFrame, rip) == 17 * 8);

/// Whether the CPU pushes an error code for `vector` (SDM Vol. 3A §6.15, Table 6-1):
/// #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC and #SX.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// The SDM's mnemonic for an exception vector, or `"IRQ"` for vectors 32 and up.
pub const fn exception_mnemonic(vector: u8) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        9 => "coprocessor-overrun",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        20 => "#VE",
        21 => "#CP",
        28 => "#HV",
        29 => "#VC",
        30 => "#SX",
        15 | 22..=27 | 31 => "reserved",
        _ => "IRQ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_vectors_match_the_sdm() {
        let with: Vec<u8> = (0..=255u8).filter(|&v| has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn mnemonics() {
        assert_eq!(exception_mnemonic(14), "#PF");
        assert_eq!(exception_mnemonic(8), "#DF");
        assert_eq!(exception_mnemonic(15), "reserved");
        assert_eq!(exception_mnemonic(32), "IRQ");
    }
}
