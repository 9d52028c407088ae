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

use super::follow::{Follow, resolve, uses_registry};
use super::hotload::{Prepared, plugin_file, prepare, restore_versions};
use super::run_loop::{PIPELINE_DEPTH, RunLoop, RunSummary};
use super::stages::Stages;
use super::watch::HotLoad;
use crate::admin::{Health, Metrics};
use crate::checkpoint::coordinator::DeliverHeld;
use crate::checkpoint::{Checkpointer, Restored, StartFrom, open_for_run, restore_point};
use crate::config::{Guarantee, Pipeline, SourceConfig, names};
use crate::connect::{NatsOptions, connect};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::sink::Sink;
use crate::sink::jetstream::{InputIds, JetStreamSink};
use crate::source::SourcePartitions;
use crate::source::jetstream::{JetStreamSource, Resume};
use crate::source::multi::MultiSource;

/// Runs `pipeline` against the NATS server of `nats` until `shutdown` completes, starting
/// from checkpoint `from`.
pub async fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    nats: &NatsOptions,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
    from: StartFrom,
    watch: bool,
) -> anyhow::Result<RunSummary> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let guarantee = cfg.checkpoint.guarantee;
    let file = pipeline.file.display();
    let Loaded {
        js,
        sink,
        stages,
        resolved,
        registry,
    } = connect_and_load(runtime, pipeline, nats, &metrics).await?;
    let mut store = open_for_run(&js, pipeline, from)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: checkpoints: {e}"))?;
    let (restored, next_id) = restore_point(&mut store, from)
        .await
        .map_err(|e| anyhow::anyhow!("{file}: restoring pipeline {name:?}: {e:#}"))?;
    let resume = resume_points(pipeline, restored.as_ref(), from)?;
    let (stages, registry, pending) =
        recorded_versions(runtime, &resolved, stages, registry, restored.as_ref()).await?;
    let window = cfg.state_description();
    let deliver_held: DeliverHeld = {
        let sink = sink.clone();
        Arc::new(move |held| Box::pin(sink.deliver(sink.release(held))))
    };
    let checkpointer = Checkpointer::new(
        store,
        cfg.checkpoint.clone(),
        name,
        cfg.inputs().iter().map(|s| s.stream.clone()).collect(),
        window.clone(),
        deliver_held,
        next_id,
    );
    let tick = cfg.source.watermarks.interval;
    let run = RunLoop::new(sink, stages, Some(checkpointer), guarantee, metrics, tick).await?;
    // Put back to the checkpoint's versions, the replay runs on them up to where the crashed
    // host had got (what its consumer delivered); swaps wait until then.
    let replay_until = match &restored {
        Some(_) => Some(delivered(&js, pipeline).await),
        None => None,
    };
    let hot = HotLoad {
        files: watch,
        registry,
        pending,
    };
    let (run, _watches) = super::watch::attach(run, runtime, pipeline, hot).await?;
    let mut run = run.with_replay_until(replay_until);
    if let Some(restored) = restored {
        run.restore(restored, window)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
    }
    let mut sources = Vec::with_capacity(resume.len());
    for (input, resume) in resume.into_iter().enumerate() {
        sources.push(JetStreamSource::connect_input(&js, pipeline, input, resume).await?);
    }
    tracing::info!(
        pipeline = %name,
        guarantee = guarantee.name(),
        inputs = sources.len(),
        "running"
    );
    if sources.len() == 1 {
        let source = sources.pop().expect("one input");
        run.run(source, shutdown).await
    } else {
        run.run(MultiSource::new(sources), shutdown).await
    }
}

/// How the sink names each input in message ids and headers.
fn input_ids(pipeline: &Pipeline) -> Vec<InputIds> {
    pipeline
        .config
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, s)| InputIds {
            stream: s.stream.clone(),
            ids: pipeline
                .input_name(i)
                .map_or_else(|| s.stream.clone(), str::to_owned),
        })
        .collect()
}

/// A pipeline connected to NATS with its plugins loaded.
struct Loaded {
    js: jetstream::Context,
    sink: Arc<JetStreamSink>,
    stages: Stages,
    /// The pipeline as loaded: registry references resolved to local copies.
    resolved: Pipeline,
    /// The registry, with the operators following its tags.
    registry: Option<(Registry, Vec<Follow>)>,
}

