//! The emulator test catalogue: what runs where, and how each run is judged.

use crate::platform::{BadBoot, Boot, Emulator, Platform};
use crate::serial::{self, TestResult};
use crate::verdict::{Outcome, Verdict, code};

/// A boot module the harness generates and passes to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleSpec {
    /// File name (under `build/modules/`, and `/boot/` on the ISO).
    pub name: &'static str,
    /// Size in bytes.
    pub size: usize,
    /// Module arguments; the module's command line must contain them.
    pub args: &'static str,
    /// Fixed contents (a configuration file); `None`: a byte pattern of `size` bytes.
    pub text: Option<&'static str>,
}

impl ModuleSpec {
    /// The module's contents: a pattern that differs per module and per offset.
    pub fn bytes(&self) -> Vec<u8> {
        if let Some(text) = self.text {
            return text.as_bytes().to_vec();
        }
        let seed = self
            .name
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        (0..self.size as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
            .collect()
    }
}

/// A test guest and how its domain must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The binary's name in `tests/guests/src/bin/`.
    pub name: &'static str,
    /// `None`: prints `Test result: SUCCESS` and shuts down with `shutdown_reason`.
    /// `Some(reason)`: the hypervisor crashes the domain with this reason (and the next
    /// guest still runs).
    pub crash: Option<&'static str>,
    /// The `SCHEDOP_shutdown` reason the hypervisor must report (0: poweroff).
    pub shutdown_reason: u32,
}

/// A guest that must pass and power off.
pub const fn passes(name: &'static str) -> Guest {
    Guest {
        name,
        crash: None,
        shutdown_reason: 0,
    }
}

/// A guest that must pass and shut down with `reason` (`SHUTDOWN_*`, sched.h).
pub const fn shuts_down(name: &'static str, reason: u32) -> Guest {
    Guest {
        name,
        crash: None,
        shutdown_reason: reason,
    }
}

/// A guest the hypervisor must crash, alone, for `reason`.
pub const fn crashes(name: &'static str, reason: &'static str) -> Guest {
    Guest {
        name,
        crash: Some(reason),
        shutdown_reason: 0,
    }
}

/// One place a test runs: platform, boot method and CPU count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Where it runs.
    pub platform: Platform,
    /// How the image is booted.
    pub boot: Boot,
    /// Number of CPUs the emulator gets.
    pub cpus: u32,
}

/// A single-CPU run.
pub const fn on(platform: Platform, boot: Boot) -> Run {
    Run {
        platform,
        boot,
        cpus: 1,
    }
}

/// A run with `cpus` CPUs.
pub const fn smp(platform: Platform, boot: Boot, cpus: u32) -> Run {
    Run {
        platform,
        boot,
        cpus,
    }
}

/// How many CPUs an SMP self test must find online.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Online {
    /// Every CPU the emulator was given.
    All,
    /// Exactly this many (a `maxcpus=`/`nosmp` test).
    Exactly(u32),
}

/// How a test's runs are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `Test result: SUCCESS` plus the boot facts (protocol, memory, CPU, virt, modules).
    Boot,
    /// A deliberate fault: the fatal report must match the `selftest: expect` line, and
    /// the kernel must halt (QEMU exit code 0x12).
    Fault,
    /// `Test result: SUCCESS`, and every one of `lines` somewhere in the log.
    Lines {
        /// Substrings that must appear.
        lines: &'static [&'static str],
    },
    /// `Test result: SUCCESS`, and `lines` in the log in this order (each after the
    /// previous one).
    Ordered {
        /// Substrings that must appear, in order.
        lines: &'static [&'static str],
    },
    /// A bad boot: the log must contain `message` (case-insensitive) and the kernel must
    /// halt (QEMU exit code 0x12).
    BadBoot {
        /// The text the kernel must print.
        message: &'static str,
    },
    /// A self test that ends in `Test result: SUCCESS`, after which `smp: N CPU(s)
    /// online` must match `online`, and the TSC frequency must be plausible.
    SelfTest {
        /// CPUs that must be online.
        online: Online,
    },
    /// The last AP panics: its PANIC report, a `cpu N: stopped by NMI` report from
    /// every other CPU, and the fatal halt.
    ApPanic,
    /// `Test result: SUCCESS` from the hypervisor, and from every guest in order:
    /// `(dN) Test result: SUCCESS` and `domain N (<name>): shutdown, reason R` (R as
    /// the guest's entry says; crashes as theirs say).
    Guests,
    /// Scheduler acceptance from `spinner` guests' `spinner: window K count C share P`
    /// lines: `lines` must appear, then each phase's figures must hold.
    Spinners {
        lines: &'static [&'static str],
        phases: &'static [SpinPhase],
    },
}

/// What the `spinner` guests must show over a range of their windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpinPhase {
    /// First and last window (inclusive).
    pub windows: (u32, u32),
    /// (domain id, relative weight): the guest-measured CPU time (shares) summed over
    /// the windows, divided by the weight, must each be within `tolerance_percent` of
    /// their mean. CPU time, not loop counts: under TCG the loop's speed varies between
    /// domains by tens of percent (translation-block chaining, icount accounting), which
    /// says nothing about the scheduler.
    pub ratio: &'static [(u32, u32)],
    pub tolerance_percent: u32,
    /// (domain id, least, most): the guest-measured share of the CPU, per mille,
    /// averaged over the windows.
    pub shares: &'static [(u32, u32, u32)],
}

/// One test: a kernel command line, what to boot it with, where, and the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Test {
    /// Test name, first word of the title.
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// Kernel command line.
    pub cmdline: &'static str,
    /// Modules passed where the boot method can pass them (not PVH, not the shim).
    pub modules: &'static [ModuleSpec],
    /// Test guests (binaries of `tests/guests`) passed as modules after `modules`, each
    /// run as a domain in order; domain N is the N-th guest.
    pub guests: &'static [Guest],
    /// Where it runs, how it boots there, with how many CPUs.
    pub runs: &'static [Run],
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Emulated time follows instructions (QEMU `-icount shift=0`, Bochs at
    /// `BOCHS_TIMING_IPS`), for checks of timing that must not depend on the host's load.
    pub instruction_clock: bool,
    /// How the run is judged.
    pub check: Check,
}

/// A configuration module: file `name` holding `text` (xl.cfg syntax).
pub const fn config(name: &'static str, text: &'static str) -> ModuleSpec {
    ModuleSpec {
        name,
        size: 0,
        args: "",
        text: Some(text),
    }
}

/// The two modules the boot test passes.
pub const BOOT_MODULES: &[ModuleSpec] = &[
    ModuleSpec {
        name: "mod-a.bin",
        size: 5000,
        args: "role=alpha",
        text: None,
    },
    ModuleSpec {
        name: "mod-b.bin",
        size: 70000,
        args: "role=beta",
        text: None,
    },
];

/// Domain configurations for the `domains-config` test (docs/domain-config.md).
const DOMAIN_CONFIGS: &[ModuleSpec] = &[
    config(
        "alpha.cfg",
        "# A small domain that runs the hello guest once.\nname = \"alpha\"\ntype = \"pvh\"\nkernel = \"hello\"\nmemory = 32\n",
    ),
    config(
        "crashy.cfg",
        "name = \"crashy\"\nkernel = \"triple-fault\"\nmemory = 16\non_crash = \"restart\"\n",
    ),
    config(
        "huge.cfg",
        "name = \"huge\"\nkernel = \"hello\"\nmemory = 100000\n",
    ),
    config(
        "typo.cfg",
        "name = \"typo\"\nmemroy = 32\nkernel = \"hello\"\n",
    ),
    config(
        "bigger.cfg",
        "name = \"bigger\"\nkernel = \"xen-cpuid\"\nmemory = 48\n",
    ),
    config(
        "keeper.cfg",
        "name = \"keeper\"\nkernel = \"hello\"\nmemory = 16\non_poweroff = \"preserve\"\n",
    ),
];

