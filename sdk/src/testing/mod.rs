//! Unit-testing an operator natively, without WebAssembly and without a host.
//!
//! A harness configures the operator as the host does, hands it events in packed batches
//! through the same glue the export macros use, and reads the packed output back, so a test
//! sees what the host would: the same emitted events (key, time, headers, payload and the
//! input event each came from), the same per-event errors, the same accumulator bytes. Failures
//! are isolated as the host isolates them: a failing event is set aside with its message and
//! the others are handed to the operator again without it.
//!
//! - [`TransformHarness`] runs a [`Transform`](crate::Transform) over events.
//! - [`AggregateHarness`] adds events to windows, merges windows and fires them through an
//!   [`Aggregate`](crate::Aggregate), keeping the accumulators as the host does (bytes).
//! - [`ProcessHarness`] runs a [`Process`](crate::Process) key by key over an in-memory keyed
//!   state, and fires its event-time and processing-time timers.
//!
//! Events are described with [`TestEvent`]; what an operator emits comes back as [`Emitted`].
//! What a harness does not reproduce: traps. A panic in the operator fails the test (in the
//! host it would replace the instance and dead-letter the event). Plugin logs
//! ([`crate::log`]) go to stderr.
//!
//! ```
//! use weir_sdk::testing::TestEvent;
//!
//! let event = TestEvent::json(&serde_json::json!({"user": "a", "amount": 12}))
//!     .key("a")
//!     .time(1_700_000_000_000)
//!     .header("source", "web");
//! # let _ = event;
//! ```

use std::fmt;

use serde::{Serialize, de::DeserializeOwned};

use crate::packed::{BatchBuilder, Headers, push_header};

#[cfg(feature = "aggregate")]
mod aggregate;
#[cfg(feature = "process")]
mod process;
#[cfg(feature = "transform")]
mod transform;

#[cfg(feature = "aggregate")]
pub use aggregate::{AggregateHarness, Fired, WindowFailure, WindowResult};
#[cfg(feature = "process")]
pub(crate) use process::MemoryKey;
#[cfg(feature = "process")]
pub use process::{ProcessHarness, TimerFailure, TimersFired};
#[cfg(feature = "transform")]
pub use transform::TransformHarness;

/// An input event for a test: no key, time 0 and no headers unless set.
#[derive(Clone, PartialEq, Eq)]
pub struct TestEvent {
    key: Vec<u8>,
    time: i64,
    /// Packed as in a batch's `headers` column.
    headers: Vec<u8>,
    payload: Vec<u8>,
}

impl TestEvent {
    /// An event with `payload` as it is.
    pub fn new(payload: impl AsRef<[u8]>) -> Self {
        TestEvent {
            key: Vec::new(),
            time: 0,
            headers: Vec::new(),
            payload: payload.as_ref().to_vec(),
        }
    }

    /// An event whose payload is `value` as JSON (e.g. a `serde_json::json!` value). Panics
    /// when `value` cannot be serialized (a map with non-string keys, for instance).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        let payload = serde_json::to_vec(value)
            .unwrap_or_else(|e| panic!("test event payload cannot be serialized as JSON: {e}"));
        TestEvent::new(payload)
    }

    /// Sets the key (an empty key means "no key").
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = key.as_ref().to_vec();
        self
    }

    /// Sets the event time, milliseconds since the Unix epoch.
    pub fn time(mut self, time: i64) -> Self {
        self.time = time;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        push_header(&mut self.headers, name.as_bytes(), value.as_ref());
        self
    }
}

impl fmt::Debug for TestEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(
            f,
            "TestEvent",
            &self.key,
            self.time,
            &self.headers,
            &self.payload,
        )
    }
}

/// An event the operator emitted, read back from its packed output.
#[derive(Clone, PartialEq, Eq)]
pub struct Emitted {
    key: Vec<u8>,
    time: i64,
    headers: Vec<u8>,
    payload: Vec<u8>,
    origin: Option<usize>,
}

impl Emitted {
    /// The key as UTF-8 text; `None` when the event has no key or it is not UTF-8.
    pub fn key(&self) -> Option<&str> {
        self.key_bytes().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The key as bytes; `None` when the event has no key.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        (!self.key.is_empty()).then_some(&self.key[..])
    }

