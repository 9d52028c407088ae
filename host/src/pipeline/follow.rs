//! Operators whose plugin lives in the registry (`plugin = "nats:NAME"` follows the tag of
//! NAME, `"nats:NAME@V"` is pinned to version V): resolved to a verified local copy before the
//! plugins load ([`resolve`]), and — for those following a tag — watched while the pipeline
//! runs ([`follow`]): a tag moved by `weir plugin deploy` or `rollback` is fetched, checked,
//! prepared off the hot path and handed to the run loop, which swaps it in at a checkpoint
//! barrier.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::hotload::{Prepared, Slot, SwapEvent, prepare};
use crate::config::{OperatorConfig, Pipeline};
use crate::registry::{Registry, RegistryError, Tag};
use crate::runtime::Runtime;

/// The prefix of a registry reference in `plugin`.
pub const PREFIX: &str = "nats:";

/// The registry name and pinned version of `op`'s plugin, if it is a registry reference.
pub fn registry_ref(op: &OperatorConfig) -> Option<(String, Option<String>)> {
    let text = op.plugin.get_ref().to_str()?;
    let rest = text.strip_prefix(PREFIX)?;
    Some(match rest.split_once('@') {
        Some((name, version)) => (name.to_owned(), Some(version.to_owned())),
        None => (rest.to_owned(), None),
    })
}

/// Whether any operator of `pipeline` takes its plugin from the registry.
pub fn uses_registry(pipeline: &Pipeline) -> bool {
    Slot::all(pipeline)
        .iter()
        .any(|(_, op)| registry_ref(op).is_some())
}

/// An operator following the tag of a registry plugin.
#[derive(Debug, Clone)]
pub struct Follow {
    pub slot: Slot,
    pub name: String,
    /// The digest loaded at the start.
    pub digest: String,
    /// Its registry version, when known.
    pub version: Option<String>,
}

/// Points every registry reference of `pipeline` at a verified local copy of the version it
/// names (in `cache_dir`), and returns the operators that follow a tag.
pub async fn resolve(
    registry: &Registry,
    pipeline: &mut Pipeline,
    cache_dir: &Path,
) -> anyhow::Result<Vec<Follow>> {
    let mut follows = Vec::new();
    let refs: Vec<(Slot, String, Option<String>)> = Slot::all(pipeline)
        .into_iter()
        .filter_map(|(slot, op)| registry_ref(op).map(|(n, v)| (slot, n, v)))
        .collect();
    for (slot, name, version) in refs {
        let field = slot.field();
        let tag = match &version {
            Some(v) => registry.version(&name, v).await,
            None => registry.tag(&name).await,
        }
        .with_context(|| format!("field `{field}.plugin`: looking up {PREFIX}{name}"))?;
        let Some(tag) = tag else {
            anyhow::bail!(
                "field `{field}.plugin`: {PREFIX}{name}{} is not in the plugin registry \
                 (deploy it with `weir plugin deploy COMPONENT --name {name}`)",
                version
                    .as_ref()
                    .map(|v| format!("@{v}"))
                    .unwrap_or_default()
            );
        };
        check_world(slot, &tag)?;
        let path = registry
            .fetch_to(&tag, cache_dir)
            .await
            .with_context(|| format!("field `{field}.plugin`: fetching {PREFIX}{name}"))?;
        tracing::info!(%field, plugin = %name, version = %tag.version, digest = %tag.short_digest(), "registry plugin resolved");
        if let Some(op) = slot_config_mut(pipeline, slot) {
            *op.plugin.get_mut() = path;
        }
        if version.is_none() {
            follows.push(Follow {
                slot,
                name,
                digest: tag.digest,
                version: Some(tag.version),
            });
        }
    }
    Ok(follows)
}

