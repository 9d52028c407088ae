//! The run loop, written once for every driver: a [`Source`] feeds the engine ([`Stages`], on
//! the operator thread) and a [`Sink`] takes what it produced; checkpoints, when the driver
//! has a checkpoint store, are taken between batches.
//!
//! Its phases, in order:
//! - **connect and check** (the driver's: open the source and sink, check destinations);
//! - **restore** ([`RunLoop::restore`]): state from the checkpoint, and the outputs it held
//!   delivered again (a sink with ids drops those stored already);
//! - **on batch** ([`RunLoop::on_batch`]): run the stages, deliver the chain's outputs
//!   (pipelined, up to [`PIPELINE_DEPTH`] batches awaiting the sink) and the stateful stage's
//!   too — except with `effectively-once`, where they are held for the next checkpoint;
//! - **on idle** ([`RunLoop::on_idle`]): on a quiet stream, watermarks over idle partitions
//!   and processing time still move;
//! - **end of input** ([`RunLoop::on_end`], bounded sources): event time jumps to the end;
//! - **shutdown** ([`RunLoop::shutdown`]): finish the batches in hand, take a last checkpoint,
//!   wait for every delivery.
//!
//! Every `checkpoint.interval` a checkpoint is taken between two batches (see
//! [`crate::checkpoint`]). The checkpoint holds the source position a restart resumes from;
//! the source is acknowledged batch by batch, once the outputs of the batch (and of every
//! batch before it) are stored — so the server never holds a checkpoint interval of pending
//! acknowledgements — and, for the batches whose outputs a checkpoint holds back, by that
//! checkpoint after its commit (with `at-most-once`: as soon as a batch is fetched).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::hotload::{Prepared, SwapEvent};
use super::operator_thread::OperatorThread;
use super::stages::{Stages, StagesOutput};
use crate::admin::Metrics;
use crate::checkpoint::coordinator::Snapshot;
use crate::checkpoint::{Checkpointer, PendingMessage, PluginVersion, Restored};
use crate::config::Guarantee;
use crate::sink::{Published, Scope, Sink};
use crate::source::{Ack, Origin, Polled, Source, SourceBatch};

/// How soon a quiet loop looks again at deliveries awaiting their acks.
const ACK_POLL: Duration = Duration::from_millis(20);

/// Batches whose outputs may be awaiting the sink at once.
pub const PIPELINE_DEPTH: usize = 2;

mod swap;

/// How often a quiet loop looks for new plugin versions (hot-loading).
const SWAP_POLL: Duration = Duration::from_millis(100);

/// How often `/plugins` is refreshed (a quarter second: `weir top` takes operator rates from it).
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Source messages read (events, markers and refused messages).
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

/// The error a pipeline stops with when an operator failed for good: nothing from `from` on is
/// committed, so a restart processes it again (with a fixed plugin).
fn stopped(reason: &str, from: u64) -> anyhow::Error {
    tracing::error!(
        reason,
        "an operator failed; the pipeline stops taking input"
    );
    anyhow::anyhow!(
        "{reason}; the pipeline stopped taking input: nothing from source position {from} on \
         was committed or acknowledged, and a restart processes it again"
    )
}

/// Keeps `ack` as input `input`'s newest acknowledgement (`AckPolicy::All`: acknowledging a
/// batch acknowledges that input's batches before it).
fn keep_newest(newest: &mut Vec<Option<Ack>>, input: u16, ack: Ack) {
    let input = usize::from(input);
    if newest.len() <= input {
        newest.resize_with(input + 1, || None);
    }
    newest[input] = Some(ack);
}

