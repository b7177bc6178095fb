//! Secondary vCPUs through `vcpu_op`: the domain has the `vcpus=N` the command line
//! names; `VCPUOP_is_up`, `VCPUOP_up` and `VCPUOP_initialise` refuse what Xen refuses
//! with Xen's errnos (up before initialise, a bad mode, a bad pointer, a vCPU that
//! does not exist, initialising twice); and vCPUs 1..N started with a 64-bit
//! `vcpu_hvm_context` all run, each seeing its own id in Xen's CPUID leaf base+4 and
//! taking 1000 CPUID exits before parking with `cli; hlt`.
#![cfg_attr(target_os = "none", no_std, no_main)]

use ferrovisor_test_guests::start_info::StartInfo;
use ferrovisor_test_guests::{Verdict, guest_test};

#[cfg(target_os = "none")]
mod guest {
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use ferrovisor_test_guests::abi::{
        EEXIST, EFAULT, EINVAL, ENOENT, VCPUOP_INITIALISE, VcpuHvmContext,
        XEN_HVM_CPUID_VCPU_ID_PRESENT,
    };
    use ferrovisor_test_guests::hypercall::{cpuid, halt_forever, xen_cpuid_base};
    use ferrovisor_test_guests::smp::{
        self, MAX_VCPUS, context_64, down, initialise, is_up, start_vcpu, up, vcpu_count,
    };
    use ferrovisor_test_guests::{Checks, println};

    use super::{StartInfo, Verdict};

    /// Guest-physical address outside the identity-mapped first GiB, so not guest
    /// RAM: the hypervisor must answer -EFAULT rather than read it.
    const BAD_POINTER: u64 = 0xdead_0000_0000;
    /// CPUID exits each secondary vCPU takes before it reports.
    const EXITS: u32 = 1000;
    /// How long the boot vCPU waits for the others (TSC time).
    const ARRIVAL_TIMEOUT_MS: u64 = 10_000;

    /// Not reported yet.
    const UNSET: u64 = u64::MAX;

    /// What each vCPU saw in Xen's leaf base+4: EAX << 32 | EBX.
    static SEEN_ID: [AtomicU64; MAX_VCPUS as usize] =
        [const { AtomicU64::new(UNSET) }; MAX_VCPUS as usize];
    /// Secondary vCPUs that finished their exits.
    static ARRIVED: AtomicU32 = AtomicU32::new(0);

    fn secondary(id: u32) -> ! {
        let [flags, vcpu_id, _, _] = cpuid(xen_cpuid_base() + 4, 0);
        SEEN_ID[id as usize].store(
            u64::from(flags) << 32 | u64::from(vcpu_id),
            Ordering::Release,
        );
        for _ in 0..EXITS {
            core::hint::black_box(cpuid(0x4000_0000, 0));
        }
        ARRIVED.fetch_add(1, Ordering::AcqRel);
        halt_forever()
    }

    core::arch::global_asm!(
        r#"
        .section .text.smp_guest_park, "ax"
        .code64
    smp_guest_park:
        cli
        hlt
        jmp smp_guest_park
        "#
    );

    unsafe extern "C" {
        static smp_guest_park: u8;
    }

    /// A context the hypervisor must accept on its merits: 64-bit, this vCPU's paging
    /// state, starting at code that needs no stack and stops the vCPU (should a
    /// hypervisor wrongly start a vCPU with it, nothing else is disturbed).
    fn valid_context(vcpu: u32) -> VcpuHvmContext {
        context_64((&raw const smp_guest_park) as u64, 0, u64::from(vcpu))
    }

