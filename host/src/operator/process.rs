//! The keyed process stage: a `process` plugin called once per key and batch with that key's
//! events, with per-key state and timers kept by the host ([`crate::state::KeyedState`]).
//!
//! Failure isolation is [`super::isolate`]'s, plus state: before each call the key's state is
//! snapshotted, and when the call fails it is restored before the failing event is found and
//! the others are processed again. A failing timer call is logged and its state changes undone.

use std::collections::HashMap;

use super::batch::EventBatch;
use std::sync::Arc;

use super::isolate::{Breaker, CallFailure, call_isolating};
use super::output::{BatchOutput, DeadLetter, TimerEvent};
use super::stage::{StageState, StatefulStage};
use crate::checkpoint::{Manifest, PluginVersion, StateBlob};
use crate::runtime::instance::AnyInstance;
use crate::runtime::{ProcessInstance, Runtime};
use crate::state::keyed::TimeDomain;

/// A keyed process stage's state in a checkpoint.
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

/// A keyed process function and its state.
pub struct ProcessStage {
    pub name: String,
    pub instance: ProcessInstance,
    watermark: i64,
    /// Stops the pipeline when the plugin fails on event after event.
    breaker: Arc<Breaker>,
}

impl ProcessStage {
    pub fn new(name: String, instance: ProcessInstance, breaker: Arc<Breaker>) -> Self {
        ProcessStage {
            name,
            instance,
            watermark: i64::MIN,
            breaker,
        }
    }

    /// Runs `input` key by key (keys in order of first appearance, each key's events in
    /// order); returns the emitted events (with lineage) and appends failures to `dead`. When
    /// the breaker trips, the keys not yet run are left alone and the reason is returned.
    pub fn run_batch(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        dead: &mut Vec<DeadLetter>,
    ) -> (EventBatch, Option<String>) {
        let view = input.view();
        let mut groups: Vec<(&[u8], Vec<u32>)> = Vec::new();
        let mut by_key: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..view.len() {
            let key = view.key(i);
            let g = *by_key.entry(key).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i as u32);
        }
        let mut out = EventBatch::default();
        let plugin = self.instance.plugin().label();
        let breaker = Arc::clone(&self.breaker);
        for (key, indices) in groups {
            let mut failed = Vec::new();
            let result = call_isolating(
                &indices,
                &|i| i as usize,
                &mut |part: &[u32]| self.call_key(runtime, input, key, part, &mut out),
                &mut |i, message| failed.push((i, message)),
                &breaker,
            );
            for (i, message) in failed {
                dead.push(DeadLetter::of_batch_event(
                    input, i, &self.name, &plugin, message,
                ));
            }
            if let Err(stopped) = result {
                let reason = format!("process function `{}` failed: {}", self.name, stopped.0);
                return (out, Some(reason));
            }
        }
        (out, None)
    }

    /// One `on-events` call with events `part` of `key`; on failure the key's state is put
    /// back as it was.
    fn call_key(
        &mut self,
        runtime: &Runtime,
        input: &EventBatch,
        key: &[u8],
        part: &[u32],
        out: &mut EventBatch,
    ) -> Result<(), CallFailure> {
        let events = input.select(part);
        let snapshot = self.instance.keyed().snapshot(key);
        let result = self
            .instance
            .on_events(runtime, key, &events.packed)
            .map_err(|e| e.into_failure(part.len()))
            .and_then(|batch| {
                EventBatch::from_plugin_output(batch, &events.lineage)
                    .map_err(|e| CallFailure::Whole(format!("plugin returned a {e}")))
            });
        match result {
            Ok(emitted) => {
                out.append(&emitted);
                Ok(())
            }
            Err(failure) => {
                self.instance.keyed().restore(snapshot);
                Err(failure)
            }
        }
    }

    /// The stage's state for a checkpoint (watermark, every key's values and timers),
    /// serialized in place as a [`ProcessState`].
    pub fn state_ref(&mut self) -> ProcessStateRef<'_> {
        ProcessStateRef {
            watermark: self.watermark,
            keyed: self.instance.keyed().checkpoint_ref(),
        }
    }

    /// Fires the timers of `domain` due at `now`, in time order; returns the events they
    /// emitted.
    fn fire_timers(&mut self, runtime: &Runtime, domain: TimeDomain, now: i64) -> Vec<TimerEvent> {
        let mut emitted = Vec::new();
        while let Some((time, key)) = self.instance.keyed().pop_due_timer(domain, now) {
            let snapshot = self.instance.keyed().snapshot(&key);
            self.instance.keyed().domain = domain;
            let result = self.instance.on_timer(runtime, &key, time);
            self.instance.keyed().domain = TimeDomain::Event;
            let batch = result.map_err(|e| e.to_string()).and_then(|batch| {
                let b = super::batch::into_builder(batch);
                weir_packed::BatchView::new(b.columns(), None)
                    .map(|view| timer_events(&key, &view))
                    .map_err(|e| format!("plugin returned a {e}"))
            });
            match batch {
                Ok(events) => emitted.extend(events),
                Err(error) => {
                    self.instance.keyed().restore(snapshot);
                    tracing::error!(
                        operator = %self.name,
                        key = %String::from_utf8_lossy(&key),
                        time,
                        error = %error,
                        "timer call failed; its state changes were undone and the timer dropped"
                    );
                }
            }
        }
        emitted
    }
}