/// Three domains with 1, 2 and 4 vCPUs running at once, and two vCPUs of one domain
/// pinned to one CPU checking their vector registers stay their own.
const SMP_CONFIGS: &[ModuleSpec] = &[
    config(
        "one.cfg",
        "name = \"one\"\nkernel = \"smp\"\nmemory = 32\nvcpus = 1\ncmdline = \"vcpus=1\"\n",
    ),
    config(
        "two.cfg",
        "name = \"two\"\nkernel = \"smp\"\nmemory = 32\nvcpus = 2\ncmdline = \"vcpus=2\"\n",
    ),
    config(
        "four.cfg",
        "name = \"four\"\nkernel = \"smp\"\nmemory = 32\nvcpus = 4\ncmdline = \"vcpus=4\"\n",
    ),
    config(
        "fpu.cfg",
        "name = \"fpu\"\nkernel = \"fpu-vcpus\"\nmemory = 32\nvcpus = 2\ncpus = \"0\"\n",
    ),
];

/// Three spinners of weights 256, 512 and 1024 and one of weight 4096 capped at 25%, all
/// on CPU 0: uncapped, the fourth would take 70% of the CPU; capped, it gets 25% and the
/// others share the rest 1:2:4 (`selftest=sched` then reweights domain 3 to 256 and
/// pauses domain 2 on a script).
const SCHED_CONFIGS: &[ModuleSpec] = &[
    config(
        "w1.cfg",
        "name = \"w1\"\nkernel = \"spinner\"\nmemory = 16\ncpus = \"0\"\ncpu_weight = 256\ncmdline = \"windows=12 window-ms=100\"\n",
    ),
    config(
        "w2.cfg",
        "name = \"w2\"\nkernel = \"spinner\"\nmemory = 16\ncpus = \"0\"\ncpu_weight = 512\ncmdline = \"windows=12 window-ms=100\"\n",
    ),
    config(
        "w3.cfg",
        "name = \"w3\"\nkernel = \"spinner\"\nmemory = 16\ncpus = \"0\"\ncpu_weight = 1024\ncmdline = \"windows=12 window-ms=100\"\n",
    ),
    config(
        "capped.cfg",
        "name = \"capped\"\nkernel = \"spinner\"\nmemory = 16\ncpus = \"0\"\ncpu_weight = 4096\ncap = 25\ncmdline = \"windows=12 window-ms=100\"\n",
    ),
];

