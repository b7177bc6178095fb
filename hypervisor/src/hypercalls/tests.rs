use super::*;

/// Guest memory for tests: one window of bytes at a guest-virtual base; everything
/// else faults.
struct Window {
    base: u64,
    bytes: Vec<u8>,
}

impl Window {
    fn new(base: u64, len: usize) -> Self {
        Self {
            base,
            bytes: vec![0; len],
        }
    }
    fn range(&self, gva: u64, len: usize) -> Result<std::ops::Range<usize>, XenErrno> {
        // Copying nothing succeeds wherever it points, as Xen's copy helpers do.
        if len == 0 {
            return Ok(0..0);
        }
        let start = gva.checked_sub(self.base).ok_or(XenErrno::EFAULT)? as usize;
        let end = start.checked_add(len).ok_or(XenErrno::EFAULT)?;
        if end > self.bytes.len() {
            return Err(XenErrno::EFAULT);
        }
        Ok(start..end)
    }
}

impl GuestAccess for Window {
    fn copy_from_guest(&self, gva: u64, buf: &mut [u8]) -> Result<(), XenErrno> {
        let r = self.range(gva, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }
    fn copy_to_guest(&mut self, gva: u64, buf: &[u8]) -> Result<(), XenErrno> {
        let r = self.range(gva, buf.len())?;
        self.bytes[r].copy_from_slice(buf);
        Ok(())
    }
}

const BASE: u64 = 0x10_0000;
const ENOSYS: Outcome = Outcome::Return(-38);
const EFAULT: Outcome = Outcome::Return(-14);
const EINVAL: Outcome = Outcome::Return(-22);

/// A domain model: console output collected, `vcpus` vCPUs of which the first is up.
struct Env {
    printed: Vec<u8>,
    time_areas: Vec<Option<u64>>,
    initialised: Vec<Option<VcpuInitState>>,
    up: Vec<bool>,
}

impl Env {
    fn new(vcpus: usize) -> Self {
        let mut initialised = vec![None; vcpus];
        initialised[0] = Some(VcpuInitState::pvh_entry(0x10_0000, 0x1000));
        let mut up = vec![false; vcpus];
        up[0] = true;
        Self {
            printed: Vec::new(),
            time_areas: vec![None; vcpus],
            initialised,
            up,
        }
    }
}

impl DomainEnv for Env {
    fn console_write(&mut self, bytes: &[u8]) {
        self.printed.extend_from_slice(bytes);
    }
    fn vcpu_count(&self) -> u32 {
        self.up.len() as u32
    }
    fn vcpu_initialised(&self, vcpu: u32) -> bool {
        self.initialised[vcpu as usize].is_some()
    }
    fn vcpu_is_up(&self, vcpu: u32) -> bool {
        self.up[vcpu as usize]
    }
    fn vcpu_initialise(&mut self, vcpu: u32, state: &VcpuInitState) -> Result<(), XenErrno> {
        self.initialised[vcpu as usize] = Some(*state);
        Ok(())
    }
    fn vcpu_up(&mut self, vcpu: u32) -> Result<(), XenErrno> {
        self.up[vcpu as usize] = true;
        Ok(())
    }
    fn vcpu_down(&mut self, vcpu: u32) {
        self.up[vcpu as usize] = false;
    }
    fn handle(&self) -> [u8; 16] {
        *b"0123456789abcdef"
    }
    fn register_time_area(&mut self, vcpu: u32, gva: u64) -> Result<(), XenErrno> {
        self.time_areas[vcpu as usize] = Some(gva);
        Ok(())
    }
}

fn call(number: u64, args: [u64; 5], guest: &mut Window) -> (Outcome, Vec<u8>) {
    let mut env = Env::new(1);
    let outcome = dispatch(number, args, guest, &mut env);
    (outcome, env.printed)
}

#[test]
fn xen_version_sub_ops() {
    let mut g = Window::new(BASE, 64);
    assert_eq!(
        call(17, [0, 0, 0, 0, 0], &mut g).0,
        Outcome::Return(0x0004_0011)
    );
    // The sub-op is a C int: garbage in the upper half is ignored.
    assert_eq!(
        call(17, [0xdead_0000_0000_0000, 0, 0, 0, 0], &mut g).0,
        Outcome::Return(0x0004_0011)
    );
    assert_eq!(call(17, [1, BASE, 0, 0, 0], &mut g).0, Outcome::Return(0));
    assert_eq!(&g.bytes[..16], EXTRAVERSION);
    assert_eq!(call(1 << 8, [0; 5], &mut g).0, ENOSYS);
    // get_features, submap 0 and 1.
    g.bytes[16..20].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        call(17, [6, BASE + 16, 0, 0, 0], &mut g).0,
        Outcome::Return(0)
    );
    assert_eq!(
        u32::from_le_bytes(g.bytes[20..24].try_into().unwrap()),
        HVM_DOMU_FEATURES
    );
    g.bytes[16..20].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(
        call(17, [6, BASE + 16, 0, 0, 0], &mut g).0,
        Outcome::Return(0)
    );
    assert_eq!(u32::from_le_bytes(g.bytes[20..24].try_into().unwrap()), 0);
    // Bad pointers: EFAULT, nothing written.
    assert_eq!(call(17, [1, 0x9999_0000, 0, 0, 0], &mut g).0, EFAULT);
    assert_eq!(call(17, [6, BASE + 62, 0, 0, 0], &mut g).0, EFAULT);
    assert_eq!(call(17, [6, u64::MAX - 2, 0, 0, 0], &mut g).0, EFAULT);
    // Unknown or unimplemented queries.
    assert_eq!(call(17, [99, 0, 0, 0, 0], &mut g).0, ENOSYS);
    assert_eq!(call(17, [2, BASE, 0, 0, 0], &mut g).0, ENOSYS);
}

