//! The JetStream sink.
//!
//! Every message gets a deterministic `Nats-Msg-Id` derived from its lineage:
//! `<pipeline>/<source stream>/<source sequence>/<n>` for the n-th result of a source message
//! and `<pipeline>/dlq/<source stream>/<source sequence>/<n>` for dead letters. A batch that is
//! replayed after a crash therefore republishes the same ids, and the sink stream's duplicate
//! window drops them. Results carry the event's headers plus `Weir-Key` and `Weir-Time`; dead
//! letters carry `Weir-Error`, `Weir-Operator`, `Weir-Plugin`, `Weir-Source-Stream`,
//! `Weir-Source-Subject` and `Weir-Source-Sequence`.
//!
//! [`JetStreamSink::publish_all`] returns only when the stream has acknowledged every message of
//! the batch; failed publishes are retried (same ids) with backoff, logged at each attempt,
//! until they succeed, so that the source is never acknowledged for data that was not stored.
//! (During a NATS outage the host waits here; `kill` it and the batch replays on restart.)

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use weir_sdk::packed::{BatchView, Headers};

pub use super::output::{
    BatchOutput, Derived, DerivedDeadLetter, WindowResult, timer_origin, window_origin,
};
use crate::checkpoint::PendingMessage;
use crate::operator::batch::columns;
use crate::operator::process::TimerEvent;
use crate::operator::{DeadLetter, EventBatch};
use crate::source::jetstream::SourceRef;

/// How long a publish may wait for the stream's ack before it is retried.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The messages of one batch, ready to publish.
pub struct Outgoing(Vec<Message>);

impl Outgoing {
    /// The messages in the form checkpoints hold them (published after the commit).
    pub fn into_pending(self) -> Vec<PendingMessage> {
        self.0
            .into_iter()
            .map(|m| PendingMessage {
                subject: m.subject,
                headers: m
                    .headers
                    .iter()
                    .flat_map(|(name, values)| {
                        let name: &str = name.as_ref();
                        values
                            .iter()
                            .map(move |v| (name.to_owned(), v.as_str().to_owned()))
                    })
                    .collect(),
                payload: m.payload.to_vec(),
            })
            .collect()
    }

    /// Messages held by a checkpoint, to publish. Headers that are no longer valid (they
    /// were valid when stored) are dropped.
    pub fn from_pending(pending: Vec<PendingMessage>) -> Self {
        Outgoing(
            pending
                .into_iter()
                .map(|p| {
                    let mut headers = HeaderMap::new();
                    for (n, v) in &p.headers {
                        if let (Ok(n), Ok(v)) = (HeaderName::from_str(n), HeaderValue::from_str(v))
                        {
                            headers.append(n, v);
                        }
                    }
                    Message {
                        subject: p.subject,
                        headers,
                        payload: Bytes::from(p.payload),
                    }
                })
                .collect(),
        )
    }

    /// Appends `other`'s messages.
    pub fn append(&mut self, other: Outgoing) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One message to publish.
#[derive(Clone)]
struct Message {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
}

/// Counts of what one batch published.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub results: usize,
    pub dead_letters: usize,
    pub late: usize,
}

pub struct JetStreamSink {
    js: jetstream::Context,
    pipeline: String,
    source_stream: String,
    subject: String,
    dead_letter: String,
    late: Option<String>,
    max_in_flight: usize,
    /// Whether messages carry `Nats-Msg-Id` (effectively-once).
    ids: bool,
}

/// Headers the sink sets itself from the event (its key and time); copies arriving with the
/// event's headers are dropped, so a re-keyed or key-less event never carries a stale key.
const RESERVED: [&[u8]; 2] = [b"weir-key", b"weir-time"];

fn header_map_from_packed(packed: &[u8], h: &mut HeaderMap) -> Result<(), String> {
    for (name, value) in Headers::new(packed) {
        if RESERVED.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            continue;
        }
        let name = std::str::from_utf8(name)
            .ok()
            .and_then(|n| HeaderName::from_str(n).ok())
            .ok_or_else(|| format!("invalid header name {:?}", String::from_utf8_lossy(name)))?;
        let value = std::str::from_utf8(value)
            .ok()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .ok_or_else(|| format!("invalid value of header {name}"))?;
        h.append(name, value);
    }
    Ok(())
}

