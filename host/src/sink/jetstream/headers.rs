//! The headers of every message the JetStream sink publishes, built one way for every kind of
//! output (plain results, window results, `[[after]]` outputs, timer events, dead letters,
//! late events):
//!
//! - the event's own headers first, except `Weir-Key` and `Weir-Time`, which the sink sets
//!   itself (a re-keyed or key-less event never carries a stale key). `Nats-*` headers are
//!   reserved to NATS (`Nats-Expected-Last-Sequence` and the like change what the stream
//!   does): a result whose plugin set one is refused with a reason (a dead letter);
//! - `Nats-Msg-Id` when the delivery guarantee uses ids;
//! - `Weir-Time` (event time, ms) and `Weir-Key` (when the event has a key), losslessly: a key
//!   that is plain text goes as it is; any other key (invalid UTF-8, control characters,
//!   leading or trailing spaces, longer than 2048 bytes) goes base64-encoded with
//!   `Weir-Key-Encoding: base64`, so that distinct keys stay distinct downstream (a source
//!   reading `key = { header = "Weir-Key" }` decodes it);
//! - window results: `Weir-Window-Start`, `Weir-Window-End`;
//! - dead letters and late events: `Weir-Error`, `Weir-Operator`, `Weir-Plugin`, and either
//!   `Weir-Source-Stream` / `-Subject` / `-Sequence` or `Weir-Origin` (for window results and
//!   timer events).

use std::str::FromStr;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use weir_packed::Headers;

use crate::window::Window;

/// Headers the sink sets itself from the event.
const RESERVED: [&[u8]; 3] = [b"weir-key", b"weir-time", b"weir-key-encoding"];

/// The header saying how `Weir-Key` is encoded (only `base64`; absent: plain text).
pub const KEY_ENCODING: &str = "Weir-Key-Encoding";

/// Longest header value the sink writes from free text (errors, keys).
const MAX_TEXT: usize = 2048;

// The names written on every message, made once (a name made from a `&str` is allocated).
const MSG_ID: HeaderName = HeaderName::from_static("Nats-Msg-Id");
const TIME: HeaderName = HeaderName::from_static("Weir-Time");
const KEY: HeaderName = HeaderName::from_static("Weir-Key");

/// Builds one message's headers.
pub struct OutputHeaders(HeaderMap);

impl OutputHeaders {
    /// No headers yet.
    pub fn new() -> Self {
        OutputHeaders(HeaderMap::new())
    }

    /// Starts from an event's packed headers; a header that cannot be sent (an invalid name or
    /// value, a reserved `Nats-*` name) is an error naming it, and nothing is built.
    pub fn from_event(packed: &[u8]) -> Result<Self, String> {
        let mut h = HeaderMap::new();
        for (name, value) in Headers::new(packed) {
            if let Some((name, value)) = sendable(name, value)? {
                h.append(name, value);
            }
        }
        Ok(OutputHeaders(h))
    }

    /// Starts from an event's packed headers, leaving out those that cannot be sent (for
    /// outputs that must go out anyway: dead letters, timer events, `[[after]]` outputs).
    pub fn from_event_lossy(packed: &[u8]) -> Self {
        let mut h = HeaderMap::new();
        for (name, value) in Headers::new(packed) {
            if let Ok(Some((name, value))) = sendable(name, value) {
                h.append(name, value);
            }
        }
        OutputHeaders(h)
    }

    /// `Nats-Msg-Id`, when `id` is given.
    pub fn id(mut self, id: Option<&str>) -> Self {
        if let Some(id) = id {
            self.0.insert(MSG_ID, id);
        }
        self
    }

