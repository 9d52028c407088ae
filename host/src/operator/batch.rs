//! The host's batch: the packed columns of the WIT `batch` record, kept packed end to end, plus
//! `lineage` — for each event, the index of the source message it descends from. Lineage drives
//! deterministic message ids, acknowledgements and dead-letter headers.

use weir_packed::{BatchBuilder, BatchView, Columns, LayoutError};

use crate::runtime::bindings::weir::operator::types::Batch;

/// A packed batch and the source message each event descends from.
#[derive(Debug, Clone)]
pub struct EventBatch {
    /// The columns, with `origins` = `0..n` (what a plugin expects of an input batch).
    pub packed: Batch,
    /// `lineage[i]`: index of event `i`'s source message in the fetched batch.
    pub lineage: Vec<u32>,
}

/// Borrowed columns of a WIT batch.
pub fn columns(b: &Batch) -> Columns<'_> {
    Columns {
        payloads: &b.payloads,
        payload_ends: &b.payload_ends,
        keys: &b.keys,
        key_ends: &b.key_ends,
        times: &b.times,
        headers: &b.headers,
        header_ends: &b.header_ends,
        origins: &b.origins,
    }
}

/// Moves a builder's buffers into a WIT batch (no copy).
pub fn into_packed(b: BatchBuilder) -> Batch {
    Batch {
        payloads: b.payloads,
        payload_ends: b.payload_ends,
        keys: b.keys,
        key_ends: b.key_ends,
        times: b.times,
        headers: b.headers,
        header_ends: b.header_ends,
        origins: b.origins,
    }
}

/// Moves a WIT batch's buffers into a builder (no copy), to append to it.
pub fn into_builder(b: Batch) -> BatchBuilder {
    BatchBuilder {
        payloads: b.payloads,
        payload_ends: b.payload_ends,
        keys: b.keys,
        key_ends: b.key_ends,
        times: b.times,
        headers: b.headers,
        header_ends: b.header_ends,
        origins: b.origins,
    }
}

/// A batch with no event.
pub fn empty_packed() -> Batch {
    into_packed(BatchBuilder::new())
}

impl Default for EventBatch {
    fn default() -> Self {
        EventBatch {
            packed: empty_packed(),
            lineage: Vec::new(),
        }
    }
}

impl EventBatch {
    /// Wraps a builder whose events are source messages `0..n` in order.
    pub fn from_source(b: BatchBuilder) -> Self {
        let lineage = (0..b.len() as u32).collect();
        EventBatch {
            packed: into_packed(b),
            lineage,
        }
    }

    pub fn len(&self) -> usize {
        self.lineage.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lineage.is_empty()
    }

    /// A view of the events (checked when the batch was made).
    pub fn view(&self) -> BatchView<'_> {
        BatchView::new_prechecked(columns(&self.packed))
    }

    /// Accepts a plugin's output for `input`: checks its layout against the input, maps its
    /// origins to lineage and resets origins to `0..n` for the next operator.
    pub fn from_plugin_output(out: Batch, input_lineage: &[u32]) -> Result<Self, LayoutError> {
        let view = BatchView::new(columns(&out), Some(input_lineage.len()))?;
        if !out.headers.is_empty() {
            for e in view.iter() {
                weir_packed::validate_headers(e.headers)?;
            }
        }
        let lineage: Vec<u32> = out
            .origins
            .chunks_exact(4)
            .map(|o| input_lineage[u32::from_le_bytes([o[0], o[1], o[2], o[3]]) as usize])
            .collect();
        let mut packed = out;
        reset_origins(&mut packed.origins, lineage.len());
        Ok(EventBatch { packed, lineage })
    }

    /// Events `lo..hi` as a new batch (origins `0..hi-lo`), for isolating a failing event.
    pub fn slice(&self, lo: usize, hi: usize) -> EventBatch {
        let view = self.view();
        let mut b = BatchBuilder::new();
        for (j, i) in (lo..hi).enumerate() {
            let e = view.get(i);
            b.push(e.key, e.time, e.headers, e.payload, j as u32);
        }
        EventBatch {
            packed: into_packed(b),
            lineage: self.lineage[lo..hi].to_vec(),
        }
    }

    /// The events at `indices` (in that order) as a new batch (origins `0..n`).
    pub fn select(&self, indices: &[u32]) -> EventBatch {
        let view = self.view();
        let mut b = BatchBuilder::with_capacity(indices.len(), 64);
        for (j, &i) in indices.iter().enumerate() {
            let e = view.get(i as usize);
            b.push(e.key, e.time, e.headers, e.payload, j as u32);
        }
        EventBatch {
            packed: into_packed(b),
            lineage: indices.iter().map(|&i| self.lineage[i as usize]).collect(),
        }
    }

    /// Merges two batches whose lineages are each in order into one in lineage order
    /// (`self`'s events first among equal lineage).
    pub fn merge(self, other: EventBatch) -> EventBatch {
        if other.is_empty() {
            return self;
        }
        if self.is_empty() {
            return other;
        }
        let (a, b) = (self.view(), other.view());
        let mut out = BatchBuilder::with_capacity(self.len() + other.len(), 64);
        let mut lineage = Vec::with_capacity(self.len() + other.len());
        let (mut i, mut j) = (0, 0);
        while i < self.len() || j < other.len() {
            let take_a =
                j == other.len() || (i < self.len() && self.lineage[i] <= other.lineage[j]);
            let (e, l) = if take_a {
                i += 1;
                (a.get(i - 1), self.lineage[i - 1])
            } else {
                j += 1;
                (b.get(j - 1), other.lineage[j - 1])
            };
            out.push(e.key, e.time, e.headers, e.payload, lineage.len() as u32);
            lineage.push(l);
        }
        EventBatch {
            packed: into_packed(out),
            lineage,
        }
    }

    /// Appends all events of `other`.
    pub fn append(&mut self, other: &EventBatch) {
        if self.is_empty() {
            *self = other.clone();
            return;
        }
        let mut b = into_builder(std::mem::replace(&mut self.packed, empty_packed()));
        let base = b.len() as u32;
        for (j, e) in other.view().iter().enumerate() {
            b.push(e.key, e.time, e.headers, e.payload, base + j as u32);
        }
        self.packed = into_packed(b);
        self.lineage.extend_from_slice(&other.lineage);
    }
}

fn reset_origins(origins: &mut Vec<u8>, n: usize) {
    origins.resize(n * 4, 0);
    for (i, o) in origins.chunks_exact_mut(4).enumerate() {
        o.copy_from_slice(&(i as u32).to_le_bytes());
    }
}