/// Connects to NATS and loads the plugins — registry plugins need NATS before they load
/// (resolved to verified local copies), file plugins load first, so a plugin error is
/// reported without waiting for NATS.
async fn connect_and_load(
    runtime: &Runtime,
    pipeline: &Pipeline,
    nats: &NatsOptions,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Loaded> {
    let file = pipeline.file.display();
    let (connected, resolved, registry) = if uses_registry(pipeline) {
        let (js, sink) = connect_and_check(pipeline, nats, &metrics.health).await?;
        let registry = Registry::open(&js, false)
            .await
            .map_err(|e| anyhow::anyhow!("{file}: plugin registry: {e}"))?;
        let mut resolved = pipeline.clone();
        let follows = resolve(&registry, &mut resolved, runtime.cache().dir())
            .await
            .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
        (Some((js, sink)), resolved, Some((registry, follows)))
    } else {
        (None, pipeline.clone(), None)
    };
    let stages = {
        let (rt, m, p) = (runtime.clone(), metrics.clone(), resolved.clone());
        let partitions = SourcePartitions::of(&pipeline.config);
        tokio::task::spawn_blocking(move || Stages::build(&rt, &p, m, &partitions))
            .await
            .context("loading the plugins panicked")??
    };
    let (js, sink) = match connected {
        Some(c) => c,
        None => connect_and_check(pipeline, nats, &metrics.health).await?,
    };
    Ok(Loaded {
        js,
        sink,
        stages,
        resolved,
        registry,
    })
}

/// Per input, the last source sequence its durable consumer delivered (to a host that may have
/// processed it before it stopped; 0 when the consumer does not exist).
async fn delivered(js: &async_nats::jetstream::Context, pipeline: &Pipeline) -> Vec<u64> {
    let mut delivered = Vec::new();
    for (i, input) in pipeline.config.inputs().iter().enumerate() {
        let info = match js.get_stream(&input.stream).await {
            Ok(stream) => stream
                .consumer_info(pipeline.consumer_name_of(i))
                .await
                .ok(),
            Err(_) => None,
        };
        delivered.push(info.map_or(0, |info| info.delivered.stream_sequence));
    }
    delivered
}

/// Puts in the plugin versions the restored checkpoint was written with (fetching from the
/// registry those this host has no copy of), so a replay runs every input on the version that
/// ran it; operators following a registry tag then swap to the tag's version at the first
/// barrier.
async fn recorded_versions(
    runtime: &Runtime,
    pipeline: &Pipeline,
    mut stages: Stages,
    mut registry: Option<(Registry, Vec<Follow>)>,
    restored: Option<&Restored>,
) -> anyhow::Result<(Stages, Option<(Registry, Vec<Follow>)>, Vec<Prepared>)> {
    let Some(restored) = restored else {
        return Ok((stages, registry, Vec::new()));
    };
    let recorded = restored.manifest.plugins.clone();
    if let Some((reg, _)) = &registry {
        for r in &recorded {
            let cache = runtime.cache();
            if !cache.component_path(&r.sha256).is_file()
                && let Ok(bytes) = reg.fetch(&r.sha256).await
            {
                cache.keep_component(&r.sha256, &bytes);
            }
        }
    }
    let (rt, p) = (runtime.clone(), pipeline.clone());
    let (stages, put_back) = tokio::task::spawn_blocking(move || {
        let put_back = restore_versions(&rt, &p, &mut stages, &recorded);
        (stages, put_back)
    })
    .await
    .context("restoring plugin versions panicked")?;
    let put_back = put_back.with_context(|| {
        format!(
            "{}: restoring the checkpoint's plugin versions",
            pipeline.file.display()
        )
    })?;
    let mut pending = Vec::new();
    for (slot, sha) in put_back {
        let follow = registry
            .as_mut()
            .and_then(|(_, follows)| follows.iter_mut().find(|f| f.slot == slot));
        match follow {
            // The tag's version is proposed again by the watch.
            Some(f) => {
                f.digest = sha;
                f.version = None;
            }
            None => {
                let (rt, p) = (runtime.clone(), pipeline.clone());
                let op = slot.config(pipeline).context("no such operator")?;
                let path = plugin_file(pipeline, op);
                let origin = format!("file {}", path.display());
                let prepared =
                    tokio::task::spawn_blocking(move || prepare(&rt, &p, slot, &path, origin))
                        .await
                        .context("preparing the configured plugin version panicked")??;
                pending.push(prepared);
            }
        }
    }
    Ok((stages, registry, pending))
}

/// Connect and check: connects to NATS (failing fast, saying why, when the first connection
/// cannot be made; reconnecting for ever once it was) and checks that the sink's streams exist
/// and suit the delivery guarantee, and that the source stream holds the source's subject
/// filters and does not capture what the sink publishes.
async fn connect_and_check(
    pipeline: &Pipeline,
    nats: &NatsOptions,
    health: &Arc<Health>,
) -> anyhow::Result<(jetstream::Context, Arc<JetStreamSink>)> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let client = connect(&format!("weir {name}"), nats, Some(health)).await?;
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
        input_ids(pipeline),
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
    let several = !cfg.sources.is_empty();
    for (i, input) in cfg.inputs().iter().enumerate() {
        let field = if several {
            format!("sources[{i}]")
        } else {
            "source".to_owned()
        };
        check_source_stream(pipeline, &field, input, &js).await?;
    }
    Ok((js, Arc::new(sink)))
}