    /// `Weir-Time` and, for a non-empty key, `Weir-Key` (base64 with `Weir-Key-Encoding` when
    /// the key is not plain text).
    pub fn event(mut self, key: &[u8], time: i64) -> Self {
        self.0
            .insert(TIME, itoa::Buffer::new().format(time).to_owned());
        if key.is_empty() {
            return self;
        }
        match plain_text(key) {
            Some(text) => self.0.insert(KEY, text),
            None => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(key);
                self.0.insert(KEY, encoded);
                self.0.insert(KEY_ENCODING, "base64");
            }
        }
        self
    }

    /// `Weir-Window-Start` and `Weir-Window-End`.
    pub fn window(mut self, w: Window) -> Self {
        self.0
            .insert("Weir-Window-Start", w.start.to_string().as_str());
        self.0.insert("Weir-Window-End", w.end.to_string().as_str());
        self
    }

    /// Why an event was refused, and by whom.
    pub fn failure(mut self, error: &str, operator: &str, plugin: &str) -> Self {
        self.0.insert("Weir-Error", header_text(error).as_str());
        self.0
            .insert("Weir-Operator", header_text(operator).as_str());
        self.0.insert("Weir-Plugin", header_text(plugin).as_str());
        self
    }

    /// Where a refused event came from: a source message.
    pub fn source(mut self, stream: &str, subject: &str, sequence: u64) -> Self {
        self.0
            .insert("Weir-Source-Stream", header_text(stream).as_str());
        self.0
            .insert("Weir-Source-Subject", header_text(subject).as_str());
        self.0
            .insert("Weir-Source-Sequence", sequence.to_string().as_str());
        self
    }

    /// Where a refused event came from: a window result or timer event.
    pub fn origin(mut self, origin: &str) -> Self {
        self.0.insert("Weir-Origin", header_text(origin).as_str());
        self
    }

    pub fn build(self) -> HeaderMap {
        self.0
    }
}

/// Header `name: value` of an event as it can be sent: `None` for those the sink sets itself,
/// an error for an invalid or reserved one.
fn sendable(name: &[u8], value: &[u8]) -> Result<Option<(HeaderName, HeaderValue)>, String> {
    if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Ok(None);
    }
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"nats-") {
        return Err(format!(
            "header {} is reserved to NATS (plugins may not set Nats-* headers)",
            shown()
        ));
    }
    let name = std::str::from_utf8(name)
        .ok()
        .and_then(|n| HeaderName::from_str(n).ok())
        .ok_or_else(|| format!("invalid header name {:?}", shown()))?;
    let value = std::str::from_utf8(value)
        .ok()
        .and_then(|v| HeaderValue::from_str(v).ok())
        .ok_or_else(|| format!("invalid value of header {name}"))?;
    Ok(Some((name, value)))
}

