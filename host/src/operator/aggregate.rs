//! The window aggregate stage: the host's [`WindowOperator`] (window state, timers, lateness)
//! driving an `aggregate` plugin, which only creates, updates, merges and finishes
//! accumulators. The stage turns the operator's emissions into outputs: window results, late
//! events (past the allowed lateness) and dead letters (events the plugin refused).
//!
//! A processing-time window is the same stage with a [`ProcessingClock`]: events are stamped
//! with the wall clock as they arrive and windows fire as the clock passes their end.

use std::sync::Arc;

use weir_packed::{BatchView, PackedList, push_item};

use super::EventBatch;
use super::isolate::{Breaker, CallFailure};
use super::output::{BatchOutput, DeadLetter, WindowResult};
use super::stage::{StageState, StatefulStage};
use crate::checkpoint::{Manifest, PluginVersion, StateBlob};
use crate::runtime::bindings::weir::operator::types::{Accumulators, Batch, Results, Windows};
use crate::runtime::instance::AnyInstance;
use crate::runtime::{AggregateInstance, CallError, Plugin, Runtime};
use crate::window::{Aggregator, Emission, Firing, ProcessingClock, WindowOperator};

/// An `aggregate` plugin seen as an [`Aggregator`].
struct PluginAggregator<'a> {
    runtime: &'a Runtime,
    breaker: &'a Arc<Breaker>,
    instance: &'a mut AggregateInstance,
    buffers: &'a mut CallBuffers,
    empty: &'a mut Option<(Arc<Plugin>, Vec<u8>)>,
}

/// The arguments of `add`, `merge` and `finish` calls, kept from call to call: refilled without
/// allocating (large fresh buffers cost page faults on every batch).
pub struct CallBuffers {
    accs: Accumulators,
    targets: Vec<u8>,
    events: Batch,
    windows: Windows,
}

impl Default for CallBuffers {
    fn default() -> Self {
        CallBuffers {
            accs: Accumulators {
                data: Vec::new(),
                ends: Vec::new(),
            },
            windows: Windows {
                keys: Vec::new(),
                key_ends: Vec::new(),
                bounds: Vec::new(),
            },
            targets: Vec::new(),
            events: Batch {
                payloads: Vec::new(),
                payload_ends: Vec::new(),
                keys: Vec::new(),
                key_ends: Vec::new(),
                times: Vec::new(),
                headers: Vec::new(),
                header_ends: Vec::new(),
                origins: Vec::new(),
            },
        }
    }
}

impl CallBuffers {
    /// Refills the buffers with an `add` call's accumulators, targets and events.
    fn fill_add(&mut self, accs: &[Vec<u8>], targets: &[u32], events: &BatchView<'_>) {
        self.targets.clear();
        for t in targets {
            self.targets.extend_from_slice(&t.to_le_bytes());
        }
        self.fill_accs(accs.iter().map(Vec::as_slice));
        let c = events.columns();
        let b = &mut self.events;
        for (to, from) in [
            (&mut b.payloads, c.payloads),
            (&mut b.payload_ends, c.payload_ends),
            (&mut b.keys, c.keys),
            (&mut b.key_ends, c.key_ends),
            (&mut b.times, c.times),
            (&mut b.headers, c.headers),
            (&mut b.header_ends, c.header_ends),
            (&mut b.origins, c.origins),
        ] {
            to.clear();
            to.extend_from_slice(from);
        }
    }

    /// Refills the buffers with a `merge` call's accumulators and group ends (in `targets`).
    fn fill_merge(&mut self, accs: &[&[u8]], ends: &[u32]) {
        self.targets.clear();
        for e in ends {
            self.targets.extend_from_slice(&e.to_le_bytes());
        }
        self.fill_accs(accs.iter().copied());
    }

    /// Refills the buffers with a `finish` call's windows and their accumulators.
    fn fill_finish(&mut self, windows: &[Firing<'_>]) {
        let w = &mut self.windows;
        w.keys.clear();
        w.key_ends.clear();
        w.bounds.clear();
        for f in windows {
            push_item(&mut w.keys, &mut w.key_ends, f.key);
            w.bounds.extend_from_slice(&f.window.start.to_le_bytes());
            w.bounds.extend_from_slice(&f.window.end.to_le_bytes());
        }
        self.fill_accs(windows.iter().map(|f| f.acc));
    }

    fn fill_accs<'a>(&mut self, accs: impl Iterator<Item = &'a [u8]>) {
        self.accs.data.clear();
        self.accs.ends.clear();
        for acc in accs {
            push_item(&mut self.accs.data, &mut self.accs.ends, acc);
        }
    }
}

