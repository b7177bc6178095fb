//! `cargo xtask bench sched`: the scheduler's figures, from the simulator in `sim.rs`.
//!
//! Each scenario is a fixed workload on a fixed simulated host (deterministic: the same
//! numbers on every machine). Results go to stdout as `bench:` lines, details to stderr.
//! The targets are the ones in `docs/scheduler.md`.

use ferrovisor::sched::{CpuId, CpuMask, SchedConfig, WEIGHT_HIGH, WEIGHT_LOW, WEIGHT_NORMAL};

use super::report;
use super::sim::{Behaviour, MS, SEC, Sim, US, ideal_shares, percentile};

/// Simulated duration of the share and cap measurements.
const RUN: u64 = 10 * SEC;

/// A vCPU that runs 50 µs, then sleeps 1 ms: an I/O-bound guest.
const IO: Behaviour = Behaviour::Io {
    run: 50 * US,
    sleep: MS,
    jitter_pct: 0,
};

/// Runs every scenario; returns whether all targets were met.
pub fn run() -> bool {
    let mut missed = Vec::new();
    let mut target = |name: &str, value: f64, ok: bool, what: &str| {
        if !ok {
            missed.push(format!("{name} = {value:.3}, target {what}"));
        }
    };

    let e = share_one_cpu(&[WEIGHT_LOW, WEIGHT_NORMAL, WEIGHT_HIGH]);
    report("sched-share-error-1cpu", e, "pct-points");
    target("sched-share-error-1cpu", e, e <= 1.0, "<= 1");
    let e = share_one_cpu(&[1, 2, 4]);
    report("sched-share-error-1cpu-weights-1-2-4", e, "pct-points");
    target("sched-share-error-1cpu-weights-1-2-4", e, e <= 1.0, "<= 1");

    let (e, migrations) = share_four_cpus();
    report("sched-share-error-4cpu-12vcpu", e, "pct-points");
    target("sched-share-error-4cpu-12vcpu", e, e <= 1.0, "<= 1");
    report("sched-migrations-4cpu-12vcpu", migrations, "per-sec");

    let caps = caps();
    for (name, got, cap) in &caps {
        report(name, *got, "pct");
        target(
            name,
            *got,
            (cap - 1.0..=cap + 1.0).contains(got),
            "within 1 of the cap",
        );
    }
    let overshoot = caps
        .iter()
        .map(|(_, got, cap)| got - cap)
        .fold(f64::MIN, f64::max);
    report("sched-cap-overshoot", overshoot, "pct-points");
    target("sched-cap-overshoot", overshoot, overshoot <= 1.0, "<= 1");

    let (p50, p99, max) = wake_latency(1, 8, 1, 0);
    report("sched-wake-latency-p50", p50, "us");
    report("sched-wake-latency-p99", p99, "us");
    report("sched-wake-latency-max", max, "us");
    target("sched-wake-latency-p99", p99, p99 <= 1000.0, "<= 1000 us");
    let (_, p99, _) = wake_latency(1, 8, 1, 50);
    report("sched-wake-latency-p99-jittered-sleep", p99, "us");
    target(
        "sched-wake-latency-p99-jittered-sleep",
        p99,
        p99 <= 1000.0,
        "<= 1000 us",
    );
    let (_, p99, _) = wake_latency(4, 32, 4, 50);
    report("sched-wake-latency-p99-4cpu-32hogs", p99, "us");
    target(
        "sched-wake-latency-p99-4cpu-32hogs",
        p99,
        p99 <= 1000.0,
        "<= 1000 us",
    );

    let excess = gamer();
    report("sched-gamer-excess-share", excess, "pct-points");
    target("sched-gamer-excess-share", excess, excess <= 0.5, "<= 0.5");

    for io in [true, false] {
        let mix = if io { "" } else { "-hogs-only" };
        let mut costs = Vec::new();
        for n in [16, 64, 256, 1024] {
            let c = decision_cost(n, io);
            report(
                &format!("sched-decision-ops{mix}-{n}-per-cpu"),
                c.mean,
                "ops",
            );
            report(
                &format!("sched-decision-ops-p99{mix}-{n}-per-cpu"),
                c.p99,
                "ops",
            );
            report(
                &format!("sched-decision-ops-max{mix}-{n}-per-cpu"),
                c.max,
                "ops",
            );
            if io {
                report(&format!("sched-wake-ops-{n}-per-cpu"), c.wake, "ops");
            }
            costs.push(c.mean);
        }
        let name = format!("sched-decision-cost-growth{mix}-16-to-1024");
        let growth = costs[costs.len() - 1] / costs[0];
        report(&name, growth, "ratio");
        target(&name, growth, growth <= 2.0, "<= 2");
    }

    for m in &missed {
        eprintln!("xtask: bench sched: target missed: {m}");
    }
    missed.is_empty()
}