/// The run loop's state between batches.
pub struct RunLoop<K: Sink> {
    sink: Arc<K>,
    stages: OperatorThread,
    checkpointer: Option<Checkpointer>,
    guarantee: Guarantee,
    metrics: Arc<Metrics>,
    summary: RunSummary,
    /// Deliveries, oldest first; a checkpoint takes them all to wait for.
    in_flight: VecDeque<JoinHandle<anyhow::Result<()>>>,
    /// Stateful outputs held for the next checkpoint (`effectively-once`).
    held: Vec<PendingMessage>,
    /// The position of the last source message processed (of the first input).
    sequence: u64,
    /// Per input, the position of its last message processed.
    positions: Vec<u64>,
    /// Source acknowledgements, oldest first, each waiting until the deliveries started up to
    /// its batch (the count it carries) have finished ([`Self::settle_acks`]), with the input
    /// it acknowledges.
    acks: VecDeque<(u64, u16, Ack)>,
    /// Deliveries started since the loop began.
    started: u64,
    /// Deliveries finished, or handed to a checkpoint to wait for, since the loop began.
    finished: u64,
    /// Whether anything changed since the last checkpoint.
    dirty: bool,
    /// The plugin versions checkpoints record.
    plugins: Vec<PluginVersion>,
    /// How often the stages want to be ticked on a quiet stream.
    tick: Option<Duration>,
    /// New plugin versions, prepared off the hot path (hot-loading).
    swaps: Option<mpsc::Receiver<Prepared>>,
    /// A swap or rollback whose versions no committed checkpoint records yet: the outputs
    /// of the batches run since are held until one does ([`swap::Barrier`]).
    barrier: Option<swap::Barrier>,
    /// Told of every swap, refusal and canary rollback (the registry follower keeps its
    /// tags in step).
    swap_events: Option<mpsc::UnboundedSender<SwapEvent>>,
    /// When `/plugins` was last refreshed (`None`: it is due).
    statuses_at: Option<Instant>,
    /// Swaps wait until every input's position reaches its entry here (a replay after a
    /// restore runs on the versions the checkpoint records) or the source goes quiet.
    replay_until: Option<Vec<u64>>,
}

impl<K: Sink> RunLoop<K> {
    /// A loop over `stages` delivering to `sink`, checkpointing with `checkpointer` (none:
    /// outputs are delivered at once and nothing is acknowledged), ticking the stages every
    /// `tick` on a quiet stream when they need it.
    pub async fn new(
        sink: Arc<K>,
        stages: Stages,
        checkpointer: Option<Checkpointer>,
        guarantee: Guarantee,
        metrics: Arc<Metrics>,
        tick: Duration,
    ) -> anyhow::Result<Self> {
        let tick = stages.needs_ticks().then_some(tick);
        let mut stages = OperatorThread::new(stages);
        let plugins = match checkpointer {
            Some(_) => stages.run(|s| s.plugin_versions()).await??,
            None => Vec::new(),
        };
        Ok(RunLoop {
            sink,
            stages,
            checkpointer,
            guarantee,
            metrics,
            summary: RunSummary::default(),
            in_flight: VecDeque::new(),
            held: Vec::new(),
            sequence: 0,
            positions: Vec::new(),
            acks: VecDeque::new(),
            started: 0,
            finished: 0,
            dirty: false,
            plugins,
            tick,
            swaps: None,
            barrier: None,
            swap_events: None,
            statuses_at: None,
            replay_until: None,
        })
    }

    /// Holds swaps until the position of every input `i` reaches `positions[i]` (or the
    /// source is quiet).
    pub fn with_replay_until(mut self, positions: Option<Vec<u64>>) -> Self {
        self.replay_until = positions;
        self
    }

    /// How many messages the inputs are still behind the replay's end: the previous run had
    /// taken them in (0: not replaying).
    fn replay_left(&self) -> u64 {
        let Some(until) = &self.replay_until else {
            return 0;
        };
        let at = |i: usize| self.positions.get(i).copied().unwrap_or(0);
        until
            .iter()
            .enumerate()
            .map(|(i, u)| u.saturating_sub(at(i)))
            .sum()
    }

    /// Tells `events` of every swap, refused swap and canary rollback.
    pub fn with_swap_events(mut self, events: mpsc::UnboundedSender<SwapEvent>) -> Self {
        self.swap_events = Some(events);
        self
    }

    /// Takes new plugin versions from `swaps` and installs them between two batches.
    pub fn with_swaps(mut self, swaps: mpsc::Receiver<Prepared>) -> Self {
        self.swaps = Some(swaps);
        self
    }