/// Checks the stream of input `src` (`field`: `source` or `sources[i]`): it exists, each of
/// its `subjects` lies within the subjects it captures, and it captures none of the subjects
/// the sink publishes to that the input reads — the pipeline would consume its own output, a
/// feedback loop.
async fn check_source_stream(
    pipeline: &Pipeline,
    field: &str,
    src: &SourceConfig,
    js: &jetstream::Context,
) -> anyhow::Result<()> {
    let mut stream = js.get_stream(&src.stream).await.map_err(|e| {
        pipeline.field_error(
            &format!("{field}.stream"),
            format!(
                "field `{field}.stream`: cannot open JetStream stream {:?} ({e})",
                src.stream
            ),
        )
    })?;
    let captured = stream
        .info()
        .await
        .with_context(|| format!("reading stream {:?}", src.stream))?
        .config
        .subjects
        .clone();
    if captured.is_empty() {
        return Ok(()); // a mirror or a stream of sources: no subjects of its own
    }
    for (i, filter) in src.subjects.iter().enumerate() {
        if !captured.iter().any(|s| names::filter_within(filter, s)) {
            let field = format!("{field}.subjects[{i}]");
            return Err(pipeline
                .field_error(
                    &field,
                    format!(
                        "field `{field}`: {filter:?} is not within stream {:?}, which \
                         captures {captured:?}",
                        src.stream
                    ),
                )
                .into());
        }
    }
    let sink = &pipeline.config.sink;
    let published = [
        ("sink.subject", Some(&sink.subject)),
        ("sink.dead_letter", Some(&sink.dead_letter)),
        ("sink.late", sink.late.as_ref()),
    ];
    for (sink_field, subject) in published {
        let Some(subject) = subject else { continue };
        let read = src.subjects.is_empty()
            || src
                .subjects
                .iter()
                .any(|f| names::subject_matches(subject, f));
        if read && captured.iter().any(|s| names::subject_matches(subject, s)) {
            return Err(pipeline
                .field_error(
                    sink_field,
                    format!(
                        "field `{sink_field}`: {subject:?} is captured by the source stream \
                         {:?}, so the pipeline would read its own output again (a feedback \
                         loop); publish outside the source stream or narrow `{field}.subjects`",
                        src.stream
                    ),
                )
                .into());
        }
    }
    Ok(())
}

/// Where each input resumes: right after the restored checkpoint's position of it (in the
/// same stream), or — without one — from the start, or from the consumer's ack floor for a
/// stateless pipeline. The source is acknowledged batch by batch, ahead of the checkpoints:
/// the ack floor is where a stateless pipeline's outputs are stored, but says nothing of a
/// stateful pipeline's state, which is read again from the start.
fn resume_points(
    pipeline: &Pipeline,
    restored: Option<&Restored>,
    from: StartFrom,
) -> anyhow::Result<Vec<Resume>> {
    let cfg = &pipeline.config;
    let inputs = cfg.inputs();
    let stateful = cfg.stateful();
    let Some(r) = restored else {
        let resume = match from {
            StartFrom::Fresh => Resume::After(0),
            _ if stateful => Resume::After(0),
            _ => Resume::AckFloor,
        };
        return Ok(vec![resume; inputs.len()]);
    };
    let m = &r.manifest;
    let file = pipeline.file.display();
    let name = cfg.name.get_ref();
    let positions = m.positions();
    if positions.len() != inputs.len() {
        anyhow::bail!(
            "{file}: checkpoint {} of pipeline {name:?} holds the positions of {} input(s), \
             but the pipeline now has {}; start afresh with `weir checkpoint delete --all`",
            m.id,
            positions.len(),
            inputs.len()
        );
    }
    let mut resume = Vec::with_capacity(inputs.len());
    for (i, (position, input)) in positions.iter().zip(inputs).enumerate() {
        if position.stream != input.stream {
            let field = if cfg.sources.is_empty() {
                "source.stream".to_owned()
            } else {
                format!("sources[{i}].stream")
            };
            anyhow::bail!(
                "{file}: checkpoint {} of pipeline {name:?} is a position in stream {:?}, but \
                 `{field}` is now {:?}; start afresh with `weir checkpoint delete --all`",
                m.id,
                position.stream,
                input.stream
            );
        }
        resume.push(if cfg.checkpoint.guarantee == Guarantee::AtMostOnce {
            Resume::AfterOrAckFloor(position.sequence)
        } else {
            Resume::After(position.sequence)
        });
    }
    Ok(resume)
}
