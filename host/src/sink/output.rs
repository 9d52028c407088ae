//! What one batch produced, before it becomes messages: the chain's events with their lineage,
//! dead letters, late events, window results, timer events, and `[[after]]` outputs made from
//! window results and timer events — with the names their message ids are made of.

use sha2::{Digest, Sha256};

use crate::operator::process::TimerEvent;
use crate::operator::{DeadLetter, EventBatch};
use crate::window::Window;

/// A fired window's result.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub key: Vec<u8>,
    pub window: Window,
    pub payload: Vec<u8>,
    /// Count windows: the window's serial number.
    pub serial: Option<u64>,
}

/// Everything one source batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Results of the operator chain (when the pipeline has no window).
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
}

impl BatchOutput {
    /// Whether it holds window results or timer events (transformed or not).
    pub fn has_derived(&self) -> bool {
        !(self.windows.is_empty()
            && self.timers.is_empty()
            && self.derived.is_empty()
            && self.derived_dead.is_empty())
    }
}

/// An output of the `[[after]]` operators made from a window result or a timer event (no
/// source message produced it alone): its message id is the origin's and the output's
/// index, so a replay is deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// [`window_origin`] or [`timer_origin`] of what it came from.
    pub origin: String,
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
    pub origin: String,
    pub letter: DeadLetter,
}

/// What a window result's message id is made of: the window and a hash of key and payload,
/// so a replayed firing is deduplicated and a re-firing with new contents is not. Count
/// windows are named by their serial number instead of their bounds (two windows of a key can
/// have the same bounds).
pub fn window_origin(r: &WindowResult) -> String {
    let tag = content_tag(&r.key, &r.payload);
    match r.serial {
        Some(n) => format!("c/{n}/{tag}"),
        None => format!("w/{}/{}/{tag}", r.window.start, r.window.end),
    }
}

/// What a timer event's message id is made of: the timer's time and a hash of key and
/// payload.
pub fn timer_origin(e: &TimerEvent) -> String {
    format!("t/{}/{}", e.time, content_tag(&e.key, &e.payload))
}

/// 16 hex digits of SHA-256 over a key and a payload: part of deterministic message ids.
fn content_tag(key: &[u8], payload: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
