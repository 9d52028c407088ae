//! JSON-lines events from a file: the source of `weir run --local` and `weir plugin test`.
//!
//! One event per line: `{"key": string|null, "time": <ms since epoch>, "payload": <JSON>,
//! "headers": {"name": "value"}}`, and for a pipeline of several inputs (`[[sources]]`)
//! `"input": "<name>"` saying which input the event belongs to (it then carries it in its
//! `Weir-Input` header, as from NATS). The payload is given by at most one of `payload` (JSON,
//! carried as its text), `payload_text` (a string: text that need not be JSON) and
//! `payload_base64` (standard base64: any bytes, e.g. ones that are not UTF-8); none means an
//! empty payload. Missing `key` means no key — or, when the pipeline's `key` is a `{ field }`,
//! the key read from the payload's field, as from NATS — missing `time` means 0, or the
//! payload's field when the pipeline's `time` is a `{ field }` (a payload without a readable
//! one is then dead-lettered, as from NATS); missing `headers` none.
//! A line `{"watermark": W}` is a watermark marker (not an event). Blank lines are skipped.
//! Outputs use the same form: `payload` when the bytes are JSON, `payload_text` when they are
//! other UTF-8 text, `payload_base64` otherwise.
//!
//! The file is streamed: lines are read as batches are asked for, so memory does not grow
//! with the input. A line that is neither an event nor a marker (or is not UTF-8) ends the run
//! with an error naming the file and line; the lines before it have been processed and their
//! results written, but windows still open are not fired — the input did not end.
//!
//! Whether only markers move event time (punctuated watermarks) is decided before the first
//! batch, as a stream cannot look ahead: punctuated when the pipeline says so
//! (`[source.watermarks] strategy = "punctuated"`) or when a first pass over the file — quick,
//! in constant memory — finds a marker line. Otherwise watermarks are generated from event
//! times as configured (markers still advance event time). An input that cannot be read twice
//! (a pipe) is punctuated only if the pipeline says so.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use weir_packed::{BatchBuilder, EventRef, Headers, push_header};

use super::jetstream::INPUT_HEADER;
use super::{Origin, Polled, Source, SourceBatch, SourcePartitions};
use crate::operator::EventBatch;

/// One event in the JSON-lines format (input and output alike).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonEvent {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The input of a pipeline of several inputs the event belongs to (input lines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

/// Buffers reused from event to event by [`JsonEvent::push_to`].
#[derive(Debug, Default)]
pub struct PushScratch {
    headers: Vec<u8>,
    payload: Vec<u8>,
}

impl JsonEvent {
    /// Appends this event to a batch; refuses (saying why) more than one payload field, or
    /// `payload_base64` that is not base64.
    pub fn push_to(
        &self,
        b: &mut BatchBuilder,
        origin: u32,
        scratch: &mut PushScratch,
    ) -> Result<(), String> {
        let payload: &[u8] = match (&self.payload, &self.payload_text, &self.payload_base64) {
            (None, None, None) => b"",
            (Some(p), None, None) => p.get().as_bytes(),
            (None, Some(t), None) => t.as_bytes(),
            (None, None, Some(encoded)) => {
                scratch.payload.clear();
                BASE64
                    .decode_vec(encoded, &mut scratch.payload)
                    .map_err(|e| format!("`payload_base64` is not standard base64: {e}"))?;
                &scratch.payload
            }
            _ => {
                return Err(
                    "give the payload once: `payload` (JSON), `payload_text` or \
                            `payload_base64`, not several"
                        .into(),
                );
            }
        };
        scratch.headers.clear();
        for (k, v) in &self.headers {
            push_header(&mut scratch.headers, k.as_bytes(), v.as_bytes());
        }
        let key = self.key.as_deref().unwrap_or("").as_bytes();
        b.push(
            key,
            self.time.unwrap_or(0),
            &scratch.headers,
            payload,
            origin,
        );
        Ok(())
    }

