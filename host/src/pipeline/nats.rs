//! `weir run`: JetStream in, the engine, JetStream out, with checkpoints — the NATS driver of
//! the [`RunLoop`](super::run_loop::RunLoop).
//!
//! Connect and check: the NATS connection, the sink streams (they capture the sink subjects;
//! with `effectively-once` their duplicate windows are long enough), the checkpoint store and
//! the checkpoint to start from. Then the run loop restores it, and the source resumes right
//! after the checkpoint's position.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use async_nats::jetstream;

use super::run_loop::{PIPELINE_DEPTH, RunLoop, RunSummary};
use super::stages::Stages;
use crate::admin::{Health, Metrics};
use crate::checkpoint::coordinator::DeliverHeld;
use crate::checkpoint::{CheckpointStore, Checkpointer, Restored, StartFrom, restore_point};
use crate::config::{Guarantee, Pipeline};
use crate::runtime::Runtime;
use crate::sink::Sink;
use crate::sink::jetstream::JetStreamSink;
use crate::source::SourcePartitions;
use crate::source::jetstream::{JetStreamSource, Resume};
use crate::telemetry::redact::redact_url;

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
    let stages = {
        let (rt, p, m) = (runtime.clone(), pipeline.clone(), metrics.clone());
        let partitions = SourcePartitions::of(&cfg.source);
        tokio::task::spawn_blocking(move || Stages::build(&rt, &p, m, &partitions))
            .await
            .context("loading the plugins panicked")??
    };
    let (js, sink) = connect_and_check(pipeline, url, &metrics.health).await?;
    let file = pipeline.file.display();
    let mut store = CheckpointStore::open(&js, name, &cfg.checkpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: checkpoints: {e}"))?;
    let (restored, next_id) = restore_point(&mut store, from)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: restoring pipeline {name:?}: {e:#}"))?;
    let resume = resume_point(pipeline, restored.as_ref(), from)?;
    let window = cfg.window.as_ref().map(|w| w.description());
    let deliver_held: DeliverHeld = {
        let sink = sink.clone();
        Arc::new(move |held| Box::pin(sink.deliver(sink.release(held))))
    };
    let checkpointer = Checkpointer::new(
        store,
        cfg.checkpoint.clone(),
        name,
        &cfg.source.stream,
        window.clone(),
        deliver_held,
        next_id,
    );
    let tick = cfg.source.watermarks.interval;
    let mut run = RunLoop::new(sink, stages, Some(checkpointer), guarantee, metrics, tick).await?;
    if let Some(restored) = restored {
        run.restore(restored, window)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    }
    let source = JetStreamSource::connect(&js, pipeline, resume).await?;
    tracing::info!(pipeline = %name, guarantee = guarantee.name(), "running");
    run.run(source, shutdown).await
}

/// Connect and check: connects to NATS (retrying until the server is up) and checks that the
/// sink's streams exist and suit the delivery guarantee.
async fn connect_and_check(
    pipeline: &Pipeline,
    url: &str,
    health: &Arc<Health>,
) -> anyhow::Result<(jetstream::Context, Arc<JetStreamSink>)> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let client = async_nats::ConnectOptions::new()
        .name(format!("weir {name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .event_callback(health.nats_events())
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {}", redact_url(url)))?;
    // Every batch in the pipeline may hold `max_in_flight` un-awaited publish acks, and so
    // may a checkpoint publishing held outputs; the client's limit must exceed their sum or
    // publishing would wait on itself.
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(cfg.sink.max_in_flight * (PIPELINE_DEPTH + 2) + 64)
        .build(client);
    let effectively_once = cfg.checkpoint.guarantee == Guarantee::EffectivelyOnce;
    let sink = JetStreamSink::new(
        js.clone(),
        name,
        &cfg.source.stream,
        &cfg.sink,
        effectively_once,
    );
    let file = pipeline.file.display();
    sink.check_streams()
        .await
        .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    if effectively_once {
        sink.check_duplicate_windows(cfg.checkpoint.interval + cfg.checkpoint.recovery_time)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    }
    Ok((js, Arc::new(sink)))
}

/// Where the source resumes: right after the restored checkpoint's position (it must be a
/// position in the same stream), or — without one — from the start or the consumer's ack
/// floor.
fn resume_point(
    pipeline: &Pipeline,
    restored: Option<&Restored>,
    from: StartFrom,
) -> anyhow::Result<Resume> {
    let cfg = &pipeline.config;
    let Some(r) = restored else {
        return Ok(match from {
            StartFrom::Fresh => Resume::After(0),
            _ => Resume::AckFloor,
        });
    };
    let m = &r.manifest;
    if m.source.stream != cfg.source.stream {
        anyhow::bail!(
            "{}: checkpoint {} of pipeline {:?} is a position in stream {:?}, but \
             `source.stream` is now {:?}; start afresh with `weir checkpoint delete --all`",
            pipeline.file.display(),
            m.id,
            cfg.name.get_ref(),
            m.source.stream,
            cfg.source.stream
        );
    }
    Ok(if cfg.checkpoint.guarantee == Guarantee::AtMostOnce {
        Resume::AfterOrAckFloor(m.source.sequence)
    } else {
        Resume::After(m.source.sequence)
    })
}
