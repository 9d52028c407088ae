//! The processing stages of a JetStream pipeline — operator chain, then the window or keyed
//! process stage with its watermarks — run on a blocking thread batch by batch, and their
//! state for checkpoints (snapshot and restore).

use std::sync::Arc;

use crate::admin::Metrics;
use crate::checkpoint::{EncodedState, Manifest, PluginVersion, StateBlob};
use crate::config::{Pipeline, WatermarkStrategy, WindowTime};
use crate::operator::process::KeyedProcess;
use crate::operator::window::WindowedAggregate;
use crate::operator::window::push_result;
use crate::operator::{Chain, DeadLetter, EventBatch};
use crate::runtime::Runtime;
use crate::sink::jetstream::{
    BatchOutput, Derived, DerivedDeadLetter, WindowResult, timer_origin, window_origin,
};
use crate::window::{Emission, ProcessingClock, SourceWatermarks};
use weir_sdk::packed::BatchBuilder;

/// The processing stages of a pipeline, moved to a blocking thread for each batch.
pub struct Stages {
    runtime: Runtime,
    metrics: Arc<Metrics>,
    chain: Chain,
    window: Option<WindowedAggregate>,
    process: Option<KeyedProcess>,
    /// `[[after]]`: transforms over the window or process stage's results.
    after: Chain,
    /// Per-partition bounded watermarks (`None`: no stateful stage, punctuated, or
    /// processing time).
    pub watermarks: Option<SourceWatermarks>,
    /// The wall clock of a processing-time window (which it also fires).
    processing: Option<ProcessingClock>,
    /// The last snapshot's size (the next one's buffer is sized from it).
    snapshot_size: usize,
}

