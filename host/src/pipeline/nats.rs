//! `weir run`: JetStream in, operator chain, JetStream out.
//!
//! The loop, per batch: fetch → run the chain (on a blocking thread; plugins are synchronous) →
//! publish results and dead letters → once the sink stream has acknowledged all of them,
//! acknowledge the source batch with one ack of its last message (AckPolicy::All). Publishing
//! a batch overlaps with fetching and processing the next ones (up to [`PIPELINE_DEPTH`]
//! batches awaiting their acks); source acks are still sent strictly in batch order, so an
//! ack never covers a message whose outputs are not stored. A crash anywhere before the ack
//! makes the batch replay on restart; the replay republishes the same message ids, which the
//! sink stream's duplicate window drops: at-least-once into the stream, without duplicates
//! inside the window.
//!
//! Shutdown (SIGINT/SIGTERM, or the `shutdown` future): stop fetching, finish the batches in
//! hand, acknowledge them, return.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::message::Message;
use tokio::task::JoinHandle;

use crate::admin::Metrics;
use crate::config::Pipeline;
use crate::config::WatermarkStrategy;
use crate::operator::process::KeyedProcess;
use crate::operator::window::WindowedAggregate;
use crate::operator::{Chain, DeadLetter, EventBatch};
use crate::runtime::Runtime;
use crate::sink::jetstream::{BatchOutput, JetStreamSink, Published, WindowResult};
use crate::source::jetstream::JetStreamSource;
use crate::window::{Emission, SourceWatermarks};

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
}

/// The processing stages of a pipeline, moved to a blocking thread for each batch.
struct Stages {
    runtime: Runtime,
    metrics: Arc<Metrics>,
    chain: Chain,
    window: Option<WindowedAggregate>,
    process: Option<KeyedProcess>,
    /// Per-partition bounded watermarks (`None`: no stateful stage, or punctuated).
    watermarks: Option<SourceWatermarks>,
}

impl Stages {
    fn build(
        runtime: &Runtime,
        pipeline: &Pipeline,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Stages {
            runtime: runtime.clone(),
            metrics,
            chain: super::build_chain(runtime, pipeline)?,
            window: super::build_window(runtime, pipeline)?,
            process: super::build_process(runtime, pipeline)?,
            watermarks: source_watermarks(pipeline),
        })
    }

    /// Runs a batch through the chain and then the window or process stage, if any: the
    /// events in order, split at watermark markers (`(source index, watermark)`), then the
    /// generated watermark.
    fn run(
        &mut self,
        events: EventBatch,
        refused: Vec<DeadLetter>,
        markers: &[(u32, i64)],
        subjects: &[String],
    ) -> BatchOutput {
        let out = self.chain.run(events);
        let mut result = BatchOutput {
            dead: refused,
            ..Default::default()
        };
        result.dead.extend(out.dead);
        if self.window.is_none() && self.process.is_none() {
            result.events = out.events;
            return result;
        }
        let events = out.events;
        let mut start = 0;
        for &(source, wm) in markers {
            let end = start + events.lineage[start..].partition_point(|&l| l < source);
            self.segment(&events, start, end, &mut result);
            self.advance(wm, &mut result);
            start = end;
        }
        self.segment(&events, start, events.len(), &mut result);
        if let Some(w) = &mut self.watermarks {
            let now = std::time::Instant::now();
            let view = events.view();
            for i in 0..view.len() {
                let partition = w.partition(&subjects[events.lineage[i] as usize]);
                w.observe(partition, view.time(i), now);
            }
            if let Some(wm) = w.update(now) {
                self.advance(wm, &mut result);
            }
        }
        result
    }

    /// Periodic work while no events arrive: idle partitions stop holding the watermark back.
    fn tick(&mut self) -> BatchOutput {
        let mut result = BatchOutput::default();
        if let Some(wm) = self
            .watermarks
            .as_mut()
            .and_then(|w| w.update(std::time::Instant::now()))
        {
            self.advance(wm, &mut result);
        }
        result
    }

    /// Events `lo..hi` into the window or process stage.
    fn segment(&mut self, events: &EventBatch, lo: usize, hi: usize, result: &mut BatchOutput) {
        if lo >= hi {
            return;
        }
        let sliced;
        let part = if lo == 0 && hi == events.len() {
            events
        } else {
            sliced = events.slice(lo, hi);
            &sliced
        };
        if let Some(process) = &mut self.process {
            let emitted = process.process_batch(&self.runtime, part, &mut result.dead);
            result.events.append(&emitted);
        }
        if let Some(window) = &mut self.window {
            let mut emitted = Vec::new();
            window.process_batch(&self.runtime, &part.view(), &mut emitted);
            absorb(window, emitted, Some(part), result);
        }
    }

    /// Advances the watermark of the window or process stage.
    fn advance(&mut self, wm: i64, result: &mut BatchOutput) {
        self.metrics
            .watermark
            .fetch_max(wm, std::sync::atomic::Ordering::Relaxed);
        if let Some(process) = &mut self.process {
            result
                .timers
                .extend(process.advance_watermark(&self.runtime, wm));
        }
        if let Some(window) = &mut self.window {
            let mut emitted = Vec::new();
            window.advance_watermark(&self.runtime, wm, &mut emitted);
            absorb(window, emitted, None, result);
        }
    }
}