#[test]
fn console_io_validates_everything() {
    let mut g = Window::new(BASE, 8192);
    g.bytes[..5].copy_from_slice(b"hello");
    assert_eq!(
        call(18, [0, 5, BASE, 0, 0], &mut g),
        (Outcome::Return(0), b"hello".to_vec())
    );
    assert_eq!(
        call(18, [0, 0, 0, 0, 0], &mut g),
        (Outcome::Return(0), vec![])
    );
    // Too long, straddling the end of guest memory, unmapped, or overflowing: nothing
    // is printed.
    assert_eq!(call(18, [0, 4097, BASE, 0, 0], &mut g), (EINVAL, vec![]));
    assert_eq!(
        call(18, [0, u64::MAX, BASE, 0, 0], &mut g),
        (EINVAL, vec![])
    );
    assert_eq!(
        call(18, [0, 16, BASE + 8190, 0, 0], &mut g),
        (EFAULT, vec![])
    );
    assert_eq!(
        call(18, [0, 16, 0x7f00_0000_0000, 0, 0], &mut g),
        (EFAULT, vec![])
    );
    assert_eq!(
        call(18, [0, 16, u64::MAX - 3, 0, 0], &mut g),
        (EFAULT, vec![])
    );
    assert_eq!(call(18, [1, 16, BASE, 0, 0], &mut g).0, Outcome::Return(0));
    assert_eq!(call(18, [7, 0, 0, 0, 0], &mut g).0, ENOSYS);
}

#[test]
fn sched_op_shutdown_reasons() {
    let mut g = Window::new(BASE, 16);
    for (raw, reason) in [
        (0, ShutdownReason::Poweroff),
        (1, ShutdownReason::Reboot),
        (2, ShutdownReason::Suspend),
        (3, ShutdownReason::Crash),
        (4, ShutdownReason::Watchdog),
    ] {
        g.bytes[..4].copy_from_slice(&(raw as u32).to_le_bytes());
        assert_eq!(
            call(29, [2, BASE, 0, 0, 0], &mut g).0,
            Outcome::Shutdown(reason)
        );
    }
    g.bytes[..4].copy_from_slice(&77u32.to_le_bytes());
    assert_eq!(call(29, [2, BASE, 0, 0, 0], &mut g).0, EINVAL);
    assert_eq!(call(29, [2, 0, 0, 0, 0], &mut g).0, EFAULT);
    assert_eq!(call(29, [42, 0, 0, 0, 0], &mut g).0, ENOSYS);
}