impl Stages {
    pub fn build(
        runtime: &Runtime,
        pipeline: &Pipeline,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Stages {
            runtime: runtime.clone(),
            metrics,
            chain: super::build_chain(runtime, pipeline)?,
            window: super::build_window(runtime, pipeline)?,
            process: super::build_process(runtime, pipeline)?,
            after: super::build_after(runtime, pipeline)?,
            watermarks: source_watermarks(pipeline),
            processing: pipeline
                .config
                .window
                .as_ref()
                .is_some_and(|w| w.time == WindowTime::Processing)
                .then(ProcessingClock::default),
            snapshot_size: 0,
        })
    }

    /// Runs a batch through the chain and then the window or process stage, if any: the
    /// events in order, split at watermark markers (`(source index, watermark)`), then the
    /// generated watermark. Returns the chain's outputs (its results when there is no
    /// stateful stage, and dead letters) and the stateful stage's outputs apart: with
    /// `effectively-once` the latter wait for the next checkpoint.
    pub fn run(
        &mut self,
        events: EventBatch,
        refused: Vec<DeadLetter>,
        markers: &[(u32, i64)],
        subjects: &[String],
    ) -> (BatchOutput, BatchOutput) {
        let out = self.chain.run(events);
        let mut chain = BatchOutput {
            dead: refused,
            ..Default::default()
        };
        chain.dead.extend(out.dead);
        let mut stateful = BatchOutput::default();
        if self.window.is_none() && self.process.is_none() {
            chain.events = out.events;
            return (chain, stateful);
        }
        let events = out.events;
        let mut start = 0;
        if self.processing.is_none() {
            for &(source, wm) in markers {
                let end = start + events.lineage[start..].partition_point(|&l| l < source);
                self.segment(&events, start, end, &mut stateful);
                self.advance(wm, &mut stateful);
                start = end;
            }
        }
        self.segment(&events, start, events.len(), &mut stateful);
        self.processing_time(&mut stateful);
        if let Some(w) = &mut self.watermarks {
            let now = std::time::Instant::now();
            let view = events.view();
            for i in 0..view.len() {
                let partition = w.partition(&subjects[events.lineage[i] as usize]);
                w.observe(partition, view.time(i), now);
            }
            if let Some(wm) = w.update(now) {
                self.advance(wm, &mut stateful);
            }
        }
        self.after(&mut stateful);
        (chain, stateful)
    }

    /// Whether [`Stages::tick`] has work on a quiet stream (watermarks to advance, or a
    /// processing-time window or timers to fire).
    pub fn needs_ticks(&self) -> bool {
        self.watermarks.is_some() || self.processing.is_some() || self.process.is_some()
    }

    /// Fires what the wall clock made due: processing-time windows and timers.
    fn processing_time(&mut self, result: &mut BatchOutput) {
        if let Some(clock) = &mut self.processing {
            let now = clock.now();
            self.advance(now - 1, result);
        }
        if let Some(process) = &mut self.process {
            let now = process.instance.keyed().clock.now();
            result
                .timers
                .extend(process.advance_processing_time(&self.runtime, now));
        }
    }

    /// Periodic work while no events arrive: idle partitions stop holding the watermark back;
    /// processing-time windows fire by the clock.
    pub fn tick(&mut self) -> BatchOutput {
        let mut result = BatchOutput::default();
        self.processing_time(&mut result);
        if let Some(wm) = self
            .watermarks
            .as_mut()
            .and_then(|w| w.update(std::time::Instant::now()))
        {
            self.advance(wm, &mut result);
        }
        self.after(&mut result);
        result
    }

    /// Runs the stateful stage's results through the `[[after]]` operators: process outputs
    /// keep their source lineage; window results and timer events become [`Derived`] events
    /// (and dead letters) named after what they came from.
    fn after(&mut self, out: &mut BatchOutput) {
        if self.after.operators.is_empty() {
            return;
        }
        if !out.events.is_empty() {
            let r = self.after.run(std::mem::take(&mut out.events));
            out.events = r.events;
            out.dead.extend(r.dead);
        }
        if out.windows.is_empty() && out.timers.is_empty() {
            return;
        }
        let mut origins = Vec::with_capacity(out.windows.len() + out.timers.len());
        let mut b = BatchBuilder::with_capacity(origins.capacity(), 64);
        for r in out.windows.drain(..) {
            push_result(&mut b, &r.key, r.window, &r.payload, origins.len() as u32);
            origins.push(window_origin(&r));
        }
        for e in out.timers.drain(..) {
            b.push(&e.key, e.time, &e.headers, &e.payload, origins.len() as u32);
            origins.push(timer_origin(&e));
        }
        let r = self.after.run(EventBatch::from_source(b));
        let mut emitted = vec![0u32; origins.len()];
        for (i, e) in r.events.view().iter().enumerate() {
            let origin = r.events.lineage[i] as usize;
            out.derived.push(Derived {
                origin: origins[origin].clone(),
                index: emitted[origin],
                key: e.key.to_vec(),
                time: e.time,
                headers: e.headers.to_vec(),
                payload: e.payload.to_vec(),
            });
            emitted[origin] += 1;
        }
        out.derived_dead
            .extend(r.dead.into_iter().map(|letter| DerivedDeadLetter {
                origin: origins[letter.source as usize].clone(),
                letter,
            }));
    }

    /// Events `lo..hi` into the window or process stage.
    fn segment(&mut self, events: &EventBatch, lo: usize, hi: usize, result: &mut BatchOutput) {
        if lo >= hi {
            return;
        }
        let sliced;
        let part = if let Some(clock) = &mut self.processing {
            let mut stamped = events.slice(lo, hi);
            clock.stamp(&mut stamped);
            sliced = stamped;
            &sliced
        } else if lo == 0 && hi == events.len() {
            events
        } else {
            sliced = events.slice(lo, hi);
            &sliced
        };
        if let Some(process) = &mut self.process {
            let emitted = process.process_batch(&self.runtime, part, &mut result.dead);
            result.events.append(&emitted);
        }
        if let Some(window) = &mut self.window {
            let mut emitted = Vec::new();
            window.process_batch(&self.runtime, &part.view(), &mut emitted);
            absorb(window, emitted, Some(part), result);
        }
    }

    /// Advances the watermark of the window or process stage.
    fn advance(&mut self, wm: i64, result: &mut BatchOutput) {
        self.metrics
            .watermark
            .fetch_max(wm, std::sync::atomic::Ordering::Relaxed);
        if let Some(process) = &mut self.process {
            result
                .timers
                .extend(process.advance_watermark(&self.runtime, wm));
        }
        if let Some(window) = &mut self.window {
            let mut emitted = Vec::new();
            window.advance_watermark(&self.runtime, wm, &mut emitted);
            absorb(window, emitted, None, result);
        }
    }
}