/// The operator block of `slot`, to point it at a resolved file.
fn slot_config_mut(pipeline: &mut Pipeline, slot: Slot) -> Option<&mut OperatorConfig> {
    let c = &mut pipeline.config;
    match slot {
        Slot::Operator(i) => c.operators.get_mut(i),
        Slot::Window => c.window.as_mut().map(|w| &mut w.aggregate),
        Slot::Process => c.process.as_mut().map(|p| &mut p.function),
        Slot::After(i) => c.after.get_mut(i),
    }
}

/// A registry version of another world than the operator's is refused.
fn check_world(slot: Slot, tag: &Tag) -> anyhow::Result<()> {
    let want = slot.world().name();
    if tag.world != want {
        anyhow::bail!(
            "field `{}.plugin`: {PREFIX}{} version {} implements `{}`, the operator needs `{want}`",
            slot.field(),
            tag.name,
            tag.version,
            tag.world
        );
    }
    Ok(())
}

/// What a followed operator runs, as far as the registry is concerned. A (digest, registry
/// version) pair names a version.
#[derive(Debug, Clone, Default)]
struct Track {
    name: String,
    /// The version running, as the run loop last confirmed.
    current: (String, Option<String>),
    /// The one before it (what a canary rolls back to).
    previous: Option<(String, Option<String>)>,
    /// Versions handed to the run loop and not yet installed or refused, oldest first.
    handed: Vec<(String, Option<String>)>,
}

type Tracks = Arc<Mutex<HashMap<Slot, Track>>>;

fn lock(tracks: &Tracks) -> std::sync::MutexGuard<'_, HashMap<Slot, Track>> {
    tracks.lock().unwrap_or_else(|e| e.into_inner())
}

/// Follows the tags of `follows`: each move is prepared and sent to `swaps`; what the run loop
/// did with it comes back on `events` — only an installed version counts as running, and a
/// canary rollback moves the tag back, with the reason. The tasks end when the run loop is
/// gone.
pub async fn follow(
    registry: Registry,
    runtime: &Runtime,
    pipeline: &Pipeline,
    follows: Vec<Follow>,
    swaps: mpsc::Sender<Prepared>,
    events: mpsc::UnboundedReceiver<SwapEvent>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let tracks: Tracks = Arc::new(Mutex::new(
        follows
            .iter()
            .map(|f| {
                let track = Track {
                    name: f.name.clone(),
                    current: (f.digest.clone(), f.version.clone()),
                    ..Track::default()
                };
                (f.slot, track)
            })
            .collect(),
    ));
    let mut tasks = vec![tokio::spawn(keep_in_step(
        registry.clone(),
        tracks.clone(),
        events,
    ))];
    for f in follows {
        let moves = registry
            .watch(&f.name)
            .await
            .with_context(|| format!("following {PREFIX}{}", f.name))?;
        // A move between the lookup and the watch would be missed: look once more.
        let now = registry.tag(&f.name).await.ok().flatten();
        let follower = Follower {
            registry: registry.clone(),
            runtime: runtime.clone(),
            pipeline: pipeline.clone(),
            swaps: swaps.clone(),
            tracks: tracks.clone(),
        };
        tasks.push(tokio::spawn(follower.run(f, now, moves)));
    }
    Ok(tasks)
}

/// One followed tag's task.
struct Follower {
    registry: Registry,
    runtime: Runtime,
    pipeline: Pipeline,
    swaps: mpsc::Sender<Prepared>,
    tracks: Tracks,
}

