//! The engine: the one orchestrator of a pipeline's processing, whichever driver runs it
//! (`weir run`, `weir run --local`, `weir plugin test`).
//!
//! A batch goes through the operator chain, then the stateful stage (a window aggregate or a
//! keyed process function, [`StatefulStage`]) with its watermarks, then the `[[after]]`
//! operators over the stage's results. `Stages` is synchronous — plugins are — and runs on the
//! operator thread ([`super::operator_thread`]); it holds the state a checkpoint snapshots and
//! a restore puts back.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use weir_packed::BatchBuilder;

use super::hotload::{Prepared, Slot};
use crate::admin::Metrics;
use crate::admin::plugins::PluginStatus;
use crate::checkpoint::{EncodedState, Manifest, PluginVersion, StateBlob};
use crate::config::Pipeline;
use crate::operator::chain::CanaryOutcome;
use crate::operator::output::{Derived, DerivedDeadLetter, ResultOrigin};
use crate::operator::{BatchOutput, Chain, DeadLetter, EventBatch, StatefulStage};
use crate::runtime::Runtime;
use crate::runtime::instance::AnyInstance;
use crate::source::{Origin, SourcePartitions};
use crate::window::{MarkerWatermarks, SourceWatermarks};

/// The processing stages of a pipeline.
pub struct Stages {
    runtime: Runtime,
    metrics: Arc<Metrics>,
    chain: Chain,
    /// The window aggregate or keyed process stage, if the pipeline keeps state.
    stateful: Option<Box<dyn StatefulStage>>,
    /// Wall time the stateful stage's calls took (events in, watermarks, processing time).
    stateful_busy: Duration,
    /// `[[after]]`: transforms over the stateful stage's results.
    after: Chain,
    /// Per-partition bounded watermarks (`None`: no stateful stage, punctuated watermarks, or
    /// processing time).
    watermarks: Option<SourceWatermarks>,
    /// Watermark markers per input (punctuated watermarks).
    markers: MarkerWatermarks,
    /// The last snapshot's size (the next one's buffer is sized from it).
    snapshot_size: usize,
}

/// What one batch produced: the chain's outputs (its results when there is no stateful
/// stage, and dead letters), and the stateful stage's (with `effectively-once` these wait for
/// the next checkpoint).
pub struct StagesOutput {
    pub chain: BatchOutput,
    pub stateful: BatchOutput,
}

impl Stages {
    /// Loads every plugin of `pipeline` and sets up watermarks for a source partitioned as
    /// `partitions`.
    pub fn build(
        runtime: &Runtime,
        pipeline: &Pipeline,
        metrics: Arc<Metrics>,
        partitions: &SourcePartitions,
    ) -> anyhow::Result<Self> {
        let stateful = super::build_stateful(runtime, pipeline)?;
        let watermarks = stateful
            .as_ref()
            .filter(|s| s.uses_event_time())
            .filter(|_| !partitions.punctuated)
            .map(|_| SourceWatermarks::for_inputs(&partitions.inputs()));
        Ok(Stages {
            runtime: runtime.clone(),
            metrics,
            chain: super::build_chain(runtime, pipeline)?,
            stateful,
            stateful_busy: Duration::ZERO,
            after: super::build_after(runtime, pipeline)?,
            watermarks,
            markers: MarkerWatermarks::new(partitions.inputs().len()),
            snapshot_size: 0,
        })
    }

    /// Runs a batch: the events through the chain, then into the stateful stage in order,
    /// split at watermark markers (`(source index, watermark)`), then the generated watermark.
    /// `refused`: events the source could not read; `origins[i]`: where source message `i`
    /// came from (its subject picks the watermark partition).
    pub fn run(
        &mut self,
        events: EventBatch,
        refused: Vec<DeadLetter>,
        markers: &[(u32, i64)],
        origins: &[Origin],
    ) -> StagesOutput {
        let out = self.chain.run(events);
        let mut chain = BatchOutput {
            dead: refused,
            stopped: out.stopped,
            ..Default::default()
        };
        chain.dead.extend(out.dead);
        let mut stateful = BatchOutput::default();
        if chain.stopped.is_some() {
            return StagesOutput { chain, stateful };
        }
        let Some(stage) = &mut self.stateful else {
            chain.events = out.events;
            return StagesOutput { chain, stateful };
        };
        let events = out.events;
        let mut start = 0;
        if stage.uses_event_time() {
            for &(source, wm) in markers {
                let end = start + events.lineage[start..].partition_point(|&l| l < source);
                self.segment(&events, origins, (start, end), &mut stateful);
                let input = origins.get(source as usize).map_or(0, |o| o.input);
                if let Some(wm) = self.markers.update(input, wm) {
                    self.advance(wm, &mut stateful);
                }
                start = end;
            }
        }
        self.segment(&events, origins, (start, events.len()), &mut stateful);
        self.on_processing_time(&mut stateful);
        if let Some(w) = &mut self.watermarks {
            let now = Instant::now();
            let view = events.view();
            for i in 0..view.len() {
                let origin = &origins[events.lineage[i] as usize];
                let partition = w.partition(origin.input as usize, &origin.subject);
                w.observe(partition, view.time(i), now);
            }
            if let Some(wm) = w.update(now) {
                self.advance(wm, &mut stateful);
            }
        }
        self.after(&mut stateful);
        StagesOutput { chain, stateful }
    }

