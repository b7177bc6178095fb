//! Vector state is per vCPU: two vCPUs of one domain each fill all 16 vector registers
//! (YMM with XSAVE and AVX, else XMM) and MXCSR with their own pattern, then loop
//! taking CPUID exits and, every 8th iteration, `SCHEDOP_yield`, checking after each
//! iteration that every register still holds their own pattern. They run for at least
//! 30 ms of TSC time and 3000 iterations each, and must be seen alternating (a shared
//! "last runner" word changes hands) at least 4 times, so a hypervisor that switches
//! vCPUs on one physical CPU without saving and restoring their FPU state fails.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
mod guest {
    use core::mem::offset_of;
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    use ferrovisor_test_guests::abi::HYPERVISOR_SCHED_OP;
    use ferrovisor_test_guests::hypercall::{cpuid, halt_forever, sched_yield, stub_address};
    use ferrovisor_test_guests::smp::{start_vcpu, tsc, tsc_khz, vcpu_count, wait_until};
    use ferrovisor_test_guests::{Checks, println};

    use super::{StartInfo, Verdict};

    /// Minimum run per vCPU: TSC time and iterations (both must be reached).
    const RUN_MS: u64 = 30;
    const MIN_ITERATIONS: u64 = 3000;
    /// Alternations of the two vCPUs the run must show, both counted together.
    const MIN_INTERLEAVINGS: u64 = 4;
    /// How long the boot vCPU waits for vCPU 1 to start, and to finish (TSC time).
    const WAIT_MS: u64 = 10_000;
    /// MXCSR per vCPU: all exceptions masked, rounding to nearest (0) for vCPU 0 and
    /// toward zero (3, bits 13-14) for vCPU 1.
    const MXCSR: [u32; 2] = [0x1F80, 0x7F80];
    /// `first_bad` value meaning MXCSR (registers are 0..16).
    const BAD_MXCSR: u64 = 16;
    /// XCR0 with x87, SSE and AVX state enabled.
    const XCR0_AVX: u64 = 0x7;
    const CR4_OSXSAVE: u64 = 1 << 18;

    /// Whether the run uses YMM (decided by the boot vCPU before vCPU 1 starts).
    static YMM: AtomicBool = AtomicBool::new(false);
    static READY: AtomicBool = AtomicBool::new(false);
    static GO: AtomicBool = AtomicBool::new(false);
    static DONE: AtomicBool = AtomicBool::new(false);
    /// TSC ticks each vCPU runs for at least.
    static RUN_TICKS: AtomicU64 = AtomicU64::new(0);
    /// vCPU 1's CR4 as it started (copied from vCPU 0's by `start_vcpu`).
    static CR4_AT_START: AtomicU64 = AtomicU64::new(0);
    /// XCR0 as vCPU 1 read it back after its XSETBV.
    static XCR0_SECONDARY: AtomicU64 = AtomicU64::new(0);
    /// The id of the vCPU that ran the latest iteration (u32::MAX: none yet).
    static LAST_RUNNER: AtomicU32 = AtomicU32::new(u32::MAX);

    /// One vCPU's results.
    struct Results {
        iterations: AtomicU64,
        interleavings: AtomicU64,
        mismatches: AtomicU64,
        first_bad: AtomicU64,
    }

    static RESULTS: [Results; 2] = [const {
        Results {
            iterations: AtomicU64::new(0),
            interleavings: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            first_bad: AtomicU64::new(u64::MAX),
        }
    }; 2];

    /// The state the assembly loop works on, at offsets it gets as constants: the
    /// register image it expects and the one it read back (16 registers of 32 bytes
    /// for YMM, 16 for XMM), MXCSR likewise, and its counters.
    #[repr(C)]
    struct Loop {
        expected: [u64; 64],
        seen: [u64; 64],
        mxcsr_expected: u32,
        mxcsr_seen: u32,
        id: u32,
        other: u32,
        last_runner: u64,
        yield_stub: u64,
        end_tsc: u64,
        min_iterations: u64,
        iterations: u64,
        interleavings: u64,
        mismatches: u64,
        first_bad: u64,
    }

