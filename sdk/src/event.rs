//! What a plugin author touches: a zero-copy view of one input event and a builder that writes
//! output events straight into the packed output batch.

use std::fmt::Display;

use crate::json::{ObjectParser, RawObject};
use crate::packed::{BatchBuilder, BatchView, EventRef, Headers, push_header};
use serde::{Serialize, de::DeserializeOwned};

/// One input event, borrowed from the packed input batch. Fields are read on access, so an
/// operator pays only for what it looks at.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub(crate) view: BatchView<'a>,
    pub(crate) index: u32,
}

impl<'a> Event<'a> {
    /// The key as bytes; `None` when the event has no key.
    pub fn key_bytes(&self) -> Option<&'a [u8]> {
        let k = self.view.key(self.index as usize);
        (!k.is_empty()).then_some(k)
    }

    /// The key as UTF-8 text; `None` when the event has no key or it is not UTF-8.
    pub fn key(&self) -> Option<&'a str> {
        self.key_bytes().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn time(&self) -> i64 {
        self.view.time(self.index as usize)
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.view.payload(self.index as usize)
    }

    /// The payload parsed as JSON into `T` (`serde_json::Value` for untyped access).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(self.payload())
            .map_err(|e| format!("payload is not the expected JSON: {e}"))
    }

    /// The payload's top-level JSON object, parsed by `parser` without copying (see
    /// [`crate::json`]): keep one [`ObjectParser`] in the operator and pass it for every event.
    /// The error starts with `payload is not a JSON object`.
    pub fn json_object<'p>(&self, parser: &'p mut ObjectParser) -> Result<RawObject<'p>, String>
    where
        'a: 'p,
    {
        parser
            .parse(self.payload())
            .map_err(|e| format!("payload is not a JSON object: {e}"))
    }

    /// The headers as `(name, value)` byte pairs.
    pub fn headers(&self) -> Headers<'a> {
        Headers::new(self.view.headers(self.index as usize))
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Position of this event in its batch.
    pub fn index(&self) -> u32 {
        self.index
    }
}

/// Where a plugin emits the events produced from one input event.
///
/// `bytes`, `json` and `forward` emit with the input's key, time and headers; `event()` starts a
/// builder to change them.
pub struct Output<'o> {
    pub(crate) batch: &'o mut BatchBuilder,
    pub(crate) run: &'o mut ForwardRun,
    pub(crate) view: BatchView<'o>,
    pub(crate) origin: u32,
}

/// Consecutive input events forwarded unchanged and not yet copied to the output; copied as
/// one run per column when something else is emitted or the batch ends.
#[derive(Debug, Default)]
pub(crate) struct ForwardRun {
    lo: usize,
    hi: usize,
}

impl ForwardRun {
    pub(crate) fn flush(&mut self, batch: &mut BatchBuilder, view: &BatchView<'_>) {
        batch.extend_from_view(view, self.lo, self.hi);
        self.lo = self.hi;
    }
}

impl<'o> Output<'o> {
    /// Re-emits the input event unchanged.
    pub fn forward(&mut self) {
        let i = self.origin as usize;
        if self.run.hi == i && self.run.hi > self.run.lo {
            self.run.hi += 1;
        } else {
            self.run.flush(self.batch, &self.view);
            *self.run = ForwardRun { lo: i, hi: i + 1 };
        }
    }

    /// The input event this output belongs to.
    fn input(&self) -> EventRef<'o> {
        self.view.get(self.origin as usize)
    }

    /// The output buffer for an emission other than `forward`, forwarded events flushed first
    /// so that the output keeps its order.
    fn batch(&mut self) -> &mut BatchBuilder {
        self.run.flush(self.batch, &self.view);
        self.batch
    }

    /// Emits `payload` with the input's key, time and headers.
    pub fn bytes(&mut self, payload: &[u8]) {
        let (i, origin) = (self.input(), self.origin);
        self.batch().push(i.key, i.time, i.headers, payload, origin);
    }

    /// Emits `value` serialized as JSON (written in place) with the input's key, time and headers.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), String> {
        self.event().json(value)
    }

    /// Emits a payload that `write` appends, in place, to the output buffer it is given, with
    /// the input's key, time and headers. The buffer may already hold other events' payloads:
    /// `write` must only append. An error abandons the emission. For instance
    /// `out.write(|buf| doc.write_projection(&keep, buf))` (see [`crate::json`]).
    pub fn write<E: Display>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), String> {
        self.event().write(write)
    }

    /// Starts an output event that inherits the input's key, time and headers.
    pub fn event(&mut self) -> EventBuilder<'_, 'o> {
        EventBuilder {
            key: None,
            time: self.view.time(self.origin as usize),
            extra_headers: None,
            keep_headers: true,
            out: self,
        }
    }
}

