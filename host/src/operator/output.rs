//! What processing produces, before any sink sees it: the chain's events with their lineage,
//! dead letters, late events, window results, timer events, and `[[after]]` outputs made from
//! window results and timer events — each named by where it came from, so that a sink can give
//! it a deterministic identity.
//!
//! Processing (`operator/`, `pipeline/stages.rs`) writes these types; sinks (`sink/`) read
//! them. Nothing here knows about NATS.

use std::fmt;

use sha2::{Digest, Sha256};
use weir_packed::{BatchBuilder, EventRef, push_header};

use super::EventBatch;
use crate::window::Window;

/// An event that could not be processed, with what is known about why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Index of the source message it descends from.
    pub source: u32,
    /// The stage that refused it: an operator's name, or `source` / `sink`.
    pub operator: String,
    /// The plugin version that refused it (empty when no plugin did).
    pub plugin: String,
    pub error: String,
    pub key: Vec<u8>,
    pub time: i64,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The dead letter of event `e` (descending from source message `source`), refused by
    /// `operator` (running `plugin`) with `error`. The one constructor of dead letters.
    pub fn of_event(
        source: u32,
        e: &EventRef<'_>,
        operator: &str,
        plugin: &str,
        error: String,
    ) -> Self {
        DeadLetter {
            source,
            operator: operator.to_owned(),
            plugin: plugin.to_owned(),
            error,
            key: e.key.to_vec(),
            time: e.time,
            headers: e.headers.to_vec(),
            payload: e.payload.to_vec(),
        }
    }

    /// The refused event, as a view.
    pub fn event(&self) -> EventRef<'_> {
        EventRef {
            key: &self.key,
            time: self.time,
            payload: &self.payload,
            headers: &self.headers,
            origin: self.source,
        }
    }

    /// Event `index` of `batch` as a dead letter, logged.
    pub fn of_batch_event(
        batch: &EventBatch,
        index: usize,
        operator: &str,
        plugin: &str,
        error: String,
    ) -> Self {
        tracing::warn!(operator, plugin, error = %error, "event dead-lettered");
        Self::of_event(
            batch.lineage[index],
            &batch.view().get(index),
            operator,
            plugin,
            error,
        )
    }
}

/// A fired window's result.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub key: Vec<u8>,
    pub window: Window,
    pub payload: Vec<u8>,
    /// Count windows: the window's serial number.
    pub serial: Option<u64>,
}

impl WindowResult {
    /// Appends the result to `b` as an event: the window's key, time `end - 1`, the payload,
    /// and `Weir-Window-Start` / `Weir-Window-End` headers.
    pub fn push_as_event(&self, b: &mut BatchBuilder, origin: u32) {
        let mut headers = Vec::with_capacity(64);
        let (start, end) = (self.window.start.to_string(), self.window.end.to_string());
        push_header(&mut headers, b"Weir-Window-Start", start.as_bytes());
        push_header(&mut headers, b"Weir-Window-End", end.as_bytes());
        b.push(
            &self.key,
            self.window.max_timestamp(),
            &headers,
            &self.payload,
            origin,
        );
    }
}

impl TimerEvent {
    /// Appends the event to `b`.
    pub fn push_as_event(&self, b: &mut BatchBuilder, origin: u32) {
        b.push(&self.key, self.time, &self.headers, &self.payload, origin);
    }
}

/// An event a keyed-process timer or a join emitted (no single source message produced it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEvent {
    pub key: Vec<u8>,
    pub time: i64,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
    /// A joined pair: the ids of its left and right events (`None`: an outer join's missing
    /// side), which name it.
    pub pair: Option<(Option<u64>, Option<u64>)>,
}

/// Everything one batch (or one quiet tick) produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Events with lineage: the chain's results, or the process stage's.
    pub events: EventBatch,
    pub dead: Vec<DeadLetter>,
    /// Events past their windows' allowed lateness.
    pub late: Vec<DeadLetter>,
    pub windows: Vec<WindowResult>,
    /// Events emitted by keyed-process timers.
    pub timers: Vec<TimerEvent>,
    /// Window results and timer events after the `[[after]]` operators.
    pub derived: Vec<Derived>,
    /// Window results and timer events an `[[after]]` operator failed on.
    pub derived_dead: Vec<DerivedDeadLetter>,
    /// An operator failed for good (its breaker tripped, or its plugin cannot be restarted):
    /// the batch must not be committed, and the pipeline stops taking input.
    pub stopped: Option<String>,
}

impl BatchOutput {
    /// Whether it holds window results or timer events (transformed or not).
    pub fn has_derived(&self) -> bool {
        !(self.windows.is_empty()
            && self.timers.is_empty()
            && self.derived.is_empty()
            && self.derived_dead.is_empty())
    }