fn whole(e: CallError) -> String {
    e.to_string()
}

impl Aggregator for PluginAggregator<'_> {
    /// `create` is called once per plugin version: the WIT contract makes every empty
    /// accumulator the same bytes.
    fn create(&mut self) -> Result<Vec<u8>, String> {
        let plugin = self.instance.plugin();
        if let Some((of, acc)) = &*self.empty
            && Arc::ptr_eq(of, plugin)
        {
            return Ok(acc.clone());
        }
        let plugin = Arc::clone(plugin);
        let acc = self.instance.create(self.runtime).map_err(whole)?;
        *self.empty = Some((plugin, acc.clone()));
        Ok(acc)
    }

    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &BatchView<'_>,
    ) -> Result<(), CallFailure> {
        self.buffers.fill_add(accs, targets, events);
        let b = &*self.buffers;
        let new = self
            .instance
            .add(self.runtime, &b.accs, &b.targets, &b.events)
            .map_err(|e| e.into_failure(targets.len()))?;
        unpack(&new, accs).map_err(CallFailure::Whole)
    }

    fn merge(
        &mut self,
        accs: &[&[u8]],
        ends: &[u32],
        merged: &mut Vec<Vec<u8>>,
    ) -> Result<(), CallFailure> {
        self.buffers.fill_merge(accs, ends);
        let b = &*self.buffers;
        let got = self
            .instance
            .merge(self.runtime, &b.accs, &b.targets)
            .map_err(|e| e.into_failure(ends.len()))?;
        let list = PackedList::new("accumulators", &got.data, &got.ends)
            .map_err(|e| CallFailure::Whole(format!("plugin returned malformed merges: {e}")))?;
        if list.len() != ends.len() {
            return Err(CallFailure::Whole(format!(
                "plugin merged {} groups into {} accumulators",
                ends.len(),
                list.len()
            )));
        }
        merged.extend(list.iter().map(<[u8]>::to_vec));
        Ok(())
    }

    /// Every merge due at one watermark is one call (~30–40 ns per pair in the call, measured
    /// with window-stats), cheaper than the `size / slide - 1` extra accumulator updates per
    /// event that sliding windows held whole cost: panes pay whatever the keys' density.
    fn merges_cheaply(&self) -> bool {
        true
    }

    fn breaker(&self) -> Option<Arc<Breaker>> {
        Some(Arc::clone(self.breaker))
    }

    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), CallFailure> {
        self.buffers.fill_finish(windows);
        let b = &*self.buffers;
        let got = self
            .instance
            .finish(self.runtime, &b.windows, &b.accs)
            .map_err(|e| e.into_failure(windows.len()))?;
        read_results(&got, windows.len(), results).map_err(CallFailure::Whole)
    }
}

/// Appends the (window, payload) pairs of a `finish` reply to `results`, checking its layout
/// first (plugin output is untrusted): nothing is appended from a malformed reply.
fn read_results(
    got: &Results,
    windows: usize,
    results: &mut Vec<(u32, Vec<u8>)>,
) -> Result<(), String> {
    let payloads = PackedList::new("results", &got.payloads, &got.payload_ends)
        .map_err(|e| format!("plugin returned malformed results: {e}"))?;
    if got.origins.len() != payloads.len() * 4 {
        return Err(format!(
            "plugin returned {} payloads with {} origins",
            payloads.len(),
            got.origins.len() / 4
        ));
    }
    let origins = || {
        got.origins
            .chunks_exact(4)
            .map(|o| u32::from_le_bytes([o[0], o[1], o[2], o[3]]))
    };
    let mut prev = 0;
    for o in origins() {
        if o < prev || o as usize >= windows {
            return Err(format!(
                "plugin returned results with origin {o} (after {prev}) for {windows} windows"
            ));
        }
        prev = o;
    }
    results.extend(origins().zip(payloads.iter()).map(|(o, p)| (o, p.to_vec())));
    Ok(())
}

/// Writes packed accumulators back into `accs`, checking their layout first (plugin output is
/// untrusted): a malformed reply changes nothing.
fn unpack(packed: &Accumulators, accs: &mut [Vec<u8>]) -> Result<(), String> {
    let list = PackedList::new("accumulators", &packed.data, &packed.ends)
        .map_err(|e| format!("plugin returned malformed accumulators: {e}"))?;
    if list.len() != accs.len() {
        return Err(format!(
            "plugin returned {} accumulators for {} given",
            list.len(),
            accs.len()
        ));
    }
    for (acc, new) in accs.iter_mut().zip(list.iter()) {
        acc.clear();
        acc.extend_from_slice(new);
    }
    Ok(())
}

