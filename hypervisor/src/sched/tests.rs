//! Host tests of the scheduler: behaviours, then randomised properties checked while
//! driving it the way the hypervisor will (a small discrete-event loop: timers, kicks,
//! vCPUs that run and block). The full simulator with the published figures is
//! `cargo xtask bench sched`.

extern crate std;

use std::boxed::Box;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::vec::Vec;

use super::*;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

type Sched = Scheduler<64, 4>;

use crate::test_rng::Rng;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Always runnable.
    Hog,
    /// Runs `run` ns of CPU, then blocks for `sleep` ns.
    Io { run: u64, sleep: u64 },
    /// Runs and sleeps for random times up to these.
    Random { run: u64, sleep: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer { cpu: u16, generation: u64 },
    Kick { cpu: u16 },
    Wake { vcpu: u32 },
    BurstEnd { vcpu: u32, generation: u64 },
}

struct SimVcpu {
    behaviour: Behaviour,
    affinity: CpuMask,
    /// CPU time left in the current burst.
    left: u64,
    generation: u64,
    runtime: u64,
    queued_since: Option<u64>,
    max_wait: u64,
    woke_at: Option<u64>,
    max_latency: u64,
    paused: bool,
}

struct Driver {
    s: Box<Sched>,
    now: u64,
    start: u64,
    ncpus: usize,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    running: Vec<Option<u32>>,
    since: Vec<u64>,
    timer_gen: Vec<u64>,
    vcpus: Vec<SimVcpu>,
    rng: Rng,
    decisions: u64,
}