    /// Whether it holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.dead.is_empty()
            && self.late.is_empty()
            && !self.has_derived()
    }

    /// Results (not dead letters or late events) it holds.
    pub fn results(&self) -> usize {
        self.events.len() + self.windows.len() + self.timers.len() + self.derived.len()
    }
}

/// A result no single source message produced — a window's firing or a timer's event — named
/// by what it is, so that a replayed firing gets the same name and a re-firing with new
/// contents does not. `tag` is a hash of key and payload ([`content_tag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOrigin {
    /// A time window (its bounds).
    Window { start: i64, end: i64, tag: u64 },
    /// A count window, named by its serial number (two count windows of a key can have the
    /// same bounds).
    Count { serial: u64, tag: u64 },
    /// A timer (its time).
    Timer { time: i64, tag: u64 },
    /// A joined pair (its time and the ids of its events; `u64::MAX` for a missing side).
    Join { time: i64, left: u64, right: u64 },
}

impl ResultOrigin {
    pub fn of_window(r: &WindowResult) -> Self {
        let tag = content_tag(&r.key, &r.payload);
        match r.serial {
            Some(serial) => ResultOrigin::Count { serial, tag },
            None => ResultOrigin::Window {
                start: r.window.start,
                end: r.window.end,
                tag,
            },
        }
    }

    pub fn of_timer(e: &TimerEvent) -> Self {
        match e.pair {
            Some((left, right)) => ResultOrigin::Join {
                time: e.time,
                left: left.unwrap_or(u64::MAX),
                right: right.unwrap_or(u64::MAX),
            },
            None => ResultOrigin::Timer {
                time: e.time,
                tag: content_tag(&e.key, &e.payload),
            },
        }
    }
}

/// `w/<start>/<end>/<tag>`, `c/<serial>/<tag>`, `t/<time>/<tag>` (tag: 16 hex digits),
/// `j/<time>/<left id>/<right id>` (hex, `-` for none): part of
/// message ids and of the `Weir-Origin` header.
impl fmt::Display for ResultOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ResultOrigin::Window { start, end, tag } => write!(f, "w/{start}/{end}/{tag:016x}"),
            ResultOrigin::Count { serial, tag } => write!(f, "c/{serial}/{tag:016x}"),
            ResultOrigin::Timer { time, tag } => write!(f, "t/{time}/{tag:016x}"),
            ResultOrigin::Join { time, left, right } => {
                let id = |i: u64| {
                    if i == u64::MAX {
                        "-".to_owned()
                    } else {
                        format!("{i:x}")
                    }
                };
                write!(f, "j/{time}/{}/{}", id(left), id(right))
            }
        }
    }
}

/// The first 8 bytes of SHA-256 over a key (length-prefixed) and a payload.
pub fn content_tag(key: &[u8], payload: &[u8]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(payload);
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
}

/// An output of the `[[after]]` operators made from a window result or a timer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub origin: ResultOrigin,
    /// Its index among the outputs of `origin`.
    pub index: u32,
    pub key: Vec<u8>,
    pub time: i64,
    /// Packed headers.
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

/// A window result or timer event that an `[[after]]` operator failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedDeadLetter {
    pub origin: ResultOrigin,
    pub letter: DeadLetter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_print_as_before_the_typed_form() {
        // The string form is part of message ids: it must never change.
        let r = WindowResult {
            key: b"k".to_vec(),
            window: Window { start: 0, end: 10 },
            payload: b"3".to_vec(),
            serial: None,
        };
        let o = ResultOrigin::of_window(&r).to_string();
        assert!(o.starts_with("w/0/10/"), "{o}");
        assert_eq!(o.len(), "w/0/10/".len() + 16);
        let counted = ResultOrigin::of_window(&WindowResult {
            serial: Some(4),
            ..r.clone()
        });
        assert!(counted.to_string().starts_with("c/4/"));
        let t = ResultOrigin::of_timer(&TimerEvent {
            key: b"k".to_vec(),
            time: -5,
            headers: Vec::new(),
            payload: b"3".to_vec(),
            pair: None,
        });
        assert!(t.to_string().starts_with("t/-5/"));
        let j = ResultOrigin::of_timer(&TimerEvent {
            key: b"k".to_vec(),
            time: 9,
            headers: Vec::new(),
            payload: b"3".to_vec(),
            pair: Some((Some(255), None)),
        });
        assert_eq!(j.to_string(), "j/9/ff/-");
    }

    #[test]
    fn content_tag_is_sha256_prefix_and_separates_key_from_payload() {
        // SHA-256 of 8 zero bytes (key length 0) and nothing else.
        assert_eq!(content_tag(b"", b""), 0xaf5570f5a1810b7a);
        assert_ne!(content_tag(b"ab", b"c"), content_tag(b"a", b"bc"));
    }
}
