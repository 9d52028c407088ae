//! `weir serve`: a long-running host that runs every pipeline applied to the NATS cluster.
//!
//! NATS is the control plane — no other database:
//! - the desired state is the key-value bucket `weir-pipelines` ([`applied`]), written by
//!   `weir pipeline apply` and `delete`;
//! - each pipeline's status — and the lease that keeps two hosts from running it — is the
//!   bucket `weir-pipeline-status` ([`status`]);
//! - plugins come from the plugin registry (pinned versions, see [`crate::registry`]).
//!
//! The host watches the desired state and keeps one [`supervisor::Supervisor`] per pipeline:
//! a pipeline starts within a second of its apply, restarts with the new definition on a
//! re-apply (through a final checkpoint), stops on a delete, and is retried with backoff when
//! it fails — isolated from the others, each on a thread of its own. A shutdown (SIGTERM)
//! stops every pipeline after its final checkpoint. The admin endpoint ([`admin`]) serves
//! `/health`, `/ready`, `/metrics` and `/pipelines` for all of them.

pub mod admin;
pub mod applied;
pub mod status;
mod supervisor;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::applied::{Change, PipelineStore};
use self::status::{State, Status, StatusStore};
use self::supervisor::Supervisor;
use crate::admin::auth::Token;
use crate::admin::{Health, Metrics};
use crate::connect::NatsOptions;
use crate::runtime::Runtime;

/// How `weir serve` is set up.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The NATS server and how to authenticate (every pipeline of the host connects so).
    pub nats: NatsOptions,
    /// This host's name in statuses and leases (default: the machine's host name).
    pub host_id: String,
    /// Where the admin endpoint listens, and its bearer token.
    pub admin: Option<SocketAddr>,
    pub admin_token: Option<Token>,
}

/// What the supervisors of one host share.
pub struct Host {
    runtime: Runtime,
    nats: NatsOptions,
    host_id: String,
    js: jetstream::Context,
    statuses: StatusStore,
    shutdown: watch::Receiver<bool>,
    /// The control connection's state (`/ready`).
    health: Arc<Health>,
    /// The pipelines of this host, for the admin endpoint.
    pipelines: Mutex<BTreeMap<String, Served>>,
}

/// One pipeline as the admin endpoint sees it.
struct Served {
    metrics: Arc<Metrics>,
    status: Option<Status>,
    /// Its checkpoint interval: a last checkpoint much older means it is not ready.
    interval: Option<Duration>,
}

impl Host {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Served>> {
        self.pipelines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The metrics of pipeline `name` (kept across its restarts, so counters only grow).
    fn metrics_for(&self, name: &str) -> Arc<Metrics> {
        self.lock()
            .entry(name.to_owned())
            .or_insert_with(|| Served {
                metrics: Metrics::new(name),
                status: None,
                interval: None,
            })
            .metrics
            .clone()
    }

    fn set_interval(&self, name: &str, interval: Duration) {
        if let Some(s) = self.lock().get_mut(name) {
            s.interval = Some(interval);
        }
    }

    fn keep_status(&self, name: &str, status: &Status) {
        if let Some(s) = self.lock().get_mut(name) {
            s.status = Some(status.clone());
        }
    }

    /// The pipeline left this host (deleted, taken over or shut down).
    fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The status of pipeline `name` from its metrics.
    fn status(
        &self,
        name: &str,
        metrics: &Metrics,
        applied_revision: u64,
        state: State,
        reason: Option<String>,
        restarts: u32,
    ) -> Status {
        use std::sync::atomic::Ordering::Relaxed;
        let last = metrics.last_checkpoint_ms.load(Relaxed);
        let now = applied::now_ms();
        Status {
            pipeline: name.to_owned(),
            state,
            reason,
            host: self.host_id.clone(),
            applied_revision,
            plugins: metrics.plugins.get(),
            events_in: metrics.inputs.load(Relaxed),
            events_out: metrics.results.load(Relaxed),
            dead_letters: metrics.dead_letters.load(Relaxed),
            late: metrics.late.load(Relaxed),
            consumer_pending: None,
            watermark_lag_ms: metrics.watermark_lag_ms(),
            last_checkpoint_ms: (last > 0).then_some(last),
            checkpoints: metrics.checkpoints.load(Relaxed),
            restarts,
            started_at_ms: now,
            heartbeat_ms: now,
        }
    }

