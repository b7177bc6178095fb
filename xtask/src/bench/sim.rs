//! A deterministic discrete-event simulator that drives the real scheduler core
//! (`ferrovisor::sched`) the way the hypervisor will: per-CPU one-shot timers programmed from
//! each decision, kicks (IPIs, delivered instantly), and vCPUs that run and block.
//!
//! Simulated time is exact nanoseconds and events at the same instant run in the order they
//! were posted, so a run is a pure function of its inputs. Decisions and IPIs cost no
//! simulated time: the figures are about policy, not about the hypervisor's overheads.
//!
//! On every decision the simulator checks, independently of the scheduler's own books, that
//! no vCPU runs on two CPUs at once and that affinity holds; it runs the scheduler's
//! internal consistency check every `check_every` events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ferrovisor::sched::{
    CpuId, CpuMask, Decision, DomainId, SchedConfig, SchedParams, Scheduler, VcpuId,
};

/// Capacity of the simulated host (the decision-cost runs need 2 x 1024 vCPUs and more).
pub const MAX_VCPUS: usize = 2304;
pub const MAX_CPUS: usize = 8;

pub type Sched = Scheduler<MAX_VCPUS, MAX_CPUS>;

pub const US: u64 = 1_000;
pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000_000_000;

/// What a vCPU does with the CPU.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Never blocks.
    Hog,
    /// Runs `run` ns of CPU, then blocks for `sleep` ns, varied by up to `jitter_pct`
    /// percent either way.
    Io {
        run: u64,
        sleep: u64,
        jitter_pct: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer { cpu: u16, generation: u64 },
    Kick { cpu: u16 },
    Wake { vcpu: u32 },
    BurstEnd { vcpu: u32, generation: u64 },
}

struct SimCpu {
    running: Option<u32>,
    since: u64,
    timer_generation: u64,
}

pub struct SimVcpu {
    behaviour: Behaviour,
    affinity: CpuMask,
    left: u64,
    generation: u64,
    /// CPU time received since the measurement window opened.
    pub runtime: u64,
    woke_at: Option<u64>,
    /// Wake-to-run latencies (ns) since the measurement window opened.
    pub latencies: Vec<u64>,
}

/// Operation counts of the scheduler calls since the measurement window opened.
#[derive(Default)]
pub struct Cost {
    pub decisions: u64,
    pub decision_ops: u64,
    pub decision_ops_max: u64,
    pub decision_hist: Vec<u64>,
    pub wakes: u64,
    pub wake_ops: u64,
}

pub struct Sim {
    pub s: Box<Sched>,
    pub now: u64,
    /// Start of the measurement window.
    pub window_start: u64,
    seq: u64,
    events: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    cpus: Vec<SimCpu>,
    pub vcpus: Vec<SimVcpu>,
    rng: u64,
    pub cost: Cost,
    migrations_at_window: u64,
    check_every: u64,
    events_done: u64,
}

impl Sim {
    /// A host with `ncpus` CPUs online at time 0.
    pub fn new(ncpus: usize, config: SchedConfig, seed: u64) -> Self {
        let mut s = Box::new(Sched::new(config));
        for c in 0..ncpus {
            s.cpu_up(CpuId(c as u16), 0).expect("CPU up");
        }
        Self {
            s,
            now: 0,
            window_start: 0,
            seq: 0,
            events: BinaryHeap::new(),
            cpus: (0..ncpus)
                .map(|_| SimCpu {
                    running: None,
                    since: 0,
                    timer_generation: 0,
                })
                .collect(),
            vcpus: Vec::new(),
            rng: seed | 1,
            cost: Cost::default(),
            migrations_at_window: 0,
            check_every: 997,
            events_done: 0,
        }
    }

