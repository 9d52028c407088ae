//! A chain of `transform` operators, with poison-event isolation.
//!
//! Each operator gets the whole batch in one call. When a plugin reports that event `i` failed,
//! that event is dead-lettered and the events before and after it are processed again without
//! it (transforms are stateless, so re-running is safe). When a plugin traps, its instance is
//! replaced and the batch is split in halves until the trapping event is alone; it is
//! dead-lettered with the trap's message. Nothing is dropped silently: every input event either
//! produces its outputs or becomes exactly one dead letter.

use std::sync::Arc;

use crate::runtime::{CallError, Plugin, Runtime, TransformInstance};

use super::batch::EventBatch;

/// An event that could not be processed, with what is known about why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Index of the source message it descends from.
    pub source: u32,
    pub operator: String,
    pub plugin: String,
    pub error: String,
    pub key: Vec<u8>,
    pub time: i64,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

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
            batch = run_operator(&self.runtime, op, &batch, &mut dead);
        }
        ChainOutput {
            events: batch,
            dead,
        }
    }
}

fn run_operator(
    runtime: &Runtime,
    op: &mut Operator,
    input: &EventBatch,
    dead: &mut Vec<DeadLetter>,
) -> EventBatch {
    // Fast path: the whole batch succeeds and its output is taken as it is.
    match call(runtime, op, input) {
        Ok(out) => out,
        Err(failure) => {
            let mut out = EventBatch::default();
            isolate(runtime, op, input, failure, &mut out, dead);
            out
        }
    }
}

/// A failed call: the plugin's error value or a trap / malformed output.
enum Failure {
    Event { index: usize, message: String },
    Whole(String),
}

fn call(runtime: &Runtime, op: &mut Operator, input: &EventBatch) -> Result<EventBatch, Failure> {
    match op.instance.process(runtime, &input.packed) {
        Ok(packed) => EventBatch::from_plugin_output(packed, &input.lineage)
            .map_err(|e| Failure::Whole(format!("plugin returned a {e}"))),
        Err(CallError::Event { index, message }) if (index as usize) < input.len() => {
            Err(Failure::Event {
                index: index as usize,
                message,
            })
        }
        Err(CallError::Event { index, message }) => Err(Failure::Whole(format!(
            "plugin reported an error for event {index} of a batch of {}: {message}",
            input.len()
        ))),
        Err(CallError::Failed(message)) => Err(Failure::Whole(message)),
        Err(CallError::Trap(message)) => Err(Failure::Whole(format!("plugin trapped: {message}"))),
    }
}

/// Processes `input`, whose first call failed with `failure`, appending good output to `out` and
/// each failing event to `dead`.
fn isolate(
    runtime: &Runtime,
    op: &mut Operator,
    input: &EventBatch,
    failure: Failure,
    out: &mut EventBatch,
    dead: &mut Vec<DeadLetter>,
) {
    match failure {
        Failure::Event { index, message } => {
            process_part(runtime, op, input, 0, index, out, dead);
            dead.push(dead_letter(op, input, index, message));
            process_part(runtime, op, input, index + 1, input.len(), out, dead);
        }
        Failure::Whole(message) if input.len() == 1 => {
            dead.push(dead_letter(op, input, 0, message));
        }
        Failure::Whole(_) => {
            let mid = input.len() / 2;
            process_part(runtime, op, input, 0, mid, out, dead);
            process_part(runtime, op, input, mid, input.len(), out, dead);
        }
    }
}

fn process_part(
    runtime: &Runtime,
    op: &mut Operator,
    input: &EventBatch,
    lo: usize,
    hi: usize,
    out: &mut EventBatch,
    dead: &mut Vec<DeadLetter>,
) {
    if lo >= hi {
        return;
    }
    let part = input.slice(lo, hi);
    match call(runtime, op, &part) {
        Ok(result) => out.append(&result),
        Err(failure) => isolate(runtime, op, &part, failure, out, dead),
    }
}

fn dead_letter(op: &Operator, batch: &EventBatch, index: usize, error: String) -> DeadLetter {
    let e = batch.view().get(index);
    tracing::warn!(
        operator = %op.name,
        plugin = %op.instance.plugin().label(),
        error = %error,
        "event dead-lettered"
    );
    DeadLetter {
        source: batch.lineage[index],
        operator: op.name.clone(),
        plugin: op.instance.plugin().label(),
        error,
        key: e.key.to_vec(),
        time: e.time,
        headers: e.headers.to_vec(),
        payload: e.payload.to_vec(),
    }
}
