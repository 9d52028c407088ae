//! The JetStream source: a durable pull consumer with `AckPolicy::All`.
//!
//! One fetch is one batch. Message bytes are appended straight into the batch columns.
//! Messages are acknowledged by the pipeline with one ack per batch (its last message), once
//! the batch's outputs are stored; after a crash the pipeline restarts the consumer right
//! after the checkpoint's position, so nothing depends on the server's ack floor or on its
//! redelivering.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, consumer::pull, message::Message};
use async_nats::{HeaderName, HeaderValue};
use futures::{FutureExt, StreamExt};
use weir_packed::{BatchBuilder, EventRef, push_header};

use super::{Ack, Origin, Polled, Source, SourceBatch};
use crate::config::{KeyFrom, Pipeline, TimeFrom};
use crate::operator::{DeadLetter, EventBatch};
use crate::sink::jetstream::headers::KEY_ENCODING;

/// The header that makes a message a watermark marker (value: milliseconds since the epoch).
pub const WATERMARK_HEADER: &str = "Weir-Watermark";

/// The header naming the input an event came from, in a pipeline of several inputs.
pub const INPUT_HEADER: &str = "Weir-Input";

/// The header names looked up in every message, made once: a lookup by `&str` builds (and
/// allocates) a name each time.
#[derive(Debug, Clone)]
struct Lookups {
    key: KeyFrom,
    time: TimeFrom,
    watermark: HeaderName,
    /// `source.key`'s header, when the key comes from one.
    key_header: Option<HeaderName>,
    /// Whether that header is `Weir-Key`, which a weir sink may have encoded in base64.
    key_maybe_encoded: bool,
    key_encoding: HeaderName,
    /// `source.time`'s header, when the event time comes from one.
    time_header: Option<HeaderName>,
}

impl Lookups {
    fn new(key: &KeyFrom, time: &TimeFrom) -> Self {
        // Header names in a pipeline file are checked when it is loaded.
        let name = |n: &str| HeaderName::from_str(n).ok();
        Lookups {
            key: key.clone(),
            time: time.clone(),
            watermark: HeaderName::from_static(WATERMARK_HEADER),
            key_header: match key {
                KeyFrom::Header(h) => name(h),
                _ => None,
            },
            key_maybe_encoded: matches!(key, KeyFrom::Header(h) if h.eq_ignore_ascii_case("Weir-Key")),
            key_encoding: HeaderName::from_static(KEY_ENCODING),
            time_header: match time {
                TimeFrom::Header(h) => name(h),
                _ => None,
            },
        }
    }

    /// Header `name` of `msg`.
    fn get<'m>(msg: &'m Message, name: &HeaderName) -> Option<&'m HeaderValue> {
        msg.headers.as_ref().and_then(|h| h.get(name.clone()))
    }
}

/// Unacknowledged messages the consumer may have out: a few batches normally, a checkpoint
/// interval's worth while a plugin swap holds outputs back.
const MAX_ACK_PENDING: i64 = 1_000_000;

/// Where the source starts delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// After this stream sequence (a checkpoint's position).
    After(u64),
    /// After the consumer's acknowledgement floor (no checkpoint; from the start if there is
    /// no consumer yet).
    AckFloor,
    /// After the later of the two (`at-most-once`: fetched messages were acknowledged).
    AfterOrAckFloor(u64),
}

/// Creates durable consumer `config` delivering after stream sequence `after` (from the start
/// when 0), and starts pulling.
async fn open_consumer(
    stream: &jetstream::stream::Stream,
    config: &pull::Config,
    after: u64,
    src: &crate::config::SourceConfig,
) -> anyhow::Result<(jetstream::consumer::Consumer<pull::Config>, pull::Stream)> {
    let mut config = config.clone();
    let name = config.durable_name.clone().unwrap_or_default();
    if after > 0 {
        config.deliver_policy = jetstream::consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        };
    }
    let inner = create_consumer(stream, config, &name)
        .await
        .with_context(|| {
            format!(
                "creating durable consumer {name:?} on stream {:?}",
                src.stream
            )
        })?;
    let consumer = inner
        .stream()
        .max_messages_per_batch(src.batch_size)
        .expires(
            src.max_wait
                .max(Duration::from_millis(10))
                .max(Duration::from_secs(1)),
        )
        .messages()
        .await
        .with_context(|| format!("starting to pull from consumer {name:?}"))?;
    Ok((inner, consumer))
}