/// A timer call's output as events; an event without a key gets the timer's key.
fn timer_events(key: &[u8], view: &weir_packed::BatchView<'_>) -> Vec<TimerEvent> {
    view.iter()
        .map(|e| TimerEvent {
            key: if e.key.is_empty() {
                key.to_vec()
            } else {
                e.key.to_vec()
            },
            time: e.time,
            headers: e.headers.to_vec(),
            payload: e.payload.to_vec(),
            pair: None,
        })
        .collect()
}

impl StatefulStage for ProcessStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "process"
    }

    fn plugin(&self) -> Option<&Arc<crate::runtime::Plugin>> {
        Some(self.instance.plugin())
    }

    fn process_batch(
        &mut self,
        runtime: &Runtime,
        events: &EventBatch,
        _origins: &[crate::source::Origin],
        out: &mut BatchOutput,
    ) {
        let (emitted, stopped) = self.run_batch(runtime, events, &mut out.dead);
        out.events.append(&emitted);
        if stopped.is_some() {
            out.stopped = stopped;
        }
    }

    /// Fires due event-time timers; the watermark never moves back.
    fn advance_watermark(&mut self, runtime: &Runtime, watermark: i64, out: &mut BatchOutput) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        let fired = self.fire_timers(runtime, TimeDomain::Event, watermark);
        out.timers.extend(fired);
    }

    fn on_processing_time(&mut self, runtime: &Runtime, out: &mut BatchOutput) {
        let now = self.instance.keyed().clock.now();
        let fired = self.fire_timers(runtime, TimeDomain::Processing, now);
        out.timers.extend(fired);
    }

    fn needs_processing_time(&self) -> bool {
        true
    }

    fn state(&mut self) -> StageState<'_> {
        StageState::Process(self.state_ref())
    }

    fn restore(
        &mut self,
        _runtime: &Runtime,
        manifest: &Manifest,
        blob: &mut StateBlob,
    ) -> anyhow::Result<()> {
        if blob.window.is_some() || blob.join.is_some() {
            anyhow::bail!(
                "checkpoint {} holds window or join state, but the pipeline has a `[process]` \
                 now; a fresh start needs `weir checkpoint delete --all`",
                manifest.id
            );
        }
        if let Some(state) = blob.process.take() {
            self.watermark = state.watermark;
            self.instance.keyed().restore_all(state.keyed);
        }
        Ok(())
    }

    fn swap(&mut self, _runtime: &Runtime, next: AnyInstance) -> anyhow::Result<()> {
        let AnyInstance::Process(mut next) = next else {
            anyhow::bail!(
                "process function `{}`: the new version implements `{}`, not `process`",
                self.name,
                next.world().name()
            );
        };
        next.take_over(&mut self.instance);
        self.instance = next;
        Ok(())
    }

    fn plugin_version(&mut self, _runtime: &Runtime) -> anyhow::Result<Option<PluginVersion>> {
        Ok(Some(PluginVersion {
            stage: "process".into(),
            name: self.name.clone(),
            sha256: self.instance.plugin().hash.clone(),
            state_version: None,
        }))
    }

    fn state_entries(&mut self) -> u64 {
        self.instance.keyed().keys() as u64
    }
}