impl Driver {
    fn new(ncpus: usize, config: SchedConfig, seed: u64) -> Self {
        let mut s = Box::new(Sched::new(config));
        let start = 1_000 * MS;
        for c in 0..ncpus {
            s.cpu_up(CpuId(c as u16), start).unwrap();
        }
        Self {
            s,
            now: start,
            start,
            ncpus,
            seq: 0,
            events: BinaryHeap::new(),
            running: std::vec![None; ncpus],
            since: std::vec![0; ncpus],
            timer_gen: std::vec![0; ncpus],
            vcpus: Vec::new(),
            rng: Rng(seed | 1),
            decisions: 0,
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, ev)));
    }

    fn add_domain(&mut self, dom: u16, weight: u16, cap: u16) {
        let p = SchedParams {
            weight,
            cap_percent: cap,
        };
        self.s.add_domain(DomainId(dom), p, self.now).unwrap();
    }

    /// Adds a vCPU in its own domain (same number) and wakes it.
    fn add(&mut self, weight: u16, cap: u16, affinity: CpuMask, behaviour: Behaviour) -> u32 {
        let id = self.vcpus.len() as u32;
        self.add_domain(id as u16, weight, cap);
        self.add_to(id as u16, affinity, behaviour)
    }

    fn add_to(&mut self, dom: u16, affinity: CpuMask, behaviour: Behaviour) -> u32 {
        let id = self.vcpus.len() as u32;
        self.s
            .add_vcpu(VcpuId(id), DomainId(dom), affinity, self.now)
            .unwrap();
        self.vcpus.push(SimVcpu {
            behaviour,
            affinity,
            left: 0,
            generation: 0,
            runtime: 0,
            queued_since: None,
            max_wait: 0,
            woke_at: None,
            max_latency: 0,
            paused: false,
        });
        self.push(self.now, Ev::Wake { vcpu: id });
        id
    }

    fn burst(&mut self, v: usize) -> u64 {
        match self.vcpus[v].behaviour {
            Behaviour::Hog => u64::MAX,
            Behaviour::Io { run, .. } => run,
            Behaviour::Random { run, .. } => 1 + self.rng.below(run),
        }
    }

    fn sleep_time(&mut self, v: usize) -> u64 {
        match self.vcpus[v].behaviour {
            Behaviour::Hog => 0,
            Behaviour::Io { sleep, .. } => sleep,
            Behaviour::Random { sleep, .. } => 1 + self.rng.below(sleep),
        }
    }

    /// Stops the driver's view of `c` running anything, accounting the time.
    fn unrun(&mut self, c: usize) {
        if let Some(p) = self.running[c].take() {
            let ran = self.now - self.since[c];
            let v = &mut self.vcpus[p as usize];
            v.runtime += ran;
            if v.left != u64::MAX {
                v.left -= ran.min(v.left);
            }
            v.generation += 1;
        }
    }

    fn decide(&mut self, c: usize) {
        let d = self.s.schedule(CpuId(c as u16), self.now);
        self.decisions += 1;
        if d.run.map(|v| v.0) != self.running[c] {
            self.unrun(c);
            if let Some(VcpuId(n)) = d.run {
                assert!(
                    !self.running.contains(&Some(n)),
                    "vCPU {n} runs on two CPUs at once"
                );
                let v = &mut self.vcpus[n as usize];
                assert!(
                    v.affinity.contains(CpuId(c as u16)),
                    "vCPU {n} runs on CPU {c}, outside its affinity"
                );
                if let Some(t) = v.woke_at.take() {
                    v.max_latency = v.max_latency.max(self.now - t);
                }
                self.running[c] = Some(n);
                self.since[c] = self.now;
                let (left, generation) = (v.left, v.generation);
                if left != u64::MAX {
                    self.push(
                        self.now + left,
                        Ev::BurstEnd {
                            vcpu: n,
                            generation,
                        },
                    );
                }
            }
        }
        assert!(d.until_ns > self.now, "timer programmed in the past");
        self.timer_gen[c] += 1;
        if d.until_ns != Decision::NEVER {
            let generation = self.timer_gen[c];
            self.push(
                d.until_ns,
                Ev::Timer {
                    cpu: c as u16,
                    generation,
                },
            );
        }
        for k in d.kick.iter() {
            self.push(self.now, Ev::Kick { cpu: k.0 });
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Timer { cpu, generation } => {
                if self.timer_gen[cpu as usize] == generation {
                    self.decide(cpu as usize);
                }
            }
            Ev::Kick { cpu } => self.decide(cpu as usize),
            Ev::Wake { vcpu } => {
                let v = vcpu as usize;
                if self.vcpus[v].paused {
                    return;
                }
                let left = self.burst(v);
                self.vcpus[v].left = left;
                self.vcpus[v].woke_at = Some(self.now);
                if let Some(k) = self.s.wake(VcpuId(vcpu), self.now) {
                    self.decide(k.0 as usize);
                }
            }
            Ev::BurstEnd { vcpu, generation } => {
                let v = vcpu as usize;
                let Some(c) = self.running.iter().position(|r| *r == Some(vcpu)) else {
                    return;
                };
                if self.vcpus[v].generation != generation {
                    return;
                }
                self.unrun(c);
                self.s.block(CpuId(c as u16), self.now);
                let sleep = self.sleep_time(v);
                self.push(self.now + sleep, Ev::Wake { vcpu });
                self.decide(c);
            }
        }
    }

    /// Tracks how long each vCPU has been queued without running, and checks work
    /// conservation: no CPU idles while a vCPU that may run there (all masks are one CPU
    /// or every CPU in these tests) waits.
    fn observe(&mut self, conserving: bool) {
        let now = self.now;
        for (i, v) in self.vcpus.iter_mut().enumerate() {
            match self.s.vcpu_state(VcpuId(i as u32)) {
                Some(VcpuState::Queued(c)) => {
                    v.queued_since.get_or_insert(now);
                    if conserving {
                        for (o, r) in self.running.iter().enumerate() {
                            let o = CpuId(o as u16);
                            assert!(
                                r.is_some() || o == c || !v.affinity.contains(o),
                                "CPU {o:?} idles while vCPU {i} waits on {c:?} at {now}: aff {:?} idle {:?} sched-running {:?}",
                                v.affinity,
                                self.s.idle_cpus(),
                                self.s.running(o)
                            );
                        }
                    }
                }
                _ => {
                    if let Some(t) = v.queued_since.take() {
                        v.max_wait = v.max_wait.max(now - t);
                    }
                }
            }
        }
    }

    /// Runs until `end` (absolute), calling `between` at every quiescent instant.
    fn run_until(&mut self, end: u64, conserving: bool, mut between: impl FnMut(&mut Self)) {
        while let Some(&Reverse((t, _, ev))) = self.events.peek() {
            if t > end {
                break;
            }
            self.events.pop();
            self.now = t;
            self.step(ev);
            self.s.check().unwrap();
            let next = self.events.peek().map_or(u64::MAX, |e| e.0.0);
            if next > t {
                self.observe(conserving);
                between(self);
            }
        }
        self.now = end;
    }

    fn run_for(&mut self, ns: u64) {
        self.run_until(self.now + ns, true, |_| {});
    }

    /// Closes the books at `now`: accounts running vCPUs and every CPU up to `now`.
    fn settle(&mut self) {
        for c in 0..self.ncpus {
            self.decide(c);
            let r = self.running[c];
            self.unrun(c);
            self.running[c] = r;
            self.since[c] = self.now;
        }
    }

    fn share(&self, v: u32) -> f64 {
        self.vcpus[v as usize].runtime as f64 / (self.now - self.start) as f64
    }
}

