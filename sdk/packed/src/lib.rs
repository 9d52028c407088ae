//! weir-packed: the packed batch codec, reading and writing the columnar layout defined in
//! `wit/types.wit`.
//!
//! Both sides of the contract use this crate: plugins (through weir-sdk, which re-exports it as
//! `weir_sdk::packed`, under its event views and output builder) and the host (which keeps
//! batches packed from the source to the sink). It is a crate of its own, without features, so
//! that the host's build does not depend on which of weir-sdk's features (the plugin worlds)
//! another package of the same build turns on. It depends on nothing, allocates only when a
//! column grows, and never panics on malformed input: a [`BatchView`] is checked once when it
//! is made, after which every access is in bounds.

use std::fmt;

mod list;
pub use list::{PackedList, close_item, push_item};

/// The crate under the path weir-sdk re-exports it at, so that `weir_sdk::packed::BatchView`
/// names the same item whether `weir_sdk` is the SDK or, as in the host (which depends on this
/// crate under the name `weir-sdk`), the codec alone.
#[doc(hidden)]
pub use crate as packed;

/// Why a packed batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed packed batch: {}", self.0)
    }
}

impl std::error::Error for LayoutError {}

/// Borrowed columns of a packed batch, in the order of the WIT record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    pub payloads: &'a [u8],
    pub payload_ends: &'a [u8],
    pub keys: &'a [u8],
    pub key_ends: &'a [u8],
    pub times: &'a [u8],
    pub headers: &'a [u8],
    pub header_ends: &'a [u8],
    pub origins: &'a [u8],
}

/// A validated, read-only view of a packed batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    cols: Columns<'a>,
    len: usize,
}

/// One event of a batch, borrowed from the batch's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The key bytes; empty means "no key".
    pub key: &'a [u8],
    /// Event time, milliseconds since the Unix epoch.
    pub time: i64,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// The packed headers of this event; iterate with [`Headers`].
    pub headers: &'a [u8],
    /// Index of the input event this one came from (see `origins` in the WIT).
    pub origin: u32,
}

