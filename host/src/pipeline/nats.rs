//! `weir run`: JetStream in, operator chain and stateful stage, JetStream out, with
//! checkpoints.
//!
//! The loop, per batch: fetch → run the stages (on a blocking thread; plugins are
//! synchronous) → publish the chain's outputs (pipelined, up to [`PIPELINE_DEPTH`] batches
//! awaiting the sink's acks) — and the window/process outputs too, except with
//! `effectively-once`, where they are held for the next checkpoint. Every
//! `checkpoint.interval` (and at shutdown) a checkpoint is taken between two batches; see
//! [`crate::checkpoint`]. The source is acknowledged per checkpoint, after it is committed
//! (with `at-most-once`: as soon as a batch is fetched).
//!
//! At start the latest checkpoint is restored, the outputs it held are published again (the
//! sink stream drops those already stored, by message id), and the source resumes right
//! after the checkpoint's position.
//!
//! Shutdown (SIGINT/SIGTERM, or the `shutdown` future): stop fetching, finish the batches in
//! hand, take a last checkpoint, return.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::message::Message;
use tokio::task::JoinHandle;

use super::stages::Stages;
use crate::admin::Metrics;
use crate::checkpoint::coordinator::Snapshot;
use crate::checkpoint::{
    CheckpointStore, Checkpointer, PendingMessage, PluginVersion, Restored, StartFrom,
    restore_point,
};
use crate::config::{Guarantee, Pipeline};
use crate::runtime::Runtime;
use crate::sink::jetstream::{BatchOutput, JetStreamSink, Outgoing, Published};
use crate::source::jetstream::{JetStreamSource, Resume, SourceRef};

/// How soon a quiet loop looks again at batches awaiting their acks.
const ACK_POLL: Duration = Duration::from_millis(20);

/// Batches whose outputs may be awaiting the sink's acks at once.
pub const PIPELINE_DEPTH: usize = 2;

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub inputs: u64,
    pub results: u64,
    pub dead_letters: u64,
    pub late: u64,
    pub batches: u64,
    pub checkpoints: u64,
}

impl RunSummary {
    fn count(&mut self, p: Published, metrics: &Metrics) {
        self.results += p.results as u64;
        self.dead_letters += p.dead_letters as u64;
        self.late += p.late as u64;
        metrics.results.fetch_add(p.results as u64, Relaxed);
        metrics
            .dead_letters
            .fetch_add(p.dead_letters as u64, Relaxed);
        metrics.late.fetch_add(p.late as u64, Relaxed);
    }
}

/// The run loop's state between batches.
struct Loop {
    sink: Arc<JetStreamSink>,
    guarantee: Guarantee,
    metrics: Arc<Metrics>,
    summary: RunSummary,
    /// Publishing tasks, oldest first; a checkpoint takes them all to wait for.
    in_flight: VecDeque<JoinHandle<anyhow::Result<()>>>,
    /// Window/process outputs held for the next checkpoint (`effectively-once`).
    held: Vec<PendingMessage>,
    /// The last source sequence processed, and its message (to acknowledge).
    sequence: u64,
    last: Option<Message>,
    /// Whether anything changed since the last checkpoint.
    dirty: bool,
    plugins: Vec<PluginVersion>,
}

impl Loop {
    /// Routes a batch's outputs: the chain's to publishing now, the stateful stage's to
    /// publishing or, with `effectively-once`, to the next checkpoint.
    async fn emit(
        &mut self,
        chain: BatchOutput,
        stateful: BatchOutput,
        origins: &[SourceRef],
    ) -> anyhow::Result<()> {
        let (mut msgs, published) = self.sink.prepare(chain, origins, "")?;
        self.summary.count(published, &self.metrics);
        let (held, published) = self.sink.prepare(stateful, origins, "s/")?;
        self.summary.count(published, &self.metrics);
        if self.guarantee == Guarantee::EffectivelyOnce {
            self.held.extend(held.into_pending());
        } else {
            msgs.append(held);
        }
        if msgs.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= PIPELINE_DEPTH {
            let oldest = self.in_flight.pop_front().expect("queue is not empty");
            oldest.await.context("the publishing task panicked")??;
        }
        let sink = self.sink.clone();
        self.in_flight
            .push_back(tokio::spawn(async move { sink.publish_all(msgs).await }));
        Ok(())
    }

    /// Forgets publishing tasks that are done (in order), surfacing their errors.
    async fn reap(&mut self) -> anyhow::Result<()> {
        while self.in_flight.front().is_some_and(JoinHandle::is_finished) {
            let done = self.in_flight.pop_front().expect("front exists");
            done.await.context("the publishing task panicked")??;
        }
        Ok(())
    }