fn all() -> CpuMask {
    CpuMask::ALL
}

fn cpu(c: u16) -> CpuMask {
    CpuMask::single(CpuId(c))
}

#[test]
fn idle_cpu_halts_until_kicked() {
    let mut s = Box::new(Sched::new(SchedConfig::DEFAULT));
    s.cpu_up(CpuId(0), 0).unwrap();
    let d = s.schedule(CpuId(0), 5);
    assert_eq!(d.run, None);
    assert_eq!(d.until_ns, Decision::NEVER);
    s.add_domain(DomainId(0), SchedParams::DEFAULT, 0).unwrap();
    s.add_vcpu(VcpuId(0), DomainId(0), all(), 10).unwrap();
    assert_eq!(s.wake(VcpuId(0), 10), Some(CpuId(0)));
    let d = s.schedule(CpuId(0), 10);
    assert_eq!(d.run, Some(VcpuId(0)));
    assert_eq!(s.vcpu_state(VcpuId(0)), Some(VcpuState::Running(CpuId(0))));
    s.block(CpuId(0), 2 * MS);
    assert_eq!(s.schedule(CpuId(0), 2 * MS).run, None);
    assert_eq!(s.vcpu_runtime_ns(VcpuId(0)), 2 * MS - 10);
    assert_eq!(
        s.cpu_times(CpuId(0)),
        CpuTimes {
            busy_ns: 2 * MS - 10,
            idle_ns: 10
        }
    );
    s.check().unwrap();
}

#[test]
fn errors() {
    let mut s = Box::new(Sched::new(SchedConfig::DEFAULT));
    let p = SchedParams::DEFAULT;
    assert_eq!(s.cpu_up(CpuId(4), 0), Err(SchedError::OutOfRange));
    s.cpu_up(CpuId(1), 0).unwrap();
    assert_eq!(s.cpu_up(CpuId(1), 0), Err(SchedError::CpuState));
    assert_eq!(
        s.add_domain(DomainId(0), SchedParams { weight: 0, ..p }, 0),
        Err(SchedError::BadWeight)
    );
    s.add_domain(DomainId(0), p, 0).unwrap();
    assert_eq!(s.add_domain(DomainId(0), p, 0), Err(SchedError::Exists));
    assert_eq!(
        s.add_domain(DomainId(64), p, 0),
        Err(SchedError::OutOfRange)
    );
    assert_eq!(
        s.add_vcpu(VcpuId(0), DomainId(3), all(), 0),
        Err(SchedError::NoSuchId)
    );
    assert_eq!(
        s.add_vcpu(VcpuId(0), DomainId(0), cpu(0), 0),
        Err(SchedError::NoCpu)
    );
    assert_eq!(
        s.add_vcpu(VcpuId(64), DomainId(0), all(), 0),
        Err(SchedError::OutOfRange)
    );
    s.add_vcpu(VcpuId(0), DomainId(0), all(), 0).unwrap();
    assert_eq!(
        s.add_vcpu(VcpuId(0), DomainId(0), all(), 0),
        Err(SchedError::Exists)
    );
    assert_eq!(s.set_affinity(VcpuId(0), cpu(2), 0), Err(SchedError::NoCpu));
    assert_eq!(
        s.set_params(DomainId(0), SchedParams { weight: 0, ..p }, 0),
        Err(SchedError::BadWeight)
    );
    assert_eq!(s.remove_domain(DomainId(0)), Err(SchedError::Busy));
    s.wake(VcpuId(0), 0);
    assert_eq!(s.schedule(CpuId(1), 0).run, Some(VcpuId(0)));
    assert_eq!(s.remove_vcpu(VcpuId(0)), Err(SchedError::Busy));
    assert_eq!(s.sleep(VcpuId(0), 5), Some(CpuId(1)));
    assert_eq!(s.schedule(CpuId(1), 6).run, None);
    s.remove_vcpu(VcpuId(0)).unwrap();
    assert_eq!(s.vcpu_state(VcpuId(0)), None);
    assert_eq!(s.wake(VcpuId(0), 7), None);
    s.remove_domain(DomainId(0)).unwrap();
    assert_eq!(
        s.set_config(SchedConfig {
            min_slice_ns: 0,
            ..SchedConfig::DEFAULT
        }),
        Err(SchedError::BadConfig)
    );
    s.check().unwrap();
}