    /// Runs the scheduler's O(all vCPUs) self-check every `n` events.
    pub fn check_every(&mut self, n: u64) {
        self.check_every = n.max(1);
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn post(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, ev)));
    }

    /// Creates a domain.
    pub fn domain(&mut self, dom: u16, weight: u16, cap_percent: u16) {
        let p = SchedParams {
            weight,
            cap_percent,
        };
        self.s
            .add_domain(DomainId(dom), p, self.now)
            .expect("add domain");
    }

    /// Adds a vCPU of `dom` that becomes runnable now; returns its number.
    pub fn vcpu(&mut self, dom: u16, affinity: CpuMask, behaviour: Behaviour) -> u32 {
        let id = self.vcpus.len() as u32;
        self.s
            .add_vcpu(VcpuId(id), DomainId(dom), affinity, self.now)
            .expect("add vCPU");
        self.vcpus.push(SimVcpu {
            behaviour,
            affinity,
            left: 0,
            generation: 0,
            runtime: 0,
            woke_at: None,
            latencies: Vec::new(),
        });
        self.post(self.now, Ev::Wake { vcpu: id });
        id
    }

    /// A vCPU in a domain of its own (numbered like the vCPU).
    pub fn solo(&mut self, weight: u16, cap_percent: u16, behaviour: Behaviour) -> u32 {
        let id = self.vcpus.len() as u16;
        self.domain(id, weight, cap_percent);
        self.vcpu(id, CpuMask::ALL, behaviour)
    }

    fn sleep_for(&mut self, v: usize) -> u64 {
        match self.vcpus[v].behaviour {
            Behaviour::Hog => 0,
            Behaviour::Io {
                sleep, jitter_pct, ..
            } => {
                if jitter_pct == 0 {
                    sleep
                } else {
                    let span = sleep * jitter_pct / 100;
                    sleep - span + self.random() % (2 * span + 1)
                }
            }
        }
    }

    /// Ends the current run on `c` in the simulator's books.
    fn stop_running(&mut self, c: usize) {
        if let Some(p) = self.cpus[c].running.take() {
            let from = self.cpus[c].since.max(self.window_start);
            let v = &mut self.vcpus[p as usize];
            v.runtime += self.now.saturating_sub(from);
            let ran = self.now - self.cpus[c].since;
            if v.left != u64::MAX {
                v.left -= ran.min(v.left);
            }
            v.generation += 1;
        }
    }

    fn decide(&mut self, c: usize) {
        let ops = self.s.ops();
        let d = self.s.schedule(CpuId(c as u16), self.now);
        let spent = self.s.ops() - ops;
        let cost = &mut self.cost;
        cost.decisions += 1;
        cost.decision_ops += spent;
        cost.decision_ops_max = cost.decision_ops_max.max(spent);
        let bucket = spent as usize;
        if cost.decision_hist.len() <= bucket {
            cost.decision_hist.resize(bucket + 1, 0);
        }
        cost.decision_hist[bucket] += 1;

        if d.run.map(|v| v.0) != self.cpus[c].running {
            self.stop_running(c);
            if let Some(VcpuId(n)) = d.run {
                assert!(
                    !self.cpus.iter().any(|cpu| cpu.running == Some(n)),
                    "vCPU {n} would run on two CPUs at once"
                );
                let now = self.now;
                let window_start = self.window_start;
                let v = &mut self.vcpus[n as usize];
                assert!(
                    v.affinity.contains(CpuId(c as u16)),
                    "vCPU {n} on CPU {c}, outside its affinity"
                );
                if let Some(t) = v.woke_at.take()
                    && t >= window_start
                {
                    v.latencies.push(now - t);
                }
                let (left, generation) = (v.left, v.generation);
                self.cpus[c].running = Some(n);
                self.cpus[c].since = now;
                if left != u64::MAX {
                    self.post(
                        now + left,
                        Ev::BurstEnd {
                            vcpu: n,
                            generation,
                        },
                    );
                }
            }
        }
        assert!(d.until_ns > self.now, "timer programmed in the past");
        self.cpus[c].timer_generation += 1;
        if d.until_ns != Decision::NEVER {
            let generation = self.cpus[c].timer_generation;
            self.post(
                d.until_ns,
                Ev::Timer {
                    cpu: c as u16,
                    generation,
                },
            );
        }
        for k in d.kick.iter() {
            self.post(self.now, Ev::Kick { cpu: k.0 });
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Timer { cpu, generation } => {
                if self.cpus[cpu as usize].timer_generation == generation {
                    self.decide(cpu as usize);
                }
            }
            Ev::Kick { cpu } => self.decide(cpu as usize),
            Ev::Wake { vcpu } => {
                let v = &mut self.vcpus[vcpu as usize];
                v.left = match v.behaviour {
                    Behaviour::Hog => u64::MAX,
                    Behaviour::Io { run, .. } => run,
                };
                v.woke_at = Some(self.now);
                let ops = self.s.ops();
                let kick = self.s.wake(VcpuId(vcpu), self.now);
                self.cost.wakes += 1;
                self.cost.wake_ops += self.s.ops() - ops;
                if let Some(k) = kick {
                    self.decide(k.0 as usize);
                }
            }
            Ev::BurstEnd { vcpu, generation } => {
                let v = vcpu as usize;
                if self.vcpus[v].generation != generation {
                    return;
                }
                let Some(c) = self.cpus.iter().position(|c| c.running == Some(vcpu)) else {
                    return;
                };
                self.stop_running(c);
                self.s.block(CpuId(c as u16), self.now);
                let sleep = self.sleep_for(v);
                self.post(self.now + sleep, Ev::Wake { vcpu });
                self.decide(c);
            }
        }
    }

    /// Runs the simulation up to absolute time `end`.
    pub fn run_until(&mut self, end: u64) {
        while let Some(&Reverse((t, _, ev))) = self.events.peek() {
            if t > end {
                break;
            }
            self.events.pop();
            self.now = t;
            self.step(ev);
            self.events_done += 1;
            if self.events_done.is_multiple_of(self.check_every) {
                self.s.check().expect("scheduler invariants");
            }
        }
        self.now = end;
    }

    /// Opens the measurement window now: run time, latencies, costs and migrations count
    /// from here.
    pub fn open_window(&mut self) {
        self.window_start = self.now;
        for v in &mut self.vcpus {
            v.runtime = 0;
            v.latencies.clear();
        }
        self.cost = Cost::default();
        self.migrations_at_window = self.s.migrations();
    }

    /// Closes the books at `now` (counts the runs in progress) and checks the invariants.
    pub fn finish(&mut self) {
        for c in 0..self.cpus.len() {
            if let Some(r) = self.cpus[c].running {
                self.stop_running(c);
                self.cpus[c].running = Some(r);
                self.cpus[c].since = self.now;
            }
        }
        self.s.check().expect("scheduler invariants");
    }

    /// Fraction of one CPU that vCPU `v` received in the window.
    pub fn share(&self, v: u32) -> f64 {
        self.vcpus[v as usize].runtime as f64 / (self.now - self.window_start) as f64
    }

    /// Migrations per simulated second in the window.
    pub fn migrations_per_sec(&self) -> f64 {
        let n = self.s.migrations() - self.migrations_at_window;
        n as f64 * SEC as f64 / (self.now - self.window_start) as f64
    }
}