/// A window operator and the aggregate plugin it drives.
pub struct AggregateStage {
    pub name: String,
    pub instance: AggregateInstance,
    pub windows: WindowOperator,
    /// The wall clock of a processing-time window.
    processing: Option<ProcessingClock>,
    buffers: CallBuffers,
    /// The plugin's empty accumulator (`create` once per plugin version).
    empty: Option<(Arc<Plugin>, Vec<u8>)>,
    /// Emissions of the current call, reused from batch to batch.
    emitted: Vec<Emission>,
    /// Stops the pipeline when the plugin fails on event after event.
    breaker: Arc<Breaker>,
}

impl AggregateStage {
    /// An event-time window stage; `processing`: a processing-time one.
    pub fn new(
        name: String,
        instance: AggregateInstance,
        windows: WindowOperator,
        processing: bool,
        breaker: Arc<Breaker>,
    ) -> Self {
        AggregateStage {
            breaker,
            name,
            instance,
            windows,
            processing: processing.then(ProcessingClock::default),
            buffers: CallBuffers::default(),
            empty: None,
            emitted: Vec::new(),
        }
    }

    /// Adds a batch of events to their windows; emissions (late-but-allowed re-fires, late
    /// events, failures) are appended to `out`.
    pub fn add(&mut self, runtime: &Runtime, events: &BatchView<'_>, out: &mut Vec<Emission>) {
        let mut agg = PluginAggregator {
            runtime,
            breaker: &self.breaker,
            instance: &mut self.instance,
            buffers: &mut self.buffers,
            empty: &mut self.empty,
        };
        self.windows.process_batch(events, &mut agg, out);
    }

    /// Advances the watermark, firing and dropping windows.
    pub fn fire_until(&mut self, runtime: &Runtime, watermark: i64, out: &mut Vec<Emission>) {
        let mut agg = PluginAggregator {
            runtime,
            breaker: &self.breaker,
            instance: &mut self.instance,
            buffers: &mut self.buffers,
            empty: &mut self.empty,
        };
        self.windows.advance_watermark(watermark, &mut agg, out);
    }

    /// Sorts the emissions of the last call into outputs. `part` is the batch the event
    /// indices of `Late`/`Failed` refer to (none when firing by the watermark).
    fn absorb(&mut self, part: Option<&EventBatch>, out: &mut BatchOutput) {
        let plugin = self.instance.plugin().label();
        let mut emitted = std::mem::take(&mut self.emitted);
        for e in emitted.drain(..) {
            let letter = |index: usize, error: String| match part {
                Some(part) => Some(DeadLetter::of_event(
                    part.lineage[index],
                    &part.view().get(index),
                    &self.name,
                    &plugin,
                    error,
                )),
                None => {
                    tracing::error!(index, error = %error, "an event emission without its batch");
                    None
                }
            };
            match e {
                Emission::Fired {
                    key,
                    window,
                    payload,
                    serial,
                } => out.windows.push(WindowResult {
                    key,
                    window,
                    payload,
                    serial,
                }),
                Emission::Late { index } => out.late.extend(letter(
                    index,
                    "late: every window of the event is past its allowed lateness".into(),
                )),
                Emission::Failed { index, error } => {
                    tracing::warn!(operator = %self.name, plugin = %plugin, error = %error, "event dead-lettered");
                    out.dead.extend(letter(index, error))
                }
                Emission::Stopped { reason } => {
                    out.stopped =
                        Some(format!("window aggregate `{}` failed: {reason}", self.name));
                }
                Emission::WindowFailed { key, window, error } => tracing::error!(
                    operator = %self.name,
                    key = %String::from_utf8_lossy(&key),
                    start = window.start,
                    end = window.end,
                    error = %error,
                    "window result failed; its state is kept"
                ),
            }
        }
        self.emitted = emitted;
    }

    /// The accumulator state version of the plugin.
    fn state_version(&mut self, runtime: &Runtime) -> anyhow::Result<u32> {
        self.instance
            .state_version(runtime)
            .map_err(|e| anyhow::anyhow!("window aggregate `{}`: state-version: {e}", self.name))
    }
}