#[test]
fn weights_share_one_cpu() {
    for weights in [
        [WEIGHT_LOW, WEIGHT_NORMAL, WEIGHT_HIGH],
        [1, 2, 4],
        [3000, 6000, 12000],
    ] {
        let mut d = Driver::new(1, SchedConfig::DEFAULT, 1);
        let ids: Vec<u32> = weights
            .iter()
            .map(|&w| d.add(w, 0, all(), Behaviour::Hog))
            .collect();
        d.run_for(2_000 * MS);
        d.settle();
        for (k, &id) in ids.iter().enumerate() {
            let ideal = [1.0, 2.0, 4.0][k] / 7.0;
            let got = d.share(id);
            assert!(
                (got - ideal).abs() < 0.005,
                "weights {weights:?}: vCPU {k} got {got}, ideal {ideal}"
            );
        }
    }
}

#[test]
fn shares_across_cpus_without_a_perfect_partition() {
    // Three equal hogs on two CPUs: each should get two thirds of a CPU, which needs
    // vCPUs to move; and a heavy one that can use no more than one CPU.
    let mut d = Driver::new(2, SchedConfig::DEFAULT, 2);
    let a = [0, 1, 2].map(|_| d.add(256, 0, all(), Behaviour::Hog));
    d.run_for(4_000 * MS);
    d.settle();
    for id in a {
        let got = d.share(id);
        assert!((got - 2.0 / 3.0).abs() < 0.01, "vCPU {id} got {got}");
    }
    let mut d = Driver::new(2, SchedConfig::DEFAULT, 3);
    let heavy = d.add(4096, 0, all(), Behaviour::Hog);
    let light = [0, 1, 2].map(|_| d.add(256, 0, all(), Behaviour::Hog));
    d.run_for(4_000 * MS);
    d.settle();
    assert!(d.share(heavy) > 0.99, "heavy got {}", d.share(heavy));
    for id in light {
        let got = d.share(id);
        assert!((got - 1.0 / 3.0).abs() < 0.01, "vCPU {id} got {got}");
    }
}

#[test]
fn cap_limits_a_vcpu_even_when_the_cpu_is_free() {
    let mut d = Driver::new(1, SchedConfig::DEFAULT, 4);
    let capped = d.add(256, 25, all(), Behaviour::Hog);
    d.run_for(1_000 * MS);
    d.settle();
    let got = d.share(capped);
    assert!((0.245..=0.2501).contains(&got), "got {got}");
    let t = d.s.cpu_times(CpuId(0));
    assert!(t.idle_ns > t.busy_ns * 2);
}

#[test]
fn domain_cap_spans_cpus_and_changes_at_run_time() {
    let mut d = Driver::new(4, SchedConfig::DEFAULT, 5);
    d.add_domain(0, 256, 200);
    let members: Vec<u32> = (0..4).map(|_| d.add_to(0, all(), Behaviour::Hog)).collect();
    d.run_for(1_000 * MS);
    d.settle();
    let total: f64 = members.iter().map(|&v| d.share(v)).sum();
    assert!((1.98..=2.001).contains(&total), "domain got {total} CPUs");
    // Lift the cap: the domain takes all four CPUs.
    let kick =
        d.s.set_params(DomainId(0), SchedParams::DEFAULT, d.now)
            .unwrap();
    for k in kick.iter() {
        d.push(d.now, Ev::Kick { cpu: k.0 });
    }
    let before: Vec<u64> = members
        .iter()
        .map(|&v| d.vcpus[v as usize].runtime)
        .collect();
    let t0 = d.now;
    d.run_for(1_000 * MS);
    d.settle();
    let used: u64 = members
        .iter()
        .zip(before)
        .map(|(&v, b)| d.vcpus[v as usize].runtime - b)
        .sum();
    assert!(used as f64 / (d.now - t0) as f64 > 3.99);
}

#[test]
fn waking_vcpu_preempts_within_the_rate_limit() {
    let mut d = Driver::new(1, SchedConfig::DEFAULT, 6);
    for _ in 0..8 {
        d.add(256, 0, all(), Behaviour::Hog);
    }
    let io = d.add(
        256,
        0,
        all(),
        Behaviour::Random {
            run: 50 * US,
            sleep: 2 * MS,
        },
    );
    // New vCPUs are presumed CPU-bound: let it show it is not (about 15 short bursts).
    d.run_for(200 * MS);
    d.vcpus[io as usize].max_latency = 0;
    d.run_for(2_000 * MS);
    let lat = d.vcpus[io as usize].max_latency;
    assert!(lat <= MS, "worst wake-to-run latency {lat} ns");
}