impl Stages {
    /// Whether the pipeline keeps state (a window or process stage).
    pub fn stateful(&self) -> bool {
        self.window.is_some() || self.process.is_some()
    }

    /// Encodes the state of every stage (the checkpoint pause: one pass writing bytes, no
    /// copy of the state first) and returns it with the combined watermark. Outputs waiting
    /// for the checkpoint are added by the caller.
    pub fn snapshot(&mut self) -> (EncodedState, Option<i64>) {
        let watermarks = self.watermarks.as_ref().map(SourceWatermarks::snapshot);
        let combined = watermarks.as_ref().and_then(|w| w.combined);
        let state = EncodedState::encode(
            watermarks,
            self.window.as_ref().map(|w| w.windows.state_ref()),
            self.process.as_mut().map(KeyedProcess::state_ref),
            self.snapshot_size + self.snapshot_size / 8,
        );
        self.snapshot_size = state.len();
        (state, combined)
    }

    /// Live (key, window) accumulators, or keys with process state.
    pub fn state_entries(&mut self) -> u64 {
        let windows = self.window.as_ref().map_or(0, |w| w.windows.live_windows());
        let keys = self
            .process
            .as_mut()
            .map_or(0, |p| p.instance.keyed().keys());
        (windows + keys) as u64
    }

    /// The plugins whose versions a checkpoint records; the window's aggregate reports its
    /// accumulator state version.
    pub fn plugin_versions(&mut self) -> anyhow::Result<Vec<PluginVersion>> {
        let mut out: Vec<PluginVersion> = self
            .chain
            .operators
            .iter()
            .map(|op| PluginVersion {
                stage: "operator".into(),
                name: op.name.clone(),
                sha256: op.instance.plugin().hash.clone(),
                state_version: None,
            })
            .collect();
        if let Some(w) = &mut self.window {
            let version = w.instance.state_version(&self.runtime).map_err(|e| {
                anyhow::anyhow!("window aggregate `{}`: state-version: {e}", w.name)
            })?;
            out.push(PluginVersion {
                stage: "window".into(),
                name: w.name.clone(),
                sha256: w.instance.plugin().hash.clone(),
                state_version: Some(version),
            });
        }
        if let Some(p) = &self.process {
            out.push(PluginVersion {
                stage: "process".into(),
                name: p.name.clone(),
                sha256: p.instance.plugin().hash.clone(),
                state_version: None,
            });
        }
        out.extend(self.after.operators.iter().map(|op| PluginVersion {
            stage: "after".into(),
            name: op.name.clone(),
            sha256: op.instance.plugin().hash.clone(),
            state_version: None,
        }));
        Ok(out)
    }

