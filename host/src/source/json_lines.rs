//! JSON-lines events from a file: the source of `weir run --local` and `weir plugin test`.
//!
//! One event per line: `{"key": string|null, "time": <ms since epoch>, "payload": <JSON>,
//! "headers": {"name": "value"}}`. `payload` is carried as its JSON text; `payload_text`
//! (a string) may be given instead to carry raw text that need not be JSON. Missing `key` means
//! no key, missing `time` means 0, missing `headers` none. Blank lines are skipped. A line that
//! is not such an object is an error naming the file and line; nothing is processed past it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use weir_sdk::packed::{BatchBuilder, EventRef, Headers, push_header};

use super::{Origin, Polled, Source, SourceBatch, SourcePartitions};
use crate::operator::EventBatch;

/// One event in the JSON-lines format (input and output alike).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<serde_json::value::RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_text: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl JsonEvent {
    /// Appends this event to a batch.
    pub fn push_to(&self, b: &mut BatchBuilder, origin: u32, scratch: &mut Vec<u8>) {
        scratch.clear();
        for (k, v) in &self.headers {
            push_header(scratch, k.as_bytes(), v.as_bytes());
        }
        let payload: &[u8] = match (&self.payload, &self.payload_text) {
            (Some(p), _) => p.get().as_bytes(),
            (None, Some(t)) => t.as_bytes(),
            (None, None) => b"",
        };
        let key = self.key.as_deref().unwrap_or("").as_bytes();
        b.push(key, self.time, scratch, payload, origin);
    }

    /// The JSON-lines form of a packed event: `payload` when the bytes are JSON, else
    /// `payload_text` (lossy UTF-8).
    pub fn from_event(e: &EventRef<'_>) -> Self {
        let headers = Headers::new(e.headers)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let text = std::str::from_utf8(e.payload).ok();
        let payload =
            text.and_then(|t| serde_json::from_str::<Box<serde_json::value::RawValue>>(t).ok());
        let payload_text = match payload {
            Some(_) => None,
            None => Some(String::from_utf8_lossy(e.payload).into_owned()),
        };
        JsonEvent {
            key: (!e.key.is_empty()).then(|| String::from_utf8_lossy(e.key).into_owned()),
            time: e.time,
            payload,
            payload_text,
            headers,
        }
    }
}

/// A line of a JSON-lines input: an event, or `{"watermark": W}` — an explicit watermark
/// (punctuation) that advances event time for windows.
#[derive(Debug, Clone)]
pub enum InputLine {
    Watermark(WatermarkLine),
    Event(JsonEvent),
}

/// `{"watermark": W}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkLine {
    pub watermark: i64,
}

/// The JSON-lines file source: a bounded input, read whole when opened (a malformed line
/// stops the run before anything is processed), handed out in batches of `batch_size` lines.
/// An event's position is its line number. When the file holds `{"watermark": W}` lines, only
/// they move event time (deterministic runs); otherwise watermarks are generated from event
/// times as configured, over one partition.
pub struct JsonLinesSource {
    name: String,
    lines: std::vec::IntoIter<(usize, InputLine)>,
    batch_size: usize,
    punctuated: bool,
    scratch: Vec<u8>,
}

impl JsonLinesSource {
    /// Opens `path`, batching `batch_size` lines at a time.
    pub fn open(path: &Path, batch_size: usize) -> anyhow::Result<Self> {
        let lines = read_events(path)?;
        let punctuated = lines
            .iter()
            .any(|(_, l)| matches!(l, InputLine::Watermark(_)));
        Ok(JsonLinesSource {
            name: path.display().to_string(),
            lines: lines.into_iter(),
            batch_size: batch_size.max(1),
            punctuated,
            scratch: Vec::new(),
        })
    }

    /// Its watermark partitions: one, never idle; punctuated when the file holds watermark
    /// lines (or the pipeline says so).
    pub fn partitions(&self, config: &crate::config::SourceConfig) -> SourcePartitions {
        let configured = SourcePartitions::of(config);
        SourcePartitions {
            subjects: Vec::new(),
            idle_timeout: None,
            punctuated: self.punctuated || configured.punctuated,
        }
    }