#[test]
fn unknown_and_unimplemented_hypercalls() {
    let mut g = Window::new(BASE, 16);
    for number in [0, 12, 20, 32, 34, 11, 56, 64, 1 << 32, u64::MAX] {
        assert_eq!(call(number, [0; 5], &mut g).0, ENOSYS, "hypercall {number}");
    }
}

const ENOENT: Outcome = Outcome::Return(-2);
const EEXIST: Outcome = Outcome::Return(-17);

/// A valid 64-bit `vcpu_hvm_context` at `at` in the window.
fn put_context_64(g: &mut Window, at: usize, rip: u64) {
    let b = &mut g.bytes[at..at + 128];
    b.fill(0);
    b[..4].copy_from_slice(&1u32.to_le_bytes());
    let regs: [u64; 14] = [
        0,
        0,
        0,
        0,
        0x8000,
        0,
        0,
        7,
        rip,
        2,
        0x8000_0011,
        0x1000,
        0x20,
        0x100,
    ];
    for (i, v) in regs.iter().enumerate() {
        b[8 + i * 8..16 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
}

#[test]
fn vcpu_op_brings_up_secondary_vcpus_with_xen_errnos() {
    let mut g = Window::new(BASE, 512);
    let mut env = Env::new(3);
    let op = |cmd: u64, vcpu: u64, arg: u64, g: &mut Window, env: &mut Env| {
        dispatch(24, [cmd, vcpu, arg, 0, 0], g, env)
    };
    // is_up: vCPU 0 yes, 1 no, 3 does not exist; the id's upper half is not ignored
    // beyond 32 bits (unsigned int), so 1 << 32 | 1 is vCPU 1.
    assert_eq!(op(3, 0, 0, &mut g, &mut env), Outcome::Return(1));
    assert_eq!(op(3, 1, 0, &mut g, &mut env), Outcome::Return(0));
    assert_eq!(op(3, 3, 0, &mut g, &mut env), ENOENT);
    assert_eq!(op(1, 3, 0, &mut g, &mut env), ENOENT);
    // Up before initialise; initialise of the running vCPU 0.
    assert_eq!(op(1, 1, 0, &mut g, &mut env), EINVAL);
    put_context_64(&mut g, 0, 0x20_0000);
    assert_eq!(op(0, 0, BASE, &mut g, &mut env), EEXIST);
    // Bad pointer, bad mode: nothing changes.
    assert_eq!(op(0, 1, BASE + 400, &mut g, &mut env), EFAULT);
    g.bytes[0] = 9;
    assert_eq!(op(0, 1, BASE, &mut g, &mut env), EINVAL);
    assert!(env.initialised[1].is_none());
    // A good context, then up.
    put_context_64(&mut g, 0, 0x20_0000);
    assert_eq!(op(0, 1, BASE, &mut g, &mut env), Outcome::Return(0));
    let state = env.initialised[1].unwrap();
    assert_eq!(
        (state.rip, state.rsp, state.regs.rdi),
        (0x20_0000, 0x8000, 7)
    );
    assert_eq!(op(0, 1, BASE, &mut g, &mut env), EEXIST);
    assert_eq!(
        op(1, (1 << 32) | 1, 0, &mut g, &mut env),
        Outcome::Return(0)
    );
    assert!(env.up[1]);
    assert_eq!(op(3, 1, 0, &mut g, &mut env), Outcome::Return(1));
    // Down and up again; down of the last vCPU up is a poweroff.
    assert_eq!(op(2, 1, 0, &mut g, &mut env), Outcome::Return(0));
    assert_eq!(op(3, 1, 0, &mut g, &mut env), Outcome::Return(0));
    assert_eq!(op(2, 1, 0, &mut g, &mut env), Outcome::Return(0));
    assert_eq!(op(2, 3, 0, &mut g, &mut env), ENOENT);
    assert_eq!(
        op(2, 0, 0, &mut g, &mut env),
        Outcome::Shutdown(ShutdownReason::Poweroff)
    );
    assert_eq!(op(1, 1, 0, &mut g, &mut env), Outcome::Return(0));
    assert_eq!(op(3, 1, 0, &mut g, &mut env), Outcome::Return(1));
    // Unknown and not-yet-implemented commands.
    assert_eq!(op(99, 1, 0, &mut g, &mut env), ENOSYS);
    assert_eq!(op(8, 1, 0, &mut g, &mut env), ENOSYS);
}

#[test]
fn sched_op_yield_and_block_reach_the_scheduler() {
    let mut g = Window::new(BASE, 64);
    assert_eq!(call(29, [0, 0, 0, 0, 0], &mut g).0, Outcome::Yield);
    assert_eq!(
        call(29, [1, 0, 0, 0, 0], &mut g).0,
        Outcome::Block { deadline_ns: None }
    );
}

#[test]
fn sched_op_poll_checks_then_blocks_until_its_timeout() {
    let mut g = Window::new(BASE, 64);
    let sched_poll = |g: &mut Window, ports: u64, nr_ports: u32, timeout: u64| {
        g.bytes[..8].copy_from_slice(&ports.to_le_bytes());
        g.bytes[8..12].copy_from_slice(&nr_ports.to_le_bytes());
        g.bytes[12..16].fill(0);
        g.bytes[16..24].copy_from_slice(&timeout.to_le_bytes());
    };
    // Too many ports; a bad argument; a bad port array; a port without event channels.
    sched_poll(&mut g, BASE + 32, 129, 0);
    assert_eq!(call(29, [3, BASE, 0, 0, 0], &mut g).0, EINVAL);
    assert_eq!(call(29, [3, 0xdead_0000, 0, 0, 0], &mut g).0, EFAULT);
    sched_poll(&mut g, 0xdead_0000, 1, 0);
    assert_eq!(call(29, [3, BASE, 0, 0, 0], &mut g).0, EFAULT);
    sched_poll(&mut g, BASE + 32, 1, 0);
    g.bytes[32..36].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(call(29, [3, BASE, 0, 0, 0], &mut g).0, EINVAL);
    // No ports: block until the timeout (absolute), or for ever without one.
    sched_poll(&mut g, 0, 0, 5_000_000);
    assert_eq!(
        call(29, [3, BASE, 0, 0, 0], &mut g).0,
        Outcome::Block {
            deadline_ns: Some(5_000_000)
        }
    );
    sched_poll(&mut g, 0, 0, 0);
    assert_eq!(
        call(29, [3, BASE, 0, 0, 0], &mut g).0,
        Outcome::Block { deadline_ns: None }
    );
}

#[test]
fn vcpu_time_area_registration_copies_the_address_in() {
    let mut g = Window::new(BASE, 64);
    let mut env = Env::new(2);
    g.bytes[..8].copy_from_slice(&0x1234_5000u64.to_le_bytes());
    assert_eq!(
        dispatch(24, [13, 1, BASE, 0, 0], &mut g, &mut env),
        Outcome::Return(0)
    );
    assert_eq!(env.time_areas[1], Some(0x1234_5000));
    assert_eq!(
        dispatch(24, [13, 1, 0xdead_0000, 0, 0], &mut g, &mut env),
        EFAULT
    );
    assert_eq!(dispatch(24, [13, 2, BASE, 0, 0], &mut g, &mut env), ENOENT);
}

#[test]
fn xen_version_guest_handle_is_the_domain_uuid() {
    let mut g = Window::new(BASE, 32);
    assert_eq!(call(17, [8, BASE, 0, 0, 0], &mut g).0, Outcome::Return(0));
    assert_eq!(&g.bytes[..16], b"0123456789abcdef");
    assert_eq!(call(17, [8, BASE + 20, 0, 0, 0], &mut g).0, EFAULT);
}