/// An output event being described; finished by [`EventBuilder::bytes`] or [`EventBuilder::json`].
pub struct EventBuilder<'b, 'o> {
    out: &'b mut Output<'o>,
    key: Option<&'b [u8]>,
    time: i64,
    extra_headers: Option<Vec<u8>>,
    keep_headers: bool,
}

impl<'b, 'o> EventBuilder<'b, 'o> {
    /// Sets the key (re-keying); an empty key means "no key".
    pub fn key(mut self, key: &'b [u8]) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the event time (re-timing), milliseconds since the Unix epoch.
    pub fn time(mut self, time: i64) -> Self {
        self.time = time;
        self
    }

    /// Drops the headers inherited from the input event.
    pub fn clear_headers(mut self) -> Self {
        self.keep_headers = false;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &[u8]) -> Self {
        push_header(
            self.extra_headers.get_or_insert_with(Vec::new),
            name.as_bytes(),
            value,
        );
        self
    }

    /// Emits the event with `payload`.
    pub fn bytes(self, payload: &[u8]) {
        self.out.batch().payloads.extend_from_slice(payload);
        self.finish();
    }

    /// Emits the event with `value` serialized as JSON straight into the output batch.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<(), String> {
        let batch = self.out.batch();
        if let Err(e) = serde_json::to_writer(&mut batch.payloads, value) {
            batch.truncate_payload();
            return Err(format!("cannot serialize output as JSON: {e}"));
        }
        self.finish();
        Ok(())
    }

    /// Emits the event with a payload that `write` appends, in place, to the output buffer
    /// (see [`Output::write`]).
    pub fn write<E: Display>(
        self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), String> {
        let batch = self.out.batch();
        let start = batch.payloads.len();
        let written = write(&mut batch.payloads);
        assert!(
            batch.payloads.len() >= start,
            "an output writer removed bytes it had not written"
        );
        if let Err(e) = written {
            batch.truncate_payload();
            return Err(format!("cannot write the output payload: {e}"));
        }
        self.finish();
        Ok(())
    }

    fn finish(self) {
        let input = self.out.input();
        let key = self.key.unwrap_or(input.key);
        let origin = self.out.origin;
        let b = self.out.batch();
        // Headers: the inherited ones (if kept) followed by the added ones.
        let inherited: &[u8] = if self.keep_headers {
            input.headers
        } else {
            &[]
        };
        match &self.extra_headers {
            None => b.finish_event(key, self.time, inherited, origin),
            Some(extra) => {
                let mut all = Vec::with_capacity(inherited.len() + extra.len());
                all.extend_from_slice(inherited);
                all.extend_from_slice(extra);
                b.finish_event(key, self.time, &all, origin)
            }
        }
    }
}

/// Runs `f` over every event of the packed batch `cols`, collecting what it emits. Returns the
/// output columns, or the index and message of the first event `f` failed on.
#[cfg(any(feature = "transform", feature = "process"))]
pub(crate) fn each_event(
    cols: crate::packed::Columns<'_>,
    mut f: impl FnMut(&Event<'_>, &mut Output<'_>) -> Result<(), String>,
) -> Result<BatchBuilder, (u32, String)> {
    // The host guarantees the layout of the batches it sends (wit/types.wit); checking again
    // would cost per event. A malformed batch would make an access panic (a trap the host
    // isolates), never read out of bounds.
    let view = BatchView::new_prechecked(cols);
    let mut out = BatchBuilder::with_capacity(
        view.len(),
        view.columns().payloads.len() / view.len().max(1),
    );
    let mut run = ForwardRun::default();
    for i in 0..view.len() as u32 {
        let event = Event { view, index: i };
        let mut output = Output {
            batch: &mut out,
            run: &mut run,
            view,
            origin: i,
        };
        f(&event, &mut output).map_err(|message| (i, message))?;
    }
    run.flush(&mut out, &view);
    Ok(out)
}

/// The borrowed columns of a generated `Batch` record (any world's bindings).
macro_rules! columns_of {
    ($b:expr) => {
        $crate::packed::Columns {
            payloads: &$b.payloads,
            payload_ends: &$b.payload_ends,
            keys: &$b.keys,
            key_ends: &$b.key_ends,
            times: &$b.times,
            headers: &$b.headers,
            header_ends: &$b.header_ends,
            origins: &$b.origins,
        }
    };
}

/// A generated `Batch` record of type `$t` from a [`BatchBuilder`] (moves the buffers).
macro_rules! batch_from {
    ($t:path, $b:expr) => {{
        let b = $b;
        $t {
            payloads: b.payloads,
            payload_ends: b.payload_ends,
            keys: b.keys,
            key_ends: b.key_ends,
            times: b.times,
            headers: b.headers,
            header_ends: b.header_ends,
            origins: b.origins,
        }
    }};
}

pub(crate) use {batch_from, columns_of};
