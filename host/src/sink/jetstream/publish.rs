//! Publishing messages and settling their acks: many publishes in flight (a window of
//! `max_in_flight` un-awaited acks, never more than the client's limit), each ack awaited
//! until a timeout after its publish, and what failed published again with the same ids
//! until the stream has stored everything — the source is never acknowledged for data that
//! was not stored. (During a NATS outage this waits; a killed host replays on restart.)
//!
//! A publish the server *refuses* for a reason that publishing again cannot fix — the message
//! is larger than the server's `max_payload` or the stream's `max_msg_size`, or a header the
//! stream checks (`Nats-Expected-Last-Sequence`, …) does not hold — is not retried: it is
//! handed back as [`Refused`], for the sink to dead-letter.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::{self};
use futures::FutureExt;

use super::messages::Message;

/// How long a publish may wait for the stream's ack before it is retried.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes to JetStream.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    max_in_flight: usize,
}

/// A publish awaiting its ack: the message's index, when it was sent, the ack.
type Pending = (
    usize,
    tokio::time::Instant,
    <PublishAckFuture as IntoFuture>::IntoFuture,
);

/// A message the server refused for good, and why.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Its index among the messages given to [`Publisher::publish_all`].
    pub index: usize,
    pub message: Message,
    pub reason: String,
}

/// A failed publish of message `index`: `permanent` when retrying cannot help.
struct Failed {
    index: usize,
    reason: String,
    permanent: bool,
}

/// JetStream API error codes of refusals that depend on the message, not on the moment:
/// 10054 message size exceeds the stream's maximum, 10070 wrong last message id, 10071 wrong
/// last sequence, 10164 wrong last sequence for the subject, 10165 the stream refuses
/// per-message TTLs.
const REFUSAL_CODES: [&str; 5] = ["10054", "10070", "10071", "10164", "10165"];

/// Whether publishing `e`'s message again cannot succeed.
fn is_permanent(e: &PublishError) -> bool {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence => true,
        PublishErrorKind::Other => {
            let text = format!("{e:?}");
            REFUSAL_CODES.iter().any(|c| text.contains(c))
        }
        _ => false,
    }
}

impl Publisher {
    pub fn new(js: jetstream::Context, max_in_flight: usize) -> Self {
        Publisher {
            js,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Publishes `msgs` keeping up to `max_in_flight` acks outstanding, retrying failures
    /// (with the same ids) with backoff until the stream has stored every message but those
    /// it refused for good, which are returned.
    pub async fn publish_all(&self, msgs: Vec<Message>) -> Vec<Refused> {
        // (index in `msgs` as given, message)
        let mut todo: Vec<(usize, Message)> = msgs.into_iter().enumerate().collect();
        let mut refused = Vec::new();
        let mut attempt = 0u32;
        while !todo.is_empty() {
            let mut failed = self.publish_once(&todo).await;
            failed.sort_by_key(|f| f.index);
            let mut retry = Vec::new();
            for f in failed {
                let (index, message) = todo[f.index].clone();
                if f.permanent {
                    refused.push(Refused {
                        index,
                        message,
                        reason: f.reason,
                    });
                } else {
                    retry.push((index, message, f.reason));
                }
            }
            let Some((_, _, first_error)) = retry.first() else {
                break;
            };
            attempt += 1;
            let backoff = Duration::from_millis(100 * u64::from(attempt.min(50)));
            tracing::warn!(
                failed = retry.len(),
                attempt,
                first_error = %first_error,
                "publishes not acknowledged; retrying with the same message ids in {backoff:?}"
            );
            tokio::time::sleep(backoff).await;
            todo = retry.into_iter().map(|(i, m, _)| (i, m)).collect();
        }
        refused.sort_by_key(|r| r.index);
        refused
    }

    /// Publishes every message once; returns those that failed (by their place in `msgs`).
    async fn publish_once(&self, msgs: &[(usize, Message)]) -> Vec<Failed> {
        let mut failed = Vec::new();
        // Each ack is awaited until PUBLISH_ACK_TIMEOUT after its publish, not after the
        // await starts: when a connection drops, thousands of acks are lost at once and must
        // all count as failed within one timeout, not one timeout each.
        let mut window: VecDeque<Pending> = VecDeque::new();
        for (i, (_, m)) in msgs.iter().enumerate() {
            if window.len() >= self.max_in_flight {
                let oldest = window.pop_front().expect("window is not empty");
                await_ack(oldest, &mut failed).await;
            }
            match self
                .js
                .publish_with_headers(m.subject.clone(), m.headers.clone(), m.payload.clone())
                .await
            {
                Ok(fut) => window.push_back((i, tokio::time::Instant::now(), fut.into_future())),
                Err(e) => failed.push(Failed {
                    index: i,
                    reason: refusal_text(&e),
                    permanent: is_permanent(&e),
                }),
            }
        }
        for pending in window {
            await_ack(pending, &mut failed).await;
        }
        failed
    }
}

/// Awaits one publish's ack until [`PUBLISH_ACK_TIMEOUT`] after it was sent; a failure or
/// timeout is noted in `failed`.
async fn await_ack((index, sent, mut fut): Pending, failed: &mut Vec<Failed>) {
    // An ack already in is taken without arming a timer.
    let settled = match (&mut fut).now_or_never() {
        Some(done) => Ok(done),
        None => tokio::time::timeout_at(sent + PUBLISH_ACK_TIMEOUT, fut).await,
    };
    match settled {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed.push(Failed {
            index,
            reason: refusal_text(&e),
            permanent: is_permanent(&e),
        }),
        Err(_) => failed.push(Failed {
            index,
            reason: "no ack within the publish timeout".into(),
            permanent: false,
        }),
    }
}

/// The error and, when the server said why, its words.
fn refusal_text(e: &PublishError) -> String {
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}