/// Six spinners, unpinned, on two CPUs.
const OVERCOMMIT_CONFIGS: &[ModuleSpec] = &[
    config(
        "o1.cfg",
        "name = \"o1\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
    config(
        "o2.cfg",
        "name = \"o2\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
    config(
        "o3.cfg",
        "name = \"o3\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
    config(
        "o4.cfg",
        "name = \"o4\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
    config(
        "o5.cfg",
        "name = \"o5\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
    config(
        "o6.cfg",
        "name = \"o6\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=5 window-ms=100\"\n",
    ),
];

/// The first of the boot test's modules: a byte pattern, not a kernel.
const BOOT_MODULES_FIRST: [ModuleSpec; 1] = [BOOT_MODULES[0]];

/// The three platforms with hardware virtualization, one CPU each.
const VIRT_PLATFORMS: &[Run] = &[
    on(Platform::QemuSvm, Boot::Kernel),
    on(Platform::BochsSvm, Boot::Grub),
    on(Platform::BochsVmx, Boot::Grub),
];

/// The same with one CPU, then with two.
const VIRT_PLATFORMS_1_AND_2_CPUS: &[Run] = &[
    on(Platform::QemuSvm, Boot::Kernel),
    on(Platform::BochsSvm, Boot::Grub),
    on(Platform::BochsVmx, Boot::Grub),
    smp(Platform::QemuSvm, Boot::Kernel, 2),
    smp(Platform::BochsSvm, Boot::Grub, 2),
    smp(Platform::BochsVmx, Boot::Grub, 2),
];

const FAULT_RUNS: &[Run] = &[
    on(Platform::QemuSvm, Boot::Kernel),
    on(Platform::BochsVmx, Boot::Grub),
    on(Platform::Kvm, Boot::Kernel),
];

const fn fault(name: &'static str, cmdline: &'static str, about: &'static str) -> Test {
    Test {
        name,
        about,
        cmdline,
        modules: &[],
        guests: &[],
        runs: FAULT_RUNS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Fault,
    }
}

const CATALOGUE: &[Test] = &[
    Test {
        name: "boot",
        about: "boots by every protocol and reports the platform's CPU, virtualization, memory and modules",
        cmdline: "loglvl=info selftest=boot",
        modules: BOOT_MODULES,
        guests: &[],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::QemuSvm, Boot::Grub),
            on(Platform::QemuSvm, Boot::Pvh),
            on(Platform::BochsVmx, Boot::Grub),
            on(Platform::BochsSvm, Boot::Grub),
            on(Platform::Kvm, Boot::Kernel),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Boot,
    },
    fault(
        "fault-null-deref",
        "loglvl=info selftest=null-deref",
        "a read through a null pointer is reported as #PF",
    ),
    fault(
        "fault-ro-write",
        "loglvl=info selftest=ro-write",
        "a write to read-only kernel data is reported as #PF",
    ),
    fault(
        "fault-stack-overflow",
        "loglvl=info selftest=stack-overflow",
        "a kernel stack overflow hits the guard page and is reported from the #DF IST stack",
    ),
    fault(
        "fault-panic",
        "loglvl=info selftest=panic",
        "a Rust panic is reported with its location and message",
    ),
    Test {
        name: "boot-bad-magic",
        about: "entered with EAX=0xDEADBEEF, the kernel reports the unknown magic and halts",
        cmdline: "",
        modules: &[],
        guests: &[],
        runs: &[on(Platform::QemuSvm, Boot::Shim(BadBoot::BadMagic))],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::BadBoot {
            message: "unknown boot magic 0xdeadbeef",
        },
    },
    Test {
        name: "boot-no-memory-map",
        about: "a multiboot1 information structure without a memory map is refused",
        cmdline: "",
        modules: &[],
        guests: &[],
        runs: &[on(Platform::QemuSvm, Boot::Shim(BadBoot::NoMemoryMap))],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::BadBoot {
            message: "no memory map",
        },
    },
    Test {
        name: "smp",
        about: "every CPU the MADT lists comes online and reports its APIC ID",
        cmdline: "loglvl=info selftest=smp",
        modules: &[],
        guests: &[],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            smp(Platform::QemuSvm, Boot::Kernel, 2),
            smp(Platform::QemuSvm, Boot::Kernel, 4),
            on(Platform::QemuSvm, Boot::Pvh),
            smp(Platform::QemuSvm, Boot::Pvh, 2),
            smp(Platform::QemuSvm, Boot::Pvh, 4),
            on(Platform::BochsVmx, Boot::Grub),
            smp(Platform::BochsVmx, Boot::Grub, 2),
            smp(Platform::BochsSvm, Boot::Grub, 2),
            smp(Platform::Kvm, Boot::Kernel, 2),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::All,
        },
    },
    Test {
        name: "smp-maxcpus",
        about: "maxcpus=1 leaves the other CPUs offline",
        cmdline: "loglvl=info selftest=smp maxcpus=1",
        modules: &[],
        guests: &[],
        runs: &[smp(Platform::QemuSvm, Boot::Kernel, 4)],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::Exactly(1),
        },
    },
    Test {
        name: "smp-nosmp",
        about: "nosmp runs the boot CPU only",
        cmdline: "loglvl=info selftest=smp nosmp",
        modules: &[],
        guests: &[],
        runs: &[smp(Platform::QemuSvm, Boot::Pvh, 2)],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::Exactly(1),
        },
    },
    Test {
        name: "timers",
        about: "one-shot deadlines on every CPU all fire, in order, none early",
        cmdline: "loglvl=info selftest=timers",
        modules: &[],
        guests: &[],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            smp(Platform::QemuSvm, Boot::Kernel, 4),
            smp(Platform::QemuSvm, Boot::Pvh, 2),
            on(Platform::BochsVmx, Boot::Grub),
            smp(Platform::BochsVmx, Boot::Grub, 2),
            smp(Platform::Kvm, Boot::Kernel, 2),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::All,
        },
    },
    Test {
        name: "ipi",
        about: "a counter rides directed IPIs around every CPU; a broadcast reaches all",
        cmdline: "loglvl=info selftest=ipi",
        modules: &[],
        guests: &[],
        runs: &[
            smp(Platform::QemuSvm, Boot::Kernel, 2),
            smp(Platform::QemuSvm, Boot::Kernel, 4),
            smp(Platform::QemuSvm, Boot::Pvh, 4),
            smp(Platform::BochsVmx, Boot::Grub, 2),
            smp(Platform::Kvm, Boot::Kernel, 2),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::All,
        },
    },
    Test {
        name: "vmm-smoke",
        about: "a 2 MiB guest exits for CPUID with the right leaf, takes the answer, and exits for HLT",
        cmdline: "loglvl=info selftest=vmm-smoke",
        modules: &[],
        guests: &[],
        runs: VIRT_PLATFORMS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::SelfTest {
            online: Online::All,
        },
    },
    Test {
        name: "guest-hello",
        about: "a PVH guest finds Xen's CPUID leaves, installs the hypercall page, prints through console_io and powers off",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[passes("hello")],
        runs: VIRT_PLATFORMS_1_AND_2_CPUS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "guests-xtf",
        about: "XTF-style guests, one per behaviour, as domains one after another: Xen CPUID leaves, hypercalls and errnos, the guest's own exception handlers, FPU/SSE state across exits, MSR and I/O defaults, all RAM usable, SCHEDOP_poll and the vCPU time area",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[
            passes("xen-cpuid"),
            passes("hypercalls"),
            passes("exceptions"),
            passes("fpu"),
            passes("defaults"),
            passes("memory"),
            passes("poll"),
        ],
        // Two CPUs: the guests run two at a time, one per CPU.
        runs: VIRT_PLATFORMS_1_AND_2_CPUS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "guest-shutdown-reasons",
        about: "every SCHEDOP_shutdown reason a guest gives is the one the hypervisor reports",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[
            shuts_down("shutdown-reboot", 1),
            shuts_down("shutdown-suspend", 2),
            shuts_down("shutdown-crash", 3),
            shuts_down("shutdown-watchdog", 4),
            passes("hello"),
        ],
        runs: VIRT_PLATFORMS_1_AND_2_CPUS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "guest-bad-module",
        about: "a boot module that is not a PVH kernel is refused with the reason; the guest after it runs and passes",
        cmdline: "loglvl=info selftest=guests",
        modules: &BOOT_MODULES_FIRST,
        guests: &[passes("hello")],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::BochsVmx, Boot::Grub),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "domains-config",
        about: "boot-time domains from xl.cfg modules: memory claimed per config, a domain larger than free memory refused with the numbers, dom0_mem= memory kept out of the budget, a config error named by file, line and key, on_crash=restart stopped by the crash-loop limit, on_poweroff=preserve keeps a domain's memory until it is destroyed, the others run",
        cmdline: "loglvl=info selftest=domains dom0_mem=64M",
        modules: DOMAIN_CONFIGS,
        guests: &[
            passes("hello"),
            crashes("triple-fault", "triple fault"),
            passes("xen-cpuid"),
        ],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::BochsVmx, Boot::Grub),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Lines {
            lines: &[
                "MiB available to domains (8 MiB kept for the hypervisor, 64 MiB for dom0)",
                "domain 1 (alpha): created on cpu 0: 32 MiB RAM",
                "domain 1 (alpha): accounting: 8192 of 8192 RAM pages, 3 nested-table pages,",
                "(d1) Test result: SUCCESS",
                "domain 1 (alpha): shutdown, reason 0",
                "domain 2 (crashy): restarting (on_crash = restart, 5 of 5)",
                "domain 2 (crashy): restarted 5 times within 60 s: crash loop, destroying it",
                "domain 3 (huge): not created: needs",
                "typo.cfg:2: key 'memroy'",
                "domain 5 (bigger): created on cpu 0: 48 MiB RAM",
                "(d5) Test result: SUCCESS",
                "domain 6 (keeper): preserved (on_poweroff = preserve): its memory is kept until it is destroyed",
                "selftest: all domains ended; free memory",
            ],
        },
    },
    Test {
        name: "domains-smp",
        about: "three domains with 1, 2 and 4 vCPUs run at once, their secondary vCPUs started by VCPUOP_initialise/up with Xen's errnos; two vCPUs pinned to one CPU keep their own YMM/XMM registers and MXCSR across thousands of switches",
        cmdline: "loglvl=info selftest=domains",
        modules: SMP_CONFIGS,
        guests: &[passes("smp"), passes("fpu-vcpus")],
        // With one CPU, seven vCPUs and the pinned pair share it.
        runs: VIRT_PLATFORMS_1_AND_2_CPUS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Lines {
            lines: &[
                "domain 1 (one): created on cpu",
                "domain 2 (two): created on cpu",
                "domain 3 (four): created on cpu",
                "domain 3: vcpu 3 up",
                "(d1) smp: 1 vCPUs up",
                "(d2) smp: 2 vCPUs up",
                "(d3) smp: 4 vCPUs up",
                "(d1) Test result: SUCCESS",
                "(d2) Test result: SUCCESS",
                "(d3) Test result: SUCCESS",
                "(d4) Test result: SUCCESS",
                "domain 1 (one): shutdown, reason 0",
                "domain 2 (two): shutdown, reason 0",
                "domain 3 (four): shutdown, reason 0",
                "domain 4 (fpu): shutdown, reason 0",
            ],
        },
    },
    Test {
        name: "sched-weights",
        about: "on one CPU, a domain capped at 25% gets 25% and spinners of weights 256:512:1024 share the rest 1:2:4; reweighting one to 256 at run time makes it 1:2:1; a domain paused and unpaused picks up its share again",
        cmdline: "loglvl=info selftest=sched",
        modules: SCHED_CONFIGS,
        guests: &[passes("spinner")],
        runs: &[
            // One CPU: QEMU's -icount runs several CPUs round-robin, one at a time,
            // so a CPU's guests see their time pass while another CPU runs.
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::BochsVmx, Boot::Grub),
            on(Platform::BochsSvm, Boot::Grub),
        ],
        mem_mib: 256,
        instruction_clock: true,
        check: Check::Spinners {
            lines: &[
                "domain 3: weight 256 cap 0",
                "domain 2 (w2): paused",
                "domain 2 (w2): unpaused",
                "(d1) Test result: SUCCESS",
                "(d2) Test result: SUCCESS",
                "(d3) Test result: SUCCESS",
                "(d4) Test result: SUCCESS",
            ],
            phases: &[
                SpinPhase {
                    windows: (0, 3),
                    ratio: &[(1, 1), (2, 2), (3, 4)],
                    tolerance_percent: 10,
                    shares: &[],
                },
                SpinPhase {
                    windows: (5, 6),
                    ratio: &[(1, 1), (2, 2), (3, 1)],
                    tolerance_percent: 10,
                    shares: &[],
                },
                SpinPhase {
                    windows: (9, 10),
                    ratio: &[(1, 1), (2, 2), (3, 1)],
                    tolerance_percent: 10,
                    shares: &[],
                },
                SpinPhase {
                    windows: (0, 10),
                    ratio: &[],
                    tolerance_percent: 0,
                    shares: &[(4, 200, 300)],
                },
            ],
        },
    },
    Test {
        name: "sched-overcommit",
        about: "six CPU-bound vCPUs on two CPUs all progress, each with a third of a CPU, and all pass",
        cmdline: "loglvl=info selftest=together",
        modules: OVERCOMMIT_CONFIGS,
        guests: &[passes("spinner")],
        runs: &[
            // Not on QEMU: with -icount it runs the CPUs round-robin, one at a time, so
            // a guest on one CPU sees its time pass while the other CPU runs and the
            // shares it measures say nothing about the scheduler (domains-smp runs more
            // vCPUs than CPUs on QEMU).
            smp(Platform::BochsVmx, Boot::Grub, 2),
            smp(Platform::BochsSvm, Boot::Grub, 2),
        ],
        mem_mib: 256,
        instruction_clock: true,
        check: Check::Spinners {
            lines: &[
                "(d1) Test result: SUCCESS",
                "(d2) Test result: SUCCESS",
                "(d3) Test result: SUCCESS",
                "(d4) Test result: SUCCESS",
                "(d5) Test result: SUCCESS",
                "(d6) Test result: SUCCESS",
            ],
            phases: &[SpinPhase {
                windows: (1, 4),
                ratio: &[(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)],
                tolerance_percent: 15,
                shares: &[
                    (1, 250, 420),
                    (2, 250, 420),
                    (3, 250, 420),
                    (4, 250, 420),
                    (5, 250, 420),
                    (6, 250, 420),
                ],
            }],
        },
    },
    Test {
        name: "domains-busy-restart",
        about: "a crashing domain is destroyed and restarted while another keeps the only CPU busy (reaping does not wait for an idle CPU)",
        cmdline: "loglvl=info selftest=domains",
        modules: &[
            config(
                "hog.cfg",
                "name = \"hog\"\nkernel = \"spinner\"\nmemory = 16\ncmdline = \"windows=4 window-ms=200\"\n",
            ),
            config(
                "crashy.cfg",
                "name = \"crashy\"\nkernel = \"triple-fault\"\nmemory = 16\non_crash = \"restart\"\n",
            ),
        ],
        guests: &[passes("spinner"), crashes("triple-fault", "triple fault")],
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::BochsVmx, Boot::Grub),
        ],
        mem_mib: 256,
        instruction_clock: true,
        check: Check::Ordered {
            lines: &[
                "domain 2 (crashy): restarting (on_crash = restart, 1 of 5)",
                "domain 2 (crashy): restarted 5 times within 60 s: crash loop, destroying it",
                // The hog prints its figures when its 800 ms are over: after the restarts.
                "(d1) spinner: config",
                "(d1) Test result: SUCCESS",
            ],
        },
    },
    Test {
        name: "domains-isolation",
        about: "a guest fills its RAM with a pattern; the next domain, built from the same frames, reads only zeros",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[passes("memory"), passes("zeros")],
        // Two CPUs: both guests run at once (so not necessarily on the same frames:
        // the one-CPU runs show the reuse).
        runs: VIRT_PLATFORMS_1_AND_2_CPUS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "domains-large",
        about: "a 1 GiB domain is mapped with a 1 GiB nested page",
        cmdline: "loglvl=info selftest=domains",
        modules: &[config(
            "large.cfg",
            "name = \"large\"\nkernel = \"hello\"\nmemory = 1024\n",
        )],
        guests: &[passes("hello")],
        // Not on Bochs: it emulates at most 2 GiB, whose top firmware reserves, so it never
        // has a free aligned GiB.
        runs: &[on(Platform::QemuSvm, Boot::Kernel)],
        // 3 GiB: on QEMU's pc machine with 2 GiB, firmware reserves the top of RAM, so
        // no aligned GiB would be free for the domain.
        mem_mib: 3072,
        instruction_clock: false,
        check: Check::Lines {
            lines: &[
                "domain 1 (large): created on cpu 0: 1024 MiB RAM, entry 0x100000; nested paging 1 x 1 GiB, 0 x 2 MiB, 0 x 4 KiB, 2 table pages",
                "(d1) Test result: SUCCESS",
                "domain 1 (large): shutdown, reason 0",
            ],
        },
    },
    Test {
        name: "domains-large-2m",
        about: "a 1 GiB domain on Bochs (2 GiB, no free aligned GiB) is mapped with 2 MiB nested pages only",
        cmdline: "loglvl=info selftest=domains",
        modules: &[config(
            "large.cfg",
            "name = \"large\"\nkernel = \"hello\"\nmemory = 1024\n",
        )],
        guests: &[passes("hello")],
        runs: &[
            on(Platform::BochsVmx, Boot::Grub),
            on(Platform::BochsSvm, Boot::Grub),
        ],
        mem_mib: 2048,
        instruction_clock: false,
        check: Check::Lines {
            lines: &[
                "domain 1 (large): created on cpu 0: 1024 MiB RAM, entry 0x100000; nested paging 0 x 1 GiB, 512 x 2 MiB, 0 x 4 KiB, 3 table pages",
                "(d1) Test result: SUCCESS",
                "domain 1 (large): shutdown, reason 0",
            ],
        },
    },
    Test {
        name: "domains-churn",
        about: "500 domains of 64 MiB created and destroyed in one boot; free memory back to its baseline exactly after every cycle",
        cmdline: "loglvl=info selftest=churn",
        modules: &[],
        guests: &[passes("hello")],
        // Not on Bochs: zeroing 32 GiB at Bochs' speed would take minutes.
        runs: &[on(Platform::QemuSvm, Boot::Kernel)],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Lines {
            lines: &["selftest: 500 domains of 64 MiB created and destroyed; free memory back to"],
        },
    },
    Test {
        name: "domains-churn-small",
        about: "500 domains of 4 MiB created and destroyed in one boot on VT-x and Bochs' AMD-V; free memory back to its baseline exactly after every cycle",
        cmdline: "loglvl=info selftest=churn-small",
        modules: &[],
        guests: &[passes("hello")],
        runs: &[
            on(Platform::BochsVmx, Boot::Grub),
            on(Platform::BochsSvm, Boot::Grub),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Lines {
            lines: &["selftest: 500 domains of 4 MiB created and destroyed; free memory back to"],
        },
    },
    Test {
        name: "guest-beyond-ram",
        about: "a guest reading guest-physical memory past its RAM is crashed alone with the reason; the next guest runs and passes",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[
            crashes("beyond", "access outside the domain's memory"),
            passes("hello"),
        ],
        runs: VIRT_PLATFORMS,
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "guest-triple-fault",
        about: "a triple-faulting guest is crashed alone and reported; the next guest runs and passes",
        cmdline: "loglvl=info selftest=guests",
        modules: &[],
        guests: &[crashes("triple-fault", "triple fault"), passes("hello")],
        // Not on bochs-svm: Bochs 2.7 panics on a triple fault inside an SVM guest
        // instead of taking the SHUTDOWN intercept (docs/testing.md).
        runs: &[
            on(Platform::QemuSvm, Boot::Kernel),
            on(Platform::BochsVmx, Boot::Grub),
            smp(Platform::QemuSvm, Boot::Kernel, 2),
            smp(Platform::BochsVmx, Boot::Grub, 2),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::Guests,
    },
    Test {
        name: "ap-panic",
        about: "a panic on an AP stops every CPU, each with its own report",
        cmdline: "loglvl=info selftest=ap-panic",
        modules: &[],
        guests: &[],
        runs: &[
            smp(Platform::QemuSvm, Boot::Kernel, 4),
            smp(Platform::QemuSvm, Boot::Pvh, 2),
            smp(Platform::BochsVmx, Boot::Grub, 2),
        ],
        mem_mib: 256,
        instruction_clock: false,
        check: Check::ApPanic,
    },
];

/// All tests.
pub fn catalogue() -> &'static [Test] {
    CATALOGUE
}