    /// Whether [`Stages::tick`] has work on a quiet stream (watermarks to advance, or a
    /// processing-time window or timers to fire).
    pub fn needs_ticks(&self) -> bool {
        self.watermarks.is_some()
            || self
                .stateful
                .as_ref()
                .is_some_and(|s| s.needs_processing_time())
    }

    /// Periodic work while no events arrive: idle partitions stop holding the watermark back;
    /// processing-time windows and timers fire by the clock.
    pub fn tick(&mut self) -> BatchOutput {
        let mut result = BatchOutput::default();
        self.on_processing_time(&mut result);
        if let Some(wm) = self
            .watermarks
            .as_mut()
            .and_then(|w| w.update(Instant::now()))
        {
            self.advance(wm, &mut result);
        }
        self.after(&mut result);
        result
    }

    /// The input ended (a bounded source): event time jumps to its end, firing every window
    /// and event-time timer, as Flink does at the end of a bounded input.
    pub fn end_of_input(&mut self) -> BatchOutput {
        let mut result = BatchOutput::default();
        self.advance(i64::MAX, &mut result);
        self.after(&mut result);
        result
    }

    fn on_processing_time(&mut self, out: &mut BatchOutput) {
        if let Some(stage) = &mut self.stateful {
            let started = Instant::now();
            stage.on_processing_time(&self.runtime, out);
            self.stateful_busy += started.elapsed();
        }
    }

    /// Events `lo..hi` into the stateful stage.
    fn segment(
        &mut self,
        events: &EventBatch,
        origins: &[Origin],
        (lo, hi): (usize, usize),
        out: &mut BatchOutput,
    ) {
        let Some(stage) = &mut self.stateful else {
            return;
        };
        if lo >= hi {
            return;
        }
        let started = Instant::now();
        if lo == 0 && hi == events.len() {
            stage.process_batch(&self.runtime, events, origins, out);
        } else {
            stage.process_batch(&self.runtime, &events.slice(lo, hi), origins, out);
        }
        self.stateful_busy += started.elapsed();
    }

    /// Advances the stateful stage's watermark.
    fn advance(&mut self, wm: i64, out: &mut BatchOutput) {
        self.metrics.watermark.fetch_max(wm, Relaxed);
        if let Some(stage) = &mut self.stateful {
            let started = Instant::now();
            stage.advance_watermark(&self.runtime, wm, out);
            self.stateful_busy += started.elapsed();
        }
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
            out.stopped = out.stopped.take().or(r.stopped);
        }
        if out.windows.is_empty() && out.timers.is_empty() {
            return;
        }
        let mut origins = Vec::with_capacity(out.windows.len() + out.timers.len());
        let mut b = BatchBuilder::with_capacity(origins.capacity(), 64);
        for r in out.windows.drain(..) {
            r.push_as_event(&mut b, origins.len() as u32);
            origins.push(ResultOrigin::of_window(&r));
        }
        for e in out.timers.drain(..) {
            e.push_as_event(&mut b, origins.len() as u32);
            origins.push(ResultOrigin::of_timer(&e));
        }
        let r = self.after.run(EventBatch::from_source(b));
        out.stopped = out.stopped.take().or(r.stopped);
        let mut emitted = vec![0u32; origins.len()];
        for (i, e) in r.events.view().iter().enumerate() {
            let origin = r.events.lineage[i] as usize;
            out.derived.push(Derived {
                origin: origins[origin],
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
                origin: origins[letter.source as usize],
                letter,
            }));
    }
}

