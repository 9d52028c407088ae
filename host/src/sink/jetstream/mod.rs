//! The JetStream sink, split by job like Vector's NATS sink:
//!
//! - [`ids`]: deterministic message ids (`Nats-Msg-Id`), a stable format;
//! - [`headers`]: one header builder for every kind of output;
//! - [`messages`]: a batch's outputs → messages (the "request builder"; no I/O);
//! - [`publish`]: publishing with many acks in flight, retried until stored;
//! - [`refused`]: what the stream refuses for good becomes a dead letter;
//! - this module: the [`Sink`] itself and the checks made when a pipeline starts (streams
//!   capture the subjects; duplicate windows are long enough for effectively-once).
//!
//! Results go to `sink.subject`, dead letters to `sink.dead_letter`, late events to
//! `sink.late` (default: the dead-letter subject).

pub mod headers;
pub mod ids;
pub mod messages;
pub mod publish;
pub mod refused;

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use async_nats::{HeaderMap, HeaderName, HeaderValue, Subject};
use bytes::Bytes;

pub use self::messages::InputIds;
use self::messages::{Message, MessageBuilder};
use self::publish::Publisher;
use crate::checkpoint::PendingMessage;
use crate::config::SinkConfig;
use crate::operator::BatchOutput;
use crate::sink::{Published, Scope, Sink};
use crate::source::Origin;

/// Publishes a pipeline's outputs to JetStream.
pub struct JetStreamSink {
    js: jetstream::Context,
    config: SinkConfig,
    builder: Mutex<MessageBuilder>,
    publisher: Publisher,
    dead_letter: Subject,
}

impl JetStreamSink {
    /// A sink for `pipeline` (reading `inputs`) with its `[sink]` section; `ids`: whether
    /// messages carry `Nats-Msg-Id` (effectively-once).
    pub fn new(
        js: jetstream::Context,
        pipeline: &str,
        inputs: Vec<InputIds>,
        config: &SinkConfig,
        ids: bool,
    ) -> Self {
        JetStreamSink {
            publisher: Publisher::new(js.clone(), config.max_in_flight),
            js,
            config: config.clone(),
            builder: Mutex::new(MessageBuilder::new(pipeline, inputs, config, ids)),
            dead_letter: Subject::from(config.dead_letter.as_str()),
        }
    }

    /// The subjects the sink publishes to, with their fields in the pipeline file.
    fn subjects(&self) -> Vec<(&'static str, &str)> {
        let mut s = vec![
            ("sink.subject", self.config.subject.as_str()),
            ("sink.dead_letter", self.config.dead_letter.as_str()),
        ];
        if let Some(late) = &self.config.late {
            s.push(("sink.late", late.as_str()));
        }
        s
    }

    /// Checks that streams capture the result, dead-letter and late subjects, so that a
    /// misconfiguration is reported at start rather than as publish timeouts.
    pub async fn check_streams(&self) -> anyhow::Result<()> {
        for (field, subject) in self.subjects() {
            self.js.stream_by_subject(subject).await.with_context(|| {
                format!("field `{field}`: no JetStream stream captures subject {subject:?}")
            })?;
        }
        Ok(())
    }

    /// Checks that the sink streams' duplicate windows are at least `min` long (with
    /// message ids, a replay older than the window would not be deduplicated).
    pub async fn check_duplicate_windows(&self, min: Duration) -> anyhow::Result<()> {
        for (field, subject) in self.subjects() {
            let name = self.js.stream_by_subject(subject).await?;
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
}

impl Sink for JetStreamSink {
    type Message = Message;

    fn prepare(
        &self,
        out: BatchOutput,
        origins: &[Origin],
        scope: Scope,
    ) -> (Vec<Message>, Published) {
        // Only the run loop prepares, one batch at a time: the lock is never contended.
        let mut builder = self
            .builder
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        builder.messages(out, origins, scope)
    }

    fn deliver(
        &self,
        msgs: Vec<Message>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let publisher = self.publisher.clone();
        let dead_letter = self.dead_letter.clone();
        async move {
            let refused = publisher.publish_all(msgs).await;
            refused::dead_letter_refused(&publisher, &dead_letter, refused).await;
            Ok(())
        }
    }

    fn hold(&self, msgs: Vec<Message>) -> Vec<PendingMessage> {
        msgs.into_iter()
            .map(|m| PendingMessage {
                subject: m.subject.to_string(),
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

    /// Headers that are no longer valid (they were valid when held) are dropped.
    fn release(&self, held: Vec<PendingMessage>) -> Vec<Message> {
        held.into_iter()
            .map(|p| {
                let mut headers = HeaderMap::new();
                for (n, v) in &p.headers {
                    if let (Ok(n), Ok(v)) = (HeaderName::from_str(n), HeaderValue::from_str(v)) {
                        headers.append(n, v);
                    }
                }
                Message {
                    subject: Subject::from(p.subject),
                    headers,
                    payload: Bytes::from(p.payload),
                }
            })
            .collect()
    }
}