/// One run of a test: a test on a platform with a boot method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The test.
    pub test: &'static Test,
    /// Where it runs.
    pub platform: Platform,
    /// How the image is booted.
    pub boot: Boot,
    /// Number of CPUs.
    pub cpus: u32,
}

/// Every case of every test, in catalogue order.
pub fn cases() -> Vec<Case> {
    catalogue()
        .iter()
        .flat_map(|test| {
            test.runs.iter().map(move |run| Case {
                test,
                platform: run.platform,
                boot: run.boot,
                cpus: run.cpus,
            })
        })
        .collect()
}

impl Case {
    /// Bochs' instructions per emulated second for this run (`None` on QEMU).
    pub fn bochs_ips(&self) -> Option<u64> {
        self.platform.bochs_ips().map(|ips| {
            if self.test.instruction_clock {
                crate::cmdline::BOCHS_TIMING_IPS
            } else {
                ips
            }
        })
    }

    /// The platform as shown in titles: the platform name, plus `/<boot>` when the boot
    /// method is not the platform's usual one (`qemu-svm/grub`, `qemu-svm/pvh`).
    pub fn label(&self) -> String {
        let place = match self.boot {
            Boot::Shim(_) => self.platform.name().to_string(),
            b if b == self.platform.default_boot() => self.platform.name().to_string(),
            b => format!("{}/{}", self.platform.name(), b.name()),
        };
        if self.cpus > 1 {
            format!("{place} x{}", self.cpus)
        } else {
            place
        }
    }