    /// Messages not yet delivered to the consumers of a pipeline's inputs, each a (stream,
    /// consumer), summed — if NATS answers for every one quickly.
    async fn consumers_pending(&self, consumers: &[(String, String)]) -> Option<u64> {
        let ask = async {
            let mut pending = 0;
            for (stream, consumer) in consumers {
                let s = self.js.get_stream(stream).await.ok()?;
                pending += s.consumer_info(consumer).await.ok()?.num_pending;
            }
            Some(pending)
        };
        tokio::time::timeout(Duration::from_millis(500), ask)
            .await
            .ok()
            .flatten()
    }
}

/// The default host id: `$HOSTNAME`, else the kernel's host name, else `weir`.
pub fn default_host_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "weir".to_owned())
}

/// Runs the host until `shutdown` completes, then stops every pipeline after its final
/// checkpoint.
pub async fn serve(
    runtime: Runtime,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new());
    let client = crate::connect::connect("weir serve", &options.nats, Some(&health)).await?;
    health.set_nats_connected(true);
    health.set_consuming(true); // the control loop's watch: "consuming" the desired state
    let js = jetstream::new(client);
    let store = PipelineStore::open(&js, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the bucket of applied pipelines cannot be opened"))?;
    let statuses = StatusStore::open(&js, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the status bucket cannot be opened"))?;
    let (stop_all, shutdown_rx) = watch::channel(false);
    let host = Arc::new(Host {
        runtime,
        nats: options.nats.clone(),
        host_id: options.host_id.clone(),
        js,
        statuses,
        shutdown: shutdown_rx,
        health,
        pipelines: Mutex::new(BTreeMap::new()),
    });
    if let Some(addr) = options.admin {
        admin::start(addr, host.clone(), options.admin_token.clone()).await?;
    }
    tracing::info!(host = %options.host_id, "serving the pipelines applied to NATS");
    let (supervisors, deleting) = control(&host, &store, shutdown).await?;
    tracing::info!(
        pipelines = supervisors.len(),
        "shutting down: stopping every pipeline after its final checkpoint"
    );
    let _ = stop_all.send(true);
    let tasks = supervisors.into_values().map(|s| s.task);
    for task in tasks.chain(deleting) {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Follows the desired state until `shutdown`: a supervisor per applied pipeline. Returns the
/// supervisors still running, and the tasks of deleted pipelines still stopping.
async fn control(
    host: &Arc<Host>,
    store: &PipelineStore,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<(HashMap<String, Supervisor>, Vec<JoinHandle<()>>)> {
    let mut supervisors: HashMap<String, Supervisor> = HashMap::new();
    let mut deleting: Vec<JoinHandle<()>> = Vec::new();
    let mut changes = Box::pin(store.watch().await?);
    tokio::pin!(shutdown);
    loop {
        let change = tokio::select! {
            _ = &mut shutdown => return Ok((supervisors, deleting)),
            change = changes.next() => change,
        };
        match change {
            Some(Ok(Change::Applied { applied, revision })) => {
                match supervisors.get(&applied.name) {
                    Some(s) if !s.task.is_finished() => s.apply(applied, revision),
                    _ => {
                        tracing::info!(pipeline = %applied.name, revision, "pipeline applied");
                        let name = applied.name.clone();
                        let s = Supervisor::spawn(host.clone(), applied, revision);
                        supervisors.insert(name, s);
                    }
                }
            }
            Some(Ok(Change::Deleted { name })) => {
                if let Some(s) = supervisors.remove(&name) {
                    tracing::info!(pipeline = %name, "pipeline deleted: stopping it");
                    s.delete();
                    deleting.retain(|t| !t.is_finished());
                    deleting.push(s.task);
                }
            }
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "skipping an applied pipeline")
            }
            None => {
                // The watch ended (NATS went away for long): watch again, and stop what was
                // deleted meanwhile.
                tracing::warn!("the watch of applied pipelines ended; watching again");
                let (watch, now) = loop {
                    tokio::select! {
                        _ = &mut shutdown => return Ok((supervisors, deleting)),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    match (store.watch().await, store.list().await) {
                        (Ok(w), Ok(now)) => break (w, now),
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::warn!(error = %format!("{e:#}"), "watching the applied pipelines again failed; retrying");
                        }
                    }
                };
                changes = Box::pin(watch);
                let now: Vec<String> = now.into_iter().map(|a| a.name).collect();
                let gone: Vec<String> = supervisors
                    .keys()
                    .filter(|name| !now.contains(name))
                    .cloned()
                    .collect();
                for name in gone {
                    if let Some(s) = supervisors.remove(&name) {
                        s.delete();
                        deleting.push(s.task);
                    }
                }
            }
        }
    }
}