    /// The next batch of up to `batch_size` lines, `None` at the end of the file.
    fn batch(&mut self) -> Option<SourceBatch> {
        let mut b = BatchBuilder::with_capacity(self.batch_size, 128);
        let mut batch = SourceBatch::default();
        let mut lineage = Vec::with_capacity(self.batch_size);
        for (line, l) in self.lines.by_ref().take(self.batch_size) {
            let source = batch.origins.len() as u32;
            batch.origins.push(Origin {
                subject: String::new(),
                sequence: line as u64,
            });
            match l {
                InputLine::Event(ev) => {
                    ev.push_to(&mut b, lineage.len() as u32, &mut self.scratch);
                    lineage.push(source);
                }
                InputLine::Watermark(w) => batch.watermarks.push((source, w.watermark)),
            }
        }
        if batch.origins.is_empty() {
            return None;
        }
        batch.events = EventBatch::from_source(b);
        batch.events.lineage = lineage;
        Some(batch)
    }
}

impl Source for JsonLinesSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn next_batch(&mut self, _wait: Option<Duration>) -> anyhow::Result<Polled> {
        Ok(self
            .batch()
            .map_or(Polled::End, |b| Polled::Batch(Box::new(b))))
    }
}

/// Reads all lines of a JSON-lines file, with their line numbers.
pub fn read_events(path: &Path) -> anyhow::Result<Vec<(usize, InputLine)>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: cannot read", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        // Not an untagged serde enum: `RawValue` payloads cannot go through serde's buffering.
        let ev = match serde_json::from_str::<WatermarkLine>(&line) {
            Ok(w) => InputLine::Watermark(w),
            Err(_) => InputLine::Event(serde_json::from_str::<JsonEvent>(&line).with_context(|| {
                format!(
                    "{}:{}: not an event object {{\"key\", \"time\", \"payload\", \"headers\"}} \
                     nor a {{\"watermark\": ms}} line",
                    path.display(),
                    i + 1
                )
            })?),
        };
        events.push((i + 1, ev));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_through_a_packed_batch() {
        let line = r#"{"key":"u1","time":42,"payload":{"a":[1,2]},"headers":{"h":"v"}}"#;
        let ev: JsonEvent = serde_json::from_str(line).unwrap();
        let mut b = BatchBuilder::new();
        ev.push_to(&mut b, 0, &mut Vec::new());
        let back = JsonEvent::from_event(&b.view().get(0));
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
    }

    #[test]
    fn non_json_payload_is_kept_as_text() {
        let ev: JsonEvent = serde_json::from_str(r#"{"payload_text":"not json {"}"#).unwrap();
        let mut b = BatchBuilder::new();
        ev.push_to(&mut b, 0, &mut Vec::new());
        let back = JsonEvent::from_event(&b.view().get(0));
        assert_eq!(back.payload_text.as_deref(), Some("not json {"));
        assert_eq!(back.key, None);
    }

    #[test]
    fn batches_hold_events_and_markers_with_their_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        let text = "{\"time\":1}\n\n{\"watermark\":5}\n{\"key\":\"k\",\"time\":7}\n";
        std::fs::write(&p, text).unwrap();
        let mut src = JsonLinesSource::open(&p, 2).unwrap();
        assert!(src.punctuated);
        let first = src.batch().unwrap();
        let lines: Vec<u64> = first.origins.iter().map(|o| o.sequence).collect();
        assert_eq!(lines, [1, 3]);
        assert_eq!(first.watermarks, [(1, 5)]);
        assert_eq!(first.events.lineage, [0]);
        let second = src.batch().unwrap();
        assert_eq!(second.origins[0].sequence, 4);
        assert_eq!(second.events.view().key(0), b"k");
        assert!(src.batch().is_none());
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(&p, "{\"time\":1}\n\n{\"tme\":2}\n").unwrap();
        let err = format!("{:#}", read_events(&p).unwrap_err());
        assert!(err.contains("e.jsonl:3"), "{err}");
    }
}