    /// Puts checkpointed state back: checks that it fits this pipeline (same window, no newer
    /// accumulator version) and migrates accumulators of an older version through the
    /// plugin. On an error nothing is usable and the caller must not run the pipeline.
    pub fn restore(
        &mut self,
        manifest: &Manifest,
        blob: StateBlob,
        window_description: Option<&str>,
    ) -> anyhow::Result<()> {
        let id = manifest.id;
        if manifest.window.as_deref() != window_description {
            anyhow::bail!(
                "checkpoint {id} holds state of window {:?}, the pipeline now has {:?}; \
                 a window change needs a fresh start (`weir checkpoint delete --all`)",
                manifest.window.as_deref().unwrap_or("none"),
                window_description.unwrap_or("none")
            );
        }
        if let (Some(w), Some(state)) = (&mut self.window, blob.window) {
            let recorded = manifest
                .plugins
                .iter()
                .find(|p| p.stage == "window")
                .and_then(|p| p.state_version)
                .unwrap_or(0);
            let current = w.instance.state_version(&self.runtime).map_err(|e| {
                anyhow::anyhow!("window aggregate `{}`: state-version: {e}", w.name)
            })?;
            if recorded > current {
                anyhow::bail!(
                    "checkpoint {id} holds accumulators of state version {recorded}, but \
                     plugin {} of window aggregate `{}` has state version {current}: it \
                     cannot read them (was the plugin downgraded?)",
                    w.instance.plugin().label(),
                    w.name
                );
            }
            let (runtime, name) = (&self.runtime, w.name.clone());
            let instance = &mut w.instance;
            let mut migrated = 0u64;
            w.windows
                .restore(state, |acc| {
                    if recorded == current {
                        return Ok(acc);
                    }
                    migrated += 1;
                    instance
                        .migrate(runtime, recorded, &acc)
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| {
                    anyhow::anyhow!(
                        "checkpoint {id}: window aggregate `{name}` cannot migrate its \
                         accumulators from state version {recorded} to {current}: {e}"
                    )
                })?;
            if migrated > 0 {
                tracing::info!(
                    checkpoint = id,
                    migrated,
                    from = recorded,
                    to = current,
                    "accumulators migrated"
                );
            }
        }
        match (&mut self.process, blob.process) {
            (Some(p), Some(state)) => p.restore(state),
            (None, Some(_)) => anyhow::bail!(
                "checkpoint {id} holds keyed process state, but the pipeline has no \
                 `[process]` now; a fresh start needs `weir checkpoint delete --all`"
            ),
            _ => {}
        }
        if let (Some(w), Some(state)) = (&mut self.watermarks, &blob.watermarks) {
            w.restore(state, std::time::Instant::now())
                .map_err(|e| anyhow::anyhow!("checkpoint {id}: {e}"))?;
        }
        if let Some(wm) = blob.watermarks.as_ref().and_then(|w| w.combined) {
            self.metrics
                .watermark
                .fetch_max(wm, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The per-partition watermarks of a pipeline with a `[window]` or `[process]` and bounded
/// watermarks.
fn source_watermarks(pipeline: &Pipeline) -> Option<SourceWatermarks> {
    let c = &pipeline.config;
    let w = &c.source.watermarks;
    let stateful = c.window.is_some() || c.process.is_some();
    let processing = c
        .window
        .as_ref()
        .is_some_and(|w| w.time == WindowTime::Processing);
    (stateful && !processing && w.strategy == WatermarkStrategy::Bounded).then(|| {
        SourceWatermarks::new(
            &c.source.subjects,
            w.out_of_orderness.as_millis().min(i64::MAX as u128) as i64,
            w.idle_timeout,
        )
    })
}

/// Sorts window emissions into results, late events and dead letters. `part` is the batch the
/// event indices of `Late`/`Failed` refer to.
fn absorb(
    window: &WindowedAggregate,
    emitted: Vec<Emission>,
    part: Option<&EventBatch>,
    result: &mut BatchOutput,
) {
    let plugin = window.instance.plugin().label();
    let letter = |index: usize, error: String| {
        let part = part.expect("event emissions come with their batch");
        let e = part.view().get(index);
        DeadLetter {
            source: part.lineage[index],
            operator: window.name.clone(),
            plugin: plugin.clone(),
            error,
            key: e.key.to_vec(),
            time: e.time,
            headers: e.headers.to_vec(),
            payload: e.payload.to_vec(),
        }
    };
    for e in emitted {
        match e {
            Emission::Fired {
                key,
                window,
                payload,
                serial,
            } => result.windows.push(WindowResult {
                key,
                window,
                payload,
                serial,
            }),
            Emission::Late { index } => result.late.push(letter(
                index,
                "late: every window of the event is past its allowed lateness".into(),
            )),
            Emission::Failed { index, error } => result.dead.push(letter(index, error)),
            Emission::WindowFailed {
                key,
                window: w,
                error,
            } => tracing::error!(
                key = %String::from_utf8_lossy(&key),
                start = w.start,
                end = w.end,
                error = %error,
                "window result failed; its state is kept"
            ),
        }
    }
}
