//! Domains: weight, and the cap as a budget of CPU time per period.
//!
//! A capped domain gets `cap_percent * period / 100` ns of CPU per period (10 ms by default),
//! shared by all its vCPUs on all CPUs, as credit2 does. A vCPU that starts running takes a
//! *grant* out of the budget (no more than it is about to use), and the decision's timer
//! ends its run when the grant is spent; two CPUs can never both spend the last of the
//! budget. Time is charged exactly, from timestamps, as it is used; what a vCPU overruns
//! (a late timer) is a debt carried into the next period.
//!
//! The budget is a token bucket: each period adds one period's budget `B`, and the bucket
//! holds at most `B + B/4`, so up to a quarter period's budget left unused (typically because
//! the domain's vCPUs were waiting behind others of earlier deadline when the period ended)
//! carries into the next period instead of being lost. Without that carry a domain competing
//! for its CPUs falls short of its cap (147% for a 150% cap in the simulator). Over any
//! interval of length `t` the domain gets at most `cap * t + 1.25 B` (plus the overrun of
//! one late timer), so the overshoot in percent vanishes as the interval grows, and a
//! domain that has been idle can burst by at most a quarter period's budget.
//!
//! Replenishment is lazy (on the next access after a period boundary), so there is no
//! periodic pass over all domains: Xen credit1's 30 ms accounting pass walks every active
//! domain. Periods are aligned to multiples of the period on the hypervisor clock, so all
//! vCPUs parked for lack of budget wake at the same, predictable boundary.

use super::{CpuMask, SchedParams, vtime};

#[derive(Clone, Copy)]
pub(super) struct Domain {
    pub(super) present: bool,
    pub(super) weight: u16,
    pub(super) cap_percent: u16,
    pub(super) nr_vcpus: u32,
    /// Budget left in the current period (negative: debt), in ns.
    budget: i64,
    /// Grants handed to running vCPUs and not yet used.
    reserved: u64,
    /// The period (`now / period`) the budget belongs to.
    epoch: u64,
    /// CPUs where vCPUs of this domain are parked because the unspent budget was all
    /// granted to vCPUs running elsewhere: they are woken when a grant comes back unused.
    pub(super) waiting_cpus: CpuMask,
}

impl Domain {
    pub(super) const ABSENT: Self = Self {
        present: false,
        weight: 0,
        cap_percent: 0,
        nr_vcpus: 0,
        budget: 0,
        reserved: 0,
        epoch: 0,
        waiting_cpus: CpuMask::EMPTY,
    };

    pub(super) const fn new(params: SchedParams, now: u64, period: u64) -> Self {
        let mut d = Self {
            present: true,
            weight: params.weight,
            cap_percent: params.cap_percent,
            nr_vcpus: 0,
            budget: 0,
            reserved: 0,
            epoch: 0,
            waiting_cpus: CpuMask::EMPTY,
        };
        d.reset_budget(now, period);
        d
    }

    pub(super) const fn capped(&self) -> bool {
        self.cap_percent != 0
    }

    /// Grants handed out and not yet used or returned.
    pub(super) const fn reserved(&self) -> u64 {
        self.reserved
    }

    pub(super) const fn inverse_weight(&self) -> u64 {
        vtime::inverse_weight(self.weight)
    }

    const fn period_budget(&self, period: u64) -> i64 {
        (self.cap_percent as u64 * period / 100) as i64
    }

    /// A full budget for the current period (a new domain, or a new cap).
    pub(super) const fn reset_budget(&mut self, now: u64, period: u64) {
        self.budget = self.period_budget(period);
        self.epoch = now / period;
    }

    /// Applies the replenishments of every period boundary passed since the last access.
    fn refresh(&mut self, now: u64, period: u64) {
        let epoch = now / period;
        if epoch > self.epoch {
            let full = self.period_budget(period);
            let depth = full + full / 4;
            let periods = (epoch - self.epoch).min(i64::MAX as u64 / 2) as i64;
            self.budget = self
                .budget
                .saturating_add(periods.saturating_mul(full))
                .min(depth);
            self.epoch = epoch;
        }
    }

    /// Budget neither used nor granted.
    pub(super) fn available(&mut self, now: u64, period: u64) -> i64 {
        self.refresh(now, period);
        self.budget - self.reserved as i64
    }

    /// Budget not yet used (some of it may be granted).
    pub(super) fn unspent(&mut self, now: u64, period: u64) -> i64 {
        self.refresh(now, period);
        self.budget
    }

    /// Grants up to `want` ns to a vCPU that is about to run; 0 when the budget is spent.
    pub(super) fn grant(&mut self, want: u64, now: u64, period: u64) -> u64 {
        let available = self.available(now, period);
        if available <= 0 {
            return 0;
        }
        let g = want.min(available as u64);
        self.reserved += g;
        g
    }

    /// Charges `ns` of CPU time used under the grant `*left`.
    pub(super) fn charge(&mut self, ns: u64, left: &mut u64, now: u64, period: u64) {
        self.budget = self.budget.saturating_sub(ns.min(i64::MAX as u64) as i64);
        let used = ns.min(*left);
        *left -= used;
        self.reserved -= used;
        self.refresh(now, period);
    }

    /// Returns the unused part of a grant when its vCPU stops running; true if some came
    /// back.
    pub(super) fn release(&mut self, left: &mut u64) -> bool {
        let returned = *left != 0;
        self.reserved -= *left;
        *left = 0;
        returned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 10_000_000;

    fn dom(cap: u16) -> Domain {
        Domain::new(
            SchedParams {
                weight: 256,
                cap_percent: cap,
            },
            0,
            P,
        )
    }

    #[test]
    fn grants_never_exceed_the_budget() {
        let mut d = dom(25);
        let (mut a, mut b) = (d.grant(2_000_000, 0, P), 0);
        assert_eq!(a, 2_000_000);
        b += d.grant(2_000_000, 0, P);
        assert_eq!(b, 500_000);
        assert_eq!(d.grant(1, 0, P), 0);
        d.charge(100_000, &mut b, 100_000, P);
        d.release(&mut b);
        // The unused 400 µs of b's grant is available again.
        assert_eq!(d.available(100_000, P), 400_000);
        d.charge(2_000_000, &mut a, 2_000_000, P);
        assert_eq!(d.available(2_000_000, P), 400_000);
    }

    #[test]
    fn debt_carries_and_surplus_carries_a_little() {
        let mut d = dom(50);
        let mut g = d.grant(5_000_000, 0, P);
        // Overran by 1 ms (a late timer): 1 ms of debt into the next period.
        d.charge(6_000_000, &mut g, 6_000_000, P);
        assert_eq!(d.available(6_000_000, P), -1_000_000);
        assert_eq!(d.available(P, P), 4_000_000);
        // 1 ms unused: carried.
        let mut g = d.grant(3_000_000, P, P);
        d.charge(3_000_000, &mut g, P + 3_000_000, P);
        assert_eq!(d.available(2 * P, P), 6_000_000);
        // Idle periods fill the bucket to 1.25 periods' budget, no more.
        assert_eq!(d.available(10 * P, P), 6_250_000);
    }

    #[test]
    fn cap_over_one_cpu() {
        let mut d = dom(200);
        assert_eq!(d.available(0, P), 20_000_000);
        assert!(!dom(0).capped() && d.capped());
        d.reset_budget(3 * P + 1, P);
        assert_eq!(d.available(3 * P + 2, P), 20_000_000);
    }
}
