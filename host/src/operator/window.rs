//! The windowed aggregate operator: the host's [`WindowOperator`] (window state, timers,
//! lateness) driving an `aggregate` plugin, which only creates, updates, merges and finishes
//! accumulators. Window results become events: the window's key, time `end - 1`, the plugin's
//! payload, and `Weir-Window-Start` / `Weir-Window-End` headers.

use weir_sdk::packed::{BatchBuilder, BatchView, push_header};

use crate::runtime::bindings::weir::operator::types::{Accumulators, Batch, Window as WitWindow};
use crate::runtime::{AggregateInstance, CallError, Runtime};
use crate::window::{AddError, Aggregator, Emission, Window, WindowOperator};

/// An `aggregate` plugin seen as an [`Aggregator`].
struct PluginAggregator<'a> {
    runtime: &'a Runtime,
    instance: &'a mut AggregateInstance,
    buffers: &'a mut AddBuffers,
}

/// The arguments of `add` calls, kept from call to call: refilled without allocating (large
/// fresh buffers cost page faults on every batch).
pub struct AddBuffers {
    accs: Accumulators,
    targets: Vec<u8>,
    events: Batch,
}

impl Default for AddBuffers {
    fn default() -> Self {
        AddBuffers {
            accs: Accumulators {
                data: Vec::new(),
                ends: Vec::new(),
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

impl AddBuffers {
    /// Refills the buffers with the call's accumulators, targets and events.
    fn fill(&mut self, accs: &[Vec<u8>], targets: &[u32], events: &BatchView<'_>) {
        self.targets.clear();
        for t in targets {
            self.targets.extend_from_slice(&t.to_le_bytes());
        }
        self.accs.data.clear();
        self.accs.ends.clear();
        for acc in accs {
            self.accs.data.extend_from_slice(acc);
            self.accs
                .ends
                .extend_from_slice(&(self.accs.data.len() as u32).to_le_bytes());
        }
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
}

fn whole(e: CallError) -> String {
    e.to_string()
}

impl Aggregator for PluginAggregator<'_> {
    fn create(&mut self) -> Result<Vec<u8>, String> {
        self.instance.create(self.runtime).map_err(whole)
    }

    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &BatchView<'_>,
    ) -> Result<(), AddError> {
        self.buffers.fill(accs, targets, events);
        let b = &*self.buffers;
        let result = self
            .instance
            .add(self.runtime, &b.accs, &b.targets, &b.events);
        match result {
            Ok(new) => unpack(&new, accs).map_err(|message| AddError {
                index: usize::MAX,
                message,
            }),
            Err(CallError::Event { index, message }) => Err(AddError {
                index: index as usize,
                message,
            }),
            Err(e) => Err(AddError {
                index: usize::MAX,
                message: e.to_string(),
            }),
        }
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, String> {
        self.instance.merge(self.runtime, a, b).map_err(whole)
    }

    fn finish(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let w = WitWindow {
            start: window.start,
            end: window.end,
        };
        self.instance
            .finish(self.runtime, key, w, acc)
            .map_err(whole)
    }
}

/// Writes packed accumulators back into `accs`, checking their layout (plugin output is
/// untrusted).
fn unpack(packed: &Accumulators, accs: &mut [Vec<u8>]) -> Result<(), String> {
    if packed.ends.len() != accs.len() * 4 {
        return Err(format!(
            "plugin returned {} accumulators for {} given",
            packed.ends.len() / 4,
            accs.len()
        ));
    }
    // Check every range before writing any, so that a malformed reply changes nothing.
    let mut ranges = Vec::with_capacity(accs.len());
    let mut start = 0usize;
    for end in packed.ends.chunks_exact(4) {
        let end = u32::from_le_bytes([end[0], end[1], end[2], end[3]]) as usize;
        if end < start || end > packed.data.len() {
            return Err(format!(
                "plugin returned malformed accumulators (end {end} after {start}, {} bytes)",
                packed.data.len()
            ));
        }
        ranges.push(start..end);
        start = end;
    }
    for (acc, range) in accs.iter_mut().zip(ranges) {
        acc.clear();
        acc.extend_from_slice(&packed.data[range]);
    }
    Ok(())
}

/// A window operator and the aggregate plugin it drives.
pub struct WindowedAggregate {
    pub name: String,
    pub instance: AggregateInstance,
    pub windows: WindowOperator,
    buffers: AddBuffers,
}

impl WindowedAggregate {
    pub fn new(name: String, instance: AggregateInstance, windows: WindowOperator) -> Self {
        WindowedAggregate {
            name,
            instance,
            windows,
            buffers: AddBuffers::default(),
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