    /// The loop, for one register width. In assembly from the first load to the last
    /// check: the guest target is soft-float, so Rust code never holds vector
    /// registers, and an asm block may not rely on them keeping values between blocks.
    /// Per iteration: a CPUID exit; every 8th, SCHEDOP_yield through the hypercall
    /// page; store all 16 registers and MXCSR and compare with the expected image
    /// (on a mismatch: count it, keep the first bad register, reload the pattern);
    /// swap the id into the last-runner word and count a switch from the other vCPU;
    /// stop once both the minimum iterations and the end TSC are reached.
    macro_rules! vector_loop {
        ($state:expr, $mov:literal, $reg:literal, $width:literal, $shift:literal) => {
            // SAFETY: the operands point at a live `Loop` this vCPU owns and the static
            // last-runner word (swapped with a locked XCHG); the hypercall stub is
            // SCHEDOP_yield's in our hypercall page; every register the loop, CPUID
            // and the hypercall change is declared, and CR4.OSFXSR (and for YMM,
            // CR4.OSXSAVE with XCR0 AVX) allow the vector instructions.
            unsafe {
                core::arch::asm!(
                    concat!(".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n",
                        $mov, " ", $reg, r"\i, [{s} + {exp} + \i * ", $width, "]\n.endr"),
                    "ldmxcsr [{s} + {mxe}]",
                    "2:",
                    "push rbx",
                    "mov eax, 0x40000000",
                    "xor ecx, ecx",
                    "cpuid",
                    "pop rbx",
                    "test byte ptr [{s} + {iterations}], 7",
                    "jnz 3f",
                    "xor edi, edi", // SCHEDOP_yield
                    "xor esi, esi",
                    "xor edx, edx",
                    "call qword ptr [{s} + {stub}]",
                    "3:",
                    concat!(".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n",
                        $mov, r" [{s} + {seen} + \i * ", $width, "], ", $reg, r"\i", "\n.endr"),
                    "stmxcsr [{s} + {mxs}]",
                    "xor ecx, ecx",
                    "4:",
                    "mov rax, [{s} + {seen} + rcx * 8]",
                    "cmp rax, [{s} + {exp} + rcx * 8]",
                    "jne 5f",
                    "inc ecx",
                    concat!("cmp ecx, 2 * ", $width),
                    "jb 4b",
                    "mov eax, [{s} + {mxs}]",
                    "cmp eax, [{s} + {mxe}]",
                    "je 8f",
                    "mov ecx, {bad_mxcsr}",
                    "jmp 6f",
                    "5:",
                    concat!("shr ecx, ", $shift), // quadword index to register number
                    "6:",
                    "cmp qword ptr [{s} + {mismatches}], 0",
                    "jne 7f",
                    "mov [{s} + {first_bad}], rcx",
                    "7:",
                    "inc qword ptr [{s} + {mismatches}]",
                    concat!(".irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n",
                        $mov, " ", $reg, r"\i, [{s} + {exp} + \i * ", $width, "]\n.endr"),
                    "ldmxcsr [{s} + {mxe}]",
                    "8:",
                    "mov eax, [{s} + {id}]",
                    "mov rdx, [{s} + {last}]",
                    "xchg [rdx], eax",
                    "cmp eax, [{s} + {other}]",
                    "jne 9f",
                    "inc qword ptr [{s} + {interleavings}]",
                    "9:",
                    "inc qword ptr [{s} + {iterations}]",
                    "mov rax, [{s} + {iterations}]",
                    "cmp rax, [{s} + {min}]",
                    "jb 2b",
                    "rdtsc",
                    "shl rdx, 32",
                    "or rax, rdx",
                    "cmp rax, [{s} + {end}]",
                    "jb 2b",
                    s = in(reg) $state,
                    exp = const offset_of!(Loop, expected),
                    seen = const offset_of!(Loop, seen),
                    mxe = const offset_of!(Loop, mxcsr_expected),
                    mxs = const offset_of!(Loop, mxcsr_seen),
                    id = const offset_of!(Loop, id),
                    other = const offset_of!(Loop, other),
                    last = const offset_of!(Loop, last_runner),
                    stub = const offset_of!(Loop, yield_stub),
                    end = const offset_of!(Loop, end_tsc),
                    min = const offset_of!(Loop, min_iterations),
                    iterations = const offset_of!(Loop, iterations),
                    interleavings = const offset_of!(Loop, interleavings),
                    mismatches = const offset_of!(Loop, mismatches),
                    first_bad = const offset_of!(Loop, first_bad),
                    bad_mxcsr = const BAD_MXCSR,
                    out("rax") _, out("rcx") _, out("rdx") _, out("rdi") _, out("rsi") _,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                )
            }
        };
    }

