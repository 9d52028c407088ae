//! `weir pipeline apply|list|status|delete`: the pipelines a `weir serve` cluster runs
//! ([`weir::serve`]). `apply` checks the file, uploads the plugins it names by path to the
//! plugin registry (by content hash), rewrites those references to the pinned registry
//! versions, loads and configures every plugin, and only then stores the pipeline.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;

use super::nats_args::NatsArgs;
use super::progress::Progress;
use super::registry::{block_on, when};
use weir::config::Pipeline;
use weir::pipeline::follow::{PREFIX, registry_ref};
use weir::pipeline::hotload::{Slot, plugin_file};
use weir::registry::Registry;
use weir::registry::names::human_size;
use weir::registry::validate::validate_blocking;
use weir::runtime::Runtime;
use weir::serve::applied::{Applied, PipelineStore, now_ms};
use weir::serve::status::{Status, StatusStore};

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Check a pipeline file, upload its plugins to the registry and apply it: a `weir serve`
    /// host starts it (or restarts it with the new definition, through a checkpoint).
    Apply {
        /// The pipeline file (TOML).
        file: std::path::PathBuf,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// The applied pipelines and where each stands.
    List {
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Where one pipeline stands: state, host, plugin versions, events, lag, last checkpoint.
    Status {
        name: String,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Delete a pipeline: the host running it stops it after a final checkpoint (its
    /// checkpoints stay, for `weir checkpoint`).
    Delete {
        name: String,
        /// Wait until the host has stopped it (at most this long, e.g. 2m).
        #[arg(long, value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

pub fn run(
    cmd: PipelineCommand,
    runtime: impl FnOnce() -> anyhow::Result<Runtime>,
) -> anyhow::Result<()> {
    match cmd {
        PipelineCommand::Apply { file, nats } => {
            let runtime = runtime()?;
            block_on(apply(&runtime, &file, &nats))
        }
        PipelineCommand::List { nats } => block_on(list(&nats)),
        PipelineCommand::Status { name, json, nats } => block_on(status(&name, json, &nats)),
        PipelineCommand::Delete { name, wait, nats } => block_on(delete(&name, wait, &nats)),
    }
}

/// Connects with the flags and environment (over the `[nats]` section of `pipeline`, if given).
async fn connect_for(
    nats: &NatsArgs,
    pipeline: Option<&Pipeline>,
) -> anyhow::Result<async_nats::jetstream::Context> {
    let options = nats.options(pipeline)?;
    let client = weir::connect::connect("weir pipeline", &options, None).await?;
    Ok(async_nats::jetstream::new(client))
}

/// `weir pipeline apply FILE`.
async fn apply(runtime: &Runtime, file: &Path, nats: &NatsArgs) -> anyhow::Result<()> {
    let pipeline = weir::config::load(file)?;
    let name = pipeline.config.name.get_ref().clone();
    let js = connect_for(nats, Some(&pipeline)).await?;
    let registry = Registry::open(&js, true).await?;
    let progress = Progress::on_stderr();
    let (text, uploads) = upload_plugins(runtime, &registry, &pipeline, progress).await?;
    let applied = Applied {
        name: name.clone(),
        text,
        source: file.display().to_string(),
        applied_at_ms: now_ms(),
    };
    let step = progress.step("loading and configuring the plugins as the hosts will");
    check_applied(runtime, &registry, &applied)
        .await
        .with_context(|| format!("{}: not applied", file.display()))?;
    step.done();
    let store = PipelineStore::open(&js, true)
        .await?
        .context("opening the bucket of applied pipelines")?;
    if let Some((before, revision)) = store.get(&name).await?
        && before.text == applied.text
    {
        println!(
            "pipeline {name:?} is applied already as this file says (revision {revision}); nothing changed"
        );
        return Ok(());
    }
    let revision = store.put(&applied).await?;
    println!(
        "applied pipeline {name:?} (revision {revision}) from {}",
        file.display()
    );
    for line in uploads {
        println!("  {line}");
    }
    println!("a `weir serve` host starts it within a second: `weir pipeline status {name}`");
    Ok(())
}

/// Uploads every plugin `pipeline` names by path (as `PIPELINE-OPERATOR`, its version reused
/// for the same bytes) and rewrites its reference in the text to the pinned version. The text
/// and a line per upload.
async fn upload_plugins(
    runtime: &Runtime,
    registry: &Registry,
    pipeline: &Pipeline,
    progress: Progress,
) -> anyhow::Result<(String, Vec<String>)> {
    let name = pipeline.config.name.get_ref();
    let mut edits = Vec::new();
    let mut lines = Vec::new();
    for (slot, op) in Slot::all(pipeline) {
        if registry_ref(op).is_some() {
            continue;
        }
        let path = plugin_file(pipeline, op);
        let plugin = format!("{name}-{}", op.name.get_ref());
        let failed = |doing: &str| {
            format!(
                "field `{}.plugin`: {doing} {}",
                slot.field(),
                path.display()
            )
        };
        let step = progress.step(format!("checking {} (compiling)", path.display()));
        let checked = validate_blocking(runtime, &path)
            .await
            .with_context(|| failed("checking"))?;
        step.done();
        let size = human_size(checked.bytes.len() as u64);
        let step = progress.step(format!("uploading {size} as {plugin}"));
        let tag = registry
            .publish(&plugin, None, checked.world, &checked.bytes)
            .await
            .with_context(|| failed("uploading"))?;
        step.done();
        let reference = format!("{PREFIX}{plugin}@{}", tag.version);
        lines.push(format!(
            "{} {}: {} → {reference} (sha256 {}…)",
            slot.field(),
            op.name.get_ref(),
            op.plugin.get_ref().display(),
            tag.short_digest()
        ));
        edits.push((op.plugin.span(), format!("\"{reference}\"")));
    }
    let mut text = pipeline.text.clone();
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    for (span, value) in edits {
        text.replace_range(span, &value);
    }
    Ok((text, lines))
}

/// The stored form parses, and every plugin loads and takes its config — before anything is
/// stored.
async fn check_applied(
    runtime: &Runtime,
    registry: &Registry,
    applied: &Applied,
) -> anyhow::Result<()> {
    let mut pipeline = applied.pipeline()?;
    weir::pipeline::follow::resolve(registry, &mut pipeline, runtime.cache().dir()).await?;
    let rt = runtime.clone();
    tokio::task::spawn_blocking(move || {
        weir::pipeline::stages::Stages::build(
            &rt,
            &pipeline,
            weir::admin::Metrics::new(pipeline.config.name.get_ref()),
            &weir::source::SourcePartitions::of(&pipeline.config),
        )
        .map(drop)
    })
    .await
    .context("loading the plugins panicked")?
}

/// `weir pipeline list`.
async fn list(nats: &NatsArgs) -> anyhow::Result<()> {
    let js = connect_for(nats, None).await?;
    let Some(store) = PipelineStore::open(&js, false).await? else {
        println!("no pipelines applied");
        return Ok(());
    };
    let applied = store.list().await?;
    if applied.is_empty() {
        println!("no pipelines applied");
        return Ok(());
    }
    let statuses = match StatusStore::open(&js, false).await? {
        Some(s) => s.list().await?,
        None => Vec::new(),
    };
    let now = now_ms();
    let mut rows = vec![
        [
            "NAME",
            "STATE",
            "HOST",
            "IN",
            "OUT",
            "DEAD",
            "PENDING",
            "CHECKPOINT",
            "APPLIED",
        ]
        .map(str::to_owned),
    ];
    for a in &applied {
        let s = statuses.iter().find(|s| s.pipeline == a.name);
        let dash = || "-".to_owned();
        rows.push([
            a.name.clone(),
            s.map_or_else(|| "waiting for a host".into(), |s| state_text(s, now)),
            s.map_or_else(dash, |s| s.host.clone()),
            s.map_or_else(dash, |s| s.events_in.to_string()),
            s.map_or_else(dash, |s| s.events_out.to_string()),
            s.map_or_else(dash, |s| s.dead_letters.to_string()),
            s.and_then(|s| s.consumer_pending)
                .map_or_else(dash, |p| p.to_string()),
            s.and_then(|s| s.checkpoint_age_ms(now))
                .map_or_else(dash, |age| format!("{} ago", seconds(age))),
            when(a.applied_at_ms),
        ]);
    }
    print!("{}", super::aligned(&rows));
    Ok(())
}

/// The state as shown: `running`, `failed`, … and a missing heartbeat.
pub(super) fn state_text(s: &Status, now: i64) -> String {
    let state = s.state.name();
    if s.stale(now) && s.state != weir::serve::status::State::Stopped {
        let quiet = seconds(now.saturating_sub(s.heartbeat_ms));
        format!("{state} (no heartbeat for {quiet}: host gone?)")
    } else {
        state.to_owned()
    }
}

/// `12 s`, `3 min 4 s`.
fn seconds(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// `weir pipeline status NAME`.
async fn status(name: &str, json: bool, nats: &NatsArgs) -> anyhow::Result<()> {
    let js = connect_for(nats, None).await?;
    let applied = match PipelineStore::open(&js, false).await? {
        Some(store) => store.get(name).await?,
        None => None,
    };
    let Some((applied, revision)) = applied else {
        anyhow::bail!(
            "no pipeline {name:?} is applied (`weir pipeline list` shows those that are)"
        );
    };
    let status = match StatusStore::open(&js, false).await? {
        Some(s) => s.get(name).await?.map(|(s, _)| s),
        None => None,
    };
    if json {
        let value = serde_json::json!({
            "pipeline": name,
            "applied_revision": revision,
            "applied_from": applied.source,
            "applied_at_ms": applied.applied_at_ms,
            "status": status,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print!(
        "{}",
        describe(&applied, revision, status.as_ref(), now_ms())
    );
    Ok(())
}

/// The status of a pipeline as lines for people.
fn describe(applied: &Applied, revision: u64, status: Option<&Status>, now: i64) -> String {
    let mut out = format!(
        "pipeline:    {}\napplied:     revision {revision}, {} from {}\n",
        applied.name,
        when(applied.applied_at_ms),
        applied.source
    );
    let Some(s) = status else {
        out.push_str("state:       waiting for a host (no `weir serve` has taken it yet)\n");
        return out;
    };
    out.push_str(&format!("state:       {}\n", state_text(s, now)));
    if let Some(reason) = &s.reason {
        out.push_str(&format!("reason:      {reason}\n"));
    }
    let running = if s.applied_revision == revision || s.applied_revision == 0 {
        String::new()
    } else {
        format!(" (running revision {}, restarting)", s.applied_revision)
    };
    out.push_str(&format!("host:        {}{running}\n", s.host));
    out.push_str(&format!(
        "events:      {} in, {} out, {} dead letters, {} late\n",
        s.events_in, s.events_out, s.dead_letters, s.late
    ));
    let dash = || "-".to_owned();
    out.push_str(&format!(
        "lag:         {} messages pending, watermark {}\n",
        s.consumer_pending.map_or_else(dash, |p| p.to_string()),
        s.watermark_lag_ms
            .map_or_else(|| "none yet".into(), |l| format!("{} behind", seconds(l)))
    ));
    out.push_str(&format!(
        "checkpoint:  {} taken, last {}\n",
        s.checkpoints,
        s.checkpoint_age_ms(now)
            .map_or_else(|| "none yet".into(), |a| format!("{} ago", seconds(a)))
    ));
    out.push_str(&format!(
        "restarts:    {} since it was applied\n",
        s.restarts
    ));
    for p in &s.plugins {
        out.push_str(&format!(
            "plugin:      {} {}: {} (sha256 {}…)\n",
            p.stage,
            p.operator,
            p.version,
            &p.digest[..12.min(p.digest.len())]
        ));
    }
    out
}

/// `weir pipeline delete NAME [--wait D]`.
async fn delete(name: &str, wait: Option<Duration>, nats: &NatsArgs) -> anyhow::Result<()> {
    let js = connect_for(nats, None).await?;
    let deleted = match PipelineStore::open(&js, false).await? {
        Some(store) => store.delete(name).await?,
        None => false,
    };
    if !deleted {
        anyhow::bail!(
            "no pipeline {name:?} is applied (`weir pipeline list` shows those that are)"
        );
    }
    println!("deleted pipeline {name:?}: the host running it stops it after a final checkpoint");
    let Some(limit) = wait else {
        return Ok(());
    };
    let Some(statuses) = StatusStore::open(&js, false).await? else {
        return Ok(());
    };
    let started = Instant::now();
    while let Some((s, _)) = statuses.get(name).await? {
        if s.stale(now_ms()) {
            println!(
                "its host ({}) is not answering; nothing to wait for",
                s.host
            );
            return Ok(());
        }
        if started.elapsed() > limit {
            anyhow::bail!(
                "pipeline {name:?} was deleted but {} has not stopped it within {limit:?}",
                s.host
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("stopped");
    Ok(())
}