    /// Restore: puts the checkpoint's state back (`window`: the pipeline's window, which must
    /// be the checkpoint's) and delivers the outputs it held.
    pub async fn restore(
        &mut self,
        restored: Restored,
        window: Option<String>,
    ) -> anyhow::Result<()> {
        let Restored { manifest, mut blob } = restored;
        self.sequence = manifest.source.sequence;
        self.positions = manifest.positions().iter().map(|p| p.sequence).collect();
        if let Some(until) = self
            .replay_until
            .as_ref()
            .filter(|_| self.replay_left() > 0)
        {
            tracing::info!(
                from = ?self.positions,
                until = ?until,
                "replaying {} messages the previous run had taken in after its last checkpoint",
                self.replay_left()
            );
        }
        let mut republish = std::mem::take(&mut blob.pending);
        if manifest.pending_delivered {
            // Stored after the commit: publishing them again could outlive the duplicate
            // window and duplicate them.
            republish.clear();
        }
        self.stages
            .run(move |s| {
                s.restore(&manifest, blob, window.as_deref())
                    .map_err(|e| e.context(format!("restoring checkpoint {}", manifest.id)))
            })
            .await??;
        if !republish.is_empty() {
            // Outputs the last checkpoint held: some may be stored already; their ids dedupe.
            tracing::info!(
                outputs = republish.len(),
                "publishing outputs held by the checkpoint"
            );
            self.sink.deliver(self.sink.release(republish)).await?;
        }
        Ok(())
    }

