//! A chain of `transform` operators, with poison-event isolation.
//!
//! Each operator gets the whole batch in one call. When that call fails, [`super::isolate`]
//! finds the failing events (named by the plugin, or by splitting the batch after a trap; a
//! trapped instance is replaced by the runtime) while every other event is processed —
//! transforms are stateless, so re-running events is safe. Nothing is dropped silently: every
//! input event either produces its outputs or becomes exactly one dead letter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::EventBatch;
use super::canary::{Canary, Rollout, Verdict};
use super::isolate::{Breaker, CallFailure, Stopped, isolate};
use super::output::DeadLetter;
use crate::runtime::{Plugin, Runtime, TransformInstance};

/// One operator: a name from the pipeline and a live plugin instance.
pub struct Operator {
    pub name: String,
    pub instance: TransformInstance,
    /// Stops the pipeline when the plugin fails on event after event.
    pub breaker: Arc<Breaker>,
    /// How a hot-loaded version is watched (`None`: it takes over at once).
    pub rollout: Option<Rollout>,
    /// The new version under watch and the one it replaced.
    pub canary: Option<Canary>,
    /// Since when the running version runs (ms since the Unix epoch), its events and the
    /// events it failed on.
    pub since_ms: i64,
    pub events: u64,
    pub errors: u64,
    /// Wall time its calls took since the running version took over (per batch, isolation
    /// and a canary's fallback included).
    pub busy: Duration,
}

/// What became of a canary at the end of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryOutcome {
    Passed {
        version: String,
    },
    RolledBack {
        from: String,
        to: String,
        reason: String,
    },
}

impl Operator {
    pub fn new(name: String, instance: TransformInstance, breaker: Arc<Breaker>) -> Self {
        Operator {
            name,
            instance,
            breaker,
            rollout: None,
            canary: None,
            since_ms: now_ms(),
            events: 0,
            errors: 0,
            busy: Duration::ZERO,
        }
    }

    fn restart_counts(&mut self) {
        (self.since_ms, self.events, self.errors) = (now_ms(), 0, 0);
        self.busy = Duration::ZERO;
    }

    /// Swaps in another version of the plugin between two batches; the old version keeps
    /// running if the new one fails to start.
    pub fn upgrade(&mut self, runtime: &Runtime, plugin: Arc<Plugin>) -> anyhow::Result<()> {
        self.instance.replace(runtime, Some(plugin))
    }

    /// Installs `next` (hot-loading); with a rollout, the running version is kept as the
    /// canary's fallback.
    pub fn install(&mut self, next: TransformInstance) {
        let previous = std::mem::replace(&mut self.instance, next);
        self.canary = self.rollout.map(|r| Canary::new(previous, r));
        self.restart_counts();
    }

    /// Settles a decided canary after a batch: a pass drops the previous version, a failure
    /// puts it back.
    pub fn settle_canary(&mut self) -> Option<CanaryOutcome> {
        let verdict = self.canary.as_ref()?.tally.verdict().clone();
        match verdict {
            Verdict::Watching => None,
            Verdict::Passed => {
                self.canary = None;
                Some(CanaryOutcome::Passed {
                    version: self.instance.plugin().label(),
                })
            }
            Verdict::Failed(reason) => {
                let canary = self.canary.take()?;
                let failed = std::mem::replace(&mut self.instance, canary.previous);
                self.restart_counts();
                Some(CanaryOutcome::RolledBack {
                    from: failed.plugin().label(),
                    to: self.instance.plugin().label(),
                    reason,
                })
            }
        }
    }