    /// The JSON-lines form of a packed event: `payload` when the bytes are JSON,
    /// `payload_text` when they are other UTF-8 text, else `payload_base64`.
    pub fn from_event(e: &EventRef<'_>) -> Self {
        let headers = Headers::new(e.headers)
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let mut event = JsonEvent {
            key: (!e.key.is_empty()).then(|| String::from_utf8_lossy(e.key).into_owned()),
            time: Some(e.time),
            headers,
            ..Default::default()
        };
        match std::str::from_utf8(e.payload) {
            Ok(text) => match serde_json::from_str::<Box<RawValue>>(text) {
                Ok(json) => event.payload = Some(json),
                Err(_) => event.payload_text = Some(text.to_owned()),
            },
            Err(_) => event.payload_base64 = Some(BASE64.encode(e.payload)),
        }
        event
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

/// Whether `line` is meant as a marker: an object whose first key is `"watermark"` (a marker
/// has no other key, so this tells markers from events without parsing twice).
fn is_marker_line(line: &[u8]) -> bool {
    let rest = line.trim_ascii_start();
    rest.strip_prefix(b"{")
        .is_some_and(|r| r.trim_ascii_start().starts_with(b"\"watermark\""))
}

/// Parses one line that is not blank.
fn parse_line(line: &[u8]) -> Result<InputLine, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not UTF-8 text (at byte {} of the line); give payloads that are not text as \
             \"payload_base64\"",
            e.valid_up_to() + 1
        )
    })?;
    // Not an untagged serde enum: `RawValue` payloads cannot go through serde's buffering.
    if is_marker_line(line) {
        return serde_json::from_str::<WatermarkLine>(text)
            .map(InputLine::Watermark)
            .map_err(|e| format!("not a {{\"watermark\": ms}} line: {e}"));
    }
    serde_json::from_str::<JsonEvent>(text)
        .map(InputLine::Event)
        .map_err(|e| {
            format!(
                "not an event object {{\"key\", \"time\", \"payload\" | \"payload_text\" | \
                 \"payload_base64\", \"headers\"}} nor a {{\"watermark\": ms}} line: {e}"
            )
        })
}

/// The dead letter of line event `ev` (source message `source`) whose key or time could not be
/// read from its payload.
fn refused(source: u32, ev: &JsonEvent, error: String) -> crate::operator::DeadLetter {
    let payload = ev.payload.as_ref().map_or(&b""[..], |p| p.get().as_bytes());
    let mut headers = Vec::new();
    for (k, v) in &ev.headers {
        push_header(&mut headers, k.as_bytes(), v.as_bytes());
    }
    let e = EventRef {
        key: ev.key.as_deref().unwrap_or("").as_bytes(),
        time: ev.time.unwrap_or(0),
        payload,
        headers: &headers,
        origin: source,
    };
    crate::operator::DeadLetter::of_event(source, &e, "source", "", error)
}

/// Whether the file at `path` holds a marker line (read through once, line by line).
fn has_marker_lines(path: &Path) -> anyhow::Result<bool> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?
            == 0
        {
            return Ok(false);
        }
        if is_marker_line(&line) && serde_json::from_slice::<WatermarkLine>(&line).is_ok() {
            return Ok(true);
        }
    }
}

/// The JSON-lines file source: a bounded input, streamed in batches of `batch_size` lines
/// (see the module doc for errors and watermarks). An event's position is its line number.
pub struct JsonLinesSource {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// The number of the last line read.
    line: usize,
    batch_size: usize,
    /// The file holds marker lines.
    punctuated: bool,
    buf: Vec<u8>,
    scratch: PushScratch,
    /// A line that could not be read, met after part of a batch: reported by the next call.
    failed: Option<anyhow::Error>,
    /// The names of the pipeline's inputs, when it has several: each event line names one.
    inputs: Vec<String>,
    /// Per input, the payload fields its key and time come from (`{ field }` in the
    /// pipeline), used for lines that give no `key` or `time`.
    fields: Vec<(Option<String>, Option<String>)>,
}