impl JetStreamSink {
    /// A sink for `pipeline`'s `[sink]` section; `ids`: whether messages carry
    /// `Nats-Msg-Id` (effectively-once).
    pub fn new(
        js: jetstream::Context,
        pipeline: &str,
        source_stream: &str,
        config: &crate::config::SinkConfig,
        ids: bool,
    ) -> Self {
        JetStreamSink {
            js,
            pipeline: pipeline.to_owned(),
            source_stream: source_stream.to_owned(),
            subject: config.subject.clone(),
            dead_letter: config.dead_letter.clone(),
            late: config.late.clone(),
            max_in_flight: config.max_in_flight,
            ids,
        }
    }

    /// Checks that streams capture the result and dead-letter subjects, so that a
    /// misconfiguration is reported at start rather than as publish timeouts.
    pub async fn check_streams(&self) -> anyhow::Result<()> {
        let late = self.late.as_ref().map(|l| ("sink.late", l));
        for (field, subject) in [
            ("sink.subject", &self.subject),
            ("sink.dead_letter", &self.dead_letter),
        ]
        .into_iter()
        .chain(late)
        {
            self.js
                .stream_by_subject(subject.as_str())
                .await
                .with_context(|| {
                    format!("field `{field}`: no JetStream stream captures subject {subject:?}")
                })?;
        }
        Ok(())
    }

    /// Checks that the sink streams' duplicate windows are at least `min` long (with
    /// message ids, a replay older than the window would not be deduplicated).
    pub async fn check_duplicate_windows(&self, min: Duration) -> anyhow::Result<()> {
        let late = self.late.as_ref().map(|l| ("sink.late", l));
        for (field, subject) in [
            ("sink.subject", &self.subject),
            ("sink.dead_letter", &self.dead_letter),
        ]
        .into_iter()
        .chain(late)
        {
            let name = self.js.stream_by_subject(subject.as_str()).await?;
            let mut stream = self.js.get_stream(&name).await?;
            let window = stream.info().await?.config.duplicate_window;
            if window < min {
                anyhow::bail!(
                    "field `{field}`: stream {name:?} (capturing {subject:?}) deduplicates \
                     message ids for {window:?}, but effectively-once delivery needs at least \
                     {min:?} (checkpoint.interval + checkpoint.recovery_time) so that outputs \
                     replayed after a crash are dropped; raise the stream's duplicate_window, \
                     lower checkpoint.recovery_time, or choose checkpoint.guarantee = \
                     \"at-least-once\""
                );
            }
        }
        Ok(())
    }

    /// Sets the message id of `h` (when the delivery guarantee uses ids).
    fn set_id(&self, h: &mut HeaderMap, id: &str) {
        if self.ids {
            h.insert("Nats-Msg-Id", id);
        }
    }

    /// A window result, with the id of its [`window_origin`].
    fn window_result_message(&self, r: &WindowResult) -> Message {
        let mut h = HeaderMap::new();
        let id = format!("{}/{}", self.pipeline, window_origin(r));
        self.set_id(&mut h, &id);
        h.insert("Weir-Time", r.window.max_timestamp().to_string().as_str());
        h.insert("Weir-Window-Start", r.window.start.to_string().as_str());
        h.insert("Weir-Window-End", r.window.end.to_string().as_str());
        if !r.key.is_empty() {
            h.insert(
                "Weir-Key",
                sanitize(&String::from_utf8_lossy(&r.key)).as_str(),
            );
        }
        Message {
            subject: self.subject.clone(),
            headers: h,
            payload: Bytes::from(r.payload.clone()),
        }
    }

    /// An event emitted by a timer, with the id of its [`timer_origin`].
    fn timer_event_message(&self, e: &TimerEvent) -> Message {
        let id = format!("{}/{}", self.pipeline, timer_origin(e));
        self.free_event_message(&id, &e.key, e.time, &e.headers, &e.payload)
    }

    /// An `[[after]]` operator's output made from a window result or timer event.
    fn derived_message(&self, d: &Derived) -> Message {
        let id = format!("{}/{}/{}", self.pipeline, d.origin, d.index);
        self.free_event_message(&id, &d.key, d.time, &d.headers, &d.payload)
    }

