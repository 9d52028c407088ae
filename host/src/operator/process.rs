//! The keyed process operator: a `process` plugin called once per key and batch with that
//! key's events, with per-key state and event-time timers kept by the host
//! ([`crate::state::KeyedState`]).
//!
//! Failure isolation as in the transform chain, plus state: before each call the key's state
//! is snapshotted; when the call fails it is restored, the failing event (named by the plugin,
//! or found by splitting the key's events after a trap) is dead-lettered, and the others are
//! processed again.

use std::collections::HashMap;

use weir_sdk::packed::BatchBuilder;

use crate::runtime::{CallError, ProcessInstance, Runtime};
use crate::state::keyed::TimeDomain;

use super::batch::EventBatch;
use super::chain::DeadLetter;

/// An event a timer emitted (no source lineage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEvent {
    pub key: Vec<u8>,
    pub time: i64,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

/// A keyed process operator's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessState {
    pub watermark: i64,
    pub keyed: crate::state::keyed::KeyedStateSnapshot,
}

/// Serializes as [`ProcessState`] without copying the keyed state.
#[derive(serde::Serialize)]
#[serde(rename = "ProcessState")]
pub struct ProcessStateRef<'a> {
    watermark: i64,
    keyed: crate::state::keyed::KeyedStateRef<'a>,
}

/// A keyed process operator.
pub struct KeyedProcess {
    pub name: String,
    pub instance: ProcessInstance,
    watermark: i64,
}

impl KeyedProcess {
    pub fn new(name: String, instance: ProcessInstance) -> Self {
        KeyedProcess {
            name,
            instance,
            watermark: i64::MIN,
        }
    }

    /// Runs `input` key by key (keys in order of first appearance, each key's events in
    /// order); returns the emitted events (with lineage) and appends failures to `dead`.
    pub fn process_batch(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> EventBatch {
        let view = input.view();
        let mut groups: Vec<(&[u8], Vec<usize>)> = Vec::new();
        let mut by_key: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..view.len() {
            let key = view.key(i);
            let g = *by_key.entry(key).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        let mut out = EventBatch::default();
        for (key, indices) in groups {
            self.run_key(runtime, input, key, &indices, &mut out, dead);
        }
        out
    }

    fn run_key(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        key: &[u8],
        indices: &[usize],
        out: &mut EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) {
        if indices.is_empty() {
            return;
        }
        let part = input.select(indices);
        let snapshot = self.instance.keyed().snapshot(key);
        let failure = match self.instance.on_events(runtime, key, &part.packed) {
            Ok(batch) => match EventBatch::from_plugin_output(batch, &part.lineage) {
                Ok(events) => {
                    out.append(&events);
                    return;
                }
                Err(e) => (None, format!("plugin returned a {e}")),
            },
            Err(CallError::Event { index, message }) if (index as usize) < indices.len() => {
                (Some(index as usize), message)
            }
            Err(e) => (None, e.to_string()),
        };
        self.instance.keyed().restore(snapshot);
        match failure {
            (Some(i), message) => {
                self.run_key(runtime, input, key, &indices[..i], out, dead);
                dead.push(self.dead_letter(input, indices[i], message));
                self.run_key(runtime, input, key, &indices[i + 1..], out, dead);
            }
            (None, message) if indices.len() == 1 => {
                dead.push(self.dead_letter(input, indices[0], message));
            }
            (None, _) => {
                let mid = indices.len() / 2;
                self.run_key(runtime, input, key, &indices[..mid], out, dead);
                self.run_key(runtime, input, key, &indices[mid..], out, dead);
            }
        }
    }

    fn dead_letter(&self, input: &EventBatch, i: usize, error: String) -> DeadLetter {
        let e = input.view().get(i);
        tracing::warn!(operator = %self.name, error = %error, "event dead-lettered");
        DeadLetter {
            source: input.lineage[i],
            operator: self.name.clone(),
            plugin: self.instance.plugin().label(),
            error,
            key: e.key.to_vec(),
            time: e.time,
            headers: e.headers.to_vec(),
            payload: e.payload.to_vec(),
        }
    }

    /// The operator's state for a checkpoint (watermark, every key's values and timers),
    /// serialized in place as a [`ProcessState`].
    pub fn state_ref(&mut self) -> ProcessStateRef<'_> {
        ProcessStateRef {
            watermark: self.watermark,
            keyed: self.instance.keyed().checkpoint_ref(),
        }
    }

    /// Restores checkpointed state.
    pub fn restore(&mut self, state: ProcessState) {
        self.watermark = state.watermark;
        self.instance.keyed().restore_all(state.keyed);
    }

    /// Advances the watermark to `wm`, firing due event-time timers in time order; returns the
    /// events they emitted. A failing timer call is logged and its state changes undone.
    pub fn advance_watermark(&mut self, runtime: &Runtime, wm: i64) -> Vec<TimerEvent> {
        if wm <= self.watermark {
            return Vec::new();
        }
        self.watermark = wm;
        self.fire_timers(runtime, TimeDomain::Event, wm)
    }

    /// Fires the processing-time timers due at `now` (the wall clock), in time order.
    pub fn advance_processing_time(&mut self, runtime: &Runtime, now: i64) -> Vec<TimerEvent> {
        self.fire_timers(runtime, TimeDomain::Processing, now)
    }

    fn fire_timers(&mut self, runtime: &Runtime, domain: TimeDomain, now: i64) -> Vec<TimerEvent> {
        let mut emitted = Vec::new();
        while let Some((time, key)) = self.instance.keyed().pop_due_timer(domain, now) {
            let snapshot = self.instance.keyed().snapshot(&key);
            self.instance.keyed().domain = domain;
            let result = self.instance.on_timer(runtime, &key, time);
            self.instance.keyed().domain = TimeDomain::Event;
            match result {
                Ok(batch) => {
                    let b = super::batch::into_builder(batch);
                    match weir_sdk::packed::BatchView::new(b.columns(), None) {
                        Ok(view) => emitted.extend(view.iter().map(|e| TimerEvent {
                            key: if e.key.is_empty() {
                                key.to_vec()
                            } else {
                                e.key.to_vec()
                            },
                            time: e.time,
                            headers: e.headers.to_vec(),
                            payload: e.payload.to_vec(),
                        })),
                        Err(e) => self.timer_failed(
                            &key,
                            time,
                            snapshot,
                            format!("plugin returned a {e}"),
                        ),
                    }
                }
                Err(e) => self.timer_failed(&key, time, snapshot, e.to_string()),
            }
        }
        emitted
    }

    fn timer_failed(
        &mut self,
        key: &[u8],
        time: i64,
        snapshot: crate::state::KeySnapshot,
        error: String,
    ) {
        self.instance.keyed().restore(snapshot);
        tracing::error!(
            operator = %self.name,
            key = %String::from_utf8_lossy(key),
            time,
            error = %error,
            "timer call failed; its state changes were undone and the timer dropped"
        );
    }
}

/// Appends timer events to a builder (for outputs without lineage).
pub fn push_timer_events(b: &mut BatchBuilder, events: &[TimerEvent]) {
    for e in events {
        b.push(&e.key, e.time, &e.headers, &e.payload, 0);
    }
}
