//! The windowed aggregate operator: the host's [`WindowOperator`] (window state, timers,
//! lateness) driving an `aggregate` plugin, which only creates, updates, merges and finishes
//! accumulators. Window results become events: the window's key, time `end - 1`, the plugin's
//! payload, and `Weir-Window-Start` / `Weir-Window-End` headers.

use std::sync::Arc;

use weir_sdk::packed::{BatchBuilder, BatchView, PackedList, push_header, push_item};

use crate::runtime::bindings::weir::operator::types::{Accumulators, Batch, Results, Windows};
use crate::runtime::{AggregateInstance, CallError, Plugin, Runtime};
use crate::window::{Aggregator, Emission, Firing, ItemError, Window, WindowOperator};

/// An `aggregate` plugin seen as an [`Aggregator`].
struct PluginAggregator<'a> {
    runtime: &'a Runtime,
    instance: &'a mut AggregateInstance,
    buffers: &'a mut CallBuffers,
    empty: &'a mut Option<(Arc<Plugin>, Vec<u8>)>,
}

/// The arguments of `add` and `finish` calls, kept from call to call: refilled without
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

/// A failed `add` or `finish` call as an [`ItemError`].
fn item_error(e: CallError) -> ItemError {
    match e {
        CallError::Event { index, message } => ItemError {
            index: index as usize,
            message,
        },
        e => ItemError {
            index: usize::MAX,
            message: e.to_string(),
        },
    }
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
    ) -> Result<(), ItemError> {
        self.buffers.fill_add(accs, targets, events);
        let b = &*self.buffers;
        let new = self
            .instance
            .add(self.runtime, &b.accs, &b.targets, &b.events)
            .map_err(item_error)?;
        unpack(&new, accs).map_err(|message| ItemError {
            index: usize::MAX,
            message,
        })
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, String> {
        self.instance.merge(self.runtime, a, b).map_err(whole)
    }

    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), ItemError> {
        self.buffers.fill_finish(windows);
        let b = &*self.buffers;
        let got = self
            .instance
            .finish(self.runtime, &b.windows, &b.accs)
            .map_err(item_error)?;
        read_results(&got, windows.len(), results).map_err(|message| ItemError {
            index: usize::MAX,
            message,
        })
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
pub struct WindowedAggregate {
    pub name: String,
    pub instance: AggregateInstance,
    pub windows: WindowOperator,
    buffers: CallBuffers,
    /// The plugin's empty accumulator (`create` once per plugin version).
    empty: Option<(Arc<Plugin>, Vec<u8>)>,
}

impl WindowedAggregate {
    pub fn new(name: String, instance: AggregateInstance, windows: WindowOperator) -> Self {
        WindowedAggregate {
            name,
            instance,
            windows,
            buffers: CallBuffers::default(),
            empty: None,
        }
    }

    /// Adds a batch of events to their windows; emissions (late-but-allowed re-fires, late
    /// events, failures) are appended to `out`.
    pub fn process_batch(
        &mut self,
        runtime: &Runtime,
        events: &weir_sdk::packed::BatchView<'_>,
        out: &mut Vec<Emission>,
    ) {
        let mut agg = PluginAggregator {
            runtime,
            instance: &mut self.instance,
            buffers: &mut self.buffers,
            empty: &mut self.empty,
        };
        self.windows.process_batch(events, &mut agg, out);
    }

    /// Advances the watermark, firing and dropping windows.
    pub fn advance_watermark(
        &mut self,
        runtime: &Runtime,
        watermark: i64,
        out: &mut Vec<Emission>,
    ) {
        let mut agg = PluginAggregator {
            runtime,
            instance: &mut self.instance,
            buffers: &mut self.buffers,
            empty: &mut self.empty,
        };
        self.windows.advance_watermark(watermark, &mut agg, out);
    }
}

/// Appends a window result to `b` as an event: the key, time `end - 1`, window headers.
pub fn push_result(b: &mut BatchBuilder, key: &[u8], window: Window, payload: &[u8], origin: u32) {
    let mut headers = Vec::with_capacity(64);
    push_header(
        &mut headers,
        b"Weir-Window-Start",
        window.start.to_string().as_bytes(),
    );
    push_header(
        &mut headers,
        b"Weir-Window-End",
        window.end.to_string().as_bytes(),
    );
    b.push(key, window.max_timestamp(), &headers, payload, origin);
}
