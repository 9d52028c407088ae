//! Publishing messages and settling their acks: many publishes in flight (a window of
//! `max_in_flight` un-awaited acks, never more than the client's limit), each ack awaited
//! until a timeout after its publish, and what failed published again with the same ids
//! until the stream has stored everything — the source is never acknowledged for data that
//! was not stored. (During a NATS outage this waits; a killed host replays on restart.)

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};

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
type Pending = (usize, tokio::time::Instant, PublishAckFuture);

impl Publisher {
    pub fn new(js: jetstream::Context, max_in_flight: usize) -> Self {
        Publisher {
            js,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Publishes `msgs` keeping up to `max_in_flight` acks outstanding, retrying failures
    /// (with the same ids) with backoff until the stream has stored every message.
    pub async fn publish_all(&self, msgs: Vec<Message>) -> anyhow::Result<()> {
        let mut msgs = msgs;
        let mut attempt = 0u32;
        while !msgs.is_empty() {
            let mut failed = self.publish_once(&msgs).await;
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

    /// Publishes every message once; returns those that failed (index, reason).
    async fn publish_once(&self, msgs: &[Message]) -> Vec<(usize, String)> {
        let mut failed = Vec::new();
        // Each ack is awaited until PUBLISH_ACK_TIMEOUT after its publish, not after the
        // await starts: when a connection drops, thousands of acks are lost at once and must
        // all count as failed within one timeout, not one timeout each.
        let mut window: VecDeque<Pending> = VecDeque::new();
        for (i, m) in msgs.iter().enumerate() {
            if window.len() >= self.max_in_flight {
                let oldest = window.pop_front().expect("window is not empty");
                await_ack(oldest, &mut failed).await;
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
            await_ack(pending, &mut failed).await;
        }
        failed
    }
}

/// Awaits one publish's ack until [`PUBLISH_ACK_TIMEOUT`] after it was sent; a failure or
/// timeout is noted in `failed` for a retry.
async fn await_ack((index, sent, fut): Pending, failed: &mut Vec<(usize, String)>) {
    match tokio::time::timeout_at(sent + PUBLISH_ACK_TIMEOUT, fut).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed.push((index, e.to_string())),
        Err(_) => failed.push((index, "no ack within the publish timeout".into())),
    }
}