    /// Runs `input` through this operator, appending failing events to `dead`; stops when
    /// the operator's breaker trips. Under a canary, events the new version fails on go to
    /// the previous version.
    fn run(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<EventBatch, Stopped> {
        let before = dead.len();
        let started = Instant::now();
        let out = self.run_versions(runtime, input, dead);
        self.busy += started.elapsed();
        self.events += input.len() as u64;
        self.errors += (dead.len() - before) as u64;
        out
    }

    /// [`Operator::run`] on the running version, or with its canary.
    fn run_versions(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<EventBatch, Stopped> {
        let Some(canary) = &mut self.canary else {
            let (out, failed) = run_isolated(&mut self.instance, &self.breaker, runtime, input);
            self.dead_letters(input, failed.failed, &self.instance.plugin().label(), dead);
            return failed.stopped.map_or(Ok(out), Err);
        };
        if canary.tally.verdict() != &Verdict::Watching {
            // Decided: the previous version takes the batch until the run loop settles it.
            let (out, failed) = run_isolated(&mut canary.previous, &self.breaker, runtime, input);
            let label = canary.previous.plugin().label();
            self.dead_letters(input, failed.failed, &label, dead);
            return failed.stopped.map_or(Ok(out), Err);
        }
        let (out, failed) = run_isolated(&mut self.instance, &canary.breaker, runtime, input);
        if let Some(Stopped(reason)) = failed.stopped {
            // Fails on everything: the whole batch goes to the previous version.
            canary.tally.fail(reason);
            let (out, failed) = run_isolated(&mut canary.previous, &self.breaker, runtime, input);
            let label = canary.previous.plugin().label();
            self.dead_letters(input, failed.failed, &label, dead);
            return failed.stopped.map_or(Ok(out), Err);
        }
        canary
            .tally
            .observe(input.len() as u64, failed.failed.len() as u64);
        if failed.failed.is_empty() {
            return Ok(out);
        }
        let again: Vec<u32> = failed.failed.iter().map(|(i, _)| *i as u32).collect();
        let retry = input.select(&again);
        let (fallback, still) = run_isolated(&mut canary.previous, &self.breaker, runtime, &retry);
        let label = canary.previous.plugin().label();
        let stopped = still.stopped;
        let still: Vec<(usize, String)> = still
            .failed
            .into_iter()
            .map(|(j, m)| (again[j] as usize, m))
            .collect();
        self.dead_letters(input, still, &label, dead);
        match stopped {
            Some(s) => Err(s),
            None => Ok(out.merge(fallback)),
        }
    }

    fn dead_letters(
        &self,
        input: &EventBatch,
        failed: Vec<(usize, String)>,
        plugin: &str,
        dead: &mut Vec<DeadLetter>,
    ) {
        for (i, message) in failed {
            dead.push(DeadLetter::of_batch_event(
                input, i, &self.name, plugin, message,
            ));
        }
    }
}

/// The wall clock in ms since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The events a call over a batch failed on, and whether isolation stopped.
struct Failed {
    failed: Vec<(usize, String)>,
    stopped: Option<Stopped>,
}

/// Runs `input` through `instance` in one call, isolating failing events when that call
/// fails (see [`super::isolate`]); `breaker` stops the isolation.
fn run_isolated(
    instance: &mut TransformInstance,
    breaker: &Breaker,
    runtime: &Runtime,
    input: &EventBatch,
) -> (EventBatch, Failed) {
    // Fast path: the whole batch succeeds and its output is taken as it is.
    let failure = match call(instance, runtime, input) {
        Ok(out) => {
            return (
                out,
                Failed {
                    failed: Vec::new(),
                    stopped: None,
                },
            );
        }
        Err(failure) => failure,
    };
    let mut out = EventBatch::default();
    let events: Vec<u32> = (0..input.len() as u32).collect();
    let mut failed = Vec::new();
    let result = isolate(
        &events,
        failure,
        &|i| i as usize,
        &mut |part: &[u32]| {
            let part = input.select(part);
            out.append(&call(instance, runtime, &part)?);
            Ok(())
        },
        &mut |i, message| failed.push((i, message)),
        breaker,
    );
    (
        out,
        Failed {
            failed,
            stopped: result.err(),
        },
    )
}

/// One `process` call over `input`.
fn call(
    instance: &mut TransformInstance,
    runtime: &Runtime,
    input: &EventBatch,
) -> Result<EventBatch, CallFailure> {
    let out = instance
        .process(runtime, &input.packed)
        .map_err(|e| e.into_failure(input.len()))?;
    EventBatch::from_plugin_output(out, &input.lineage)
        .map_err(|e| CallFailure::Whole(format!("plugin returned a {e}")))
}

/// The operators of a pipeline, in order.
pub struct Chain {
    pub runtime: Runtime,
    pub operators: Vec<Operator>,
}

/// What a chain made of a batch.
#[derive(Debug, Default)]
pub struct ChainOutput {
    pub events: EventBatch,
    pub dead: Vec<DeadLetter>,
    /// An operator failed for good (its breaker tripped): the batch must not be committed.
    pub stopped: Option<String>,
}

impl Chain {
    /// Runs `input` through every operator.
    pub fn run(&mut self, input: EventBatch) -> ChainOutput {
        let mut dead = Vec::new();
        let mut batch = input;
        for op in &mut self.operators {
            if batch.is_empty() {
                break;
            }
            match op.run(&self.runtime, &batch, &mut dead) {
                Ok(out) => batch = out,
                Err(Stopped(reason)) => {
                    return ChainOutput {
                        events: EventBatch::default(),
                        dead,
                        stopped: Some(format!("operator `{}` failed: {reason}", op.name)),
                    };
                }
            }
        }
        ChainOutput {
            events: batch,
            dead,
            stopped: None,
        }
    }
}
