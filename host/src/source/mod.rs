//! Sources: where events enter a pipeline, behind one small trait ([`Source`]) so that the
//! run loop is written once.
//!
//! - [`jetstream`]: a durable JetStream pull consumer; key and event time extracted per the
//!   pipeline's `[source]` section; messages stay unacknowledged until the checkpoint that
//!   covers them is committed;
//! - [`json_lines`]: JSON lines from a file, for `weir run --local` and `weir plugin test`;
//! - [`field`]: event time and key from a JSON field of the payload;
//! - [`multi`]: several inputs (`[[sources]]`) read side by side as one source.
//!
//! A source appends message bytes straight into a packed batch ([`SourceBatch`]), says where
//! each message came from ([`Origin`]: subject and position, for lineage, message ids and dead
//! letters), refuses what it cannot read (as dead letters, never by stopping), and hands out
//! watermark markers (punctuated watermarks) apart from events.

pub mod field;
pub mod jetstream;
pub mod json_lines;
pub mod multi;

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::{PipelineConfig, WatermarkStrategy};
use crate::operator::{DeadLetter, EventBatch};
pub use crate::window::InputPartitions;

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
    /// Which of the pipeline's inputs it came from (0 with one input).
    pub input: u16,
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
    /// Which of the pipeline's inputs the batch came from (0 with one input).
    pub input: u16,
}

impl SourceBatch {
    /// The position of the last message, if the batch holds any.
    pub fn last_position(&self) -> Option<u64> {
        self.origins.last().map(|o| o.sequence)
    }
}

/// How a pipeline's events fall into watermark partitions: each subject filter of each input
/// is a partition with its own watermark, and the pipeline's is the minimum over those not
/// idle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePartitions {
    /// Per input (none: one input of one partition, no bound, never idle).
    pub inputs: Vec<InputPartitions>,
    /// Only markers move event time (no watermark is generated from event times).
    pub punctuated: bool,
}

impl SourcePartitions {
    /// The partitions of a pipeline's `[source]` or `[[sources]]`.
    pub fn of(config: &PipelineConfig) -> Self {
        let inputs = config.inputs();
        SourcePartitions {
            inputs: inputs
                .iter()
                .map(|s| InputPartitions {
                    subjects: s.subjects.clone(),
                    bound_ms: s
                        .watermarks
                        .out_of_orderness
                        .as_millis()
                        .min(i64::MAX as u128) as i64,
                    idle_timeout: s.watermarks.idle_timeout,
                })
                .collect(),
            punctuated: inputs
                .iter()
                .any(|s| s.watermarks.strategy == WatermarkStrategy::Punctuated),
        }
    }

    /// The partitions of one input with subject filters `subjects`.
    pub fn subjects(subjects: &[&str]) -> Self {
        SourcePartitions {
            inputs: vec![InputPartitions {
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }],
            punctuated: false,
        }
    }

    /// The partitions, with one input of one partition when none is said.
    pub fn inputs(&self) -> Vec<InputPartitions> {
        if self.inputs.is_empty() {
            vec![InputPartitions::default()]
        } else {
            self.inputs.clone()
        }
    }
}