    /// Snapshots the stages (the pause) and starts writing a checkpoint.
    async fn checkpoint(
        &mut self,
        stages: Stages,
        checkpointer: &mut Checkpointer,
    ) -> anyhow::Result<Stages> {
        let began = Instant::now();
        let (stages, (state, watermark), entries) = tokio::task::spawn_blocking(move || {
            let mut stages = stages;
            let snapshot = stages.snapshot();
            let entries = stages.state_entries();
            (stages, snapshot, entries)
        })
        .await
        .context("the operator thread panicked")?;
        let pause = began.elapsed();
        self.metrics
            .checkpoint_pause_us
            .store(pause.as_micros() as u64, Relaxed);
        checkpointer.start(Snapshot {
            state,
            pending: std::mem::take(&mut self.held),
            sequence: self.sequence,
            watermark,
            plugins: self.plugins.clone(),
            state_entries: entries,
            publishing: self.in_flight.drain(..).collect(),
            ack: self.last.take(),
        });
        self.dirty = false;
        Ok(stages)
    }

    /// Collects a finished checkpoint (waiting for it with `wait`).
    async fn settle(&mut self, checkpointer: &mut Checkpointer, wait: bool) -> anyhow::Result<()> {
        let failures = checkpointer.failures;
        if let Some(c) = checkpointer.poll(wait).await? {
            self.summary.checkpoints += 1;
            self.metrics.checkpoints.fetch_add(1, Relaxed);
            self.metrics.checkpoint_sequence.store(c.sequence, Relaxed);
            self.metrics
                .checkpoint_write_ms
                .store(c.write.as_millis() as u64, Relaxed);
            self.metrics.checkpoint_bytes.store(c.blob_bytes, Relaxed);
        }
        if checkpointer.failures != failures {
            // Retry at the next interval even if no input arrives meanwhile.
            self.dirty = true;
        }
        Ok(())
    }
}