    /// Runs until `shutdown` completes or `source` ends, then shuts down.
    pub async fn run(
        mut self,
        mut source: impl Source,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<RunSummary> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        tokio::pin!(shutdown);
        self.publish_statuses().await?;
        self.metrics.health.set_consuming(true);
        loop {
            let wait = self.next_wait();
            let polled = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                p = self.metrics.health.awaiting_input(source.next_batch(wait)) => p?,
            };
            self.reap().await?;
            self.collect_checkpoint(false).await?;
            self.advance_barrier().await?;
            let end = matches!(polled, Polled::End);
            match polled {
                Polled::Batch(batch) => {
                    self.on_batch(*batch).await?;
                    self.end_replay(false);
                }
                Polled::Quiet => {
                    self.end_replay(true);
                    self.on_idle().await?
                }
                Polled::End => self.on_end().await?,
            }
            if self.dirty
                && self
                    .checkpointer
                    .as_ref()
                    .is_some_and(|c| c.due(Instant::now()))
            {
                self.checkpoint().await?;
            }
            if end {
                break;
            }
            self.swap().await?;
            self.publish_statuses().await?;
            if last_report.elapsed() >= REPORT_EVERY {
                last_report = Instant::now();
                self.report(started);
            }
        }
        self.shutdown().await
    }

    /// How long to wait for the next batch: on a quiet stream the stages' tick, deliveries
    /// awaiting acks and a due checkpoint bring the loop back sooner.
    fn next_wait(&self) -> Option<Duration> {
        let mut wait = self.tick;
        let mut shorten = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        let checkpointing = self.checkpointer.as_ref();
        if !self.in_flight.is_empty() || checkpointing.is_some_and(Checkpointer::in_progress) {
            shorten(ACK_POLL);
        }
        if self.swaps.is_some() {
            // A new plugin version must not wait for input to be swapped in.
            shorten(SWAP_POLL);
        }
        if let Some(c) = checkpointing.filter(|_| self.dirty) {
            shorten(c.until_due(Instant::now()).max(Duration::from_millis(1)));
        }
        wait
    }

    /// On batch: the stages run it, its outputs go to the sink (or are held), and its
    /// position and acknowledgement are kept for the next checkpoint.
    pub async fn on_batch(&mut self, mut batch: SourceBatch) -> anyhow::Result<()> {
        if self.guarantee == Guarantee::AtMostOnce
            && let Some(ack) = batch.ack.take()
            && let Err(e) = ack.await
        {
            tracing::warn!(error = %format!("{e:#}"), "acknowledging a batch failed");
        }
        let inputs = batch.origins.len() as u64;
        let (batch, out, canaries) = self
            .stages
            .run(move |s| {
                let events = std::mem::take(&mut batch.events);
                let refused = std::mem::take(&mut batch.refused);
                let out = s.run(events, refused, &batch.watermarks, &batch.origins);
                let settled = s.settle_canaries();
                let canaries = (!settled.is_empty()).then(|| (settled, s.plugin_versions()));
                (batch, out, canaries)
            })
            .await?;
        if let Some(reason) = out.chain.stopped.as_ref().or(out.stateful.stopped.as_ref()) {
            let from = batch.origins.first().map_or(0, |o| o.sequence);
            self.metrics.health.set_failed("pipeline", reason);
            return Err(stopped(reason, from));
        }
        self.emit(out, &batch.origins).await?;
        if let Some(position) = batch.last_position() {
            let input = usize::from(batch.input);
            if self.positions.len() <= input {
                self.positions.resize(input + 1, 0);
            }
            self.positions[input] = position;
            if input == 0 {
                self.sequence = position;
            }
        }
        if let Some((settled, plugins)) = canaries {
            self.on_canaries(settled, plugins?);
        }
        if let Some(ack) = batch.ack {
            // Outputs held by a swap barrier go out with the checkpoint that records the new
            // versions: so does the acknowledgement of their batches.
            let after = if self.barrier.is_some() {
                u64::MAX
            } else {
                self.started
            };
            self.acks.push_back((after, batch.input, ack));
            self.settle_acks().await;
        }
        self.dirty = true;
        self.summary.inputs += inputs;
        self.summary.batches += 1;
        self.metrics.inputs.fetch_add(inputs, Relaxed);
        self.metrics.batches.fetch_add(1, Relaxed);
        Ok(())
    }

    /// On idle: watermarks advance over idle partitions; processing time fires.
    pub async fn on_idle(&mut self) -> anyhow::Result<()> {
        let out = self.stages.run(Stages::tick).await?;
        self.emit_stateful(out).await
    }

    /// End of input: event time jumps to its end, firing every window and timer.
    pub async fn on_end(&mut self) -> anyhow::Result<()> {
        let out = self.stages.run(Stages::end_of_input).await?;
        self.emit_stateful(out).await
    }

    /// Outputs of the stateful stage alone (no source batch produced them).
    async fn emit_stateful(
        &mut self,
        stateful: crate::operator::BatchOutput,
    ) -> anyhow::Result<()> {
        if let Some(reason) = &stateful.stopped {
            self.metrics.health.set_failed("pipeline", reason);
            return Err(stopped(reason, self.sequence + 1));
        }
        if stateful.is_empty() {
            return Ok(());
        }
        let out = StagesOutput {
            chain: Default::default(),
            stateful,
        };
        self.emit(out, &[]).await?;
        self.dirty = true;
        Ok(())
    }

    /// Routes a batch's outputs: the chain's to delivery now, the stateful stage's to
    /// delivery or, with `effectively-once` and checkpoints, to the next checkpoint.
    async fn emit(&mut self, out: StagesOutput, origins: &[Origin]) -> anyhow::Result<()> {
        let (mut msgs, published) = self.sink.prepare(out.chain, origins, Scope::Chain);
        self.summary.count(published, &self.metrics);
        let (stateful, published) = self.sink.prepare(out.stateful, origins, Scope::Stateful);
        self.summary.count(published, &self.metrics);
        if self.guarantee == Guarantee::EffectivelyOnce && self.checkpointer.is_some() {
            self.held.extend(self.sink.hold(stateful));
        } else {
            msgs.extend(stateful);
        }
        if let Some(barrier) = &mut self.barrier {
            // Made by versions no committed checkpoint records yet: held until one does.
            barrier.held.extend(self.sink.hold(msgs));
            return Ok(());
        }
        if msgs.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= PIPELINE_DEPTH {
            let oldest = self.in_flight.pop_front().expect("queue is not empty");
            oldest.await.context("the delivering task panicked")??;
            self.finished += 1;
        }
        self.in_flight
            .push_back(tokio::spawn(self.sink.deliver(msgs)));
        self.started += 1;
        Ok(())
    }

    /// Forgets deliveries that are done (in order), surfacing their errors, and acknowledges
    /// the source as far as they allow.
    async fn reap(&mut self) -> anyhow::Result<()> {
        while self.in_flight.front().is_some_and(JoinHandle::is_finished) {
            let done = self.in_flight.pop_front().expect("front exists");
            done.await.context("the delivering task panicked")??;
            self.finished += 1;
        }
        self.settle_acks().await;
        Ok(())
    }

    /// Acknowledges the source up to the newest batch whose outputs, and those of every batch
    /// before it, are stored (one ack: `AckPolicy::All` covers the messages before it). A
    /// failed acknowledgement loses nothing: the checkpoint, not the server's ack floor, says
    /// where a restart resumes, and the next acknowledgement covers these messages too.
    async fn settle_acks(&mut self) {
        let mut newest = Vec::new();
        while self
            .acks
            .front()
            .is_some_and(|(after, _, _)| *after <= self.finished)
        {
            if let Some((_, input, ack)) = self.acks.pop_front() {
                keep_newest(&mut newest, input, ack);
            }
        }
        for ack in newest.into_iter().flatten() {
            if let Err(e) = ack.await {
                tracing::debug!(error = %format!("{e:#}"), "acknowledging the source failed");
            }
        }
    }

    /// Snapshots the stages (the pause) and starts writing a checkpoint.
    async fn checkpoint(&mut self) -> anyhow::Result<()> {
        let Some(checkpointer) = &mut self.checkpointer else {
            return Ok(());
        };
        let began = Instant::now();
        let ((state, watermark), entries) = self
            .stages
            .run(|s| (s.snapshot(), s.state_entries()))
            .await?;
        self.metrics
            .checkpoint_pause_us
            .store(began.elapsed().as_micros() as u64, Relaxed);
        let mut pending = std::mem::take(&mut self.held);
        if let Some(barrier) = &mut self.barrier {
            // This checkpoint records the new versions: it publishes what they made so far.
            pending.append(&mut barrier.held);
            barrier.expected = Some(self.summary.checkpoints + 1);
        }
        checkpointer.start(Snapshot {
            state,
            pending,
            positions: self.positions.clone(),
            watermark,
            plugins: self.plugins.clone(),
            state_entries: entries,
            publishing: self.in_flight.drain(..).collect(),
            // The checkpoint waits for every delivery in flight: it acknowledges each
            // input's newest batch once they are stored and the commit is durable.
            acks: {
                let mut newest = Vec::new();
                for (_, input, ack) in self.acks.drain(..) {
                    keep_newest(&mut newest, input, ack);
                }
                newest.into_iter().flatten().collect()
            },
        });
        self.finished = self.started;
        self.acks.clear();
        self.dirty = false;
        Ok(())
    }

    /// Collects a finished checkpoint (waiting for it with `wait`).
    async fn collect_checkpoint(&mut self, wait: bool) -> anyhow::Result<()> {
        let Some(checkpointer) = &mut self.checkpointer else {
            return Ok(());
        };
        let failures = checkpointer.failures;
        let polled = checkpointer.poll(wait).await.inspect_err(|e| {
            // A conflict or a deleted bucket: the host stops, not ready meanwhile.
            self.metrics
                .health
                .set_failed("checkpoints", &e.to_string());
        })?;
        if let Some(c) = polled {
            self.summary.checkpoints += 1;
            let m = &self.metrics;
            m.checkpoint_committed();
            m.checkpoint_sequence.store(c.sequence, Relaxed);
            m.checkpoint_write_ms
                .store(c.write.as_millis() as u64, Relaxed);
            m.checkpoint_bytes.store(c.blob_bytes, Relaxed);
        }
        if checkpointer.failures != failures {
            // Retry at the next interval even if no input arrives meanwhile.
            self.dirty = true;
        }
        Ok(())
    }

    fn report(&self, started: Instant) {
        let s = &self.summary;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            inputs = s.inputs,
            results = s.results,
            dead_letters = s.dead_letters,
            checkpoints = s.checkpoints,
            rate = format!("{:.0}/s", s.inputs as f64 / secs),
            "progress"
        );
        if let Some(until) = self
            .replay_until
            .as_ref()
            .filter(|_| self.replay_left() > 0)
        {
            tracing::info!(
                positions = ?self.positions,
                until = ?until,
                left = self.replay_left(),
                "replaying what the previous run had taken in (plugin swaps wait for it)"
            );
        }
    }

    /// Ends the replay after a restore once the source position has passed what the previous
    /// run had taken in, or the source is quiet (`caught_up`).
    fn end_replay(&mut self, caught_up: bool) {
        if self.replay_until.is_none() {
            return;
        }
        if caught_up || self.replay_left() == 0 {
            self.replay_until = None;
            tracing::info!(positions = ?self.positions, "replay done");
        }
    }

    /// Shutdown: let a running checkpoint finish, take a last one covering everything, wait
    /// for every delivery.
    pub async fn shutdown(mut self) -> anyhow::Result<RunSummary> {
        self.metrics.health.set_consuming(false);
        self.collect_checkpoint(true).await?;
        let barrier = self.barrier.is_some();
        if self.checkpointer.is_some() && (self.dirty || !self.held.is_empty() || barrier) {
            self.checkpoint().await?;
            self.collect_checkpoint(true).await?;
            self.advance_barrier().await?;
        }
        while let Some(p) = self.in_flight.pop_front() {
            p.await.context("the delivering task panicked")??;
            self.finished += 1;
        }
        self.settle_acks().await;
        let s = self.summary;
        tracing::info!(
            inputs = s.inputs,
            results = s.results,
            dead_letters = s.dead_letters,
            checkpoints = s.checkpoints,
            "stopped cleanly"
        );
        Ok(s)
    }
}
