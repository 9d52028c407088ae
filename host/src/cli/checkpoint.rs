//! `weir checkpoint list|show|delete PIPELINE.toml`: inspecting and removing a pipeline's
//! checkpoints in JetStream, reached with the `--nats-*` flags ([`NatsArgs`]) over the
//! pipeline's `[nats]` section; no secret is printed.
//!
//! These commands create no bucket: against a server where the pipeline's buckets do not
//! exist they say so. A corrupt or missing head manifest is reported (`!` lines in `list`, a
//! warning on stderr for `show`), never a reason to fail: they are the way to inspect and
//! clean up a damaged store.

use std::path::Path;

use clap::Subcommand;

use super::nats_args::NatsArgs;
use weir::checkpoint::{CheckpointStore, Head, Manifest};
use weir::config;

#[derive(Subcommand)]
pub enum CheckpointCommand {
    /// List the retained checkpoints, oldest first (`*` marks the one a restart uses).
    List {
        /// The pipeline file (TOML).
        pipeline: std::path::PathBuf,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Print a checkpoint's manifest as JSON (default: the latest).
    Show {
        pipeline: std::path::PathBuf,
        id: Option<u64>,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Delete one checkpoint, or with --all every checkpoint (the next run starts afresh).
    Delete {
        pipeline: std::path::PathBuf,
        #[arg(required_unless_present = "all")]
        id: Option<u64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// A pipeline's checkpoint store, opened without creating anything.
struct Opened {
    /// The pipeline's name.
    name: String,
    /// The manifest bucket.
    bucket: String,
    /// `None`: the manifest bucket does not exist.
    store: Option<CheckpointStore>,
}

impl Opened {
    /// Why there is nothing: the bucket that does not exist.
    fn absent(&self) -> String {
        format!("key-value bucket {:?} does not exist", self.bucket)
    }
}

async fn open(pipeline: &Path, nats: &NatsArgs) -> anyhow::Result<Opened> {
    let p = config::load(pipeline)?;
    let nats = nats.options(Some(&p))?;
    let client = weir::connect::connect("weir checkpoint", &nats, None).await?;
    let js = async_nats::jetstream::new(client);
    let name = p.config.name.get_ref().clone();
    let store = CheckpointStore::open_existing(&js, &name, &p.config.checkpoint).await?;
    Ok(Opened {
        name,
        bucket: p.config.checkpoint.bucket.clone(),
        store,
    })
}

/// The checkpoint a restart resumes from, unless its state fails to load: the head, or
/// without a readable one the newest listed checkpoint.
fn restart_point(head: &Head, listed: &[Manifest]) -> Option<u64> {
    match head {
        Head::Committed(h) => Some(h.id),
        Head::Missing | Head::Corrupt(_) => listed.last().map(|m| m.id),
    }
}

/// What is wrong with the head, if anything, for people reading a listing.
fn head_problem(store: &CheckpointStore, head: &Head, listed: &[Manifest]) -> Option<String> {
    let fallback = match listed.last() {
        Some(m) => format!("a restart falls back to archived checkpoint {}", m.id),
        None => "nothing is archived to fall back to".to_owned(),
    };
    match head {
        Head::Committed(_) => None,
        Head::Corrupt(e) => Some(format!("{e}; {fallback}")),
        Head::Missing if listed.is_empty() => None,
        Head::Missing => Some(format!(
            "the head manifest {} is missing; {fallback}",
            store.head_key()
        )),
    }
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
        CheckpointCommand::List { pipeline, nats } => list(&pipeline, &nats).await,
        CheckpointCommand::Show { pipeline, id, nats } => show(&pipeline, id, &nats).await,
        CheckpointCommand::Delete {
            pipeline,
            id,
            all,
            nats,
        } => delete(&pipeline, id, all, &nats).await,
    }
}

/// `weir checkpoint list PIPELINE`: every checkpoint, the one a restart resumes from marked.
async fn list(pipeline: &Path, nats: &NatsArgs) -> anyhow::Result<()> {
    let opened = open(pipeline, nats).await?;
    let name = &opened.name;
    let Some(mut store) = opened.store else {
        println!("pipeline {name}: no checkpoints ({})", opened.absent());
        return Ok(());
    };
    let head = store.read_head().await?;
    let listing = store.listing().await?;
    let all = &listing.manifests;
    if all.is_empty() && listing.unreadable.is_empty() {
        println!("pipeline {name}: no checkpoints");
    }
    let marked = restart_point(&head, all);
    for m in all {
        println!("{}", line(m, Some(m.id) == marked));
    }
    if let Some(problem) = head_problem(&store, &head, all) {
        println!("! {problem}");
    }
    for u in listing
        .unreadable
        .iter()
        .filter(|u| u.key != store.head_key())
    {
        println!("! {}", u.error);
    }
    Ok(())
}

/// `weir checkpoint show PIPELINE [ID]`: one checkpoint's manifest (default: the latest).
async fn show(pipeline: &Path, id: Option<u64>, nats: &NatsArgs) -> anyhow::Result<()> {
    let opened = open(pipeline, nats).await?;
    let name = &opened.name;
    let Some(mut store) = opened.store else {
        match id {
            None => anyhow::bail!("pipeline {name} has no checkpoint: {}", opened.absent()),
            Some(id) => anyhow::bail!(
                "pipeline {name} has no checkpoint {id}: {}",
                opened.absent()
            ),
        }
    };
    let m = match id {
        None => {
            let head = store.read_head().await?;
            let listed = store.list().await?;
            let problem = head_problem(&store, &head, &listed);
            match (head, listed.last()) {
                (Head::Committed(h), _) => Some(*h),
                (Head::Corrupt(e), None) => {
                    anyhow::bail!("pipeline {name} has no readable checkpoint: {e}")
                }
                (_, newest) => {
                    if let Some(problem) = problem {
                        eprintln!("warning: {problem}; showing that one");
                    }
                    newest.cloned()
                }
            }
        }
        Some(id) => store.list().await?.into_iter().find(|m| m.id == id),
    };
    let m = m.ok_or_else(|| match id {
        None => anyhow::anyhow!("pipeline {name} has no checkpoint"),
        Some(id) => anyhow::anyhow!("pipeline {name} has no checkpoint {id}"),
    })?;
    println!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

/// `weir checkpoint delete PIPELINE ID|--all`; the checkpoint a restart resumes from is kept
/// unless everything goes.
async fn delete(
    pipeline: &Path,
    id: Option<u64>,
    all: bool,
    nats: &NatsArgs,
) -> anyhow::Result<()> {
    let opened = open(pipeline, nats).await?;
    let name = &opened.name;
    let Some(mut store) = opened.store else {
        if all {
            println!(
                "pipeline {name}: no checkpoints to delete ({})",
                opened.absent()
            );
            return Ok(());
        }
        let id = id.unwrap_or_default();
        anyhow::bail!(
            "pipeline {name} has no checkpoint {id}: {}",
            opened.absent()
        );
    };
    if all {
        let n = store.delete_all().await?;
        println!("pipeline {name}: deleted {n} checkpoints; the next run starts afresh");
        return Ok(());
    }
    let Some(id) = id else {
        anyhow::bail!("give a checkpoint id, or --all");
    };
    let head = store.read_head().await?;
    let listed = store.list().await?;
    if restart_point(&head, &listed) == Some(id) {
        anyhow::bail!(
            "checkpoint {id} is the latest of pipeline {name}, the one a restart \
             resumes from; delete it with --all (a fresh start) or keep it"
        );
    }
    if !listed.iter().any(|m| m.id == id) {
        anyhow::bail!("pipeline {name} has no checkpoint {id}");
    }
    store.delete(id).await?;
    println!("pipeline {name}: deleted checkpoint {id}");
    Ok(())
}