/// The per-partition watermarks of a pipeline with a `[window]` or `[process]` and bounded
/// watermarks.
fn source_watermarks(pipeline: &Pipeline) -> Option<SourceWatermarks> {
    let c = &pipeline.config;
    let w = &c.source.watermarks;
    let stateful = c.window.is_some() || c.process.is_some();
    (stateful && w.strategy == WatermarkStrategy::Bounded).then(|| {
        SourceWatermarks::new(
            &c.source.subjects,
            w.out_of_orderness.as_millis().min(i64::MAX as u128) as i64,
            w.idle_timeout,
        )
    })
}

/// Sorts window emissions into results, late events and dead letters. `part` is the batch the
/// event indices of `Late`/`Failed` refer to.
fn absorb(
    window: &WindowedAggregate,
    emitted: Vec<Emission>,
    part: Option<&EventBatch>,
    result: &mut BatchOutput,
) {
    let plugin = window.instance.plugin().label();
    let letter = |index: usize, error: String| {
        let part = part.expect("event emissions come with their batch");
        let e = part.view().get(index);
        DeadLetter {
            source: part.lineage[index],
            operator: window.name.clone(),
            plugin: plugin.clone(),
            error,
            key: e.key.to_vec(),
            time: e.time,
            headers: e.headers.to_vec(),
            payload: e.payload.to_vec(),
        }
    };
    for e in emitted {
        match e {
            Emission::Fired {
                key,
                window,
                payload,
            } => result.windows.push(WindowResult {
                key,
                window,
                payload,
            }),
            Emission::Late { index } => result.late.push(letter(
                index,
                "late: every window of the event is past its allowed lateness".into(),
            )),
            Emission::Failed { index, error } => result.dead.push(letter(index, error)),
            Emission::WindowFailed {
                key,
                window: w,
                error,
            } => tracing::error!(
                key = %String::from_utf8_lossy(&key),
                start = w.start,
                end = w.end,
                error = %error,
                "window result failed; its state is kept"
            ),
        }
    }
}

/// A batch whose outputs are being published.
struct InFlight {
    publishing: JoinHandle<anyhow::Result<()>>,
    last: Option<Message>,
    inputs: u64,
    published: Published,
}

/// Waits for the oldest batch's outputs to be stored, then acknowledges its source messages.
async fn complete(
    batch: InFlight,
    summary: &mut RunSummary,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    batch
        .publishing
        .await
        .context("the publishing task panicked")??;
    if let Some(last) = &batch.last {
        // One ack covers the whole batch (AckPolicy::All). A lost ack only causes a replay,
        // whose republished ids the sink stream deduplicates.
        if let Err(e) = last.ack().await {
            tracing::warn!(error = %e, "acknowledging a batch failed; it will be replayed");
        }
    }
    summary.inputs += batch.inputs;
    summary.batches += 1;
    summary.results += batch.published.results as u64;
    summary.dead_letters += batch.published.dead_letters as u64;
    summary.late += batch.published.late as u64;
    use std::sync::atomic::Ordering::Relaxed;
    metrics.inputs.fetch_add(batch.inputs, Relaxed);
    metrics.batches.fetch_add(1, Relaxed);
    metrics
        .results
        .fetch_add(batch.published.results as u64, Relaxed);
    metrics
        .dead_letters
        .fetch_add(batch.published.dead_letters as u64, Relaxed);
    metrics.late.fetch_add(batch.published.late as u64, Relaxed);
    Ok(())
}