/// Always-runnable vCPUs with these weights on one CPU for 10 s: the largest difference
/// between a vCPU's share and its weight's share, in percentage points of the CPU.
fn share_one_cpu(weights: &[u16]) -> f64 {
    let mut sim = Sim::new(1, SchedConfig::DEFAULT, 1);
    let ids: Vec<u32> = weights
        .iter()
        .map(|&w| sim.solo(w, 0, Behaviour::Hog))
        .collect();
    sim.run_until(RUN);
    sim.finish();
    let ideal = ideal_shares(weights, 1);
    let errors: Vec<f64> = ids
        .iter()
        .zip(&ideal)
        .map(|(&v, i)| (sim.share(v) - i).abs() * 100.0)
        .collect();
    eprintln!(
        "sched: 1 CPU, weights {weights:?}: shares {:?} %",
        ids.iter()
            .map(|&v| round(sim.share(v) * 100.0))
            .collect::<Vec<_>>()
    );
    errors.into_iter().fold(0.0, f64::max)
}

/// Twelve always-runnable vCPUs of mixed weights on four CPUs for 10 s. The weights cannot
/// be split evenly between the CPUs, and one is heavy enough to be limited to one CPU, so
/// the ideal needs vCPUs to keep moving: the largest share error in percentage points of
/// one CPU, and migrations per second.
fn share_four_cpus() -> (f64, f64) {
    const WEIGHTS: [u16; 12] = [2048, 512, 512, 512, 256, 256, 256, 256, 128, 128, 128, 100];
    let mut sim = Sim::new(4, SchedConfig::DEFAULT, 2);
    let ids: Vec<u32> = WEIGHTS
        .iter()
        .map(|&w| sim.solo(w, 0, Behaviour::Hog))
        .collect();
    sim.run_until(RUN);
    sim.finish();
    let ideal = ideal_shares(&WEIGHTS, 4);
    let error = ids
        .iter()
        .zip(&ideal)
        .map(|(&v, i)| (sim.share(v) - i).abs() * 100.0)
        .fold(0.0, f64::max);
    eprintln!(
        "sched: 4 CPUs, weights {WEIGHTS:?}: shares {:?} % of a CPU (ideal {:?})",
        ids.iter()
            .map(|&v| round(sim.share(v) * 100.0))
            .collect::<Vec<_>>(),
        ideal.iter().map(|i| round(i * 100.0)).collect::<Vec<_>>()
    );
    (error, sim.migrations_per_sec())
}

/// Capped workloads: (name, share obtained in percent of one CPU, cap).
fn caps() -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();

    // A 25% cap among two uncapped hogs (its fair share would be 33%).
    let mut sim = Sim::new(1, SchedConfig::DEFAULT, 3);
    let capped = sim.solo(WEIGHT_NORMAL, 25, Behaviour::Hog);
    sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    sim.run_until(RUN);
    sim.finish();
    out.push((
        "sched-cap-25-among-hogs".into(),
        sim.share(capped) * 100.0,
        25.0,
    ));

    // A 25% cap alone on an otherwise idle CPU.
    let mut sim = Sim::new(1, SchedConfig::DEFAULT, 4);
    let capped = sim.solo(WEIGHT_NORMAL, 25, Behaviour::Hog);
    sim.run_until(RUN);
    sim.finish();
    out.push(("sched-cap-25-alone".into(), sim.share(capped) * 100.0, 25.0));

    // A four-vCPU domain capped at 150% (one and a half CPUs) on four CPUs with four
    // uncapped hogs (its fair share would be 200%).
    let mut sim = Sim::new(4, SchedConfig::DEFAULT, 5);
    sim.domain(100, WEIGHT_NORMAL, 150);
    let members: Vec<u32> = (0..4)
        .map(|_| sim.vcpu(100, CpuMask::ALL, Behaviour::Hog))
        .collect();
    for _ in 0..4 {
        sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    }
    sim.run_until(RUN);
    sim.finish();
    let got: f64 = members.iter().map(|&v| sim.share(v)).sum();
    eprintln!(
        "sched: domain capped at 150% (4 vCPUs) + 4 hogs on 4 CPUs: shares {:?} % of a CPU",
        (0..8)
            .map(|v| round(sim.share(v) * 100.0))
            .collect::<Vec<_>>()
    );
    out.push(("sched-cap-150-domain-4vcpu".into(), got * 100.0, 150.0));
    out
}

