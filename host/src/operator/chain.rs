//! A chain of `transform` operators, with poison-event isolation.
//!
//! Each operator gets the whole batch in one call. When that call fails, [`super::isolate`]
//! finds the failing events (named by the plugin, or by splitting the batch after a trap; a
//! trapped instance is replaced by the runtime) while every other event is processed —
//! transforms are stateless, so re-running events is safe. Nothing is dropped silently: every
//! input event either produces its outputs or becomes exactly one dead letter.

use std::sync::Arc;

use super::batch::EventBatch;
use super::isolate::{CallFailure, isolate};
use super::output::DeadLetter;
use crate::runtime::{Plugin, Runtime, TransformInstance};

/// One operator: a name from the pipeline and a live plugin instance.
pub struct Operator {
    pub name: String,
    pub instance: TransformInstance,
}

impl Operator {
    /// Swaps in another version of the plugin between two batches; the old version keeps
    /// running if the new one fails to start.
    pub fn upgrade(&mut self, runtime: &Runtime, plugin: Arc<Plugin>) -> anyhow::Result<()> {
        self.instance.replace(runtime, Some(plugin))
    }

    /// Runs `input` through this operator, appending failing events to `dead`.
    fn run(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> EventBatch {
        // Fast path: the whole batch succeeds and its output is taken as it is.
        let failure = match self.call(runtime, input) {
            Ok(out) => return out,
            Err(failure) => failure,
        };
        let mut out = EventBatch::default();
        let events: Vec<u32> = (0..input.len() as u32).collect();
        let mut failed = Vec::new();
        isolate(
            &events,
            failure,
            &|i| i as usize,
            &mut |part: &[u32]| {
                let part = input.select(part);
                out.append(&self.call(runtime, &part)?);
                Ok(())
            },
            &mut |i, message| failed.push((i, message)),
        );
        let plugin = self.instance.plugin().label();
        for (i, message) in failed {
            dead.push(DeadLetter::of_batch_event(
                input, i, &self.name, &plugin, message,
            ));
        }
        out
    }

    fn call(&mut self, runtime: &Runtime, input: &EventBatch) -> Result<EventBatch, CallFailure> {
        let out = self
            .instance
            .process(runtime, &input.packed)
            .map_err(|e| e.into_failure(input.len()))?;
        EventBatch::from_plugin_output(out, &input.lineage)
            .map_err(|e| CallFailure::Whole(format!("plugin returned a {e}")))
    }
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
            batch = op.run(&self.runtime, &batch, &mut dead);
        }
        ChainOutput {
            events: batch,
            dead,
        }
    }
}