impl Follower {
    /// Prepares every move of the tag (`now` first, if given) that is not what runs or is
    /// about to, and hands it to the run loop.
    async fn run(
        self,
        f: Follow,
        now: Option<Tag>,
        moves: impl futures::Stream<Item = Result<Tag, RegistryError>>,
    ) {
        let mut moves = std::pin::pin!(moves);
        let mut next = now;
        loop {
            let tag = match next.take() {
                Some(tag) => tag,
                None => match moves.next().await {
                    Some(Ok(tag)) => tag,
                    Some(Err(e)) => {
                        tracing::warn!(plugin = %f.name, error = %e, "following the registry tag");
                        continue;
                    }
                    None => return,
                },
            };
            let known = lock(&self.tracks).get(&f.slot).is_some_and(|t| {
                let latest = t.handed.last().unwrap_or(&t.current);
                latest.0 == tag.digest
            });
            if known {
                continue;
            }
            match load(&self.registry, &self.runtime, &self.pipeline, f.slot, &tag).await {
                Ok(p) => {
                    if let Some(t) = lock(&self.tracks).get_mut(&f.slot) {
                        t.handed
                            .push((tag.digest.clone(), Some(tag.version.clone())));
                    }
                    if self.swaps.send(p).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(
                    plugin = %f.name, version = %tag.version, error = %format!("{e:#}"),
                    "hot-load refused; the running version stays"
                ),
            }
        }
    }
}

/// Keeps the tracks in step with what the run loop did: an installed version becomes the
/// current one; a canary rollback moves the tag back to the version it returned to, recording
/// why — so that the next start does not load the failed version again.
async fn keep_in_step(
    registry: Registry,
    tracks: Tracks,
    mut events: mpsc::UnboundedReceiver<SwapEvent>,
) {
    while let Some(event) = events.recv().await {
        let rollback = {
            let mut tracks = lock(&tracks);
            match event {
                SwapEvent::Installed { slot, digest } => {
                    if let Some(t) = tracks.get_mut(&slot) {
                        let version = t.take_handed(&digest).or_else(|| {
                            // A version put back by a restore is the one the tag named.
                            (t.current.0 == digest)
                                .then(|| t.current.1.clone())
                                .flatten()
                        });
                        let installed = (digest, version);
                        t.previous = Some(std::mem::replace(&mut t.current, installed));
                    }
                    continue;
                }
                SwapEvent::Refused { slot, digest, .. } => {
                    if let Some(t) = tracks.get_mut(&slot) {
                        t.take_handed(&digest);
                    }
                    continue;
                }
                SwapEvent::RolledBack { slot, reason } => {
                    let Some(t) = tracks.get_mut(&slot) else {
                        continue; // a file plugin: nothing to record
                    };
                    let Some(previous) = t.previous.take() else {
                        continue;
                    };
                    // The tag's move back is not a new version to swap to.
                    t.current = previous.clone();
                    (t.name.clone(), previous.1, reason)
                }
            }
        };
        let (name, back_to, reason) = rollback;
        let Some(version) = back_to else {
            tracing::warn!(plugin = %name, "the rolled-back version is not known by its registry version; the tag stays");
            continue;
        };
        let note = format!("automatic rollback: canary failed: {reason}");
        match registry.rollback(&name, Some(&version), &note).await {
            Ok(tag) => {
                tracing::info!(plugin = %name, version = %tag.version, "registry tag moved back")
            }
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "recording the rollback in the registry failed")
            }
        }
    }
}

impl Track {
    /// Takes the handed-over version with `digest` off the list; its registry version, if it
    /// was one of ours (a file swap or a restore names none).
    fn take_handed(&mut self, digest: &str) -> Option<String> {
        let i = self.handed.iter().position(|h| h.0 == digest)?;
        self.handed.remove(i).1
    }
}

/// Fetches (verified), compiles, instantiates and configures the version `tag` for `slot`.
async fn load(
    registry: &Registry,
    runtime: &Runtime,
    pipeline: &Pipeline,
    slot: Slot,
    tag: &Tag,
) -> anyhow::Result<Prepared> {
    check_world(slot, tag)?;
    let path = registry.fetch_to(tag, runtime.cache().dir()).await?;
    let origin = format!("{PREFIX}{}@{}", tag.name, tag.version);
    let (rt, p) = (runtime.clone(), pipeline.clone());
    tokio::task::spawn_blocking(move || prepare(&rt, &p, slot, &path, origin))
        .await
        .context("preparing the new version panicked")?
}