    /// Event time in milliseconds since the Unix epoch.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload parsed as JSON into `T` (`serde_json::Value` for untyped access).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| format!("payload is not the expected JSON: {e}"))
    }

    /// The headers as `(name, value)` byte pairs.
    pub fn headers(&self) -> Headers<'_> {
        Headers::new(&self.headers)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Index of the input event (in the slice given to the harness) this event came from;
    /// `None` for an event a timer emitted.
    pub fn origin(&self) -> Option<usize> {
        self.origin
    }
}

impl fmt::Debug for Emitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        describe(
            f,
            "Emitted",
            &self.key,
            self.time,
            &self.headers,
            &self.payload,
        )
    }
}

/// Writes an event with its key, headers and payload as text where they are UTF-8.
fn describe(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    key: &[u8],
    time: i64,
    headers: &[u8],
    payload: &[u8],
) -> fmt::Result {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let headers: Vec<(String, String)> = Headers::new(headers)
        .map(|(n, v)| (text(n), text(v)))
        .collect();
    f.debug_struct(name)
        .field("key", &text(key))
        .field("time", &time)
        .field("headers", &headers)
        .field("payload", &text(payload))
        .finish()
}

/// An input event the operator failed on: the host would dead-letter it with `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFailure {
    /// Index of the event in the slice given to the harness.
    pub index: usize,
    /// The operator's message.
    pub message: String,
}

/// What a run over events produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The emitted events, in the order the host would receive them.
    pub outputs: Vec<Emitted>,
    /// The events that failed, in the order they were found (the host's dead letters).
    pub failures: Vec<EventFailure>,
}

impl Outcome {
    /// The emitted payloads parsed as JSON (`serde_json::Value` for untyped access); an
    /// error names the first output that is not the expected JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<Vec<T>, String> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, e)| e.json().map_err(|m| format!("output {i}: {m}")))
            .collect()
    }
}

/// Why one call over a batch failed, as the host tells it apart.
#[cfg(any(feature = "transform", feature = "process"))]
enum CallFailure {
    /// The operator named the failing event (an index into the call's batch).
    Event(u32, String),
    /// The call failed as a whole.
    Whole(String),
}

/// A packed batch of `events[i]` for each `i` of `indices`, with origins `0..n` as the host
/// passes them.
fn pack(events: &[TestEvent], indices: &[usize]) -> BatchBuilder {
    let mut b = BatchBuilder::new();
    for (j, &i) in indices.iter().enumerate() {
        let e = &events[i];
        b.push(&e.key, e.time, &e.headers, &e.payload, j as u32);
    }
    b
}

/// Runs the events `indices` of `events` through `call` (one operator call over one packed
/// batch) the way the host does: on success the output is checked and appended to `outcome`;
/// when the operator names a failing event, the events before it are run again, it is recorded
/// as failed, and the events after it are run again; any other failure splits the events in
/// halves until the failing one is alone.
#[cfg(any(feature = "transform", feature = "process"))]
fn run_isolating(
    events: &[TestEvent],
    indices: &[usize],
    call: &mut dyn FnMut(BatchBuilder) -> Result<BatchBuilder, CallFailure>,
    outcome: &mut Outcome,
) {
    if indices.is_empty() {
        return;
    }
    let failure = match call(pack(events, indices)) {
        Ok(out) => match crate::packed::BatchView::new(out.columns(), Some(indices.len())) {
            Ok(view) => {
                outcome.outputs.extend(view.iter().map(|e| Emitted {
                    key: e.key.to_vec(),
                    time: e.time,
                    headers: e.headers.to_vec(),
                    payload: e.payload.to_vec(),
                    origin: Some(indices[e.origin as usize]),
                }));
                return;
            }
            Err(e) => CallFailure::Whole(format!("plugin returned a {e}")),
        },
        Err(failure) => failure,
    };
    let failure = match failure {
        CallFailure::Event(i, message) if i as usize >= indices.len() => {
            CallFailure::Whole(format!(
                "plugin reported an error for event {i} of a batch of {}: {message}",
                indices.len()
            ))
        }
        failure => failure,
    };
    match failure {
        CallFailure::Event(i, message) => {
            let i = i as usize;
            run_isolating(events, &indices[..i], call, outcome);
            outcome.failures.push(EventFailure {
                index: indices[i],
                message,
            });
            run_isolating(events, &indices[i + 1..], call, outcome);
        }
        CallFailure::Whole(message) if indices.len() == 1 => {
            outcome.failures.push(EventFailure {
                index: indices[0],
                message,
            });
        }
        CallFailure::Whole(_) => {
            let mid = indices.len() / 2;
            run_isolating(events, &indices[..mid], call, outcome);
            run_isolating(events, &indices[mid..], call, outcome);
        }
    }
}