    /// `<test> on <label>`.
    pub fn title(&self) -> String {
        format!("{} on {}", self.test.name, self.label())
    }

    /// The artefact directory name under `build/tests/`.
    pub fn dir_name(&self) -> String {
        format!(
            "{}-{}",
            self.test.name,
            self.label().replace(['/', ' '], "-")
        )
    }

    /// The modules this case passes (PVH and the shim pass none).
    pub fn modules(&self) -> &'static [ModuleSpec] {
        match self.boot {
            Boot::Kernel | Boot::Grub => self.test.modules,
            Boot::Pvh | Boot::Shim(_) => &[],
        }
    }

    /// The guests this case passes (PVH and the shim pass no modules at all).
    pub fn guests(&self) -> &'static [Guest] {
        match self.boot {
            Boot::Kernel | Boot::Grub => self.test.guests,
            Boot::Pvh | Boot::Shim(_) => &[],
        }
    }

    /// Whether the case is selected by a title substring and a platform.
    pub fn selected(&self, filter: Option<&str>, platform: Option<Platform>) -> bool {
        filter.is_none_or(|f| self.title().contains(f))
            && platform.is_none_or(|p| p == self.platform)
    }

    /// Judges a run.
    pub fn check(&self, o: &Outcome) -> Verdict {
        if let Some(why) = o.abnormal_end() {
            return Verdict::Fail(why);
        }
        let result = match self.test.check {
            Check::Boot => self.check_boot(o),
            Check::Fault => check_fault(o),
            Check::BadBoot { message } => check_bad_boot(o, message),
            Check::SelfTest { online } => self.check_selftest(o, online),
            Check::ApPanic => check_ap_panic(o),
            Check::Guests => self.check_guests(o),
            Check::Lines { lines } => self.check_lines(o, lines),
            Check::Ordered { lines } => {
                check_ordered(&o.serial, lines).and_then(|()| self.check_lines(o, lines))
            }
            Check::Spinners { lines, phases } => self
                .check_lines(o, lines)
                .and_then(|()| check_spinners(o, phases)),
        };
        match result {
            Ok(()) => Verdict::Pass,
            Err(v) => v,
        }
    }

    fn check_boot(&self, o: &Outcome) -> Result<(), Verdict> {
        match kernel_end(o) {
            End::Result(TestResult::Success) => {}
            End::Result(TestResult::Skip) => {
                return Err(Verdict::Skip("the kernel reported SKIP".into()));
            }
            other => return Err(Verdict::Fail(other.describe(o))),
        }
        if o.emulator == Emulator::Qemu
            && serial::test_result(&o.serial) != Some(TestResult::Success)
        {
            return Err(fail(
                "exit code was SUCCESS but the serial log has no 'Test result: SUCCESS'",
            ));
        }
        let problems = self.boot_problems(&o.serial);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Verdict::Fail(problems.join("; ")))
        }
    }

    fn check_lines(&self, o: &Outcome, lines: &[&str]) -> Result<(), Verdict> {
        // (Also the first half of `Check::Spinners`.)
        let missing: Vec<String> = lines
            .iter()
            .filter(|l| !o.serial.contains(*l))
            .map(|l| format!("no line containing {l:?}"))
            .collect();
        if !missing.is_empty() {
            return Err(Verdict::Fail(missing.join("; ")));
        }
        self.check_selftest(o, Online::All)
    }

    fn check_guests(&self, o: &Outcome) -> Result<(), Verdict> {
        let mut problems = Vec::new();
        // Plain modules come first on the command line: none is a PVH kernel, so each
        // must be refused, by name, without stopping the guests after it.
        let offset = self.modules().len();
        for (i, module) in self.modules().iter().enumerate() {
            let refused = format!("domain {} ({}): not created", i + 1, module.name);
            if !o.serial.contains(&refused) {
                problems.push(format!("no '{refused}' line"));
            }
        }
        for (i, guest) in self.test.guests.iter().enumerate() {
            let id = offset + i + 1;
            let name = guest.name;
            if let Some(reason) = guest.crash {
                let crashed = format!("domain {id} ({name}): crashed: {reason}");
                if !o.serial.contains(&crashed) {
                    problems.push(format!("no '{crashed}' line"));
                }
                continue;
            }
            let result = format!("(d{id}) Test result: SUCCESS");
            if !serial::lines(&o.serial).any(|l| l.contains(&result)) {
                let got = serial::lines(&o.serial)
                    .find(|l| l.contains(&format!("(d{id}) Test result:")))
                    .map(|l| serial::sanitize(l).trim().to_string());
                problems.push(match got {
                    Some(line) => format!("guest {name}: {line}"),
                    None => format!("guest {name}: no '(d{id}) Test result:' line"),
                });
            }
            let ended = format!(
                "domain {id} ({name}): shutdown, reason {}",
                guest.shutdown_reason
            );
            if !o.serial.contains(&ended) {
                problems.push(format!("no '{ended}' line"));
            }
        }
        if problems.is_empty() {
            self.check_selftest(o, Online::All)
        } else {
            Err(Verdict::Fail(problems.join("; ")))
        }
    }

    fn check_selftest(&self, o: &Outcome, online: Online) -> Result<(), Verdict> {
        match kernel_end(o) {
            End::Result(TestResult::Success) => {}
            End::Result(TestResult::Skip) => {
                return Err(Verdict::Skip("the kernel reported SKIP".into()));
            }
            other => return Err(Verdict::Fail(other.describe(o))),
        }
        let want = match online {
            Online::All => self.cpus,
            Online::Exactly(n) => n,
        };
        let mut problems = Vec::new();
        match serial::online_cpus(&o.serial) {
            Some(n) if n == u64::from(want) => {}
            Some(n) => problems.push(format!("{n} CPU(s) online, expected {want}")),
            None => problems.push("no 'smp: N CPU(s) online' line".to_string()),
        }
        if let Err(why) = self.tsc_plausible(&o.serial) {
            problems.push(why);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Verdict::Fail(problems.join("; ")))
        }
    }

    /// The measured TSC frequency matches what the platform implies: Bochs' TSC runs
    /// at its configured `ips`; elsewhere a PIT cross-check, when printed, must agree
    /// with the primary calibration within 1%.
    fn tsc_plausible(&self, log: &str) -> Result<(), String> {
        let Some(tsc) = serial::tsc_khz(log) else {
            return Err("no 'time: tsc N kHz' line".into());
        };
        if let Some(ips) = self.bochs_ips() {
            let want = ips / 1000;
            if tsc.abs_diff(want) * 100 > want {
                return Err(format!("tsc {tsc} kHz, Bochs runs at {want} kHz (ips)"));
            }
        }
        if let Some(pit) = serial::pit_cross_check_khz(log)
            && tsc.abs_diff(pit) * 100 > tsc
        {
            return Err(format!(
                "tsc {tsc} kHz disagrees with the PIT's {pit} kHz by over 1%"
            ));
        }
        Ok(())
    }

    /// Every boot fact in `log` that differs from what this case must report.
    pub fn boot_problems(&self, log: &str) -> Vec<String> {
        let f = serial::boot_facts(log);
        let mut p = Vec::new();
        let protocol = self.boot.protocol();
        match f.booted_by.as_deref() {
            Some(b) if b == protocol => {}
            Some(b) => p.push(format!("booted by {b}, expected {protocol}")),
            None => p.push("no 'Ferrovisor <version> booted by' line".into()),
        }
        let mem_kib = u64::from(self.test.mem_mib) * 1024;
        match f.ram_kib {
            Some(r) if r.abs_diff(mem_kib) <= 1024 => {}
            Some(r) => p.push(format!(
                "memory: ram={r} KiB, expected {mem_kib} KiB +-1024"
            )),
            None => p.push("no 'memory: ram=' line".into()),
        }
        match (self.platform.expected_vendor(), f.vendor.as_deref()) {
            (_, None) => p.push("no 'cpu: vendor=' line".into()),
            (Some(want), Some(got)) if want != got => {
                p.push(format!("cpu vendor {got}, expected {want}"))
            }
            _ => {}
        }
        match (self.platform.expected_virt(), &f.virt) {
            (_, None) => p.push("no 'virt:' line".into()),
            (Some(want), Some(got)) => {
                if got.kind != want.kind {
                    p.push(format!("virt: {}, expected {}", got.kind, want.kind));
                } else {
                    for (key, value) in want.facts {
                        let have = got.fact(key);
                        if have != Some(value) {
                            p.push(format!(
                                "virt: {key}={}, expected {key}={value}",
                                have.unwrap_or("(missing)")
                            ));
                        }
                    }
                }
            }
            (None, Some(_)) => {}
        }
        let want = self.modules();
        match f.module_count {
            None => p.push("no 'modules: <N>' line".into()),
            Some(n) if n != want.len() as u64 => {
                p.push(format!("modules: {n}, expected {}", want.len()))
            }
            Some(_) => {
                for (i, m) in want.iter().enumerate() {
                    let Some(got) = f.modules.iter().find(|g| g.index == i as u64) else {
                        p.push(format!("no 'module {i}:' line"));
                        continue;
                    };
                    if got.size != Some(m.size as u64) {
                        let size = got.size.map_or("(missing)".to_string(), |s| s.to_string());
                        p.push(format!(
                            "module {i}: size={size}, expected {} ({})",
                            m.size, m.name
                        ));
                    }
                    let cmdline = got.cmdline.as_deref().unwrap_or("");
                    if !cmdline.contains(m.args) {
                        p.push(format!(
                            "module {i}: cmdline={cmdline:?} lacks {:?}",
                            m.args
                        ));
                    }
                }
            }
        }
        p
    }
}

