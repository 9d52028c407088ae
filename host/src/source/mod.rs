//! Sources: where events enter a pipeline, behind one small trait ([`Source`]) so that the
//! run loop is written once.
//!
//! - [`jetstream`]: a durable JetStream pull consumer; key and event time extracted per the
//!   pipeline's `[source]` section; messages stay unacknowledged until the checkpoint that
//!   covers them is committed;
//! - [`json_lines`]: JSON lines from a file, for `weir run --local` and `weir plugin test`;
//! - [`field`]: event time and key from a JSON field of the payload.
//!
//! A source appends message bytes straight into a packed batch ([`SourceBatch`]), says where
//! each message came from ([`Origin`]: subject and position, for lineage, message ids and dead
//! letters), refuses what it cannot read (as dead letters, never by stopping), and hands out
//! watermark markers (punctuated watermarks) apart from events.

pub mod field;
pub mod jetstream;
pub mod json_lines;

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{SourceConfig, WatermarkStrategy};
use crate::operator::{DeadLetter, EventBatch};

/// A source of events for the run loop.
pub trait Source: Send {
    /// The name positions are relative to (a stream), in message ids and checkpoints.
    fn name(&self) -> &str;

    /// Waits for the next batch, at most `wait` for its first message (`None`: as long as it
    /// takes). [`Polled::Quiet`] when nothing arrived in time, [`Polled::End`] when a bounded
    /// input is exhausted.
    fn next_batch(
        &mut self,
        wait: Option<Duration>,
    ) -> impl Future<Output = anyhow::Result<Polled>> + Send;
}

/// What [`Source::next_batch`] found.
pub enum Polled {
    Batch(Box<SourceBatch>),
    /// Nothing arrived within the wait: time for periodic work.
    Quiet,
    /// The input is exhausted (files); unbounded sources never end.
    End,
}

/// Where one message of a batch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Its subject (the watermark partition is picked by it; empty for files). Shared with
    /// the message it came from, not copied.
    pub subject: async_nats::Subject,
    /// Its position: a stream sequence, or a line number.
    pub sequence: u64,
}

/// Acknowledges a source up to (and including) a batch: what a committed checkpoint does.
pub type Ack = BoxFuture<'static, anyhow::Result<()>>;

/// A batch as a source hands it over.
#[derive(Default)]
pub struct SourceBatch {
    /// The events (lineage: index in `origins`).
    pub events: EventBatch,
    /// Every message of the batch (events, refused messages and markers), in order.
    pub origins: Vec<Origin>,
    /// Messages refused at the source (e.g. a malformed time header).
    pub refused: Vec<DeadLetter>,
    /// Watermark markers: (index in `origins` of the marker, watermark). A marker is not an
    /// event (punctuated watermarks).
    pub watermarks: Vec<(u32, i64)>,
    /// Acknowledges the source up to this batch, when the source needs acknowledgements.
    pub ack: Option<Ack>,
}

impl SourceBatch {
    /// The position of the last message, if the batch holds any.
    pub fn last_position(&self) -> Option<u64> {
        self.origins.last().map(|o| o.sequence)
    }
}

/// How a source's events fall into watermark partitions: each subject filter is a partition
/// with its own watermark, and the pipeline's is the minimum over those not idle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePartitions {
    /// Subject filters (none: one partition).
    pub subjects: Vec<String>,
    /// A partition without events for this long stops holding the watermark back.
    pub idle_timeout: Option<Duration>,
    /// Only markers move event time (no watermark is generated from event times).
    pub punctuated: bool,
}

impl SourcePartitions {
    /// The partitions of a `[source]` section.
    pub fn of(config: &SourceConfig) -> Self {
        SourcePartitions {
            subjects: config.subjects.clone(),
            idle_timeout: config.watermarks.idle_timeout,
            punctuated: config.watermarks.strategy == WatermarkStrategy::Punctuated,
        }
    }
}