/// How often creating a consumer is tried when the server answers with a transient error.
const CREATE_ATTEMPTS: u32 = 8;

/// Creates consumer `config`, retrying (with a doubling pause, ~6 s in all) while the server
/// answers with a server-side error or not at all: right after a consumer is deleted the
/// server may still be removing its store and refuse the new one with "error creating store
/// for consumer" (500). A refusal of the configuration itself (4xx) is returned at once.
async fn create_consumer(
    stream: &jetstream::stream::Stream,
    config: pull::Config,
    name: &str,
) -> Result<jetstream::consumer::Consumer<pull::Config>, jetstream::stream::ConsumerError> {
    use jetstream::stream::ConsumerErrorKind;
    let mut pause = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        let err = match stream.create_consumer(config.clone()).await {
            Ok(consumer) => return Ok(consumer),
            Err(err) => err,
        };
        let transient = match err.kind() {
            ConsumerErrorKind::JetStream(js) => js.code() >= 500,
            ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
            _ => false,
        };
        if !transient || attempt == CREATE_ATTEMPTS {
            return Err(err);
        }
        tracing::warn!(
            consumer = name,
            attempt,
            error = %err,
            "creating the consumer failed; trying again in {pause:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        attempt += 1;
    }
}

/// A durable pull consumer on the pipeline's source stream.
pub struct JetStreamSource {
    consumer: pull::Stream,
    handle: jetstream::stream::Stream,
    /// The consumer's configuration (without its start position).
    config: pull::Config,
    pull: crate::config::SourceConfig,
    stream: String,
    lookups: Lookups,
    /// Which of the pipeline's inputs this is, and its name when there are several.
    input: u16,
    input_name: Option<std::sync::Arc<str>>,
    batch_size: usize,
    max_wait: Duration,
    /// The consumer sequence the next delivery must have; a gap means a delivery was lost
    /// and acknowledging past it would lose data.
    next_consumer_sequence: u64,
    /// The newest stream sequence delivered: a redelivery (after `ack_wait` expired while a
    /// checkpoint was slow) is at or below it and is skipped, as it was processed already.
    last_stream_sequence: u64,
    inner: jetstream::consumer::Consumer<pull::Config>,
}

impl JetStreamSource {
    /// Creates the durable consumer of `pipeline` on its source stream, delivering from
    /// `resume`.
    ///
    /// The consumer is always recreated: with `AckPolicy::All`, acknowledging message `n`
    /// acknowledges everything before it, so continuing an old consumer whose unacknowledged
    /// messages are awaiting redelivery could acknowledge them unseen. Starting at an explicit
    /// sequence also means correctness never depends on `ack_wait` redeliveries.
    pub async fn connect(
        js: &jetstream::Context,
        pipeline: &Pipeline,
        resume: Resume,
    ) -> anyhow::Result<Self> {
        Self::connect_input(js, pipeline, 0, resume).await
    }