#[inline]
fn u32_at(col: &[u8], i: usize) -> u32 {
    let b = &col[i * 4..i * 4 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
fn i64_at(col: &[u8], i: usize) -> i64 {
    let b = &col[i * 8..i * 8 + 8];
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn check_ends(name: &str, ends: &[u8], data_len: usize, n: usize) -> Result<(), LayoutError> {
    if ends.len() != n * 4 {
        return Err(LayoutError(format!(
            "column `{name}` has {} bytes, expected {} for {n} events",
            ends.len(),
            n * 4
        )));
    }
    list::check_offsets(name, ends, data_len)
}

impl<'a> BatchView<'a> {
    /// Checks the layout of `cols` and returns a view of it. `max_origin` bounds the origins
    /// (the number of input events when checking a plugin's output; `None` skips that check).
    pub fn new(cols: Columns<'a>, max_origin: Option<usize>) -> Result<Self, LayoutError> {
        if !cols.times.len().is_multiple_of(8) {
            return Err(LayoutError(format!(
                "column `times` has {} bytes, not a multiple of 8",
                cols.times.len()
            )));
        }
        let n = cols.times.len() / 8;
        check_ends("payload-ends", cols.payload_ends, cols.payloads.len(), n)?;
        check_ends("key-ends", cols.key_ends, cols.keys.len(), n)?;
        check_ends("header-ends", cols.header_ends, cols.headers.len(), n)?;
        if cols.origins.len() != n * 4 {
            return Err(LayoutError(format!(
                "column `origins` has {} bytes, expected {} for {n} events",
                cols.origins.len(),
                n * 4
            )));
        }
        if let Some(max) = max_origin {
            let mut prev = 0u32;
            for (i, b) in cols.origins.chunks_exact(4).enumerate() {
                let o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if o < prev || o as usize >= max {
                    return Err(LayoutError(format!(
                        "origin of output event {i} is {o}: origins must be non-decreasing and below the {max} input events"
                    )));
                }
                prev = o;
            }
        }
        Ok(BatchView { cols, len: n })
    }

    /// A view of columns already checked by [`BatchView::new`] (e.g. kept by the host after
    /// checking them once). Not checking again is only a matter of cost: on malformed columns
    /// `get` panics on a bounds check, it never reads out of bounds.
    pub fn new_prechecked(cols: Columns<'a>) -> Self {
        BatchView {
            len: cols.times.len() / 8,
            cols,
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Origin of event `i` (see `origins` in the WIT).
    #[inline]
    pub fn origin(&self, i: usize) -> u32 {
        u32_at(self.cols.origins, i)
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The columns this view reads.
    pub fn columns(&self) -> Columns<'a> {
        self.cols
    }

    #[inline]
    fn range(ends: &[u8], i: usize) -> (usize, usize) {
        let start = if i == 0 {
            0
        } else {
            u32_at(ends, i - 1) as usize
        };
        (start, u32_at(ends, i) as usize)
    }

    /// Byte range of event `i`'s payload within the `payloads` column.
    #[inline]
    pub fn payload_range(&self, i: usize) -> (usize, usize) {
        Self::range(self.cols.payload_ends, i)
    }

    /// Key of event `i` (empty: no key).
    #[inline]
    pub fn key(&self, i: usize) -> &'a [u8] {
        let (s, e) = Self::range(self.cols.key_ends, i);
        &self.cols.keys[s..e]
    }

    /// Event time of event `i`.
    #[inline]
    pub fn time(&self, i: usize) -> i64 {
        i64_at(self.cols.times, i)
    }

    /// Payload of event `i`.
    #[inline]
    pub fn payload(&self, i: usize) -> &'a [u8] {
        let (s, e) = Self::range(self.cols.payload_ends, i);
        &self.cols.payloads[s..e]
    }

    /// Packed headers of event `i`.
    #[inline]
    pub fn headers(&self, i: usize) -> &'a [u8] {
        let (s, e) = Self::range(self.cols.header_ends, i);
        &self.cols.headers[s..e]
    }

    /// Event `i`. Panics if `i >= len()` (an index bug of the caller, not bad input).
    #[inline]
    pub fn get(&self, i: usize) -> EventRef<'a> {
        let c = &self.cols;
        let (ps, pe) = Self::range(c.payload_ends, i);
        let (ks, ke) = Self::range(c.key_ends, i);
        let (hs, he) = Self::range(c.header_ends, i);
        EventRef {
            key: &c.keys[ks..ke],
            time: i64_at(c.times, i),
            payload: &c.payloads[ps..pe],
            headers: &c.headers[hs..he],
            origin: u32_at(c.origins, i),
        }
    }

    /// All events in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'a>> + '_ {
        (0..self.len).map(move |i| self.get(i))
    }
}

/// Iterator over one event's packed headers, yielding `(name, value)`.
///
/// A truncated entry ends the iteration (and [`Headers::is_malformed`] tells it happened);
/// the host validates headers it receives from plugins with [`validate_headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Headers<'a> {
    pub fn new(packed: &'a [u8]) -> Self {
        Headers {
            rest: packed,
            malformed: false,
        }
    }

    /// True when iteration stopped on a truncated entry.
    pub fn is_malformed(&self) -> bool {
        self.malformed
    }

    fn take(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < 4 {
            self.malformed = !self.rest.is_empty();
            self.rest = &[];
            return None;
        }
        let n =
            u32::from_le_bytes([self.rest[0], self.rest[1], self.rest[2], self.rest[3]]) as usize;
        if self.rest.len() - 4 < n {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let (v, rest) = self.rest[4..].split_at(n);
        self.rest = rest;
        Some(v)
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let name = self.take()?;
        match self.take() {
            Some(value) => Some((name, value)),
            None => {
                self.malformed = true;
                None
            }
        }
    }
}

/// Checks that `packed` is a well-formed header sequence.
pub fn validate_headers(packed: &[u8]) -> Result<(), LayoutError> {
    let mut it = Headers::new(packed);
    for _ in it.by_ref() {}
    if it.is_malformed() {
        return Err(LayoutError("truncated header entry".into()));
    }
    Ok(())
}

/// Appends one header entry to a packed header buffer.
pub fn push_header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
    buf.extend_from_slice(name);
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
}

