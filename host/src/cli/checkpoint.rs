//! `weir checkpoint list|show|delete PIPELINE.toml`: inspecting and removing a pipeline's
//! checkpoints in JetStream. The NATS URL may hold credentials: it is printed without them,
//! and `--help` does not show `WEIR_NATS_URL`'s value.

use std::path::Path;

use clap::Subcommand;

use weir::checkpoint::{CheckpointStore, Manifest};
use weir::config;
use weir::telemetry::redact::redact_url;

#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// List the retained checkpoints, oldest first (`*` marks the one a restart uses).
    List {
        /// The pipeline file (TOML).
        pipeline: std::path::PathBuf,
        /// NATS server URL (overrides `nats.url` of the pipeline).
        #[arg(long, env = "WEIR_NATS_URL", hide_env_values = true)]
        nats_url: Option<String>,
    },
    /// Print a checkpoint's manifest as JSON (default: the latest).
    Show {
        pipeline: std::path::PathBuf,
        id: Option<u64>,
        #[arg(long, env = "WEIR_NATS_URL", hide_env_values = true)]
        nats_url: Option<String>,
    },
    /// Delete one checkpoint, or with --all every checkpoint (the next run starts afresh).
    Delete {
        pipeline: std::path::PathBuf,
        #[arg(required_unless_present = "all")]
        id: Option<u64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[arg(long, env = "WEIR_NATS_URL", hide_env_values = true)]
        nats_url: Option<String>,
    },
}

async fn open(pipeline: &Path, url: Option<String>) -> anyhow::Result<(CheckpointStore, String)> {
    let p = config::load(pipeline)?;
    let url = url.unwrap_or_else(|| p.config.nats.url.clone());
    let client = async_nats::connect(&url)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to NATS at {}: {e}", redact_url(&url)))?;
    let js = async_nats::jetstream::new(client);
    let name = p.config.name.get_ref().clone();
    let store = CheckpointStore::open(&js, &name, &p.config.checkpoint).await?;
    Ok((store, name))
}

fn line(m: &Manifest, head: bool) -> String {
    let created =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.created_ms.max(0) as u64);
    format!(
        "{} {:>6}  {}  {}:{}  watermark={}  entries={}  pending={}  blob={}",
        if head { '*' } else { ' ' },
        m.id,
        humantime::format_rfc3339_millis(created),
        m.source.stream,
        m.source.sequence,
        m.watermark.map_or("-".into(), |w| w.to_string()),
        m.state_entries,
        m.pending_outputs,
        m.blob
            .as_ref()
            .map_or("-".into(), |b| format!("{} B", b.size)),
    )
}

pub async fn run(cmd: CheckpointCommand) -> anyhow::Result<()> {
    match cmd {
        CheckpointCommand::List { pipeline, nats_url } => {
            let (mut store, name) = open(&pipeline, nats_url).await?;
            let head = store.head().await?.map(|h| h.id);
            let all = store.list().await?;
            if all.is_empty() {
                println!("pipeline {name}: no checkpoints");
            }
            for m in &all {
                println!("{}", line(m, Some(m.id) == head));
            }
        }
        CheckpointCommand::Show {
            pipeline,
            id,
            nats_url,
        } => {
            let (mut store, name) = open(&pipeline, nats_url).await?;
            let m = match id {
                None => store.head().await?,
                Some(id) => store.list().await?.into_iter().find(|m| m.id == id),
            };
            let m = m.ok_or_else(|| match id {
                None => anyhow::anyhow!("pipeline {name} has no checkpoint"),
                Some(id) => anyhow::anyhow!("pipeline {name} has no checkpoint {id}"),
            })?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        CheckpointCommand::Delete {
            pipeline,
            id,
            all,
            nats_url,
        } => {
            let (mut store, name) = open(&pipeline, nats_url).await?;
            if all {
                let n = store.delete_all().await?;
                println!("pipeline {name}: deleted {n} checkpoints; the next run starts afresh");
                return Ok(());
            }
            let id = id.expect("clap requires an id without --all");
            if store.head().await?.is_some_and(|h| h.id == id) {
                anyhow::bail!(
                    "checkpoint {id} is the latest of pipeline {name}, the one a restart \
                     resumes from; delete it with --all (a fresh start) or keep it"
                );
            }
            if !store.list().await?.iter().any(|m| m.id == id) {
                anyhow::bail!("pipeline {name} has no checkpoint {id}");
            }
            store.delete(id).await?;
            println!("pipeline {name}: deleted checkpoint {id}");
        }
    }
    Ok(())
}