    /// Like [`JetStreamSource::connect`], for input `input` of the pipeline's `[[sources]]`.
    pub async fn connect_input(
        js: &jetstream::Context,
        pipeline: &Pipeline,
        input: usize,
        resume: Resume,
    ) -> anyhow::Result<Self> {
        let src = pipeline
            .config
            .inputs()
            .get(input)
            .with_context(|| format!("the pipeline has no input {input}"))?;
        let field = if pipeline.config.sources.is_empty() {
            "source".to_owned()
        } else {
            format!("sources[{input}]")
        };
        let stream = js.get_stream(&src.stream).await.with_context(|| {
            format!(
                "{}: field `{field}.stream`: cannot open JetStream stream {:?} (does it exist?)",
                pipeline.file.display(),
                src.stream
            )
        })?;
        let name = pipeline.consumer_name_of(input);
        let ack_floor = match stream.consumer_info(&name).await {
            Ok(info) => {
                let floor = info.ack_floor.stream_sequence;
                stream
                    .delete_consumer(&name)
                    .await
                    .with_context(|| format!("recreating durable consumer {name:?}"))?;
                Some(floor)
            }
            Err(_) => None,
        };
        let resume_after = match resume {
            Resume::After(seq) => Some(seq),
            Resume::AckFloor => ack_floor,
            Resume::AfterOrAckFloor(seq) => Some(ack_floor.map_or(seq, |f| f.max(seq))),
        };
        let mut config = pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: jetstream::consumer::AckPolicy::All,
            ack_wait: src.ack_wait,
            // While a swap holds outputs back, a checkpoint interval's worth may be
            // pending; the limit only guards the server.
            max_ack_pending: MAX_ACK_PENDING,
            description: Some(format!("weir pipeline {}", pipeline.config.name.get_ref())),
            ..Default::default()
        };
        match src.subjects.as_slice() {
            [] => {}
            [one] => config.filter_subject = one.clone(),
            many => config.filter_subjects = many.to_vec(),
        }
        let after = resume_after.unwrap_or(0);
        let (inner, consumer) = open_consumer(&stream, &config, after, src).await?;
        tracing::info!(
            stream = %src.stream,
            consumer = %name,
            resume_after_sequence = after,
            "source ready"
        );
        Ok(JetStreamSource {
            consumer,
            handle: stream,
            config,
            pull: src.clone(),
            stream: src.stream.clone(),
            lookups: Lookups::new(&src.key, &src.time),
            input: input as u16,
            input_name: pipeline.input_name(input).map(std::sync::Arc::from),
            batch_size: src.batch_size,
            max_wait: src.max_wait,
            next_consumer_sequence: 1,
            last_stream_sequence: after,
            inner,
        })
    }

    /// Replaces the consumer with one delivering right after the last message this source
    /// handed out: the way back from a delivery gap (e.g. after a server restart lost part of
    /// the consumer's state), without skipping or repeating anything.
    async fn reopen(&mut self, why: &str) -> anyhow::Result<()> {
        tracing::warn!(
            consumer = ?self.config.durable_name,
            resume_after_sequence = self.last_stream_sequence,
            "{why}; recreating the consumer after the last message processed"
        );
        let name = self.config.durable_name.clone().unwrap_or_default();
        if let Err(e) = self.handle.delete_consumer(&name).await {
            tracing::debug!(error = %e, "deleting the old consumer");
        }
        let (inner, consumer) = open_consumer(
            &self.handle,
            &self.config,
            self.last_stream_sequence,
            &self.pull,
        )
        .await?;
        self.inner = inner;
        self.consumer = consumer;
        self.next_consumer_sequence = 1;
        Ok(())
    }

    /// Consumer info (pending, ack floor) for progress reports.
    pub async fn pending(&mut self) -> Option<u64> {
        self.inner.info().await.ok().map(|i| i.num_pending)
    }

    /// The next message: the first of a batch waits at most `first_wait` (then `Ok(None)`),
    /// later ones until `deadline`. Redeliveries of what was processed are skipped; a gap in
    /// deliveries recreates the consumer after the last message processed.
    async fn next_message(
        &mut self,
        first: bool,
        first_wait: Option<Duration>,
        deadline: tokio::time::Instant,
    ) -> anyhow::Result<Option<(Message, u64, i64)>> {
        loop {
            let next = match (first, first_wait) {
                (true, None) => self.consumer.next().await,
                (true, Some(w)) => match tokio::time::timeout(w, self.consumer.next()).await {
                    Ok(m) => m,
                    Err(_) => return Ok(None),
                },
                // A message already received is taken without arming a timer.
                (false, _) => match self.consumer.next().now_or_never() {
                    Some(m) => m,
                    None => match tokio::time::timeout_at(deadline, self.consumer.next()).await {
                        Ok(m) => m,
                        Err(_) => return Ok(None),
                    },
                },
            };
            let msg = match next {
                // The consumer is gone (deleted under us, or lost by a server): a new one
                // resumes right after the last message processed.
                None => {
                    self.reopen("the consumer's message stream ended").await?;
                    continue;
                }
                Some(Err(e)) if e.kind() == MessagesErrorKind::ConsumerDeleted => {
                    self.reopen("the consumer was deleted").await?;
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pull error; continuing");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let info = msg
                .info()
                .map_err(|e| anyhow::anyhow!("message without JetStream metadata: {e}"))?;
            let (consumer_sequence, stream_sequence) =
                (info.consumer_sequence, info.stream_sequence);
            let published_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
            if consumer_sequence > self.next_consumer_sequence {
                // Deliveries were lost: continuing could acknowledge them unseen.
                let why = format!(
                    "delivery gap on consumer {:?}: expected consumer sequence {}, got {}",
                    info.consumer, self.next_consumer_sequence, consumer_sequence
                );
                drop(msg);
                self.reopen(&why).await?;
                continue;
            }
            // A sequence lower than expected is a redelivery (or a server that restarted and
            // forgot recent deliveries): what was processed already is skipped.
            self.next_consumer_sequence = consumer_sequence + 1;
            if stream_sequence <= self.last_stream_sequence {
                tracing::debug!(
                    stream_sequence,
                    "skipping a redelivered message (already processed)"
                );
                continue;
            }
            self.last_stream_sequence = stream_sequence;
            return Ok(Some((msg, stream_sequence, published_ms)));
        }
    }

    /// Waits for the next batch: up to `batch_size` messages, returning early once messages
    /// stop arriving for `max_wait`. `first_wait` bounds the wait for the first message; when
    /// it passes, the batch is empty (and nothing was pulled from the consumer).
    pub async fn fetch(&mut self, first_wait: Option<Duration>) -> anyhow::Result<SourceBatch> {
        let mut reader = BatchReader::new(self.batch_size, self.input, self.input_name.clone());
        let mut last = None;
        let deadline = tokio::time::Instant::now() + self.max_wait;
        while reader.batch.origins.len() < self.batch_size {
            let first = reader.batch.origins.is_empty();
            let Some((msg, sequence, published_ms)) =
                self.next_message(first, first_wait, deadline).await?
            else {
                break;
            };
            reader.read(&msg, sequence, published_ms, &self.lookups);
            last = Some(msg);
        }
        let mut batch = reader.finish();
        // AckPolicy::All: acknowledging the last message acknowledges the batch.
        batch.ack = last.map(|m| -> Ack {
            Box::pin(async move {
                m.ack()
                    .await
                    .map_err(|e| anyhow::anyhow!("acknowledging the source: {e}"))
            })
        });
        Ok(batch)
    }
}

impl Source for JetStreamSource {
    fn name(&self) -> &str {
        &self.stream
    }

    async fn next_batch(&mut self, wait: Option<Duration>) -> anyhow::Result<Polled> {
        let batch = self.fetch(wait).await?;
        Ok(if batch.origins.is_empty() {
            Polled::Quiet
        } else {
            Polled::Batch(Box::new(batch))
        })
    }
}

/// Turns JetStream messages into a [`SourceBatch`]: bytes appended to the packed columns,
/// `Nats-*` headers dropped, key and event time extracted, markers and unreadable messages
/// set apart.
struct BatchReader {
    builder: BatchBuilder,
    batch: SourceBatch,
    lineage: Vec<u32>,
    headers: Vec<u8>,
    /// The key, when it comes from a payload field.
    key: Vec<u8>,
    input: u16,
    /// The input's name, written into every event's `Weir-Input` header (several inputs).
    input_name: Option<std::sync::Arc<str>>,
}

impl BatchReader {
    fn new(capacity: usize, input: u16, input_name: Option<std::sync::Arc<str>>) -> Self {
        BatchReader {
            builder: BatchBuilder::with_capacity(capacity, 128),
            batch: SourceBatch {
                origins: Vec::with_capacity(capacity),
                input,
                ..Default::default()
            },
            lineage: Vec::with_capacity(capacity),
            headers: Vec::new(),
            key: Vec::new(),
            input,
            input_name,
        }
    }

    /// Reads message `msg` (at stream `sequence`) into the batch.
    fn read(&mut self, msg: &Message, sequence: u64, published_ms: i64, lookups: &Lookups) {
        let source = self.batch.origins.len() as u32;
        self.batch.origins.push(Origin {
            subject: msg.subject.clone(),
            sequence,
            input: self.input,
        });
        let refuse = |error: String, key: &[u8], headers: &[u8]| {
            let e = EventRef {
                key,
                time: published_ms,
                payload: &msg.payload,
                headers,
                origin: source,
            };
            DeadLetter::of_event(source, &e, "source", "", error)
        };
        if let Some(w) = Lookups::get(msg, &lookups.watermark) {
            match w.as_str().trim().parse::<i64>() {
                Ok(w) => self.batch.watermarks.push((source, w)),
                Err(_) => self.batch.refused.push(refuse(
                    format!(
                        "{WATERMARK_HEADER} is {:?}, not milliseconds since the epoch",
                        w.as_str()
                    ),
                    b"",
                    b"",
                )),
            }
            return;
        }
        self.headers.clear();
        if let Some(h) = &msg.headers {
            for (name, values) in h.iter() {
                let name: &str = name.as_ref();
                if name.len() >= 5 && name[..5].eq_ignore_ascii_case("nats-") {
                    continue;
                }
                if self.input_name.is_some() && name.eq_ignore_ascii_case(INPUT_HEADER) {
                    continue; // this pipeline says which of its inputs it is
                }
                for v in values {
                    push_header(&mut self.headers, name.as_bytes(), v.as_str().as_bytes());
                }
            }
        }
        if let Some(input) = &self.input_name {
            push_header(&mut self.headers, INPUT_HEADER.as_bytes(), input.as_bytes());
        }
        let key = match event_key(msg, lookups, &mut self.key) {
            Ok(k) => k,
            Err(error) => {
                let letter = refuse(error, b"", &self.headers);
                self.batch.refused.push(letter);
                return;
            }
        };
        let key = &*key;
        match event_time(msg, lookups, published_ms) {
            Ok(t) => {
                let at = self.lineage.len() as u32;
                self.builder.push(key, t, &self.headers, &msg.payload, at);
                self.lineage.push(source);
            }
            Err(error) => {
                let letter = refuse(error, key, &self.headers);
                self.batch.refused.push(letter);
            }
        }
    }

    fn finish(self) -> SourceBatch {
        let mut batch = self.batch;
        batch.events = EventBatch::from_source(self.builder);
        batch.events.lineage = self.lineage;
        batch
    }
}

/// The key of `msg` as the pipeline's `source.key` says (`buf`: where a key read from the
/// payload is written). A `Weir-Key` header written by a weir sink with `Weir-Key-Encoding:
/// base64` (a key that is not plain text) is decoded.
fn event_key<'m>(
    msg: &'m Message,
    lookups: &Lookups,
    buf: &'m mut Vec<u8>,
) -> Result<Cow<'m, [u8]>, String> {
    match &lookups.key {
        KeyFrom::None => Ok(Cow::Borrowed(b"")),
        KeyFrom::Subject => Ok(Cow::Borrowed(msg.subject.as_bytes())),
        KeyFrom::Field(path) => {
            super::field::key_from_json_field(&msg.payload, path, buf)?;
            Ok(Cow::Borrowed(buf))
        }
        KeyFrom::Header(h) => {
            let value = lookups
                .key_header
                .as_ref()
                .and_then(|n| Lookups::get(msg, n));
            let Some(value) = value else {
                return Ok(Cow::Borrowed(b""));
            };
            let encoded = lookups.key_maybe_encoded
                && Lookups::get(msg, &lookups.key_encoding).is_some_and(|e| e.as_str() == "base64");
            if !encoded {
                return Ok(Cow::Borrowed(value.as_str().as_bytes()));
            }
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(value.as_str())
                .map(Cow::Owned)
                .map_err(|e| format!("key header {h:?} says base64 but is not: {e}"))
        }
    }
}

/// The event time of `msg` as the pipeline's `source.time` says.
fn event_time(msg: &Message, lookups: &Lookups, published_ms: i64) -> Result<i64, String> {
    match &lookups.time {
        TimeFrom::Ingest => Ok(published_ms),
        TimeFrom::Field(path) => super::field::time_from_json_field(&msg.payload, path),
        TimeFrom::Header(h) => match lookups
            .time_header
            .as_ref()
            .and_then(|n| Lookups::get(msg, n))
        {
            None => Err(format!("event time header {h:?} is missing")),
            Some(v) => v.as_str().trim().parse::<i64>().map_err(|_| {
                format!(
                    "event time header {h:?} is {:?}, not milliseconds since the epoch",
                    v.as_str()
                )
            }),
        },
    }
}