/// Owned columns of a batch being built. Appending an event copies its bytes once into the
/// column buffers; clearing keeps the capacity for the next batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchBuilder {
    pub payloads: Vec<u8>,
    pub payload_ends: Vec<u8>,
    pub keys: Vec<u8>,
    pub key_ends: Vec<u8>,
    pub times: Vec<u8>,
    pub headers: Vec<u8>,
    pub header_ends: Vec<u8>,
    pub origins: Vec<u8>,
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder with room for `events` events of about `bytes_per_event` payload bytes.
    pub fn with_capacity(events: usize, bytes_per_event: usize) -> Self {
        BatchBuilder {
            payloads: Vec::with_capacity(events * bytes_per_event),
            payload_ends: Vec::with_capacity(events * 4),
            keys: Vec::new(),
            key_ends: Vec::with_capacity(events * 4),
            times: Vec::with_capacity(events * 8),
            headers: Vec::new(),
            header_ends: Vec::with_capacity(events * 4),
            origins: Vec::with_capacity(events * 4),
        }
    }

    /// Number of events appended so far.
    pub fn len(&self) -> usize {
        self.times.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Forgets all events, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.payload_ends.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.times.clear();
        self.headers.clear();
        self.header_ends.clear();
        self.origins.clear();
    }

    /// Appends an event whose payload is `payload`.
    #[inline]
    pub fn push(&mut self, key: &[u8], time: i64, headers: &[u8], payload: &[u8], origin: u32) {
        self.payloads.extend_from_slice(payload);
        self.finish_event(key, time, headers, origin);
    }

    /// Appends events `lo..hi` of `input` unchanged, with origins `lo..hi`: one copy per
    /// column for the whole run instead of one per event and column (the fast path of
    /// filters and of any operator forwarding its input).
    pub fn extend_from_view(&mut self, input: &BatchView<'_>, lo: usize, hi: usize) {
        if lo >= hi {
            return;
        }
        let c = input.columns();
        append_run(
            &mut self.payloads,
            &mut self.payload_ends,
            c.payloads,
            c.payload_ends,
            lo,
            hi,
        );
        append_run(
            &mut self.keys,
            &mut self.key_ends,
            c.keys,
            c.key_ends,
            lo,
            hi,
        );
        append_run(
            &mut self.headers,
            &mut self.header_ends,
            c.headers,
            c.header_ends,
            lo,
            hi,
        );
        self.times.extend_from_slice(&c.times[lo * 8..hi * 8]);
        self.origins.reserve((hi - lo) * 4);
        for o in lo..hi {
            self.origins.extend_from_slice(&(o as u32).to_le_bytes());
        }
    }

    /// Appends an event whose payload the caller has already written at the end of
    /// `self.payloads` (for instance with `serde_json::to_writer`).
    #[inline]
    pub fn finish_event(&mut self, key: &[u8], time: i64, headers: &[u8], origin: u32) {
        self.payload_ends
            .extend_from_slice(&(self.payloads.len() as u32).to_le_bytes());
        // Empty slices are skipped: in Wasm every copy is a `memory.copy`, which costs a call
        // into the engine even for zero bytes.
        if !key.is_empty() {
            self.keys.extend_from_slice(key);
        }
        self.key_ends
            .extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        self.times.extend_from_slice(&time.to_le_bytes());
        if !headers.is_empty() {
            self.headers.extend_from_slice(headers);
        }
        self.header_ends
            .extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        self.origins.extend_from_slice(&origin.to_le_bytes());
    }

    /// Drops the payload bytes written after the last complete event (an abandoned emission).
    pub fn truncate_payload(&mut self) {
        let end = match self.payload_ends.len() {
            0 => 0,
            n => u32_at(&self.payload_ends, n / 4 - 1) as usize,
        };
        self.payloads.truncate(end);
    }

    /// Borrowed columns of what has been built.
    pub fn columns(&self) -> Columns<'_> {
        Columns {
            payloads: &self.payloads,
            payload_ends: &self.payload_ends,
            keys: &self.keys,
            key_ends: &self.key_ends,
            times: &self.times,
            headers: &self.headers,
            header_ends: &self.header_ends,
            origins: &self.origins,
        }
    }

    /// A view of what has been built (always well-formed).
    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            cols: self.columns(),
            len: self.len(),
        }
    }
}