impl StatefulStage for AggregateStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "window"
    }

    fn plugin(&self) -> Option<&Arc<crate::runtime::Plugin>> {
        Some(self.instance.plugin())
    }

    fn uses_event_time(&self) -> bool {
        self.processing.is_none()
    }

    fn process_batch(
        &mut self,
        runtime: &Runtime,
        events: &EventBatch,
        _origins: &[crate::source::Origin],
        out: &mut BatchOutput,
    ) {
        let mut emitted = std::mem::take(&mut self.emitted);
        let stamped;
        let events = match &mut self.processing {
            Some(clock) => {
                let mut copy = events.clone();
                clock.stamp(&mut copy);
                stamped = copy;
                &stamped
            }
            None => events,
        };
        self.add(runtime, &events.view(), &mut emitted);
        self.emitted = emitted;
        self.absorb(Some(events), out);
    }

    fn advance_watermark(&mut self, runtime: &Runtime, watermark: i64, out: &mut BatchOutput) {
        let mut emitted = std::mem::take(&mut self.emitted);
        self.fire_until(runtime, watermark, &mut emitted);
        self.emitted = emitted;
        self.absorb(None, out);
    }

    /// A processing-time window fires every window that ended before the clock's now.
    fn on_processing_time(&mut self, runtime: &Runtime, out: &mut BatchOutput) {
        if let Some(clock) = &mut self.processing {
            let now = clock.now();
            self.advance_watermark(runtime, now - 1, out);
        }
    }

    fn needs_processing_time(&self) -> bool {
        self.processing.is_some()
    }

    fn state(&mut self) -> StageState<'_> {
        StageState::Window(self.windows.state_ref())
    }

    /// Checks that the accumulators are not newer than the plugin, and migrates older ones
    /// through the plugin's `migrate`.
    fn restore(
        &mut self,
        runtime: &Runtime,
        manifest: &Manifest,
        blob: &mut StateBlob,
    ) -> anyhow::Result<()> {
        let id = manifest.id;
        if blob.process.is_some() || blob.join.is_some() {
            anyhow::bail!(
                "checkpoint {id} holds keyed process or join state, but the pipeline has a \
                 `[window]` now; a fresh start needs `weir checkpoint delete --all`"
            );
        }
        let Some(state) = blob.window.take() else {
            return Ok(());
        };
        let recorded = manifest
            .plugins
            .iter()
            .find(|p| p.stage == "window")
            .and_then(|p| p.state_version)
            .unwrap_or(0);
        let current = self.state_version(runtime)?;
        if recorded > current {
            anyhow::bail!(
                "checkpoint {id} holds accumulators of state version {recorded}, but plugin {} \
                 of window aggregate `{}` has state version {current}: it cannot read them \
                 (was the plugin downgraded?)",
                self.instance.plugin().label(),
                self.name
            );
        }
        let instance = &mut self.instance;
        let mut migrated = 0u64;
        self.windows
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
                    "checkpoint {id}: window aggregate `{}` cannot migrate its accumulators \
                     from state version {recorded} to {current}: {e}",
                    self.name
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
        Ok(())
    }

    fn swap(&mut self, runtime: &Runtime, next: AnyInstance) -> anyhow::Result<()> {
        let AnyInstance::Aggregate(mut next) = next else {
            anyhow::bail!(
                "window aggregate `{}`: the new version implements `{}`, not `aggregate`",
                self.name,
                next.world().name()
            );
        };
        let current = self.state_version(runtime)?;
        let label = next.plugin().label();
        let version = next.state_version(runtime).map_err(|e| {
            anyhow::anyhow!(
                "window aggregate `{}`: {label}: state_version: {e}",
                self.name
            )
        })?;
        if version < current {
            anyhow::bail!(
                "window aggregate `{}`: {label} has state version {version}, older than the \
                 running version's {current}: it cannot read the live accumulators",
                self.name
            );
        }
        if version > current && self.windows.live_windows() > 0 {
            let original = self.windows.snapshot();
            let mut migrated = 0u64;
            let result = self.windows.restore(self.windows.snapshot(), |acc| {
                migrated += 1;
                next.migrate(runtime, current, &acc)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = result {
                self.windows
                    .restore(original, Ok)
                    .map_err(|e| anyhow::anyhow!("putting the accumulators back: {e}"))?;
                anyhow::bail!(
                    "window aggregate `{}`: {label} cannot migrate the accumulators from \
                     state version {current} to {version}: {e}",
                    self.name
                );
            }
            tracing::info!(operator = %self.name, migrated, from = current, to = version, "accumulators migrated");
        }
        self.instance = next;
        Ok(())
    }

    fn plugin_version(&mut self, runtime: &Runtime) -> anyhow::Result<Option<PluginVersion>> {
        Ok(Some(PluginVersion {
            stage: "window".into(),
            name: self.name.clone(),
            sha256: self.instance.plugin().hash.clone(),
            state_version: Some(self.state_version(runtime)?),
        }))
    }

    fn state_entries(&mut self) -> u64 {
        self.windows.live_windows() as u64
    }
}