/// Runs `pipeline` against the NATS server at `url` until `shutdown` completes.
pub async fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    url: &str,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<RunSummary> {
    let mut stages = {
        let (rt, p, m) = (runtime.clone(), pipeline.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || Stages::build(&rt, &p, m)).await??
    };
    let client = async_nats::ConnectOptions::new()
        .name(format!("weir {}", pipeline.config.name.get_ref()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let sink_cfg = &pipeline.config.sink;
    // Every batch in the pipeline may hold `max_in_flight` un-awaited publish acks; the
    // client's limit must exceed their sum or publishing would wait on itself.
    let js = async_nats::jetstream::ContextBuilder::new()
        .max_ack_inflight(sink_cfg.max_in_flight * (PIPELINE_DEPTH + 1) + 64)
        .build(client);
    let mut source = JetStreamSource::connect(&js, pipeline).await?;
    let sink = Arc::new(JetStreamSink::new(
        js.clone(),
        pipeline.config.name.get_ref(),
        source.stream_name(),
        &sink_cfg.subject,
        &sink_cfg.dead_letter,
        sink_cfg.late.as_deref(),
        sink_cfg.max_in_flight,
    ));
    sink.check_streams()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", pipeline.file.display()))?;

    tracing::info!(pipeline = %pipeline.config.name.get_ref(), "running");
    let mut summary = RunSummary::default();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let started = Instant::now();
    let mut last_report = Instant::now();
    // With watermarks to keep moving, wake up at least every `interval` on a quiet stream.
    let tick = stages
        .watermarks
        .as_ref()
        .map(|_| pipeline.config.source.watermarks.interval);
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            // With batches awaiting their acks, wake up soon to acknowledge them even when
            // no further message arrives.
            b = source.next_batch(if in_flight.is_empty() { tick } else { Some(ACK_POLL) }) => b?,
        };
        // Acknowledge batches whose outputs are already stored, in order.
        while in_flight
            .front()
            .is_some_and(|b| b.publishing.is_finished())
        {
            let done = in_flight.pop_front().expect("front exists");
            complete(done, &mut summary, &metrics).await?;
        }
        if batch.origins.is_empty() {
            // A quiet moment: let the watermark advance over idle partitions.
            let (returned, output) = tokio::task::spawn_blocking(move || {
                let out = stages.tick();
                (stages, out)
            })
            .await
            .context("the operator thread panicked")?;
            stages = returned;
            if output.windows.is_empty() && output.timers.is_empty() {
                continue;
            }
            let (msgs, published) = sink.prepare(output, &[])?;
            let sink = sink.clone();
            in_flight.push_back(InFlight {
                publishing: tokio::spawn(async move { sink.publish_all(msgs).await }),
                last: None,
                inputs: 0,
                published,
            });
            continue;
        }
        let inputs = batch.origins.len() as u64;
        let (events, refused, markers) = (batch.events, batch.refused, batch.watermarks);
        let subjects: Vec<String> = batch.origins.iter().map(|o| o.subject.clone()).collect();
        let (returned, output) = tokio::task::spawn_blocking(move || {
            let out = stages.run(events, refused, &markers, &subjects);
            (stages, out)
        })
        .await
        .context("the operator thread panicked")?;
        stages = returned;
        let (msgs, published) = sink.prepare(output, &batch.origins)?;
        while in_flight.len() >= PIPELINE_DEPTH {
            let oldest = in_flight.pop_front().expect("queue is not empty");
            complete(oldest, &mut summary, &metrics).await?;
        }
        let sink = sink.clone();
        in_flight.push_back(InFlight {
            publishing: tokio::spawn(async move { sink.publish_all(msgs).await }),
            last: batch.last,
            inputs,
            published,
        });
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                inputs = summary.inputs,
                results = summary.results,
                dead_letters = summary.dead_letters,
                rate = format!("{:.0}/s", summary.inputs as f64 / secs),
                "progress"
            );
        }
    }
    while let Some(b) = in_flight.pop_front() {
        complete(b, &mut summary, &metrics).await?;
    }
    tracing::info!(
        inputs = summary.inputs,
        results = summary.results,
        dead_letters = summary.dead_letters,
        "stopped cleanly"
    );
    Ok(summary)
}