impl Default for OutputHeaders {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` as a header value that reads back as the same bytes, if there is one: UTF-8 without
/// control characters or surrounding spaces, at most [`MAX_TEXT`] bytes.
fn plain_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    // Without control characters (CR and LF among them) it is a valid header value.
    let plain =
        text.len() <= MAX_TEXT && !text.chars().any(char::is_control) && text.trim() == text;
    plain.then_some(text)
}

/// Free text as a header value: control characters (line breaks from plugin errors) become
/// spaces, and text over [`MAX_TEXT`] bytes is cut at a character boundary and marked `…`.
pub fn header_text(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut cut = MAX_TEXT;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use weir_packed::push_header;

    use super::*;

    fn packed(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut p = Vec::new();
        for (n, v) in pairs {
            push_header(&mut p, n, v);
        }
        p
    }

    fn get(h: &HeaderMap, name: &str) -> Option<String> {
        h.get(name).map(|v| v.as_str().to_owned())
    }

    #[test]
    fn the_sink_sets_key_and_time_itself() {
        let p = packed(&[(b"Weir-Key", b"stale"), (b"weir-time", b"1"), (b"a", b"b")]);
        let h = OutputHeaders::from_event(&p)
            .unwrap()
            .id(Some("p/IN/1/0"))
            .event(b"k1", 42)
            .build();
        assert_eq!(get(&h, "Weir-Key").as_deref(), Some("k1"));
        assert_eq!(get(&h, "Weir-Time").as_deref(), Some("42"));
        assert_eq!(get(&h, "a").as_deref(), Some("b"));
        assert_eq!(get(&h, "Nats-Msg-Id").as_deref(), Some("p/IN/1/0"));
        let keyless = OutputHeaders::from_event(&p).unwrap().event(b"", 1).build();
        assert_eq!(get(&keyless, "Weir-Key"), None);
        assert_eq!(get(&keyless, "Nats-Msg-Id"), None);
    }

    #[test]
    fn an_unsendable_header_is_named_or_dropped_as_asked() {
        let p = packed(&[(b"bad name", b"v")]);
        let err = OutputHeaders::from_event(&p).err().unwrap();
        assert!(err.contains("bad name"), "{err}");
        let p = packed(&[(b"ok", b"line\r\nbreak"), (b"kept", b"v")]);
        assert!(OutputHeaders::from_event(&p).is_err());
        let h = OutputHeaders::from_event_lossy(&p).event(b"k", 0).build();
        assert_eq!(get(&h, "ok"), None);
        assert_eq!(get(&h, "kept").as_deref(), Some("v"));
        assert_eq!(get(&h, "Weir-Key").as_deref(), Some("k"));
    }

    #[test]
    fn plugins_may_not_set_nats_headers() {
        let p = packed(&[(b"NATS-Expected-Last-Sequence", b"1"), (b"a", b"b")]);
        let err = OutputHeaders::from_event(&p).err().unwrap();
        assert!(err.contains("reserved to NATS"), "{err}");
        let h = OutputHeaders::from_event_lossy(&p).build();
        assert_eq!(get(&h, "NATS-Expected-Last-Sequence"), None);
        assert_eq!(get(&h, "a").as_deref(), Some("b"));
    }

    #[test]
    fn keys_and_errors_become_one_line_of_bounded_text() {
        let h = OutputHeaders::new()
            .event(b"k", 0)
            .failure(&"x".repeat(5000), "op\r", "plugin")
            .build();
        assert_eq!(get(&h, "Weir-Key").as_deref(), Some("k"));
        assert_eq!(get(&h, KEY_ENCODING), None);
        let error = get(&h, "Weir-Error").unwrap();
        assert!(error.len() <= MAX_TEXT + '…'.len_utf8() && error.ends_with('…'));
        assert_eq!(get(&h, "Weir-Operator").as_deref(), Some("op "));
    }

    #[test]
    fn keys_that_are_not_plain_text_are_sent_losslessly_in_base64() {
        use base64::Engine;
        let decode = |h: &HeaderMap| {
            assert_eq!(get(h, KEY_ENCODING).as_deref(), Some("base64"));
            base64::engine::general_purpose::STANDARD
                .decode(get(h, "Weir-Key").unwrap())
                .unwrap()
        };
        let keys: [&[u8]; 4] = [b"a\x01b", b"a\x02b", b"\xff\xfe", b" padded"];
        let sent: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| decode(&OutputHeaders::new().event(k, 0).build()))
            .collect();
        assert_eq!(sent, keys.map(<[u8]>::to_vec));
        // A stale encoding header from the event never describes the new key.
        let p = packed(&[(b"Weir-Key-Encoding", b"base64")]);
        let h = OutputHeaders::from_event(&p)
            .unwrap()
            .event(b"plain", 0)
            .build();
        assert_eq!(get(&h, KEY_ENCODING), None);
    }

    #[test]
    fn window_and_source_headers() {
        let h = OutputHeaders::new()
            .window(Window { start: 0, end: 10 })
            .source("IN", "in.a", 7)
            .origin("w/0/10/00")
            .build();
        assert_eq!(get(&h, "Weir-Window-Start").as_deref(), Some("0"));
        assert_eq!(get(&h, "Weir-Window-End").as_deref(), Some("10"));
        assert_eq!(get(&h, "Weir-Source-Sequence").as_deref(), Some("7"));
        assert_eq!(get(&h, "Weir-Origin").as_deref(), Some("w/0/10/00"));
    }
}