/// The `p`-th percentile (0..=100) of `samples`, by nearest rank.
pub fn percentile(samples: &[u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

/// Ideal shares (in CPUs) of always-runnable vCPUs with these weights on `cpus` CPUs: weight
/// proportional, but no vCPU above one CPU (the excess is shared by the others).
pub fn ideal_shares(weights: &[u16], cpus: usize) -> Vec<f64> {
    let mut share = vec![0.0; weights.len()];
    let mut capped = vec![false; weights.len()];
    let mut capacity = cpus as f64;
    loop {
        let w: f64 = (0..weights.len())
            .filter(|&i| !capped[i])
            .map(|i| weights[i] as f64)
            .sum();
        let mut changed = false;
        for i in 0..weights.len() {
            if !capped[i] {
                share[i] = capacity * weights[i] as f64 / w;
                if share[i] > 1.0 {
                    capped[i] = true;
                    share[i] = 1.0;
                    capacity -= 1.0;
                    changed = true;
                }
            }
        }
        if !changed {
            return share;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_filling() {
        assert_eq!(
            ideal_shares(&[1, 2, 4], 1),
            [1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0]
        );
        let s = ideal_shares(&[4096, 256, 256, 256], 2);
        assert_eq!(s[0], 1.0);
        assert!((s[1] - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn percentiles() {
        let s = [5, 1, 4, 2, 3];
        assert_eq!(percentile(&s, 50.0), 3);
        assert_eq!(percentile(&s, 99.0), 5);
        assert_eq!(percentile(&s, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
