//! A chain of `transform` operators, with poison-event isolation.
//!
//! Each operator gets the whole batch in one call. When that call fails, [`super::isolate`]
//! finds the failing events (named by the plugin, or by splitting the batch after a trap; a
//! trapped instance is replaced by the runtime) while every other event is processed —
//! transforms are stateless, so re-running events is safe. Nothing is dropped silently: every
//! input event either produces its outputs or becomes exactly one dead letter.

use std::sync::Arc;

use super::batch::EventBatch;
use super::isolate::{Breaker, CallFailure, Stopped, isolate};
use super::output::DeadLetter;
use crate::runtime::{Plugin, Runtime, TransformInstance};

/// One operator: a name from the pipeline and a live plugin instance.
pub struct Operator {
    pub name: String,
    pub instance: TransformInstance,
    /// Stops the pipeline when the plugin fails on event after event.
    pub breaker: Arc<Breaker>,
}

impl Operator {
    /// Swaps in another version of the plugin between two batches; the old version keeps
    /// running if the new one fails to start.
    pub fn upgrade(&mut self, runtime: &Runtime, plugin: Arc<Plugin>) -> anyhow::Result<()> {
        self.instance.replace(runtime, Some(plugin))
    }

    /// Runs `input` through this operator, appending failing events to `dead`; stops when
    /// the operator's breaker trips.
    fn run(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<EventBatch, Stopped> {
        // Fast path: the whole batch succeeds and its output is taken as it is.
        let failure = match call(&mut self.instance, runtime, input) {
            Ok(out) => return Ok(out),
            Err(failure) => failure,
        };
        let mut out = EventBatch::default();
        let events: Vec<u32> = (0..input.len() as u32).collect();
        let mut failed = Vec::new();
        let instance = &mut self.instance;
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
            &self.breaker,
        );
        let plugin = self.instance.plugin().label();
        for (i, message) in failed {
            dead.push(DeadLetter::of_batch_event(
                input, i, &self.name, &plugin, message,
            ));
        }
        result.map(|_| out)
    }
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