impl JsonLinesSource {
    /// Opens `path`, batching `batch_size` lines at a time.
    pub fn open(path: &Path, batch_size: usize) -> anyhow::Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        let punctuated = regular && has_marker_lines(path)?;
        Ok(JsonLinesSource {
            name: path.display().to_string(),
            reader: Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
            line: 0,
            batch_size: batch_size.max(1),
            punctuated,
            buf: Vec::new(),
            scratch: PushScratch::default(),
            failed: None,
            inputs: Vec::new(),
            fields: Vec::new(),
        })
    }

    /// Reads the key and time of lines that give none from the payload fields the pipeline's
    /// inputs name (`key = { field }`, `time = { field }`), as a JetStream source does.
    pub fn with_fields(mut self, inputs: &[crate::config::SourceConfig]) -> Self {
        use crate::config::{KeyFrom, TimeFrom};
        self.fields = inputs
            .iter()
            .map(|s| {
                let key = match &s.key {
                    KeyFrom::Field(p) => Some(p.clone()),
                    _ => None,
                };
                let time = match &s.time {
                    TimeFrom::Field(p) => Some(p.clone()),
                    _ => None,
                };
                (key, time)
            })
            .collect();
        self
    }

    /// Fills the key and time `ev` does not give from its payload, as input `input` says.
    fn fill_from_fields(&self, ev: &mut JsonEvent, input: u16) -> Result<(), String> {
        let Some((key, time)) = self.fields.get(usize::from(input)) else {
            return Ok(());
        };
        let payload = ev.payload.as_ref().map_or(&b""[..], |p| p.get().as_bytes());
        if ev.time.is_none()
            && let Some(path) = time
        {
            ev.time = Some(super::field::time_from_json_field(payload, path)?);
        }
        if ev.key.is_none()
            && let Some(path) = key
        {
            let mut buf = Vec::new();
            super::field::key_from_json_field(payload, path, &mut buf)?;
            ev.key = (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
        }
        Ok(())
    }

    /// Reads events of a pipeline of several inputs named `inputs`: each event line says its
    /// `input`.
    pub fn with_inputs(mut self, inputs: Vec<String>) -> Self {
        self.inputs = inputs;
        self
    }

    /// The index of the input event `ev` belongs to, and its name when there are several.
    fn input_of(&self, ev: &JsonEvent) -> Result<(u16, Option<usize>), String> {
        match (&ev.input, self.inputs.is_empty()) {
            (None, true) => Ok((0, None)),
            (Some(name), false) => match self.inputs.iter().position(|i| i == name) {
                Some(i) => Ok((i as u16, Some(i))),
                None => Err(format!(
                    "`input` is {name:?}, not one of the pipeline's inputs {:?}",
                    self.inputs
                )),
            },
            (None, false) => Err(format!(
                "the pipeline has several inputs {:?}: say which one the event belongs to with \
                 `\"input\"`",
                self.inputs
            )),
            (Some(_), true) => {
                Err("`input` names one of several inputs; the pipeline has one".to_owned())
            }
        }
    }

    /// Its watermark partitions: one per input, never idle; punctuated when the file holds
    /// watermark lines (or the pipeline says so) — a marker line then moves event time for
    /// every input, the file being one ordered stream.
    pub fn partitions(&self, config: &crate::config::PipelineConfig) -> SourcePartitions {
        let configured = SourcePartitions::of(config);
        SourcePartitions {
            inputs: configured
                .inputs()
                .into_iter()
                .map(|i| super::InputPartitions {
                    subjects: Vec::new(),
                    bound_ms: i.bound_ms,
                    idle_timeout: None,
                })
                .collect(),
            punctuated: self.punctuated || configured.punctuated,
        }
    }

    /// The next line that is not blank, `None` at the end of the file; errors name the file
    /// and line.
    fn next_line(&mut self) -> anyhow::Result<Option<InputLine>> {
        loop {
            self.buf.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .with_context(|| format!("{}:{}: cannot read", self.name, self.line + 1))?;
            if read == 0 {
                return Ok(None);
            }
            self.line += 1;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return parse_line(&self.buf)
                .map(Some)
                .map_err(|why| anyhow::anyhow!("{}:{}: {why}", self.name, self.line));
        }
    }

    /// The next batch of up to `batch_size` lines, `None` at the end of the file. A line that
    /// cannot be read ends the batch before it, and is the error of the next call.
    fn batch(&mut self) -> anyhow::Result<Option<SourceBatch>> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut b = BatchBuilder::with_capacity(self.batch_size, 128);
        let mut batch = SourceBatch::default();
        let mut lineage = Vec::with_capacity(self.batch_size);
        while batch.origins.len() < self.batch_size {
            let line = match self.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    self.failed = Some(e);
                    break;
                }
            };
            let source = batch.origins.len() as u32;
            let mut input = 0;
            match line {
                InputLine::Event(mut ev) => {
                    let pushed = self.input_of(&ev).and_then(|(index, named)| {
                        input = index;
                        if let Some(i) = named {
                            ev.headers
                                .insert(INPUT_HEADER.to_owned(), self.inputs[i].clone());
                        }
                        if let Err(why) = self.fill_from_fields(&mut ev, index) {
                            batch.refused.push(refused(source, &ev, why));
                            return Ok(false);
                        }
                        ev.push_to(&mut b, lineage.len() as u32, &mut self.scratch)
                            .map(|()| true)
                    });
                    match pushed {
                        Ok(true) => lineage.push(source),
                        Ok(false) => {}
                        Err(why) => {
                            let at = format!("{}:{}", self.name, self.line);
                            self.failed = Some(anyhow::anyhow!("{at}: {why}"));
                            break;
                        }
                    }
                }
                InputLine::Watermark(w) => {
                    batch.watermarks.push((source, w.watermark));
                    if !self.inputs.is_empty() {
                        // A marker line of the one file speaks for every input.
                        input = crate::window::watermark::ALL_INPUTS;
                    }
                }
            }
            batch.origins.push(Origin {
                subject: async_nats::Subject::from(""),
                sequence: self.line as u64,
                input,
            });
        }
        if batch.origins.is_empty() {
            return self.failed.take().map_or(Ok(None), Err);
        }
        batch.events = EventBatch::from_source(b);
        batch.events.lineage = lineage;
        Ok(Some(batch))
    }
}