    pub fn test(info: &StartInfo) -> Verdict {
        let Some(n) = info.cmdline_value("vcpus") else {
            println!("smp: no vcpus=N on the command line {:?}", info.cmdline());
            return Verdict::Error;
        };
        let n = match u32::try_from(n) {
            Ok(n) if (1..=MAX_VCPUS).contains(&n) => n,
            _ => {
                println!("smp: vcpus={n} is outside 1..={MAX_VCPUS}");
                return Verdict::Error;
            }
        };
        let mut t = Checks::default();
        let count = vcpu_count();
        t.check(
            count == n,
            format_args!("vcpu_count() = {count}, expected {n}"),
        );
        let up0 = is_up(0);
        t.check(
            up0 == 1,
            format_args!("VCPUOP_is_up(0) = {up0}, expected 1"),
        );

        if n >= 2 {
            let up1 = is_up(1);
            t.check(
                up1 == 0,
                format_args!("VCPUOP_is_up(1) before start = {up1}, expected 0"),
            );
            let early = up(1);
            t.check(
                early == EINVAL,
                format_args!("VCPUOP_up(1) before initialise = {early}, expected -EINVAL"),
            );
            let mut bad_mode = valid_context(1);
            bad_mode.mode = 7;
            let ret = initialise(1, &bad_mode);
            t.check(
                ret == EINVAL,
                format_args!("VCPUOP_initialise(1) with mode 7 = {ret}, expected -EINVAL"),
            );
            // SAFETY: the pointer is deliberately outside guest RAM; the hypervisor
            // must refuse it, and nothing of ours lies there.
            let ret = unsafe { smp::vcpu_op(VCPUOP_INITIALISE, 1, BAD_POINTER) };
            t.check(
                ret == EFAULT,
                format_args!("VCPUOP_initialise(1, {BAD_POINTER:#x}) = {ret}, expected -EFAULT"),
            );
            let up1 = is_up(1);
            t.check(
                up1 == 0,
                format_args!("VCPUOP_is_up(1) after refused calls = {up1}, expected 0"),
            );
        }
        let ret = is_up(n);
        t.check(
            ret == ENOENT,
            format_args!("VCPUOP_is_up({n}) = {ret}, expected -ENOENT"),
        );
        let ret = up(n);
        t.check(
            ret == ENOENT,
            format_args!("VCPUOP_up({n}) = {ret}, expected -ENOENT"),
        );
        let ret = initialise(n, &valid_context(n));
        t.check(
            ret == ENOENT,
            format_args!("VCPUOP_initialise({n}) = {ret}, expected -ENOENT"),
        );

        let mut started = 0;
        for id in 1..n {
            match start_vcpu(id, secondary) {
                Ok(()) => started += 1,
                Err(e) => t.check(false, format_args!("starting vCPU {id}: error {e}")),
            }
        }
        let all = smp::wait_until(ARRIVAL_TIMEOUT_MS, || {
            ARRIVED.load(Ordering::Acquire) >= started
        });
        let arrived = ARRIVED.load(Ordering::Acquire);
        t.check(
            all,
            format_args!(
                "{arrived} of {started} started vCPUs finished {EXITS} CPUID exits within {ARRIVAL_TIMEOUT_MS} ms"
            ),
        );
        for id in 1..n {
            let seen = SEEN_ID[id as usize].load(Ordering::Acquire);
            if seen == UNSET {
                t.check(false, format_args!("vCPU {id} never read its id"));
                continue;
            }
            let (flags, vcpu_id) = ((seen >> 32) as u32, seen as u32);
            t.check(
                flags & XEN_HVM_CPUID_VCPU_ID_PRESENT != 0 && vcpu_id == id,
                format_args!(
                    "vCPU {id} saw leaf base+4 EAX {flags:#x} EBX {vcpu_id}, expected the id-present bit and {id}"
                ),
            );
        }
        if n >= 2 {
            let ret = initialise(1, &valid_context(1));
            t.check(
                ret == EEXIST,
                format_args!("VCPUOP_initialise(1) once running = {ret}, expected -EEXIST"),
            );
        }
        for id in 0..n {
            let ret = is_up(id);
            t.check(
                ret == 1,
                format_args!("VCPUOP_is_up({id}) = {ret} with all started, expected 1"),
            );
        }
        println!("smp: {} vCPUs up", 1 + ARRIVED.load(Ordering::Acquire));
        if n >= 2 {
            // Down (the parked vCPU stops, keeping its state) and up again; a bad id.
            let (d, after_down) = (down(1), is_up(1));
            let (u, after_up) = (up(1), is_up(1));
            t.check(
                d == 0 && after_down == 0 && u == 0 && after_up == 1,
                format_args!(
                    "VCPUOP_down(1) = {d}, is_up {after_down}; VCPUOP_up(1) = {u}, is_up {after_up}; expected 0, 0, 0, 1"
                ),
            );
            let ret = down(n);
            t.check(
                ret == ENOENT,
                format_args!("VCPUOP_down({n}) = {ret}, expected -ENOENT"),
            );
        }
        t.verdict()
    }
}

#[cfg(target_os = "none")]
use guest::test;

#[cfg(not(target_os = "none"))]
fn test(_info: &StartInfo) -> Verdict {
    Verdict::Skip
}

guest_test!("smp", test);