/// Runs `pipeline` against the NATS server at `url` until `shutdown` completes, starting
/// from checkpoint `from`.
pub async fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    url: &str,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
    from: StartFrom,
) -> anyhow::Result<RunSummary> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let guarantee = cfg.checkpoint.guarantee;
    let mut stages = {
        let (rt, p, m) = (runtime.clone(), pipeline.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || Stages::build(&rt, &p, m)).await??
    };
    let client = async_nats::ConnectOptions::new()
        .name(format!("weir {name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let sink_cfg = &cfg.sink;
    // Every batch in the pipeline may hold `max_in_flight` un-awaited publish acks, and so
    // may a checkpoint publishing held outputs; the client's limit must exceed their sum or
    // publishing would wait on itself.
    let js = async_nats::jetstream::ContextBuilder::new()
        .max_ack_inflight(sink_cfg.max_in_flight * (PIPELINE_DEPTH + 2) + 64)
        .build(client);
    let file = pipeline.file.display();
    let sink = Arc::new(JetStreamSink::new(
        js.clone(),
        name,
        &cfg.source.stream,
        sink_cfg,
        guarantee == Guarantee::EffectivelyOnce,
    ));
    sink.check_streams()
        .await
        .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    if guarantee == Guarantee::EffectivelyOnce {
        sink.check_duplicate_windows(cfg.checkpoint.interval + cfg.checkpoint.recovery_time)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    }

    let mut store = CheckpointStore::open(&js, name, &cfg.checkpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: checkpoints: {e}"))?;
    let (restored, next_id) = restore_point(&mut store, from)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: restoring pipeline {name:?}: {e:#}"))?;
    let window = cfg.window.as_ref().map(|w| w.description());
    let mut sequence = 0;
    let resume = match &restored {
        None if from == StartFrom::Fresh => Resume::After(0),
        None => Resume::AckFloor,
        Some(r) => {
            let m = &r.manifest;
            if m.source.stream != cfg.source.stream {
                anyhow::bail!(
                    "{file}: checkpoint {} of pipeline {name:?} is a position in stream {:?}, \
                     but `source.stream` is now {:?}; start afresh with `weir checkpoint \
                     delete --all`",
                    m.id,
                    m.source.stream,
                    cfg.source.stream
                );
            }
            sequence = m.source.sequence;
            if guarantee == Guarantee::AtMostOnce {
                Resume::AfterOrAckFloor(sequence)
            } else {
                Resume::After(sequence)
            }
        }
    };
    let mut republish = Vec::new();
    if let Some(Restored { manifest, mut blob }) = restored {
        republish = std::mem::take(&mut blob.pending);
        let w = window.clone();
        stages = tokio::task::spawn_blocking(move || {
            stages
                .restore(&manifest, blob, w.as_deref())
                .map(|()| stages)
                .map_err(|e| e.context(format!("restoring checkpoint {}", manifest.id)))
        })
        .await
        .context("the operator thread panicked")?
        .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    }
    if !republish.is_empty() {
        // Outputs the last checkpoint held: some may be stored already; their ids dedupe.
        tracing::info!(
            outputs = republish.len(),
            "publishing outputs held by the checkpoint"
        );
        sink.publish_all(Outgoing::from_pending(republish)).await?;
    }
    let mut source = JetStreamSource::connect(&js, pipeline, resume).await?;
    let plugins = {
        let (returned, plugins) = tokio::task::spawn_blocking(move || {
            let p = stages.plugin_versions();
            (stages, p)
        })
        .await
        .context("the operator thread panicked")?;
        stages = returned;
        plugins?
    };
    let mut checkpointer = Checkpointer::new(
        store,
        cfg.checkpoint.clone(),
        name,
        &cfg.source.stream,
        window,
        sink.clone(),
        next_id,
    );
    let mut state = Loop {
        sink: sink.clone(),
        guarantee,
        metrics: metrics.clone(),
        summary: RunSummary::default(),
        in_flight: VecDeque::new(),
        held: Vec::new(),
        sequence,
        last: None,
        dirty: false,
        plugins,
    };

    tracing::info!(pipeline = %name, guarantee = guarantee.name(), "running");
    let started = Instant::now();
    let mut last_report = Instant::now();
    // With watermarks to keep moving (or a processing-time window to fire), wake up at least
    // every `interval` on a quiet stream.
    let tick = stages
        .needs_ticks()
        .then_some(cfg.source.watermarks.interval);
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        let mut wait = tick;
        let mut shorten = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        if !state.in_flight.is_empty() || checkpointer.in_progress() {
            shorten(ACK_POLL);
        }
        if state.dirty {
            shorten(checkpointer.until_due(now).max(Duration::from_millis(1)));
        }
        let batch = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            b = source.next_batch(wait) => b?,
        };
        tracing::trace!(messages = batch.origins.len(), "fetched");
        state.reap().await?;
        state.settle(&mut checkpointer, false).await?;
        if batch.origins.is_empty() {
            // A quiet moment: let the watermark advance over idle partitions.
            let (returned, output) = tokio::task::spawn_blocking(move || {
                let out = stages.tick();
                (stages, out)
            })
            .await
            .context("the operator thread panicked")?;
            stages = returned;
            if output.has_derived() {
                state.emit(BatchOutput::default(), output, &[]).await?;
                state.dirty = true;
            }
        } else {
            if guarantee == Guarantee::AtMostOnce
                && let Some(last) = &batch.last
                && let Err(e) = last.ack().await
            {
                tracing::warn!(error = %e, "acknowledging a batch failed");
            }
            let inputs = batch.origins.len() as u64;
            let (events, refused, markers) = (batch.events, batch.refused, batch.watermarks);
            let subjects: Vec<String> = batch.origins.iter().map(|o| o.subject.clone()).collect();
            let (returned, (chain, stateful)) = tokio::task::spawn_blocking(move || {
                let out = stages.run(events, refused, &markers, &subjects);
                (stages, out)
            })
            .await
            .context("the operator thread panicked")?;
            stages = returned;
            state.emit(chain, stateful, &batch.origins).await?;
            if let Some(o) = batch.origins.last() {
                state.sequence = o.stream_sequence;
            }
            if guarantee != Guarantee::AtMostOnce {
                state.last = batch.last.or(state.last.take());
            }
            state.dirty = true;
            state.summary.inputs += inputs;
            state.summary.batches += 1;
            metrics.inputs.fetch_add(inputs, Relaxed);
            metrics.batches.fetch_add(1, Relaxed);
        }
        if state.dirty && checkpointer.due(Instant::now()) {
            stages = state.checkpoint(stages, &mut checkpointer).await?;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let s = &state.summary;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                inputs = s.inputs,
                results = s.results,
                dead_letters = s.dead_letters,
                checkpoints = s.checkpoints,
                rate = format!("{:.0}/s", s.inputs as f64 / secs),
                "progress"
            );
        }
    }
    // Shutdown: let a running checkpoint finish, then take a last one covering everything.
    state.settle(&mut checkpointer, true).await?;
    if state.dirty || !state.held.is_empty() {
        let _ = state.checkpoint(stages, &mut checkpointer).await?;
        state.settle(&mut checkpointer, true).await?;
    }
    while let Some(p) = state.in_flight.pop_front() {
        p.await.context("the publishing task panicked")??;
    }
    let s = state.summary;
    tracing::info!(
        inputs = s.inputs,
        results = s.results,
        dead_letters = s.dead_letters,
        checkpoints = s.checkpoints,
        "stopped cleanly"
    );
    Ok(s)
}