/// An I/O-bound vCPU (50 µs of CPU, then a 1 ms sleep, varied by `jitter_pct` %) among
/// `hogs` CPU hogs of the same weight on `cpus` CPUs (`io` such vCPUs), measured for 10 s
/// after a 1 s warm-up: wake-to-run latency p50, p99 and maximum in µs.
fn wake_latency(cpus: usize, hogs: usize, io: usize, jitter_pct: u64) -> (f64, f64, f64) {
    let mut sim = Sim::new(cpus, SchedConfig::DEFAULT, 6 + jitter_pct);
    for _ in 0..hogs {
        sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    }
    let behaviour = Behaviour::Io {
        run: 50 * US,
        sleep: MS,
        jitter_pct,
    };
    let ids: Vec<u32> = (0..io)
        .map(|_| sim.solo(WEIGHT_NORMAL, 0, behaviour))
        .collect();
    sim.run_until(SEC);
    sim.open_window();
    sim.run_until(SEC + RUN);
    sim.finish();
    let samples: Vec<u64> = ids
        .iter()
        .flat_map(|&v| sim.vcpus[v as usize].latencies.iter().copied())
        .collect();
    let us = |ns: u64| ns as f64 / 1000.0;
    eprintln!(
        "sched: {io} I/O vCPU(s) + {hogs} hogs on {cpus} CPU(s), sleep jitter {jitter_pct}%: \
         {} wake-ups",
        samples.len()
    );
    (
        us(percentile(&samples, 50.0)),
        us(percentile(&samples, 99.0)),
        us(percentile(&samples, 100.0)),
    )
}

/// A vCPU that runs 900 µs and sleeps 100 µs, trying to look interactive, against two hogs
/// of the same weight: how far its share exceeds the fair third, in percentage points.
fn gamer() -> f64 {
    let mut sim = Sim::new(1, SchedConfig::DEFAULT, 7);
    sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    sim.solo(WEIGHT_NORMAL, 0, Behaviour::Hog);
    let g = sim.solo(
        WEIGHT_NORMAL,
        0,
        Behaviour::Io {
            run: 900 * US,
            sleep: 100 * US,
            jitter_pct: 0,
        },
    );
    sim.run_until(RUN);
    sim.finish();
    (sim.share(g) - 1.0 / 3.0) * 100.0
}

/// Operations per `schedule` call (mean, p99, max) and per `wake` (mean).
struct DecisionCost {
    mean: f64,
    p99: f64,
    max: f64,
    wake: f64,
}

/// Operation counts with `n` runnable hogs per CPU (mixed weights, half of them pinned) on
/// two CPUs, with (`io`) or without two I/O vCPUs per CPU, measured for 2 s after a 5 s
/// warm-up.
fn decision_cost(n: usize, io: bool) -> DecisionCost {
    const CPUS: usize = 2;
    let mut sim = Sim::new(CPUS, SchedConfig::DEFAULT, 8);
    sim.check_every(if n > 256 { 50_000 } else { 5_000 });
    let weights = [WEIGHT_LOW, WEIGHT_NORMAL, WEIGHT_HIGH, 1000];
    for i in 0..n * CPUS {
        let d = i as u16;
        sim.domain(d, weights[i % weights.len()], 0);
        // Half pinned, half free to move: both queues and the balancer are exercised.
        let affinity = if i % 2 == 0 {
            CpuMask::single(CpuId((i / 2 % CPUS) as u16))
        } else {
            CpuMask::ALL
        };
        sim.vcpu(d, affinity, Behaviour::Hog);
    }
    // Heavy enough that 5% of a CPU is within their share even among 1024 hogs, so they
    // wake at the same rate whatever n is and every run has the same mix of decisions.
    for _ in 0..if io { 2 * CPUS } else { 0 } {
        sim.solo(u16::MAX, 0, IO);
    }
    // Long enough for every vCPU to have run (a round of 1024 hogs is about 3 s) and for
    // the I/O vCPUs to have shown they are not CPU-bound.
    sim.run_until(5 * SEC);
    sim.open_window();
    sim.run_until(7 * SEC);
    sim.finish();
    let c = &sim.cost;
    let mut seen = 0;
    let mut p99 = 0;
    for (ops, count) in c.decision_hist.iter().enumerate() {
        seen += count;
        if seen * 100 >= c.decisions * 99 {
            p99 = ops;
            break;
        }
    }
    eprintln!(
        "sched: {n} hogs per CPU on {CPUS} CPUs{}: {} decisions, {} wakes",
        if io { " + 2 I/O vCPUs per CPU" } else { "" },
        c.decisions,
        c.wakes
    );
    DecisionCost {
        mean: c.decision_ops as f64 / c.decisions as f64,
        p99: p99 as f64,
        max: c.decision_ops_max as f64,
        wake: c.wake_ops as f64 / c.wakes.max(1) as f64,
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