/// A duration in whole microseconds (saturating).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Checkpoints: snapshot, restore, versions.
impl Stages {
    /// Whether the pipeline keeps state (a window or process stage).
    pub fn stateful(&self) -> bool {
        self.stateful.is_some()
    }

    /// Encodes the state of every stage (the checkpoint pause: one pass writing bytes, no
    /// copy of the state first) and returns it with the combined watermark. Outputs waiting
    /// for the checkpoint are added by the caller.
    pub fn snapshot(&mut self) -> (EncodedState, Option<i64>) {
        let watermarks = self.watermarks.as_ref().map(SourceWatermarks::snapshot);
        let combined = watermarks.as_ref().and_then(|w| w.combined);
        let state = EncodedState::encode(
            watermarks,
            self.stateful.as_mut().map(|s| s.state()),
            self.snapshot_size + self.snapshot_size / 8,
        );
        self.snapshot_size = state.len();
        (state, combined)
    }

    /// Live (key, window) accumulators, or keys with process state.
    pub fn state_entries(&mut self) -> u64 {
        self.stateful.as_mut().map_or(0, |s| s.state_entries())
    }

    /// The plugins whose versions a checkpoint records; the window's aggregate reports its
    /// accumulator state version.
    pub fn plugin_versions(&mut self) -> anyhow::Result<Vec<PluginVersion>> {
        let chain = |stage: &str, chain: &Chain| -> Vec<PluginVersion> {
            chain
                .operators
                .iter()
                .map(|op| PluginVersion {
                    stage: stage.into(),
                    name: op.name.clone(),
                    sha256: op.instance.plugin().hash.clone(),
                    state_version: None,
                })
                .collect()
        };
        let mut out = chain("operator", &self.chain);
        if let Some(s) = &mut self.stateful {
            out.extend(s.plugin_version(&self.runtime)?);
        }
        out.extend(chain("after", &self.after));
        Ok(out)
    }

    /// Installs a new plugin version (hot-loading) between two batches, keeping the state;
    /// on an error the running version stays.
    pub fn swap(&mut self, next: Prepared) -> anyhow::Result<()> {
        let Prepared { slot, instance, .. } = next;
        let runtime = &self.runtime;
        let op = match slot {
            Slot::Operator(i) => self.chain.operators.get_mut(i),
            Slot::After(i) => self.after.operators.get_mut(i),
            Slot::Window | Slot::Process => {
                return match &mut self.stateful {
                    Some(stage) => stage.swap(runtime, instance),
                    None => anyhow::bail!("the pipeline has no {}", slot.field()),
                };
            }
        };
        let Some(op) = op else {
            anyhow::bail!("the pipeline has no {}", slot.field());
        };
        let AnyInstance::Transform(instance) = instance else {
            anyhow::bail!(
                "{} `{}`: the new version implements `{}`, not `transform`",
                slot.field(),
                op.name,
                instance.world().name()
            );
        };
        op.install(instance);
        Ok(())
    }

    /// Each operator's plugin version and counts, for `GET /plugins`.
    pub fn plugin_statuses(&self) -> Vec<PluginStatus> {
        let chain = |stage: &str, chain: &Chain| -> Vec<PluginStatus> {
            chain
                .operators
                .iter()
                .map(|op| PluginStatus {
                    stage: stage.into(),
                    operator: op.name.clone(),
                    version: op.instance.plugin().label(),
                    digest: op.instance.plugin().hash.clone(),
                    since_ms: Some(op.since_ms),
                    events: Some(op.events),
                    errors: Some(op.errors),
                    canary_previous: op.canary.as_ref().map(|c| c.previous.plugin().label()),
                    busy_us: Some(micros(op.busy)),
                })
                .collect()
        };
        let mut out = chain("operator", &self.chain);
        if let Some(s) = &self.stateful {
            let (version, digest) = match s.plugin() {
                Some(plugin) => (plugin.label(), plugin.hash.clone()),
                None => ("built-in".to_owned(), String::new()),
            };
            out.push(PluginStatus {
                stage: s.kind().into(),
                operator: s.name().into(),
                version,
                digest,
                since_ms: None,
                events: None,
                errors: None,
                canary_previous: None,
                busy_us: Some(micros(self.stateful_busy)),
            });
        }
        out.extend(chain("after", &self.after));
        out
    }

