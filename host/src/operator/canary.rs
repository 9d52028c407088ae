//! The canary of a hot-loaded transform version: for its first `canary_events` events the
//! previous version stays at hand. An event the new version fails on (an error value or a
//! trap) is processed by the previous version instead of being dead-lettered, and when the
//! failures exceed the budget (`max_error_rate` of `canary_events`) the operator rolls back to
//! the previous version — the run loop makes that a checkpoint barrier, like a swap.
//!
//! A version that fails on everything stops being isolated event by event as soon as its
//! failures in a row exceed the budget (its own [`Breaker`]): the whole batch then goes to the
//! previous version.

use serde::Deserialize;

use super::isolate::Breaker;
use crate::runtime::TransformInstance;

/// `rollout = { canary_events = 1000, max_error_rate = 0.01 }` of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// How many events a new version is watched for.
    #[serde(default = "default_canary_events")]
    pub canary_events: u64,
    /// The share of them that may fail before the operator rolls back.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
}

fn default_canary_events() -> u64 {
    1000
}

fn default_max_error_rate() -> f64 {
    0.01
}

impl Rollout {
    /// Failures allowed during the canary.
    pub fn budget(&self) -> u64 {
        (self.max_error_rate * self.canary_events as f64).floor() as u64
    }
}

/// What the canary concluded so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Watching,
    Passed,
    /// Roll back, for this reason.
    Failed(String),
}

/// The count of a canary: events seen, failures, and the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    rollout: Rollout,
    events: u64,
    failures: u64,
    verdict: Verdict,
}

impl Tally {
    pub fn new(rollout: Rollout) -> Self {
        Tally {
            rollout,
            events: 0,
            failures: 0,
            verdict: Verdict::Watching,
        }
    }

    /// Counts a batch of `events` on which the new version failed `failures` times.
    pub fn observe(&mut self, events: u64, failures: u64) -> &Verdict {
        if self.verdict != Verdict::Watching {
            return &self.verdict;
        }
        self.events += events;
        self.failures += failures;
        let budget = self.rollout.budget();
        if self.failures > budget {
            self.fail(format!(
                "{} of its first {} events failed (budget: {} of {}, max_error_rate {})",
                self.failures,
                self.events,
                budget,
                self.rollout.canary_events,
                self.rollout.max_error_rate
            ));
        } else if self.events >= self.rollout.canary_events {
            self.verdict = Verdict::Passed;
        }
        &self.verdict
    }

    /// Rolls back for `reason`.
    pub fn fail(&mut self, reason: String) {
        self.verdict = Verdict::Failed(reason);
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }
}

/// A new version under watch, with the version it replaced.
pub struct Canary {
    pub previous: TransformInstance,
    pub tally: Tally,
    /// Stops isolating a new version that fails on event after event.
    pub breaker: Breaker,
}

impl Canary {
    pub fn new(previous: TransformInstance, rollout: Rollout) -> Self {
        let limit = rollout.budget().saturating_add(1).min(u32::MAX as u64) as u32;
        Canary {
            previous,
            tally: Tally::new(rollout),
            breaker: Breaker::new(limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(events: u64, rate: f64) -> Rollout {
        Rollout {
            canary_events: events,
            max_error_rate: rate,
        }
    }

    #[test]
    fn the_budget_is_the_share_of_the_canary_events() {
        assert_eq!(rollout(1000, 0.01).budget(), 10);
        assert_eq!(rollout(1000, 0.0).budget(), 0);
        assert_eq!(rollout(10, 0.15).budget(), 1);
    }

    #[test]
    fn failures_over_the_budget_fail_the_canary_and_a_clean_run_passes_it() {
        let mut t = Tally::new(rollout(100, 0.05));
        assert_eq!(t.observe(50, 5), &Verdict::Watching);
        assert!(matches!(t.observe(10, 1), Verdict::Failed(r) if r.contains("6 of its first 60")));
        // Decided: later batches change nothing.
        assert!(matches!(t.observe(100, 0), Verdict::Failed(_)));
        let mut t = Tally::new(rollout(100, 0.05));
        assert_eq!(t.observe(60, 2), &Verdict::Watching);
        assert_eq!(t.observe(40, 3), &Verdict::Passed);
    }
}
