//! Taking checkpoints while a pipeline runs (choosing one to restore at start is
//! [`super::recover`]).
//!
//! The run loop calls [`Checkpointer::due`] between batches. When a checkpoint is due it
//! snapshots the stages on the operator thread (the only pause) and hands the snapshot to
//! [`Checkpointer::start`], which runs the rest in a task: wait until every output of the
//! covered batches is stored by the sink, write the blob, commit the manifest, publish the
//! outputs the checkpoint held back, and acknowledge the source up to the checkpoint. One
//! checkpoint is in progress at a time; processing continues meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::format::{CheckpointError, FORMAT_VERSION, Manifest, PluginVersion, SourcePosition};
use super::store::CheckpointStore;
use super::{EncodedState, PendingMessage};
use crate::config::{CheckpointConfig, Guarantee};
use crate::source::Ack;

/// Delivers the outputs a checkpoint held, once it is committed (the sink's `deliver` over
/// its `release`).
pub type DeliverHeld =
    Arc<dyn Fn(Vec<PendingMessage>) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// What a finished checkpoint task reports.
struct Outcome {
    store: CheckpointStore,
    result: Result<Committed, CheckpointError>,
    /// Held-back outputs that were not published (the commit failed): they go into the next
    /// checkpoint.
    unpublished: Vec<PendingMessage>,
}

/// A committed checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub id: u64,
    pub sequence: u64,
    pub blob_bytes: u64,
    /// From the snapshot to the commit.
    pub write: Duration,
}

/// Everything the run loop hands over for one checkpoint.
pub struct Snapshot {
    /// The stages' state, encoded during the pause.
    pub state: EncodedState,
    /// Outputs held for this checkpoint (`effectively-once`).
    pub pending: Vec<PendingMessage>,
    /// Per input, the last source stream sequence reflected in `state`.
    pub positions: Vec<u64>,
    pub watermark: Option<i64>,
    pub plugins: Vec<PluginVersion>,
    pub state_entries: u64,
    /// Publishing tasks of the covered batches' outputs: the checkpoint waits for them.
    pub publishing: Vec<JoinHandle<anyhow::Result<()>>>,
    /// Acknowledges each input up to its last covered message.
    pub acks: Vec<Ack>,
}

/// Takes a pipeline's checkpoints.
pub struct Checkpointer {
    store: Option<CheckpointStore>,
    config: CheckpointConfig,
    pipeline: String,
    /// The stream of each input.
    streams: Vec<String>,
    window: Option<String>,
    deliver_held: DeliverHeld,
    next_id: u64,
    next_due: Instant,
    task: Option<JoinHandle<Outcome>>,
    started: Option<Instant>,
    /// Outputs returned by a failed checkpoint, for the next one.
    pub returned: Vec<PendingMessage>,
    /// The last committed checkpoint.
    pub last: Option<Committed>,
    /// Checkpoints that failed (other than by a conflict) so far.
    pub failures: u64,
}

