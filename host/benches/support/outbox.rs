//! The raw client's side of the benches through nats-server: its publishes and source
//! acknowledgements in flight, settled in order, so that a source message is acknowledged
//! only once every publish before it is stored.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, context::PublishError, message::Message};
use futures::stream::ReadyChunks;
use futures::{FutureExt, StreamExt};

/// Publish acks the raw client keeps in flight.
const IN_FLIGHT: usize = 4096;

pub type PublishAck =
    Pin<Box<dyn Future<Output = Result<jetstream::publish::PublishAck, PublishError>> + Send>>;

/// What the raw client waits for, in order.
enum Pending {
    /// The stream's ack of one publish to `out`.
    Publish(PublishAck),
    /// The last message of a batch: acknowledged once everything before it is settled
    /// (boxed: a message is large, and there is one per batch).
    Ack(Box<Message>),
}

/// The raw client's publishes and source acks in flight.
#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Pending>,
    publishes: usize,
}

impl Outbox {
    /// Queues a publish ack; waits for the oldest while more than [`IN_FLIGHT`] are out.
    pub async fn publish(&mut self, ack: PublishAck) {
        self.queue.push_back(Pending::Publish(ack));
        self.publishes += 1;
        while self.publishes > IN_FLIGHT {
            self.settle_front().await;
        }
    }

    /// Queues the source ack of a batch's last message behind the batch's publishes.
    pub fn ack_after(&mut self, last: Message) {
        self.queue.push_back(Pending::Ack(Box::new(last)));
    }

    /// Settles the oldest pending item, waiting for it.
    async fn settle_front(&mut self) {
        match self.queue.pop_front() {
            Some(Pending::Publish(ack)) => {
                ack.await.expect("publish to out");
                self.publishes -= 1;
            }
            Some(Pending::Ack(m)) => m.ack().await.expect("ack to IN"),
            None => {}
        }
    }

    /// Settles from the front what is done, without waiting for a publish ack.
    pub async fn settle_ready(&mut self) {
        loop {
            match self.queue.front_mut() {
                Some(Pending::Publish(ack)) => match ack.as_mut().now_or_never() {
                    Some(done) => {
                        done.expect("publish to out");
                        self.queue.pop_front();
                        self.publishes -= 1;
                    }
                    None => return,
                },
                Some(Pending::Ack(_)) => self.settle_front().await,
                None => return,
            }
        }
    }

    /// Waits for everything in flight.
    pub async fn drain(&mut self) {
        while !self.queue.is_empty() {
            self.settle_front().await;
        }
    }
}

/// The raw client's reading: a fresh durable pull consumer `durable` of `stream` on
/// `subjects` (every subject when empty), acknowledged by `AckPolicy::All`, pulled in batches
/// of up to `batch` messages.
pub async fn raw_batches(
    stream: &jetstream::stream::Stream,
    durable: &str,
    subjects: &[String],
    batch: usize,
) -> ReadyChunks<pull::Stream> {
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.to_owned()),
            filter_subjects: subjects.to_vec(),
            ack_policy: jetstream::consumer::AckPolicy::All,
            max_ack_pending: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("creating the raw consumer");
    consumer
        .stream()
        .max_messages_per_batch(batch)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("pulling")
        .ready_chunks(batch)
}