impl Source for JsonLinesSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn next_batch(&mut self, _wait: Option<Duration>) -> anyhow::Result<Polled> {
        Ok(self
            .batch()?
            .map_or(Polled::End, |b| Polled::Batch(Box::new(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    fn round_trip(line: &str) -> JsonEvent {
        let ev: JsonEvent = serde_json::from_str(line).unwrap();
        let mut b = BatchBuilder::new();
        ev.push_to(&mut b, 0, &mut PushScratch::default()).unwrap();
        JsonEvent::from_event(&b.view().get(0))
    }

    #[test]
    fn event_round_trips_through_a_packed_batch() {
        let line = r#"{"key":"u1","time":42,"payload":{"a":[1,2]},"headers":{"h":"v"}}"#;
        assert_eq!(serde_json::to_string(&round_trip(line)).unwrap(), line);
    }

    #[test]
    fn non_json_payload_is_kept_as_text() {
        let back = round_trip(r#"{"payload_text":"not json ["}"#);
        assert_eq!(back.payload_text.as_deref(), Some("not json ["));
        assert_eq!(back.key, None);
    }

    #[test]
    fn bytes_that_are_not_utf8_go_in_and_out_as_base64() {
        // 0xff 0xfe 0x00 0x41
        let back = round_trip(r#"{"payload_base64":"//4AQQ=="}"#);
        assert_eq!(back.payload_base64.as_deref(), Some("//4AQQ=="));
        assert!(back.payload.is_none() && back.payload_text.is_none());
    }

    #[test]
    fn batches_hold_events_and_markers_with_their_line_numbers() {
        let (_dir, p) = file(b"{\"time\":1}\n\n{\"watermark\":5}\n{\"key\":\"k\",\"time\":7}\n");
        let mut src = JsonLinesSource::open(&p, 2).unwrap();
        assert!(src.punctuated);
        let first = src.batch().unwrap().unwrap();
        let lines: Vec<u64> = first.origins.iter().map(|o| o.sequence).collect();
        assert_eq!(lines, [1, 3]);
        assert_eq!(first.watermarks, [(1, 5)]);
        assert_eq!(first.events.lineage, [0]);
        let second = src.batch().unwrap().unwrap();
        assert_eq!(second.origins[0].sequence, 4);
        assert_eq!(second.events.view().key(0), b"k");
        assert!(src.batch().unwrap().is_none());
    }

    #[test]
    fn a_marker_anywhere_in_the_file_makes_it_punctuated() {
        let mut text = "{\"time\":1}\n".repeat(5000);
        let (_dir, p) = file(text.as_bytes());
        assert!(!JsonLinesSource::open(&p, 10).unwrap().punctuated);
        text.push_str(" { \"watermark\" : 9 }\n");
        let (_dir, p) = file(text.as_bytes());
        assert!(JsonLinesSource::open(&p, 10).unwrap().punctuated);
    }

    #[test]
    fn a_bad_line_ends_the_input_after_the_lines_before_it() {
        let (_dir, p) = file(b"{\"time\":1}\n\n{\"time\":2}\n{\"tme\":3}\n{\"time\":4}\n");
        // Opening reads nothing yet: the bad line is found when it is reached.
        let mut src = JsonLinesSource::open(&p, 10).unwrap();
        let before = src.batch().unwrap().unwrap();
        assert_eq!(before.events.len(), 2);
        let err = format!("{:#}", src.batch().err().unwrap());
        assert!(err.contains("e.jsonl:4: not an event object"), "{err}");
        assert!(err.contains("unknown field `tme`"), "{err}");
    }

    #[test]
    fn events_of_several_inputs_say_their_input_and_carry_it() {
        let (_dir, p) = file(
            b"{\"input\":\"bids\",\"time\":1}\n{\"input\":\"auctions\",\"time\":2}\n\
              {\"time\":3}\n",
        );
        let names = vec!["auctions".to_owned(), "bids".to_owned()];
        let mut src = JsonLinesSource::open(&p, 10).unwrap().with_inputs(names);
        let batch = src.batch().unwrap().unwrap();
        let inputs: Vec<u16> = batch.origins.iter().map(|o| o.input).collect();
        assert_eq!(inputs, [1, 0]);
        let view = batch.events.view();
        let header = |i: usize| {
            Headers::new(view.headers(i))
                .find(|(n, _)| *n == b"Weir-Input")
                .map(|(_, v)| v.to_vec())
        };
        assert_eq!(header(0).as_deref(), Some(&b"bids"[..]));
        assert_eq!(header(1).as_deref(), Some(&b"auctions"[..]));
        let err = format!("{:#}", src.batch().err().unwrap());
        assert!(
            err.contains("e.jsonl:3: the pipeline has several inputs"),
            "{err}"
        );
        let (_dir, p) = file(b"{\"input\":\"people\",\"time\":1}\n");
        let mut src = JsonLinesSource::open(&p, 10)
            .unwrap()
            .with_inputs(vec!["a".into(), "b".into()]);
        let err = format!("{:#}", src.batch().err().unwrap());
        assert!(err.contains("`input` is \"people\", not one of"), "{err}");
    }

    #[test]
    fn unreadable_lines_are_named_with_what_is_wrong() {
        for (text, why) in [
            (
                &b"{\"payload\":1,\"payload_text\":\"1\"}\n"[..],
                "give the payload once",
            ),
            (b"{\"payload_base64\":\"**\"}\n", "not standard base64"),
            (
                b"{\"payload_text\":\"\xff\"}\n",
                "not UTF-8 text (at byte 18",
            ),
            (
                b"{\"watermark\":\"soon\"}\n",
                "not a {\"watermark\": ms} line",
            ),
        ] {
            let (_dir, p) = file(text);
            let mut src = JsonLinesSource::open(&p, 10).unwrap();
            let err = format!("{:#}", src.batch().err().unwrap());
            assert!(err.contains("e.jsonl:1: ") && err.contains(why), "{err}");
        }
    }
}
