//! `weir run`: JetStream in, operator chain, JetStream out.
//!
//! The loop, per batch: fetch → run the chain (on a blocking thread; plugins are synchronous) →
//! publish results and dead letters and wait for the sink stream's acks → acknowledge the
//! source batch with one ack of its last message (AckPolicy::All). A crash anywhere before the
//! ack makes the server redeliver the batch; the replay republishes the same message ids,
//! which the sink stream's duplicate window drops: at-least-once delivery into the stream,
//! without duplicates inside the window.
//!
//! Shutdown (SIGINT/SIGTERM, or the `shutdown` future): stop fetching, finish the batch in
//! hand, acknowledge it, return.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Pipeline;
use crate::operator::chain::ChainOutput;
use crate::runtime::Runtime;
use crate::sink::jetstream::JetStreamSink;
use crate::source::jetstream::JetStreamSource;

/// Totals of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub inputs: u64,
    pub results: u64,
    pub dead_letters: u64,
    pub batches: u64,
}

/// Runs `pipeline` against the NATS server at `url` until `shutdown` completes.
pub async fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    url: &str,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let mut chain = {
        let (rt, p) = (runtime.clone(), pipeline.clone());
        tokio::task::spawn_blocking(move || super::build_chain(&rt, &p)).await??
    };
    let client = async_nats::ConnectOptions::new()
        .name(format!("weir {}", pipeline.config.name.get_ref()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    let js = async_nats::jetstream::new(client);
    let mut source = JetStreamSource::connect(&js, pipeline).await?;
    let sink_cfg = &pipeline.config.sink;
    let sink = JetStreamSink::new(
        js.clone(),
        pipeline.config.name.get_ref(),
        source.stream_name(),
        &sink_cfg.subject,
        &sink_cfg.dead_letter,
        sink_cfg.max_in_flight,
    );
    sink.check_streams()
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", pipeline.file.display()))?;

    tracing::info!(pipeline = %pipeline.config.name.get_ref(), "running");
    let mut summary = RunSummary::default();
    let started = Instant::now();
    let mut last_report = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let batch = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            b = source.next_batch() => b?,
        };
        if batch.origins.is_empty() {
            continue;
        }
        let inputs = batch.origins.len() as u64;
        let events = batch.events;
        let (returned, output): (_, ChainOutput) = tokio::task::spawn_blocking(move || {
            let out = chain.run(events);
            (chain, out)
        })
        .await
        .context("the operator thread panicked")?;
        chain = returned;
        let published = sink.publish(output, batch.refused, &batch.origins).await?;
        if let Some(last) = &batch.last {
            // One ack covers the whole batch (AckPolicy::All). A lost ack only causes a
            // redelivery, whose republished ids the sink stream deduplicates.
            if let Err(e) = last.ack().await {
                tracing::warn!(error = %e, "acknowledging the batch failed; it will be redelivered");
            }
        }
        summary.inputs += inputs;
        summary.batches += 1;
        summary.results += published.results as u64;
        summary.dead_letters += published.dead_letters as u64;
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
    tracing::info!(
        inputs = summary.inputs,
        results = summary.results,
        dead_letters = summary.dead_letters,
        "stopped cleanly"
    );
    Ok(summary)
}