    /// The value vCPU `id` keeps in quadword `quad` of vector register `reg`: distinct
    /// for every vCPU, register and quadword, so a swap between any two shows.
    fn pattern(id: u32, reg: u64, quad: u64) -> u64 {
        let index = u64::from(id) * 64 + reg * 4 + quad + 1;
        (u64::from(id) + 1) << 60
            | reg << 52
            | quad << 48
            | 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index) >> 16
    }

    /// Runs the loop on this vCPU (id 0 or 1) and publishes its results.
    fn work(id: u32, ymm: bool) {
        let quads_per_reg: u64 = if ymm { 4 } else { 2 };
        let mut state = Loop {
            expected: [0; 64],
            seen: [0; 64],
            mxcsr_expected: MXCSR[id as usize],
            mxcsr_seen: 0,
            id,
            other: 1 - id,
            last_runner: (&raw const LAST_RUNNER) as u64,
            yield_stub: stub_address(HYPERVISOR_SCHED_OP),
            end_tsc: tsc() + RUN_TICKS.load(Ordering::Acquire),
            min_iterations: MIN_ITERATIONS,
            iterations: 0,
            interleavings: 0,
            mismatches: 0,
            first_bad: u64::MAX,
        };
        for reg in 0..16 {
            for quad in 0..quads_per_reg {
                state.expected[(reg * quads_per_reg + quad) as usize] = pattern(id, reg, quad);
            }
        }
        let s = core::ptr::from_mut(&mut state);
        if ymm {
            vector_loop!(s, "vmovdqu", "ymm", "32", "2");
        } else {
            vector_loop!(s, "movdqu", "xmm", "16", "1");
        }
        let results = &RESULTS[id as usize];
        results
            .iterations
            .store(state.iterations, Ordering::Release);
        results
            .interleavings
            .store(state.interleavings, Ordering::Release);
        results
            .mismatches
            .store(state.mismatches, Ordering::Release);
        results.first_bad.store(state.first_bad, Ordering::Release);
    }

    /// CPUID says XSAVE (1:ECX bit 26) and AVX (bit 28), and leaf 0xD that XCR0 may
    /// hold x87, SSE and AVX state.
    fn avx_usable() -> bool {
        let [_, _, ecx, _] = cpuid(1, 0);
        if ecx & (1 << 26) == 0 || ecx & (1 << 28) == 0 {
            return false;
        }
        let [xcr0_low, ..] = cpuid(0xD, 0);
        u64::from(xcr0_low) & XCR0_AVX == XCR0_AVX
    }

    fn read_cr4() -> u64 {
        let cr4: u64;
        // SAFETY: reading CR4 has no side effects (CPL 0).
        unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
        cr4
    }

    /// CR4.OSXSAVE, then XCR0 = x87|SSE|AVX, on this vCPU (XCR0 is per vCPU). Returns
    /// XCR0 as read back (0 if CR4.OSXSAVE did not stick, when XGETBV would fault): a
    /// hypervisor that drops either would otherwise show up only as #UD on the first
    /// YMM instruction.
    fn enable_avx() -> u64 {
        let cr4 = read_cr4();
        if cr4 & CR4_OSXSAVE == 0 {
            // SAFETY: CPUID reports XSAVE, so CR4.OSXSAVE may be set; it only allows
            // XGETBV/XSETBV and the XSAVE family.
            unsafe {
                core::arch::asm!("mov cr4, {}", in(reg) cr4 | CR4_OSXSAVE, options(nomem, nostack))
            };
        }
        if read_cr4() & CR4_OSXSAVE == 0 {
            return 0;
        }
        // SAFETY: XSETBV of XCR0 with x87|SSE|AVX, which CPUID leaf 0xD says XCR0
        // supports; CR4.OSXSAVE is set.
        unsafe {
            core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") XCR0_AVX as u32, in("edx") 0u32, options(nomem, nostack))
        };
        let (low, high): (u32, u32);
        // SAFETY: XGETBV of XCR0 with CR4.OSXSAVE set only reads it.
        unsafe {
            core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") low, out("edx") high, options(nomem, nostack))
        };
        u64::from(high) << 32 | u64::from(low)
    }

    fn secondary(id: u32) -> ! {
        CR4_AT_START.store(read_cr4(), Ordering::Release);
        let ymm = YMM.load(Ordering::Acquire);
        if ymm {
            XCR0_SECONDARY.store(enable_avx(), Ordering::Release);
        }
        READY.store(true, Ordering::Release);
        // Unbounded: if vCPU 0 gives up it shuts the domain down, which stops us.
        while !GO.load(Ordering::Acquire) {
            sched_yield();
        }
        work(id, ymm);
        DONE.store(true, Ordering::Release);
        halt_forever()
    }

    pub fn test(_info: &StartInfo) -> Verdict {
        let count = vcpu_count();
        if count < 2 {
            println!("fpu-vcpus: needs 2 vCPUs, the domain has {count}");
            return Verdict::Error;
        }
        let Some(khz) = tsc_khz() else {
            println!("fpu-vcpus: TSC rate unknown (Xen leaf base+3 ECX is 0)");
            return Verdict::Error;
        };
        RUN_TICKS.store(RUN_MS * khz, Ordering::Release);
        let ymm = avx_usable();
        if ymm {
            // Before vCPU 1 starts, so the CR4 it gets (a copy of ours) has OSXSAVE.
            let xcr0 = enable_avx();
            if xcr0 & XCR0_AVX != XCR0_AVX {
                println!(
                    "fpu-vcpus: vCPU 0: XCR0 reads {xcr0:#x} after XSETBV {XCR0_AVX:#x} (0: CR4.OSXSAVE did not stick)"
                );
                return Verdict::Failure;
            }
        }
        YMM.store(ymm, Ordering::Release);
        println!("fpu-vcpus: using {}", if ymm { "ymm" } else { "xmm" });

        let mut t = Checks::default();
        if let Err(e) = start_vcpu(1, secondary) {
            println!("fpu-vcpus: starting vCPU 1: error {e}");
            return Verdict::Failure;
        }
        if !wait_until(WAIT_MS, || READY.load(Ordering::Acquire)) {
            println!("fpu-vcpus: vCPU 1 did not start within {WAIT_MS} ms");
            return Verdict::Failure;
        }
        if ymm {
            let cr4 = CR4_AT_START.load(Ordering::Acquire);
            t.check(
                cr4 & CR4_OSXSAVE != 0,
                format_args!("vCPU 1 started with CR4 {cr4:#x}: OSXSAVE from its context lost"),
            );
            let xcr0 = XCR0_SECONDARY.load(Ordering::Acquire);
            if xcr0 & XCR0_AVX != XCR0_AVX {
                println!(
                    "fpu-vcpus: vCPU 1: XCR0 reads {xcr0:#x} after XSETBV {XCR0_AVX:#x} (0: CR4.OSXSAVE did not stick)"
                );
                return Verdict::Failure;
            }
        }
        GO.store(true, Ordering::Release);
        work(0, ymm);
        if !wait_until(WAIT_MS, || DONE.load(Ordering::Acquire)) {
            println!("fpu-vcpus: vCPU 1 did not finish within {WAIT_MS} ms of vCPU 0");
            return Verdict::Failure;
        }

        let [r0, r1] = &RESULTS;
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        let (interleavings0, interleavings1) = (get(&r0.interleavings), get(&r1.interleavings));
        println!(
            "fpu-vcpus: iterations {}/{}, interleavings {}/{}, mismatches {}/{}",
            get(&r0.iterations),
            get(&r1.iterations),
            interleavings0,
            interleavings1,
            get(&r0.mismatches),
            get(&r1.mismatches),
        );
        for (id, r) in RESULTS.iter().enumerate() {
            let mismatches = get(&r.mismatches);
            let first_bad = get(&r.first_bad);
            t.check(
                mismatches == 0,
                format_args!(
                    "vCPU {id}: {mismatches} iterations found vector state changed, first in {}",
                    Register(first_bad, ymm)
                ),
            );
        }
        t.check(
            interleavings0 + interleavings1 >= MIN_INTERLEAVINGS,
            format_args!(
                "the vCPUs alternated {} times, fewer than {MIN_INTERLEAVINGS}: \
                 the test did not show them sharing time",
                interleavings0 + interleavings1
            ),
        );
        t.verdict()
    }

    /// A `first_bad` value, printed as the register it names.
    struct Register(u64, bool);

    impl core::fmt::Display for Register {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                BAD_MXCSR => f.write_str("MXCSR"),
                reg if reg < 16 => write!(f, "{}{reg}", if self.1 { "YMM" } else { "XMM" }),
                _ => f.write_str("no register"),
            }
        }
    }
}

#[cfg(target_os = "none")]
use guest::test;

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("fpu-vcpus", test);