#[test]
fn sleeping_earns_no_credit() {
    // A vCPU that runs 900 µs and sleeps 100 µs would, with a sleeper bonus, get more
    // than its third against two hogs of the same weight.
    let mut d = Driver::new(1, SchedConfig::DEFAULT, 7);
    let hogs = [0, 1].map(|_| d.add(256, 0, all(), Behaviour::Hog));
    let gamer = d.add(
        256,
        0,
        all(),
        Behaviour::Io {
            run: 900 * US,
            sleep: 100 * US,
        },
    );
    d.run_for(2_000 * MS);
    d.settle();
    assert!(d.share(gamer) <= 1.0 / 3.0 + 0.003, "{}", d.share(gamer));
    for h in hogs {
        assert!(d.share(h) >= 1.0 / 3.0 - 0.003);
    }
}

#[test]
fn weight_changes_take_effect() {
    let mut d = Driver::new(1, SchedConfig::DEFAULT, 8);
    let a = d.add(256, 0, all(), Behaviour::Hog);
    let b = d.add(256, 0, all(), Behaviour::Hog);
    d.run_for(500 * MS);
    let p = SchedParams {
        weight: 768,
        cap_percent: 0,
    };
    assert!(
        d.s.set_params(DomainId(a as u16), p, d.now)
            .unwrap()
            .is_empty()
    );
    d.settle();
    let (ra, rb) = (d.vcpus[a as usize].runtime, d.vcpus[b as usize].runtime);
    d.run_for(2_000 * MS);
    d.settle();
    let (da, db) = (
        d.vcpus[a as usize].runtime - ra,
        d.vcpus[b as usize].runtime - rb,
    );
    let share = da as f64 / (da + db) as f64;
    assert!((share - 0.75).abs() < 0.005, "{share}");
}

#[test]
fn affinity_changes_move_vcpus_at_once() {
    let mut d = Driver::new(2, SchedConfig::DEFAULT, 9);
    let v: Vec<u32> = (0..4)
        .map(|_| d.add(256, 0, all(), Behaviour::Hog))
        .collect();
    d.run_for(50 * MS);
    // Pin everything to CPU 1.
    for &id in &v {
        d.vcpus[id as usize].affinity = cpu(1);
        let kick = d.s.set_affinity(VcpuId(id), cpu(1), d.now).unwrap();
        for k in kick.iter() {
            d.push(d.now, Ev::Kick { cpu: k.0 });
        }
    }
    d.run_for(MS);
    assert_eq!(d.running[0], None);
    for &id in &v {
        let state = d.s.vcpu_state(VcpuId(id)).unwrap();
        assert!(matches!(
            state,
            VcpuState::Queued(CpuId(1)) | VcpuState::Running(CpuId(1))
        ));
    }
}