    /// A result without a source message, with id `id`.
    fn free_event_message(
        &self,
        id: &str,
        key: &[u8],
        time: i64,
        headers: &[u8],
        payload: &[u8],
    ) -> Message {
        let mut h = HeaderMap::new();
        // Unusable headers from the plugin are dropped rather than losing the event.
        let _ = header_map_from_packed(headers, &mut h);
        self.set_id(&mut h, id);
        h.insert("Weir-Time", time.to_string().as_str());
        if !key.is_empty() {
            h.insert("Weir-Key", sanitize(&String::from_utf8_lossy(key)).as_str());
        }
        Message {
            subject: self.subject.clone(),
            headers: h,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// A window result or timer event an `[[after]]` operator failed on, as a dead letter.
    fn derived_dead_letter_message(&self, d: &DerivedDeadLetter) -> Message {
        let l = &d.letter;
        let mut h = HeaderMap::new();
        let _ = header_map_from_packed(&l.headers, &mut h);
        self.set_id(&mut h, &format!("{}/{}/dlq", self.pipeline, d.origin));
        h.insert("Weir-Error", sanitize(&l.error).as_str());
        h.insert("Weir-Operator", sanitize(&l.operator).as_str());
        h.insert("Weir-Plugin", sanitize(&l.plugin).as_str());
        h.insert("Weir-Origin", sanitize(&d.origin).as_str());
        h.insert("Weir-Time", l.time.to_string().as_str());
        if !l.key.is_empty() {
            h.insert(
                "Weir-Key",
                sanitize(&String::from_utf8_lossy(&l.key)).as_str(),
            );
        }
        Message {
            subject: self.dead_letter.clone(),
            headers: h,
            payload: Bytes::from(l.payload.clone()),
        }
    }

    /// A dead letter (or, with `subject`, a late event) with the reason in headers.
    fn dead_letter_message(
        &self,
        d: &DeadLetter,
        src: &SourceRef,
        n: usize,
        scope: &str,
        subject: Option<&str>,
    ) -> Message {
        let mut h = HeaderMap::new();
        // The event's own headers first; if they are unusable the dead letter still goes out.
        let _ = header_map_from_packed(&d.headers, &mut h);
        let kind = if subject.is_some() { "late" } else { "dlq" };
        let id = format!(
            "{}/{scope}{kind}/{}/{}/{n}",
            self.pipeline, self.source_stream, src.stream_sequence
        );
        self.set_id(&mut h, &id);
        h.insert("Weir-Error", sanitize(&d.error).as_str());
        h.insert("Weir-Operator", sanitize(&d.operator).as_str());
        h.insert("Weir-Plugin", sanitize(&d.plugin).as_str());
        h.insert("Weir-Source-Stream", self.source_stream.as_str());
        h.insert("Weir-Source-Subject", src.subject.as_str());
        h.insert(
            "Weir-Source-Sequence",
            src.stream_sequence.to_string().as_str(),
        );
        h.insert("Weir-Time", d.time.to_string().as_str());
        if !d.key.is_empty() {
            h.insert(
                "Weir-Key",
                sanitize(&String::from_utf8_lossy(&d.key)).as_str(),
            );
        }
        Message {
            subject: subject.unwrap_or(&self.dead_letter).to_owned(),
            headers: h,
            payload: Bytes::from(d.payload.clone()),
        }
    }

    /// Turns a batch's outputs into messages with their ids (no I/O): `events` (results with
    /// lineage), `dead` letters, `late` events and window results.
    ///
    /// `scope` keeps the ids of different stages of one source message apart: `""` for the
    /// operator chain, `"s/"` for the window or process stage.
    pub fn prepare(
        &self,
        batch: BatchOutput,
        origins: &[SourceRef],
        scope: &str,
    ) -> anyhow::Result<(Outgoing, Published)> {
        let BatchOutput {
            events,
            mut dead,
            late,
            windows,
            timers,
            derived,
            derived_dead,
        } = batch;
        let mut msgs = Vec::with_capacity(events.len() + dead.len());
        let mut emitted = vec![0u32; origins.len()];

        // The payload column becomes one shared buffer; each message is a slice of it.
        let EventBatch {
            mut packed,
            lineage,
        } = events;
        let payloads = Bytes::from(std::mem::take(&mut packed.payloads));
        let mut cols = columns(&packed);
        cols.payloads = &payloads;
        let view = BatchView::new_prechecked(cols);
        for (i, e) in view.iter().enumerate() {
            let source = lineage[i] as usize;
            let src = &origins[source];
            let mut h = HeaderMap::new();
            if let Err(error) = header_map_from_packed(e.headers, &mut h) {
                dead.push(DeadLetter {
                    source: source as u32,
                    operator: "sink".into(),
                    plugin: String::new(),
                    error,
                    key: e.key.to_vec(),
                    time: e.time,
                    headers: Vec::new(),
                    payload: e.payload.to_vec(),
                });
                continue;
            }
            let n = emitted[source];
            emitted[source] += 1;
            let id = format!(
                "{}/{scope}{}/{}/{n}",
                self.pipeline, self.source_stream, src.stream_sequence
            );
            self.set_id(&mut h, &id);
            h.insert("Weir-Time", e.time.to_string().as_str());
            if !e.key.is_empty() {
                match std::str::from_utf8(e.key)
                    .ok()
                    .and_then(|k| HeaderValue::from_str(k).ok())
                {
                    Some(k) => h.insert("Weir-Key", k),
                    None => tracing::warn!(
                        id,
                        "key is not a valid header value; published without Weir-Key"
                    ),
                }
            }
            let (s, end) = view.payload_range(i);
            msgs.push(Message {
                subject: self.subject.clone(),
                headers: h,
                payload: payloads.slice(s..end),
            });
        }
        for r in &windows {
            msgs.push(self.window_result_message(r));
        }
        for e in &timers {
            msgs.push(self.timer_event_message(e));
        }
        for d in &derived {
            msgs.push(self.derived_message(d));
        }
        let results = msgs.len();
        for d in &derived_dead {
            msgs.push(self.derived_dead_letter_message(d));
        }
        let mut per_source = vec![0usize; origins.len()];
        for d in &dead {
            let n = per_source[d.source as usize];
            per_source[d.source as usize] += 1;
            msgs.push(self.dead_letter_message(d, &origins[d.source as usize], n, scope, None));
        }
        let mut per_source = vec![0usize; origins.len()];
        for d in &late {
            let n = per_source[d.source as usize];
            per_source[d.source as usize] += 1;
            let subject = self.late.as_deref().unwrap_or(&self.dead_letter);
            msgs.push(self.dead_letter_message(
                d,
                &origins[d.source as usize],
                n,
                scope,
                Some(subject),
            ));
        }
        Ok((
            Outgoing(msgs),
            Published {
                results,
                dead_letters: dead.len() + derived_dead.len(),
                late: late.len(),
            },
        ))
    }

    /// Publishes `msgs` keeping up to `max_in_flight` acks outstanding, retrying failures
    /// (with the same ids) until the stream has stored every message.
    pub async fn publish_all(&self, msgs: Outgoing) -> anyhow::Result<()> {
        let mut msgs = msgs.0;
        let mut attempt = 0u32;
        while !msgs.is_empty() {
            let mut failed = Vec::new();
            // Each ack is awaited until PUBLISH_ACK_TIMEOUT after its publish, not after the
            // await starts: when a connection drops, thousands of acks are lost at once and
            // must all count as failed within one timeout, not one timeout each.
            let mut window: VecDeque<(usize, tokio::time::Instant, PublishAckFuture)> =
                VecDeque::new();
            for (i, m) in msgs.iter().enumerate() {
                if window.len() >= self.max_in_flight {
                    let oldest = window.pop_front().expect("window is not empty");
                    settle(oldest, &mut failed).await;
                }
                match self
                    .js
                    .publish_with_headers(m.subject.clone(), m.headers.clone(), m.payload.clone())
                    .await
                {
                    Ok(fut) => window.push_back((i, tokio::time::Instant::now(), fut)),
                    Err(e) => failed.push((i, e.to_string())),
                }
            }
            for pending in window {
                settle(pending, &mut failed).await;
            }
            if failed.is_empty() {
                return Ok(());
            }
            attempt += 1;
            let backoff = Duration::from_millis(100 * u64::from(attempt.min(50)));
            tracing::warn!(
                failed = failed.len(),
                attempt,
                first_error = %failed[0].1,
                "publishes not acknowledged; retrying with the same message ids in {backoff:?}"
            );
            tokio::time::sleep(backoff).await;
            failed.sort_by_key(|f| f.0);
            msgs = failed.into_iter().map(|(i, _)| msgs[i].clone()).collect();
        }
        Ok(())
    }
}

/// Awaits one publish's ack until [`PUBLISH_ACK_TIMEOUT`] after it was sent; a failure or
/// timeout is noted in `failed` for a retry.
async fn settle(
    (index, sent, fut): (usize, tokio::time::Instant, PublishAckFuture),
    failed: &mut Vec<(usize, String)>,
) {
    match tokio::time::timeout_at(sent + PUBLISH_ACK_TIMEOUT, fut).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed.push((index, e.to_string())),
        Err(_) => failed.push((index, "no ack within the publish timeout".into())),
    }
}

/// Header values cannot hold line breaks; errors from plugins may.
fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 2048 {
        let mut cut = 2048;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}