fn fail(why: &str) -> Verdict {
    Verdict::Fail(why.to_string())
}

/// How the kernel said it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// A `Test result:` (from the QEMU exit code, or the log on Bochs).
    Result(TestResult),
    /// The fatal halt (exit code 0x12, or the halting line on Bochs).
    Fatal,
    /// Anything else.
    Other(String),
}

fn kernel_end(o: &Outcome) -> End {
    match o.emulator {
        Emulator::Qemu => match o.code() {
            Some(code::SUCCESS) => End::Result(TestResult::Success),
            Some(code::FAILURE) => End::Result(TestResult::Failure),
            Some(code::SKIP) => End::Result(TestResult::Skip),
            Some(code::ERROR) => End::Result(TestResult::Error),
            Some(code::FATAL) => End::Fatal,
            Some(c) => End::Other(format!("unknown exit code {c:#x} on port 0xf4")),
            None => End::Other("no exit code".into()),
        },
        Emulator::Bochs => match serial::test_result(&o.serial) {
            Some(r) => End::Result(r),
            None if o.serial.contains(serial::HALTING) => End::Fatal,
            None => End::Other("no 'Test result:' or 'FATAL: halting all CPUs' line".into()),
        },
    }
}

/// The first line of a fatal report, for failure reasons.
fn fatal_summary(log: &str) -> Option<String> {
    serial::lines(log)
        .find(|l| l.contains("FATAL: exception") || l.contains("PANIC at "))
        .or_else(|| serial::lines(log).find(|l| l.contains("FATAL")))
        .map(|l| serial::sanitize(l).trim().to_string())
}

impl End {
    fn describe(&self, o: &Outcome) -> String {
        let how = match o.emulator {
            Emulator::Qemu => o
                .code()
                .map(|c| format!(" (exit code {c:#x})"))
                .unwrap_or_default(),
            Emulator::Bochs => String::new(),
        };
        match self {
            End::Result(r) => format!("the kernel reported {}{how}", r.word()),
            End::Fatal => match fatal_summary(&o.serial) {
                Some(line) => format!("fatal halt{how}: {line}"),
                None => format!("fatal halt{how}"),
            },
            End::Other(why) => why.clone(),
        }
    }
}

fn check_fault(o: &Outcome) -> Result<(), Verdict> {
    match kernel_end(o) {
        End::Fatal => {}
        End::Result(TestResult::Skip) => {
            return Err(Verdict::Skip("the kernel reported SKIP".into()));
        }
        other => {
            return Err(Verdict::Fail(format!(
                "expected a fatal halt, but {}",
                other.describe(o)
            )));
        }
    }
    let expect = match serial::expectation(&o.serial) {
        Ok(Some(e)) => e,
        Ok(None) => return Err(fail("no 'selftest: expect' line before the fault")),
        Err(why) => return Err(Verdict::Fail(why)),
    };
    let Some(report) = serial::fatal_report(&o.serial) else {
        return Err(fail(
            "no fatal report ('FATAL: exception' or 'PANIC at') in the serial log",
        ));
    };
    serial::match_expectation(&expect, &report).map_err(Verdict::Fail)?;
    match &report {
        serial::FatalReport::Exception(r) => {
            let missing: Vec<&str> = [
                (r.rip.is_none(), "rip="),
                (r.cr2.is_none(), "cr2="),
                (r.stack.is_none(), "stack="),
                (!r.backtrace, "backtrace:"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, what)| *what)
            .collect();
            if !missing.is_empty() {
                return Err(Verdict::Fail(format!(
                    "the exception report lacks {}",
                    missing.join(", ")
                )));
            }
        }
        serial::FatalReport::Panic(r) => {
            if !r.backtrace {
                return Err(fail("the panic report lacks backtrace:"));
            }
        }
    }
    if !o.serial.contains(serial::HALTING) {
        return Err(fail("no 'FATAL: halting all CPUs' line"));
    }
    Ok(())
}

fn check_bad_boot(o: &Outcome, message: &str) -> Result<(), Verdict> {
    if !o
        .serial
        .to_ascii_lowercase()
        .contains(&message.to_ascii_lowercase())
    {
        let why = match kernel_end(o) {
            End::Fatal => String::new(),
            other => format!("; {}", other.describe(o)),
        };
        return Err(Verdict::Fail(format!(
            "the serial log lacks {message:?}{why}"
        )));
    }
    match kernel_end(o) {
        End::Fatal => Ok(()),
        other => Err(Verdict::Fail(format!(
            "expected a fatal halt (exit code 0x12), but {}",
            other.describe(o)
        ))),
    }
}

fn check_ap_panic(o: &Outcome) -> Result<(), Verdict> {
    match kernel_end(o) {
        End::Fatal => {}
        End::Result(TestResult::Skip) => {
            return Err(Verdict::Skip("the kernel reported SKIP".into()));
        }
        other => {
            return Err(Verdict::Fail(format!(
                "expected a fatal halt, but {}",
                other.describe(o)
            )));
        }
    }
    let Some((victim, others)) = serial::ap_panic_plan(&o.serial) else {
        return Err(fail("no 'selftest: ap-panic victim=V others=...' line"));
    };
    let mut problems = Vec::new();
    let expect = serial::expectation(&o.serial).map_err(Verdict::Fail)?;
    match (expect, serial::fatal_report(&o.serial)) {
        (Some(e), Some(report)) => {
            if let Err(why) = serial::match_expectation(&e, &report) {
                problems.push(why);
            }
        }
        _ => problems.push("no panic expectation and report".to_string()),
    }
    if !serial::lines(&o.serial).any(|l| l.contains("PANIC at ")) {
        problems.push("no PANIC line".to_string());
    }
    if !serial::lines(&o.serial).any(|l| l.trim() == format!("cpu={victim}")) {
        problems.push(format!("the panic report does not name cpu {victim}"));
    }
    for cpu in others {
        let stopped = format!("cpu {cpu}: stopped by NMI");
        if !o.serial.contains(&stopped) {
            problems.push(format!("no '{stopped}' report"));
        }
    }
    if !o.serial.contains(serial::HALTING) {
        problems.push("no 'FATAL: halting all CPUs' line".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Verdict::Fail(problems.join("; ")))
    }
}

/// Each of `lines` appears after the previous one.
fn check_ordered(serial: &str, lines: &[&str]) -> Result<(), Verdict> {
    let mut rest = serial;
    for line in lines {
        match rest.find(line) {
            Some(at) => rest = &rest[at + line.len()..],
            None => {
                return Err(Verdict::Fail(format!(
                    "no line containing {line:?} after the ones before it"
                )));
            }
        }
    }
    Ok(())
}