/// Builds a random mix of vCPUs, weights, caps and affinities (each mask one CPU or all of
/// them, so that work conservation is exact), runs it with random run-time changes, and
/// checks after every event: no vCPU on two CPUs, affinity respected (in `decide`), the
/// internal invariants (`check`), no idle CPU while a vCPU it may run waits; at the end,
/// the starvation bound and the books: busy + idle = elapsed on every CPU, and the time
/// handed to vCPUs equals the busy time, as the scheduler and as the driver count it.
#[test]
fn random_workloads_keep_the_invariants() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed * 0x9e37_79b9);
        let ncpus = 1 + rng.below(4) as usize;
        let config = SchedConfig {
            ratelimit_ns: [0, MS, 2 * MS][rng.below(3) as usize],
            ..SchedConfig::DEFAULT
        };
        let mut d = Driver::new(ncpus, config, seed);
        let n = 2 + rng.below(14) as usize;
        let mut weight_sum = 0u64;
        let mut min_weight = u64::MAX;
        for _ in 0..n {
            let weight = [128, 256, 512, 1000][rng.below(4) as usize];
            let cap = if rng.below(5) == 0 { 30 } else { 0 };
            let affinity = if rng.below(4) == 0 {
                cpu(rng.below(ncpus as u64) as u16)
            } else {
                all()
            };
            let behaviour = match rng.below(3) {
                0 => Behaviour::Hog,
                1 => Behaviour::Io {
                    run: 50 * US,
                    sleep: MS,
                },
                _ => Behaviour::Random {
                    run: 5 * MS,
                    sleep: 5 * MS,
                },
            };
            d.add(weight, cap, affinity, behaviour);
            weight_sum += weight as u64;
            min_weight = min_weight.min(weight as u64);
        }
        let mut next_change = d.now + 20 * MS;
        let end = d.now + 1_500 * MS;
        d.run_until(end, true, |d| {
            if d.now < next_change {
                return;
            }
            next_change = d.now + 5 * MS + d.rng.below(40 * MS);
            let v = d.rng.below(d.vcpus.len() as u64) as usize;
            let mut kick = CpuMask::EMPTY;
            match d.rng.below(4) {
                0 => {
                    let p = SchedParams {
                        weight: [128, 256, 512, 1000][d.rng.below(4) as usize],
                        cap_percent: [0, 0, 30][d.rng.below(3) as usize],
                    };
                    kick = d.s.set_params(DomainId(v as u16), p, d.now).unwrap();
                }
                1 => {
                    let mask = if d.rng.below(2) == 0 {
                        cpu(d.rng.below(d.ncpus as u64) as u16)
                    } else {
                        all()
                    };
                    d.vcpus[v].affinity = mask;
                    kick = d.s.set_affinity(VcpuId(v as u32), mask, d.now).unwrap();
                }
                2 if d.vcpus[v].behaviour == Behaviour::Hog => {
                    let paused = !d.vcpus[v].paused;
                    d.vcpus[v].paused = paused;
                    if paused {
                        if let Some(k) = d.s.sleep(VcpuId(v as u32), d.now) {
                            kick.insert(k);
                        }
                    } else {
                        let now = d.now;
                        d.push(now, Ev::Wake { vcpu: v as u32 });
                    }
                }
                _ => {}
            }
            for k in kick.iter() {
                let now = d.now;
                d.push(now, Ev::Kick { cpu: k.0 });
            }
        });
        d.settle();

        // Starvation bound: everything that can run before a queued vCPU is bounded by the
        // weight ratio and the number of vCPUs, each running at most one stint of
        // max(slice, rate limit) plus the credit a migration carries (docs/scheduler.md).
        let stint = config.slice_ns.max(config.ratelimit_ns);
        let per_round = 2 * config.slice_ns + config.ratelimit_ns + 2 * config.migrate_lag_ns;
        let bound = (weight_sum / min_weight + n as u64 + 1) * per_round + stint;
        for (i, v) in d.vcpus.iter().enumerate() {
            assert!(
                v.max_wait <= bound,
                "seed {seed}: vCPU {i} waited {} ms (bound {} ms)",
                v.max_wait / MS,
                bound / MS
            );
        }

        let elapsed = d.now - d.start;
        let mut busy = 0;
        for c in 0..ncpus {
            let t = d.s.cpu_times(CpuId(c as u16));
            assert_eq!(t.busy_ns + t.idle_ns, elapsed, "seed {seed}: CPU {c}");
            busy += t.busy_ns;
        }
        let mut handed = 0;
        for (i, v) in d.vcpus.iter().enumerate() {
            let charged = d.s.vcpu_runtime_ns(VcpuId(i as u32));
            assert_eq!(charged, v.runtime, "seed {seed}: vCPU {i}");
            handed += charged;
        }
        assert_eq!(handed, busy, "seed {seed}");
        assert!(d.decisions > 1000);
    }
}

#[test]
fn virtual_time_wraps_safely() {
    // Start just before the end of the virtual time range: at weights 1 and 2 the clock
    // advances about 21845 units per ns, so it wraps after about 50 ms.
    let mut d = Driver::new(1, SchedConfig::DEFAULT, 11);
    d.add_domain(0, 1, 0);
    d.add_domain(1, 2, 0);
    let a = d.add_to(0, all(), Behaviour::Hog);
    let b = d.add_to(1, all(), Behaviour::Hog);
    d.s.set_vtime(VcpuId(a), u64::MAX - (1 << 30));
    d.s.set_vtime(VcpuId(b), u64::MAX - (1 << 30));
    d.run_for(3_000 * MS);
    d.settle();
    assert!((d.share(b) - 2.0 / 3.0).abs() < 0.005, "{}", d.share(b));
    assert!((d.share(a) - 1.0 / 3.0).abs() < 0.005);
}