impl Checkpointer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: CheckpointStore,
        config: CheckpointConfig,
        pipeline: &str,
        streams: Vec<String>,
        window: Option<String>,
        deliver_held: DeliverHeld,
        next_id: u64,
    ) -> Self {
        Checkpointer {
            store: Some(store),
            next_due: Instant::now() + config.interval,
            config,
            pipeline: pipeline.to_owned(),
            streams,
            window,
            deliver_held,
            next_id,
            task: None,
            started: None,
            returned: Vec::new(),
            last: None,
            failures: 0,
        }
    }

    pub fn guarantee(&self) -> Guarantee {
        self.config.guarantee
    }

    /// Whether a checkpoint should start now (the interval passed and none is in progress).
    pub fn due(&self, now: Instant) -> bool {
        self.task.is_none() && now >= self.next_due
    }

    /// How long until the next checkpoint is due (zero when overdue), for quiet loops.
    pub fn until_due(&self, now: Instant) -> Duration {
        self.next_due.saturating_duration_since(now)
    }

    /// Whether a checkpoint is being written.
    pub fn in_progress(&self) -> bool {
        self.task.is_some()
    }

    /// Starts writing checkpoint `snap` in a task.
    pub fn start(&mut self, mut snap: Snapshot) {
        let Some(store) = self.store.take() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        let started = Instant::now();
        self.started = Some(started);
        self.next_due = started + self.config.interval;
        snap.pending
            .splice(0..0, std::mem::take(&mut self.returned));
        let manifest = Manifest {
            format: FORMAT_VERSION,
            pipeline: self.pipeline.clone(),
            id,
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_default(),
            guarantee: self.config.guarantee.name().into(),
            source: SourcePosition {
                stream: self.streams.first().cloned().unwrap_or_default(),
                sequence: snap.positions.first().copied().unwrap_or(0),
            },
            sources: if self.streams.len() > 1 {
                self.streams
                    .iter()
                    .enumerate()
                    .map(|(i, stream)| SourcePosition {
                        stream: stream.clone(),
                        sequence: snap.positions.get(i).copied().unwrap_or(0),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            watermark: snap.watermark,
            plugins: std::mem::take(&mut snap.plugins),
            window: self.window.clone(),
            blob: None,
            pending_outputs: snap.pending.len() as u64,
            pending_delivered: false,
            state_entries: snap.state_entries,
        };
        let deliver_held = self.deliver_held.clone();
        self.task = Some(tokio::spawn(write(
            store,
            manifest,
            snap,
            started,
            deliver_held,
        )));
    }

    /// Collects a finished checkpoint task. A conflict (another host committed) and a deleted
    /// bucket are fatal; other failures are logged and retried at the next interval.
    pub async fn poll(&mut self, wait: bool) -> Result<Option<Committed>, CheckpointError> {
        let Some(task) = &self.task else {
            return Ok(None);
        };
        if !wait && !task.is_finished() {
            return Ok(None);
        }
        let task = self.task.take().expect("checked above");
        let outcome = task.await.map_err(|e| {
            CheckpointError::nats("checkpoint task", std::io::Error::other(e.to_string()))
        })?;
        self.store = Some(outcome.store);
        match outcome.result {
            Ok(c) => {
                tracing::debug!(
                    checkpoint = c.id,
                    sequence = c.sequence,
                    bytes = c.blob_bytes,
                    ms = c.write.as_millis() as u64,
                    "checkpoint committed"
                );
                self.last = Some(c);
                Ok(Some(c))
            }
            Err(e @ (CheckpointError::Conflict { .. } | CheckpointError::StoreDeleted { .. })) => {
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint failed; retrying at the next interval");
                self.failures += 1;
                self.returned = outcome.unpublished;
                Ok(None)
            }
        }
    }
}

/// Writes checkpoint `manifest` (the task [`Checkpointer::start`] spawns): waits until every
/// output of the covered batches is stored, writes the blob, commits the manifest, delivers
/// the outputs it held, and acknowledges the source.
async fn write(
    mut store: CheckpointStore,
    mut manifest: Manifest,
    snap: Snapshot,
    started: Instant,
    deliver_held: DeliverHeld,
) -> Outcome {
    let id = manifest.id;
    for p in snap.publishing {
        let done = match p.await {
            Ok(r) => r.map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("publishing task failed: {e}")),
        };
        if let Err(e) = done {
            return Outcome {
                store,
                result: Err(CheckpointError::nats(
                    "publishing outputs",
                    std::io::Error::other(e),
                )),
                unpublished: snap.pending,
            };
        }
    }
    tracing::trace!(checkpoint = id, "covered outputs stored");
    let (state, pending) = (snap.state, snap.pending);
    let bytes = (!state.is_empty() || !pending.is_empty()).then(|| state.blob(&pending));
    let blob_bytes = bytes.as_ref().map_or(0, |b| b.len() as u64);
    if let Err(e) = store.commit(&mut manifest, bytes).await {
        return Outcome {
            store,
            result: Err(e),
            unpublished: pending,
        };
    }
    let write = started.elapsed();
    tracing::trace!(checkpoint = id, "committed; publishing held outputs");
    if !pending.is_empty() {
        match deliver_held(pending).await {
            Ok(()) => store.mark_delivered(&mut manifest).await,
            // Delivery retries until stored; an error here is not a NATS refusal.
            Err(e) => {
                tracing::error!(checkpoint = id, error = %e, "publishing held outputs failed")
            }
        }
    }
    tracing::trace!(
        checkpoint = id,
        "held outputs stored; acknowledging the source"
    );
    for ack in snap.acks {
        if let Err(e) = ack.await {
            tracing::warn!(checkpoint = id, error = %e, "acknowledging the source failed");
        }
    }
    Outcome {
        store,
        result: Ok(Committed {
            id,
            sequence: manifest.source.sequence,
            blob_bytes,
            write,
        }),
        unpublished: Vec::new(),
    }
}