/// The owned columns of a generated `Batch` record (any world's bindings).
#[cfg(any(feature = "transform", feature = "process"))]
macro_rules! builder_of {
    ($b:expr) => {{
        let b = $b;
        $crate::packed::BatchBuilder {
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
#[cfg(any(feature = "transform", feature = "process"))]
use builder_of;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::BatchView;

    #[test]
    fn test_events_pack_as_the_host_packs_them() {
        let events = [
            TestEvent::json(&serde_json::json!({"a": 1}))
                .key("k")
                .time(7)
                .header("h", "v"),
            TestEvent::new("raw"),
        ];
        let b = pack(&events, &[1, 0]);
        let view = BatchView::new(b.columns(), Some(2)).unwrap();
        let (first, second) = (view.get(0), view.get(1));
        assert_eq!(
            (first.key, first.time, first.payload),
            (&b""[..], 0, &b"raw"[..])
        );
        assert_eq!(
            (second.key, second.time, second.payload),
            (&b"k"[..], 7, &br#"{"a":1}"#[..])
        );
        assert_eq!(
            Headers::new(second.headers).collect::<Vec<_>>(),
            [(&b"h"[..], &b"v"[..])]
        );
        assert_eq!((first.origin, second.origin), (0, 1));
    }

    #[cfg(any(feature = "transform", feature = "process"))]
    #[test]
    fn a_named_failure_reruns_the_events_around_it() {
        let events: Vec<TestEvent> = (0..5).map(|i| TestEvent::new(i.to_string())).collect();
        let mut calls = Vec::new();
        let mut call = |b: BatchBuilder| {
            let view = b.view();
            calls.push(view.iter().map(|e| e.payload.to_vec()).collect::<Vec<_>>());
            if let Some(i) = view.iter().position(|e| e.payload == b"2") {
                return Err(CallFailure::Event(i as u32, "two".into()));
            }
            let mut out = BatchBuilder::new();
            out.extend_from_view(&view, 0, view.len());
            Ok(out)
        };
        let mut outcome = Outcome::default();
        run_isolating(&events, &[0, 1, 2, 3, 4], &mut call, &mut outcome);
        let origins: Vec<_> = outcome.outputs.iter().map(|e| e.origin()).collect();
        assert_eq!(origins, [Some(0), Some(1), Some(3), Some(4)]);
        assert_eq!(
            outcome.failures,
            [EventFailure {
                index: 2,
                message: "two".into()
            }]
        );
        assert_eq!(
            calls.len(),
            3,
            "whole batch, then before and after the failure"
        );
    }

    #[cfg(any(feature = "transform", feature = "process"))]
    #[test]
    fn an_unnamed_failure_is_split_down_to_the_failing_event() {
        let events: Vec<TestEvent> = (0..4).map(|i| TestEvent::new(i.to_string())).collect();
        let mut call = |b: BatchBuilder| {
            let view = b.view();
            if view.iter().any(|e| e.payload == b"3") {
                return Err(CallFailure::Whole("trap".into()));
            }
            let mut out = BatchBuilder::new();
            out.extend_from_view(&view, 0, view.len());
            Ok(out)
        };
        let mut outcome = Outcome::default();
        run_isolating(&events, &[0, 1, 2, 3], &mut call, &mut outcome);
        assert_eq!(outcome.outputs.len(), 3);
        assert_eq!(
            outcome.failures,
            [EventFailure {
                index: 3,
                message: "trap".into()
            }]
        );
    }

    #[cfg(any(feature = "transform", feature = "process"))]
    #[test]
    fn malformed_output_fails_the_call() {
        let events = [TestEvent::new("x")];
        let mut call = |_: BatchBuilder| {
            let mut out = BatchBuilder::new();
            out.push(b"", 0, &[], b"y", 5);
            Ok(out)
        };
        let mut outcome = Outcome::default();
        run_isolating(&events, &[0], &mut call, &mut outcome);
        assert!(outcome.outputs.is_empty());
        assert!(
            outcome.failures[0].message.contains("origin"),
            "{:?}",
            outcome.failures
        );
    }
}
