//! `weir run --local` and `weir plugin test`: the pipeline over a JSON-lines file, without
//! NATS — the same engine and run loop as `weir run`, driven by a [`JsonLinesSource`] and a
//! [`StdoutSink`], so a local run shows production semantics (watermarks, windows, process
//! functions, `[[after]]`, dead-lettering).
//!
//! Results go to stdout as JSON lines; dead letters and late events to stderr as JSON lines
//! with the reason and the input line. Events are read in batches of the source's
//! `batch_size`. If the input holds `{"watermark": W}` lines, only those advance event time
//! (deterministic tests); otherwise bounded watermarks trail the newest event time by
//! `out_of_orderness`, over one partition per input. A pipeline of several inputs
//! (`[[sources]]`) reads them from the one file: each event line says its `"input"`. The end of the input advances event time to its
//! end: every window fires and every event-time timer; processing-time timers still pending
//! do not fire.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::run_loop::{RunLoop, RunSummary};
use super::stages::Stages;
use crate::admin::Metrics;
use crate::config::{Guarantee, Pipeline};
use crate::runtime::Runtime;
use crate::sink::stdout::StdoutSink;
use crate::source::json_lines::JsonLinesSource;

/// Runs `pipeline` over the events in `input`, writing to `sink`.
pub async fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    input: &Path,
    sink: StdoutSink,
    watch: bool,
) -> anyhow::Result<RunSummary> {
    let cfg = &pipeline.config;
    let mut source = JsonLinesSource::open(input, cfg.source.batch_size)?.with_fields(cfg.inputs());
    if cfg.sources.len() > 1 {
        let names = (0..cfg.sources.len())
            .filter_map(|i| pipeline.input_name(i).map(str::to_owned))
            .collect();
        source = source.with_inputs(names);
    }
    let partitions = source.partitions(cfg);
    let metrics = Metrics::new(cfg.name.get_ref());
    let stages = {
        // Plugin calls block until their deadline: not on a task of the runtime.
        let (rt, p, m) = (runtime.clone(), pipeline.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || Stages::build(&rt, &p, m, &partitions))
            .await
            .context("loading the plugins panicked")??
    };
    let tick = cfg.source.watermarks.interval;
    let run = RunLoop::new(
        Arc::new(sink),
        stages,
        None,
        Guarantee::AtLeastOnce,
        metrics,
        tick,
    )
    .await?;
    let hot = super::watch::HotLoad {
        files: watch,
        registry: None,
        pending: Vec::new(),
    };
    let (run, _watches) = super::watch::attach(run, runtime, pipeline, hot).await?;
    run.run(source, std::future::pending()).await
}