    /// Settles the canaries decided by the last batch (see [`crate::operator::canary`]):
    /// passed ones drop their previous version, failed ones roll back to it.
    pub fn settle_canaries(&mut self) -> Vec<(Slot, String, CanaryOutcome)> {
        let mut out = Vec::new();
        let chains = [(&mut self.chain, false), (&mut self.after, true)];
        for (chain, after) in chains {
            for (i, op) in chain.operators.iter_mut().enumerate() {
                if let Some(outcome) = op.settle_canary() {
                    let slot = if after {
                        Slot::After(i)
                    } else {
                        Slot::Operator(i)
                    };
                    out.push((slot, op.name.clone(), outcome));
                }
            }
        }
        out
    }

    /// Puts checkpointed state back: checks that it fits this pipeline (same window, same
    /// kind of stage, no newer accumulator version) and migrates accumulators of an older
    /// version through the plugin. On an error nothing is usable and the caller must not run
    /// the pipeline.
    pub fn restore(
        &mut self,
        manifest: &Manifest,
        mut blob: StateBlob,
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
        match &mut self.stateful {
            Some(stage) => stage.restore(&self.runtime, manifest, &mut blob)?,
            None if blob.window.is_some() || blob.process.is_some() || blob.join.is_some() => {
                anyhow::bail!(
                    "checkpoint {id} holds window, keyed process or join state, but the \
                     pipeline has no `[window]`, `[process]` or `[join]` now; a fresh start \
                     needs `weir checkpoint delete --all`"
                )
            }
            None => {}
        }
        if let (Some(w), Some(state)) = (&mut self.watermarks, &blob.watermarks) {
            w.restore(state, Instant::now())
                .map_err(|e| anyhow::anyhow!("checkpoint {id}: {e}"))?;
        }
        if let Some(wm) = blob.watermarks.as_ref().and_then(|w| w.combined) {
            self.metrics.watermark.fetch_max(wm, Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir_packed::BatchBuilder;

    use super::*;

    /// A windowed pipeline over the `window-stats` plugin (built by `plugins/build.sh`):
    /// tumbling 10 ms counts, `amount` summed.
    fn windowed(partitions: &SourcePartitions) -> Stages {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let plugin =
            root.join("target/plugins/wasm32-wasip2/release/weir_plugin_window_stats.wasm");
        assert!(plugin.is_file(), "run `bash plugins/build.sh` first");
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "name = \"p\"\n[source]\nstream = \"S\"\n[window]\ntype = \"tumbling\"\nsize = \
             \"10ms\"\n[window.aggregate]\nname = \"stats\"\nplugin = {:?}\nconfig = {{ field = \
             \"amount\" }}\n[sink]\nsubject = \"o\"\ndead_letter = \"d\"\n",
            plugin.display().to_string()
        );
        let pipeline = crate::config::parse(&dir.path().join("p.toml"), text).unwrap();
        let runtime = Runtime::new(Some(std::env::temp_dir().join("weir-unit-cache"))).unwrap();
        Stages::build(&runtime, &pipeline, Metrics::new("p"), partitions).unwrap()
    }

    /// Events (time, amount) as source messages 0..n.
    fn batch(events: &[(i64, &str)]) -> (EventBatch, Vec<Origin>) {
        let mut b = BatchBuilder::new();
        for (i, (t, amount)) in events.iter().enumerate() {
            let payload = format!("{{\"amount\":{amount}}}");
            b.push(b"k", *t, &[], payload.as_bytes(), i as u32);
        }
        let origins = (0..events.len() as u64)
            .map(|sequence| Origin {
                subject: "s".into(),
                sequence,
                input: 0,
            })
            .collect();
        (EventBatch::from_source(b), origins)
    }

    fn counts(out: &BatchOutput) -> Vec<(i64, u64)> {
        out.windows
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                (r.window.start, v["count"].as_u64().unwrap())
            })
            .collect()
    }