/// Appends the data of events `lo..hi` (one copy) and their end offsets rebased onto `data`.
fn append_run(
    data: &mut Vec<u8>,
    ends: &mut Vec<u8>,
    src: &[u8],
    src_ends: &[u8],
    lo: usize,
    hi: usize,
) {
    let start = if lo == 0 { 0 } else { u32_at(src_ends, lo - 1) };
    let end = u32_at(src_ends, hi - 1);
    let delta = (data.len() as u32).wrapping_sub(start);
    if end > start {
        data.extend_from_slice(&src[start as usize..end as usize]);
    }
    let old = ends.len();
    ends.resize(old + (hi - lo) * 4, 0);
    for (dst, src) in ends[old..]
        .chunks_exact_mut(4)
        .zip(src_ends[lo * 4..hi * 4].chunks_exact(4))
    {
        let v = u32::from_le_bytes([src[0], src[1], src[2], src[3]]).wrapping_add(delta);
        dst.copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_reads_back_event_by_event() {
        let mut b = BatchBuilder::new();
        let mut h = Vec::new();
        push_header(&mut h, b"a", b"1");
        b.push(b"k1", 10, &h, b"hello", 0);
        b.push(b"", -5, &[], b"", 0);
        b.push(b"k3", i64::MAX, &[], b"{}", 2);
        let v = BatchView::new(b.columns(), Some(3)).unwrap();
        assert_eq!(v.len(), 3);
        let e = v.get(0);
        assert_eq!(
            (e.key, e.time, e.payload, e.origin),
            (&b"k1"[..], 10, &b"hello"[..], 0)
        );
        assert_eq!(
            Headers::new(e.headers).collect::<Vec<_>>(),
            vec![(&b"a"[..], &b"1"[..])]
        );
        assert_eq!(v.get(1).time, -5);
        assert!(v.get(1).payload.is_empty());
        assert_eq!(v.get(2).origin, 2);
    }

    #[test]
    fn forwarded_runs_equal_event_by_event_copies() {
        let mut input = BatchBuilder::new();
        let mut h = Vec::new();
        push_header(&mut h, b"x", b"y");
        for i in 0..6u32 {
            let hdr: &[u8] = if i % 2 == 0 { &h } else { &[] };
            input.push(
                format!("k{i}").as_bytes(),
                i as i64,
                hdr,
                format!("p{i}").as_bytes(),
                i,
            );
        }
        let view = input.view();
        let (mut runs, mut single) = (BatchBuilder::new(), BatchBuilder::new());
        single.push(b"new", 9, &[], b"first", 0);
        runs.push(b"new", 9, &[], b"first", 0);
        for i in [1usize, 2, 3, 5] {
            let e = view.get(i);
            single.push(e.key, e.time, e.headers, e.payload, i as u32);
        }
        runs.extend_from_view(&view, 1, 4);
        runs.extend_from_view(&view, 5, 6);
        assert_eq!(runs, single);
        assert!(BatchView::new(runs.columns(), Some(6)).is_ok());
    }

    #[test]
    fn malformed_columns_are_refused_with_the_column_named() {
        let mut b = BatchBuilder::new();
        b.push(b"k", 1, &[], b"abc", 0);
        let mut cols = b.columns();
        cols.payloads = b"ab";
        let err = BatchView::new(cols, None).unwrap_err();
        assert!(err.0.contains("payload-ends"), "{err}");
        let mut cols = b.columns();
        cols.times = &[1, 2, 3];
        assert!(BatchView::new(cols, None).unwrap_err().0.contains("times"));
        assert!(
            BatchView::new(b.columns(), Some(0))
                .unwrap_err()
                .0
                .contains("origin")
        );
    }

    #[test]
    fn decreasing_ends_are_refused() {
        let mut ends = Vec::new();
        ends.extend_from_slice(&3u32.to_le_bytes());
        ends.extend_from_slice(&1u32.to_le_bytes());
        let err = check_ends("payload-ends", &ends, 1, 2).unwrap_err();
        assert!(err.0.contains("before the previous"), "{err}");
    }

    #[test]
    fn truncated_headers_are_detected() {
        let mut h = Vec::new();
        push_header(&mut h, b"name", b"value");
        assert!(validate_headers(&h).is_ok());
        assert!(validate_headers(&h[..h.len() - 1]).is_err());
        assert!(validate_headers(&h[..2]).is_err());
    }
}