/// `(dN) spinner: window K count C share P` lines: (domain, window) -> (count, share).
fn spinner_windows(serial: &str) -> std::collections::HashMap<(u32, u32), (u64, u64)> {
    let mut found = std::collections::HashMap::new();
    for line in serial::lines(serial) {
        let Some(rest) = line.strip_prefix("(d") else {
            continue;
        };
        let Some((domain, rest)) = rest.split_once(") spinner: window ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let ([window, "count", count, "share", share, ..], Ok(domain)) =
            (words.as_slice(), domain.parse::<u32>())
            && let (Ok(w), Ok(c), Ok(p)) = (window.parse(), count.parse(), share.parse())
        {
            found.insert((domain, w), (c, p));
        }
    }
    found
}

fn check_spinners(o: &Outcome, phases: &[SpinPhase]) -> Result<(), Verdict> {
    let windows = spinner_windows(&o.serial);
    let mut problems = Vec::new();
    for phase in phases {
        let (first, last) = phase.windows;
        let sum = |domain: u32, pick: fn(&(u64, u64)) -> u64| -> Option<u64> {
            (first..=last)
                .map(|w| windows.get(&(domain, w)).map(pick))
                .sum()
        };
        let mut normalised = Vec::new();
        for &(domain, weight) in phase.ratio {
            match sum(domain, |&(_, share)| share) {
                Some(total) => normalised.push((domain, total as f64 / f64::from(weight))),
                None => problems.push(format!("d{domain}: windows {first}-{last} missing")),
            }
        }
        if !normalised.is_empty() && normalised.len() == phase.ratio.len() {
            let mean = normalised.iter().map(|(_, n)| n).sum::<f64>() / normalised.len() as f64;
            for (domain, n) in &normalised {
                let off = (n / mean - 1.0) * 100.0;
                if off.abs() > f64::from(phase.tolerance_percent) {
                    problems.push(format!(
                        "d{domain}: windows {first}-{last}: {off:+.1}% from its weight's share (limit {}%)",
                        phase.tolerance_percent
                    ));
                }
            }
        }
        let windows_in = u64::from(last - first + 1);
        for &(domain, least, most) in phase.shares {
            match sum(domain, |&(_, share)| share) {
                Some(total) => {
                    let share = total / windows_in;
                    if share < u64::from(least) || share > u64::from(most) {
                        problems.push(format!(
                            "d{domain}: windows {first}-{last}: share {share}\u{2030}, expected {least}-{most}"
                        ));
                    }
                }
                None => problems.push(format!("d{domain}: windows {first}-{last} missing")),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Verdict::Fail(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Exit, qemu_status};
    use std::time::Duration;

    fn case(test: &str, platform: Platform, boot: Boot) -> Case {
        let c = cases()
            .into_iter()
            .find(|c| c.test.name == test && c.platform == platform && c.boot == boot);
        c.unwrap_or_else(|| panic!("no case {test} {platform} {boot:?}"))
    }

    fn qemu(status: i32, serial: &str) -> Outcome {
        Outcome {
            emulator: Emulator::Qemu,
            exit: Exit::Status(status),
            serial: serial.into(),
            stderr: String::new(),
        }
    }

    fn bochs(serial: &str) -> Outcome {
        Outcome {
            emulator: Emulator::Bochs,
            exit: Exit::Status(1),
            serial: serial.into(),
            stderr: String::new(),
        }
    }

    fn boot_log(protocol: &str, vendor: &str, virt: &str, modules: &str) -> String {
        format!(
            "Ferrovisor 0.1.0 booted by {protocol}\n\
             cpu: vendor={vendor} family=0x17 model=0x1 stepping=0x2 brand=\"x\"\n\
             virt: {virt}\n\
             memory: ram=261631 KiB usable=250000 KiB free=240000 KiB\n\
             {modules}Test result: SUCCESS\n"
        )
    }

    const TWO_MODULES: &str = "modules: 2\n\
        module 0: addr=0x200000 size=5000 cmdline=\"build/modules/mod-a.bin role=alpha\"\n\
        module 1: addr=0x202000 size=70000 cmdline=\"build/modules/mod-b.bin role=beta\"\n";

    #[test]
    fn titles_and_dirs() {
        let titles: Vec<String> = cases().iter().map(Case::title).collect();
        assert!(titles.contains(&"boot on qemu-svm".to_string()));
        assert!(titles.contains(&"boot on qemu-svm/grub".to_string()));
        assert!(titles.contains(&"boot on qemu-svm/pvh".to_string()));
        assert!(titles.contains(&"boot on bochs-vmx".to_string()));
        assert!(titles.contains(&"fault-panic on bochs-vmx".to_string()));
        assert!(titles.contains(&"boot-bad-magic on qemu-svm".to_string()));
        let mut unique = titles.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), titles.len(), "titles must be unique");
        assert_eq!(
            case("boot", Platform::QemuSvm, Boot::Pvh).dir_name(),
            "boot-qemu-svm-pvh"
        );
        for c in cases() {
            assert!(c.platform.supports(c.boot), "{}", c.title());
        }
    }

    #[test]
    fn selection() {
        let c = case("boot", Platform::QemuSvm, Boot::Grub);
        assert!(c.selected(None, None));
        assert!(c.selected(Some("boot on qemu"), None));
        assert!(c.selected(Some("grub"), Some(Platform::QemuSvm)));
        assert!(!c.selected(Some("pvh"), None));
        assert!(!c.selected(None, Some(Platform::BochsVmx)));
    }

    #[test]
    fn module_bytes_are_deterministic_and_distinct() {
        let a = BOOT_MODULES[0].bytes();
        assert_eq!(a.len(), 5000);
        assert_eq!(a, BOOT_MODULES[0].bytes());
        assert_ne!(a[..100], BOOT_MODULES[1].bytes()[..100]);
    }

    #[test]
    fn boot_passes() {
        let c = case("boot", Platform::QemuSvm, Boot::Kernel);
        let log = boot_log(
            "multiboot1",
            "AuthenticAMD",
            "svm npt=yes nrips=no asids=16",
            TWO_MODULES,
        );
        assert_eq!(
            c.check(&qemu(qemu_status(code::SUCCESS), &log)),
            Verdict::Pass
        );
        let c = case("boot", Platform::QemuSvm, Boot::Pvh);
        let log = boot_log(
            "pvh",
            "AuthenticAMD",
            "svm npt=yes nrips=no asids=16",
            "modules: 0\n",
        );
        assert_eq!(c.check(&qemu(33, &log)), Verdict::Pass);
        let c = case("boot", Platform::BochsVmx, Boot::Grub);
        let log = boot_log(
            "multiboot2",
            "GenuineIntel",
            "vmx ept=yes unrestricted=yes vpid=yes",
            TWO_MODULES,
        );
        assert_eq!(c.check(&bochs(&log)), Verdict::Pass);
        let c = case("boot", Platform::Kvm, Boot::Kernel);
        let log = boot_log("multiboot1", "GenuineIntel", "none", TWO_MODULES);
        assert_eq!(c.check(&qemu(33, &log)), Verdict::Pass);
    }

    #[test]
    fn boot_failures_name_every_problem() {
        let c = case("boot", Platform::BochsSvm, Boot::Grub);
        let modules = "modules: 2\nmodule 0: addr=0x1 size=4999 cmdline=\"x\"\n";
        let log = boot_log(
            "multiboot1",
            "GenuineIntel",
            "svm npt=yes nrips=no asids=1",
            modules,
        )
        .replace("ram=261631", "ram=130000");
        let Verdict::Fail(why) = c.check(&bochs(&log)) else {
            panic!()
        };
        assert_eq!(
            why,
            "booted by multiboot1, expected multiboot2; memory: ram=130000 KiB, expected 262144 KiB +-1024; \
             cpu vendor GenuineIntel, expected AuthenticAMD; virt: nrips=no, expected nrips=yes; \
             module 0: size=4999, expected 5000 (mod-a.bin); module 0: cmdline=\"x\" lacks \"role=alpha\"; \
             no 'module 1:' line"
        );
        let c = case("boot", Platform::QemuSvm, Boot::Grub);
        assert_eq!(c.boot_problems("Test result: SUCCESS").len(), 5);
        let log = boot_log("multiboot2", "AuthenticAMD", "vmx ept=yes", "modules: 0\n");
        assert_eq!(
            c.boot_problems(&log),
            vec!["virt: vmx, expected svm", "modules: 0, expected 2"]
        );
    }

    #[test]
    fn boot_verdicts_from_exit() {
        let c = case("boot", Platform::QemuSvm, Boot::Kernel);
        assert_eq!(
            c.check(&qemu(0, "")),
            Verdict::Fail("triple fault or reset (QEMU exit status 0)".into())
        );
        assert_eq!(
            c.check(&qemu(39, "Test result: SKIP")),
            Verdict::Skip("the kernel reported SKIP".into())
        );
        assert_eq!(
            c.check(&qemu(35, "Test result: FAILURE")),
            Verdict::Fail("the kernel reported FAILURE (exit code 0x11)".into())
        );
        assert_eq!(
            c.check(&qemu(
                37,
                "x\nFATAL: exception #GP vector=13 error=0x0 cpu=0\nFATAL: halting all CPUs\n"
            )),
            Verdict::Fail(
                "fatal halt (exit code 0x12): FATAL: exception #GP vector=13 error=0x0 cpu=0"
                    .into()
            )
        );
        assert_eq!(
            c.check(&qemu(33, "no result line")),
            Verdict::Fail(
                "exit code was SUCCESS but the serial log has no 'Test result: SUCCESS'".into()
            )
        );
        let timeout = Outcome {
            exit: Exit::Timeout(Duration::from_secs(60)),
            ..qemu(0, "")
        };
        assert_eq!(c.check(&timeout), Verdict::Fail("timeout after 60s".into()));
        let b = case("boot", Platform::BochsVmx, Boot::Grub);
        let stopped = Outcome {
            exit: Exit::StoppedAfterVerdict(Duration::from_secs(10)),
            ..bochs("Test result: ERROR")
        };
        assert_eq!(
            b.check(&stopped),
            Verdict::Fail("the kernel reported ERROR".into())
        );
    }

    const NULL_DEREF: &str = "selftest: expect vector=14 cr2=0x0 stack=kernel\n\
        FATAL: exception #PF vector=14 error=0x0 cpu=0\n\
        rip=0xffffffff80101000 rsp=0xffffffff80200000\n\
        cr0=0x80000011 cr2=0x0000000000000000\n\
        stack=kernel\nbacktrace:\n  0xffffffff80101000\nFATAL: halting all CPUs\n";

    #[test]
    fn fault_checks() {
        let c = case("fault-null-deref", Platform::QemuSvm, Boot::Kernel);
        assert_eq!(c.check(&qemu(37, NULL_DEREF)), Verdict::Pass);
        let b = case("fault-null-deref", Platform::BochsVmx, Boot::Grub);
        assert_eq!(b.check(&bochs(NULL_DEREF)), Verdict::Pass);
        assert_eq!(
            c.check(&qemu(33, "Test result: SUCCESS")),
            Verdict::Fail(
                "expected a fatal halt, but the kernel reported SUCCESS (exit code 0x10)".into()
            )
        );
        let no_expect = NULL_DEREF.replace("selftest: expect", "selftest: hope");
        assert_eq!(
            c.check(&qemu(37, &no_expect)),
            Verdict::Fail("no 'selftest: expect' line before the fault".into())
        );
        let wrong_cr2 = NULL_DEREF.replace("cr2=0x0000000000000000", "cr2=0x0000000000000008");
        assert_eq!(
            c.check(&qemu(37, &wrong_cr2)),
            Verdict::Fail("expected cr2=0x0, got cr2=0x8".into())
        );
        let no_bt = NULL_DEREF.replace("backtrace:", "trace");
        assert_eq!(
            c.check(&qemu(37, &no_bt)),
            Verdict::Fail("the exception report lacks backtrace:".into())
        );
        let no_halt = NULL_DEREF.replace("FATAL: halting all CPUs", "");
        assert_eq!(
            c.check(&qemu(37, &no_halt)),
            Verdict::Fail("no 'FATAL: halting all CPUs' line".into())
        );
        assert_eq!(
            b.check(&bochs(&no_halt)),
            Verdict::Fail("Bochs exited before the kernel finished".into())
        );
    }

    #[test]
    fn panic_check() {
        let c = case("fault-panic", Platform::QemuSvm, Boot::Kernel);
        let log = "selftest: expect panic=\"deliberate\" location=hypervisor/src/selftest.rs:10\n\
            PANIC at hypervisor/src/selftest.rs:10:5: deliberate\nbacktrace:\n  0x1\nFATAL: halting all CPUs\n";
        assert_eq!(c.check(&qemu(37, log)), Verdict::Pass);
        let moved = log.replace(":10:5:", ":11:5:");
        assert_eq!(
            c.check(&qemu(37, &moved)),
            Verdict::Fail("expected panic at hypervisor/src/selftest.rs:10, got hypervisor/src/selftest.rs:11".into())
        );
    }

    #[test]
    fn bad_boot_checks() {
        let c = case(
            "boot-bad-magic",
            Platform::QemuSvm,
            Boot::Shim(BadBoot::BadMagic),
        );
        let log = "boot: unknown boot magic 0xDEADBEEF (ebx=0x0)\nFATAL: halting all CPUs\n";
        assert_eq!(c.check(&qemu(37, log)), Verdict::Pass);
        assert_eq!(
            c.check(&qemu(0, log)),
            Verdict::Fail("triple fault or reset (QEMU exit status 0)".into())
        );
        assert_eq!(
            c.check(&qemu(33, log)),
            Verdict::Fail("expected a fatal halt (exit code 0x12), but the kernel reported SUCCESS (exit code 0x10)".into())
        );
        let n = case(
            "boot-no-memory-map",
            Platform::QemuSvm,
            Boot::Shim(BadBoot::NoMemoryMap),
        );
        assert_eq!(
            n.check(&qemu(37, log)),
            Verdict::Fail("the serial log lacks \"no memory map\"".into())
        );
        assert_eq!(n.label(), "qemu-svm");
        assert!(n.modules().is_empty());
    }

    fn spinner_log(lines: &[(u32, u32, u64)]) -> String {
        lines
            .iter()
            .map(|(d, w, share)| format!("(d{d}) spinner: window {w} count 100 share {share}\n"))
            .collect()
    }

    #[test]
    fn spinner_phases_judge_shares_against_weights() {
        let phases = [SpinPhase {
            windows: (0, 1),
            ratio: &[(1, 1), (2, 2)],
            tolerance_percent: 10,
            shares: &[(3, 200, 300)],
        }];
        let good = spinner_log(&[
            (1, 0, 330),
            (1, 1, 336),
            (2, 0, 660),
            (2, 1, 664),
            (3, 0, 250),
            (3, 1, 240),
        ]);
        let outcome = |serial: String| bochs(&serial);
        assert!(check_spinners(&outcome(good), &phases).is_ok());
        // d2 at 1:1 instead of 1:2, and d3 over its cap.
        let bad = spinner_log(&[
            (1, 0, 500),
            (1, 1, 500),
            (2, 0, 500),
            (2, 1, 500),
            (3, 0, 400),
            (3, 1, 400),
        ]);
        let Err(Verdict::Fail(why)) = check_spinners(&outcome(bad), &phases) else {
            panic!("unequal shares passed");
        };
        assert!(why.contains("d2: windows 0-1"), "{why}");
        assert!(why.contains("d3: windows 0-1: share 400"), "{why}");
        // A missing window is a failure, not a pass.
        let missing = spinner_log(&[
            (1, 0, 330),
            (2, 0, 660),
            (2, 1, 664),
            (3, 0, 250),
            (3, 1, 240),
        ]);
        assert!(check_spinners(&outcome(missing), &phases).is_err());
    }

    #[test]
    fn ordered_lines_must_follow_each_other() {
        let log = "a\nb\nc\n";
        assert!(check_ordered(log, &["a", "c"]).is_ok());
        assert!(check_ordered(log, &["c", "a"]).is_err());
        assert!(check_ordered(log, &["a", "d"]).is_err());
    }
}