    #[test]
    fn operator_and_stateful_stage_busy_time_grows_with_each_batch() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
        let dir = root.join("wasm32-wasip2/release");
        let (map, stats) = (
            dir.join("weir_plugin_json_map.wasm"),
            dir.join("weir_plugin_window_stats.wasm"),
        );
        assert!(map.is_file(), "run `bash plugins/build.sh` first");
        let text = format!(
            "name = \"p\"\n[source]\nstream = \"S\"\n[[operators]]\nname = \"map\"\nplugin = \
             {:?}\nconfig = {{ set = {{ v = 1 }} }}\n[window]\ntype = \"tumbling\"\nsize = \
             \"10ms\"\n[window.aggregate]\nname = \"stats\"\nplugin = {:?}\nconfig = {{ field = \
             \"amount\" }}\n[sink]\nsubject = \"o\"\ndead_letter = \"d\"\n",
            map.display().to_string(),
            stats.display().to_string()
        );
        let tmp = tempfile::tempdir().unwrap();
        let pipeline = crate::config::parse(&tmp.path().join("p.toml"), text).unwrap();
        let runtime = Runtime::new(Some(std::env::temp_dir().join("weir-unit-cache"))).unwrap();
        let partitions = SourcePartitions::default();
        let mut stages =
            Stages::build(&runtime, &pipeline, Metrics::new("p"), &partitions).unwrap();
        let busy = |stages: &Stages| -> Vec<(String, u64)> {
            let statuses = stages.plugin_statuses();
            statuses
                .into_iter()
                .map(|p| (p.operator, p.busy_us.unwrap()))
                .collect()
        };
        let before = busy(&stages);
        assert_eq!(before, [("map".to_owned(), 0), ("stats".to_owned(), 0)]);
        let (events, origins) = batch(&[(1, "1"), (3, "2"), (25, "3")]);
        let out = stages.run(events, Vec::new(), &[], &origins);
        assert_eq!(counts(&out.stateful), [(0, 2)]);
        let after = busy(&stages);
        assert!(after.iter().all(|(_, us)| *us > 0), "{after:?}");
        let (events, origins) = batch(&[(31, "1"), (42, "1")]);
        stages.run(events, Vec::new(), &[], &origins);
        let again = busy(&stages);
        for ((op, first), (_, second)) in after.iter().zip(&again) {
            assert!(second > first, "{op}: {first} µs, then {second} µs");
        }
    }

    #[test]
    fn a_marker_splits_the_batch_and_the_end_of_input_fires_the_rest() {
        let punctuated = SourcePartitions {
            punctuated: true,
            ..Default::default()
        };
        let mut stages = windowed(&punctuated);
        assert!(stages.stateful() && !stages.needs_ticks());
        // Message 2 is a marker (watermark 9): events 0 and 1 fire with window [0, 10) before
        // event 3 (time 4, now late) arrives; a refused message passes through as a dead
        // letter; a bad amount is dead-lettered by the aggregate.
        let (all, origins) = batch(&[(1, "1"), (5, "2"), (0, "0"), (4, "3"), (12, "\"x\"")]);
        let events = all.select(&[0, 1, 3, 4]);
        let refused = vec![DeadLetter::of_event(
            2,
            &weir_packed::EventRef {
                key: b"",
                time: 0,
                payload: b"?",
                headers: b"",
                origin: 2,
            },
            "source",
            "",
            "unreadable".into(),
        )];
        let out = stages.run(events, refused, &[(2, 9)], &origins);
        assert_eq!(out.chain.dead.len(), 1);
        assert!(
            out.chain.events.is_empty(),
            "a stateful pipeline's chain output goes on"
        );
        assert_eq!(counts(&out.stateful), [(0, 2)]);
        assert_eq!(out.stateful.late.len(), 1);
        assert_eq!(out.stateful.late[0].source, 3);
        assert_eq!(out.stateful.dead.len(), 1);
        assert_eq!(out.stateful.dead[0].source, 4);
        // Nothing else fires until the input ends.
        assert!(stages.tick().is_empty());
        let (more, origins) = batch(&[(15, "1"), (17, "1")]);
        let out = stages.run(more, Vec::new(), &[], &origins);
        assert!(out.stateful.is_empty());
        assert_eq!(counts(&stages.end_of_input()), [(10, 2)]);
    }

    #[test]
    fn bounded_watermarks_fire_windows_as_event_time_passes_and_are_checkpointed() {
        let mut stages = windowed(&SourcePartitions::default());
        assert!(stages.needs_ticks());
        let (events, origins) = batch(&[(1, "1"), (3, "1"), (25, "1")]);
        let out = stages.run(events, Vec::new(), &[], &origins);
        // The default out-of-orderness is 0: the watermark is 24, [0, 10) fires.
        assert_eq!(counts(&out.stateful), [(0, 2)]);
        let (state, watermark) = stages.snapshot();
        assert_eq!(watermark, Some(24));
        assert!(!state.is_empty());
        assert_eq!(stages.state_entries(), 1);
        let versions = stages.plugin_versions().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].stage, "window");
    }
}
