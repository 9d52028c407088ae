//! `weir run --watch`: the plugin files of a running pipeline are watched, and a file that
//! changes (a developer's `cargo build`, debounced) is hot-loaded: prepared off the hot path
//! ([`super::hotload::prepare`]) and handed to the run loop, which swaps it in at a checkpoint
//! barrier. A new file that does not load, implements another world or whose `configure`
//! fails is refused with the reason in the log; the running version stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::follow::{Follow, follow, registry_ref};
use super::hotload::{Prepared, Slot, plugin_file, prepare};
use super::run_loop::RunLoop;
use crate::config::Pipeline;
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::runtime::cache::content_hash;
use crate::sink::Sink;

/// How long a file must stay unchanged before it is loaded (a build writes in steps).
const SETTLE: Duration = Duration::from_millis(300);

/// A running file watch; dropping it stops watching.
pub struct FileWatch {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: JoinHandle<()>,
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the component files of `pipeline`'s operators; new content is prepared and sent
/// to `swaps`. Call from within the tokio runtime.
pub fn watch_files(
    runtime: &Runtime,
    pipeline: &Pipeline,
    swaps: mpsc::Sender<Prepared>,
) -> anyhow::Result<FileWatch> {
    let mut files: Vec<(Slot, PathBuf)> = Vec::new();
    let mut known: HashMap<PathBuf, String> = HashMap::new();
    for (slot, op) in Slot::all(pipeline) {
        if registry_ref(op).is_some() {
            continue; // follows its registry tag instead
        }
        let file = plugin_file(pipeline, op);
        let file = file
            .canonicalize()
            .with_context(|| format!("--watch: {} ({})", file.display(), slot.field()))?;
        known.insert(file.clone(), hash_of(&file).unwrap_or_default());
        files.push((slot, file));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(SETTLE, move |res| {
        let _ = tx.send(res);
    })
    .context("--watch: starting the file watcher")?;
    let mut dirs: Vec<&Path> = files.iter().filter_map(|(_, f)| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("--watch: watching {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "watching plugin files");
    }
    let (runtime, pipeline) = (runtime.clone(), pipeline.clone());
    let task = tokio::spawn(async move {
        while let Some(res) = rx.recv().await {
            let events = match res {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "--watch: the file watcher reported an error");
                    continue;
                }
            };
            for (slot, file) in &files {
                if !events.iter().any(|e| &e.path == file) {
                    continue;
                }
                let Some(hash) = hash_of(file) else {
                    continue; // removed or unreadable for now: the next change brings it back
                };
                if known.get(file) == Some(&hash) {
                    continue;
                }
                known.insert(file.clone(), hash);
                if !reload(&runtime, &pipeline, *slot, file, &swaps).await {
                    return; // the run loop is gone
                }
            }
        }
    });
    Ok(FileWatch {
        _debouncer: debouncer,
        task,
    })
}

/// What a running pipeline takes new plugin versions from.
#[derive(Default)]
pub struct HotLoad {
    /// Its plugin files (`--watch`).
    pub files: bool,
    /// The registry tags its `nats:NAME` operators follow.
    pub registry: Option<(Registry, Vec<Follow>)>,
    /// Versions to swap in at the first barrier: the configured ones of operators put back
    /// to the version a restored checkpoint records.
    pub pending: Vec<Prepared>,
}

/// Watches that feed a run loop; dropping them stops them.
pub struct Watches {
    _files: Option<FileWatch>,
    tags: Vec<JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.tags.iter().for_each(JoinHandle::abort);
    }
}

/// Connects `run` to the sources of new versions in `hot` (`pipeline` as written, before
/// registry references were resolved); the returned watches must live as long as the run.
pub async fn attach<K: Sink>(
    run: RunLoop<K>,
    runtime: &Runtime,
    pipeline: &Pipeline,
    hot: HotLoad,
) -> anyhow::Result<(RunLoop<K>, Watches)> {
    let mut watches = Watches {
        _files: None,
        tags: Vec::new(),
    };
    let follows = hot.registry.filter(|(_, f)| !f.is_empty());
    if !hot.files && follows.is_none() && hot.pending.is_empty() {
        return Ok((run, watches));
    }
    let (tx, rx) = mpsc::channel(8 + hot.pending.len());
    let mut run = run;
    for p in hot.pending {
        tx.try_send(p)
            .map_err(|_| anyhow::anyhow!("queueing a plugin version failed"))?;
    }
    if hot.files {
        watches._files = Some(watch_files(runtime, pipeline, tx.clone())?);
    }
    if let Some((registry, follows)) = follows {
        let (events, told) = mpsc::unbounded_channel();
        watches.tags = follow(registry, runtime, pipeline, follows, tx, told).await?;
        run = run.with_swap_events(events);
    }
    Ok((run.with_swaps(rx), watches))
}

/// Prepares the new content of `file` for `slot` and sends it to `swaps`; a version that
/// cannot run is refused in the log. `false` when the run loop is gone.
async fn reload(
    runtime: &Runtime,
    pipeline: &Pipeline,
    slot: Slot,
    file: &Path,
    swaps: &mpsc::Sender<Prepared>,
) -> bool {
    let (rt, p, path) = (runtime.clone(), pipeline.clone(), file.to_owned());
    let origin = format!("file {}", file.display());
    let prepared = tokio::task::spawn_blocking(move || prepare(&rt, &p, slot, &path, origin)).await;
    match prepared {
        Ok(Ok(p)) => {
            tracing::info!(operator = %p.operator, version = %p.instance.plugin().label(), "new plugin version ready");
            return swaps.send(p).await.is_ok();
        }
        Ok(Err(e)) => tracing::error!(
            field = %slot.field(), error = %format!("{e:#}"),
            "hot-load refused; the running version stays"
        ),
        Err(e) => tracing::error!(field = %slot.field(), error = %e, "hot-load panicked"),
    }
    true
}

/// The content hash of `file`, `None` if it cannot be read.
fn hash_of(file: &Path) -> Option<String> {
    std::fs::read(file).ok().map(|b| content_hash(&b))
}
