//! One applied pipeline on a serve host: takes its lease, runs it on a thread of its own
//! (a failing or panicking pipeline touches no other), writes its status every heartbeat,
//! restarts it with the new definition when it is applied again (after a final checkpoint:
//! state carries over where compatible), retries it with a growing backoff when it fails, and
//! stops it — final checkpoint, status removed — when it is deleted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::Host;
use super::applied::{Applied, now_ms};
use super::status::{HEARTBEAT, LEASE_TTL, Lease, LeaseError, State, Status};
use crate::admin::Metrics;
use crate::checkpoint::StartFrom;
use crate::config::Pipeline;
use crate::pipeline::run_loop::RunSummary;

/// The first wait before a failed pipeline is started again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The desired definition of a supervised pipeline (`None`: deleted) and its revision.
type Desired = Option<(Applied, u64)>;

/// The handle of a supervised pipeline.
pub struct Supervisor {
    desired: watch::Sender<Desired>,
    pub task: JoinHandle<()>,
}

impl Supervisor {
    /// Starts supervising `applied` (at `revision`) on `host`.
    pub fn spawn(host: Arc<Host>, applied: Applied, revision: u64) -> Self {
        let name = applied.name.clone();
        let (desired, rx) = watch::channel(Some((applied, revision)));
        let task = tokio::spawn(supervise(host, name, rx));
        Supervisor { desired, task }
    }

    /// A new definition: the pipeline restarts with it, unless its text did not change.
    pub fn apply(&self, applied: Applied, revision: u64) {
        self.desired.send_if_modified(|d| match d {
            Some((current, _)) if current.text == applied.text => false,
            _ => {
                *d = Some((applied, revision));
                true
            }
        });
    }

    /// The pipeline was deleted: it stops after a final checkpoint and its status goes.
    pub fn delete(&self) {
        self.desired.send_replace(None);
    }
}

/// Why one run of a pipeline ended.
enum Ended {
    /// Asked to stop (a new definition, a delete, a shutdown) and stopped cleanly.
    Stopped,
    Failed(String),
    /// Another host wrote the status: it runs the pipeline now.
    LeaseLost(String),
}

async fn supervise(host: Arc<Host>, name: String, mut desired: watch::Receiver<Desired>) {
    let metrics = host.metrics_for(&name);
    let mut restarts = 0u32;
    let mut lease: Option<Lease> = None;
    let mut waiting_for: Option<String> = None;
    let mut last_revision = 0;
    loop {
        if desired.has_changed().is_err() {
            break; // the host dropped the handle
        }
        let current = desired.borrow_and_update().clone();
        let Some((applied, revision)) = current else {
            break;
        };
        if host.stopping() {
            break;
        }
        last_revision = revision;
        if lease.is_none() {
            let status = host.status(&name, &metrics, revision, State::Starting, None, restarts);
            lease = take_lease(&host, &status, &mut waiting_for, &mut desired).await;
        }
        let Some(held) = lease.as_mut() else {
            continue;
        };
        let ended = match applied.pipeline() {
            Ok(pipeline) => {
                host.set_interval(&name, pipeline.config.checkpoint.interval);
                let run = (revision, restarts);
                run_once(&host, pipeline, run, &metrics, held, &mut desired).await
            }
            Err(e) => Ended::Failed(format!("{e:#}")),
        };
        match ended {
            Ended::Stopped => restarts = 0,
            Ended::LeaseLost(other) => {
                tracing::warn!(pipeline = %name, host = %other, "another host took the pipeline over; stopped here");
                lease = None;
            }
            Ended::Failed(reason) => {
                restarts += 1;
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << restarts.min(6).saturating_sub(1))
                    .min(MAX_BACKOFF);
                tracing::error!(pipeline = %name, reason = %reason, retry_in = ?backoff, "pipeline failed");
                let failed = Some(reason);
                let status =
                    host.status(&name, &metrics, revision, State::Failed, failed, restarts);
                host.keep_status(&name, &status);
                wait(&host, &mut desired, backoff, Some((held, status))).await;
            }
        }
    }
    let deleted = desired.borrow().is_none();
    if let Some(l) = lease {
        let why = "the host shut down after a final checkpoint".to_owned();
        let stopped = host.status(
            &name,
            &metrics,
            last_revision,
            State::Stopped,
            Some(why),
            restarts,
        );
        leave(l, deleted, &stopped).await;
    }
    host.forget(&name);
}

/// Takes the lease of the pipeline `status` is about, if it is free; else waits a while (a
/// host holding it is named once in the log) and returns `None`.
async fn take_lease(
    host: &Host,
    status: &Status,
    waiting_for: &mut Option<String>,
    desired: &mut watch::Receiver<Desired>,
) -> Option<Lease> {
    let name = &status.pipeline;
    match host.statuses.acquire(name, &host.host_id, status).await {
        Ok(Ok(lease)) => {
            *waiting_for = None;
            return Some(lease);
        }
        Ok(Err(other)) => {
            if waiting_for.as_deref() != Some(&other) {
                tracing::info!(pipeline = %name, host = %other, "the pipeline runs on another host; waiting for its lease");
                *waiting_for = Some(other);
            }
            wait(host, desired, LEASE_TTL / 2, None).await;
        }
        Err(e) => {
            tracing::warn!(pipeline = %name, error = %format!("{e:#}"), "taking the lease failed");
            wait(host, desired, FIRST_BACKOFF, None).await;
        }
    }
    None
}

/// Gives up a pipeline after its final checkpoint: a deleted one's status goes, else it says
/// `stopped` (another host may take it at once).
async fn leave(mut lease: Lease, deleted: bool, stopped: &Status) {
    if deleted {
        lease.remove().await;
        tracing::info!(pipeline = %stopped.pipeline, "pipeline deleted: stopped after its final checkpoint");
    } else if let Err(LeaseError::Nats(e)) = lease.write(stopped).await {
        tracing::warn!(pipeline = %stopped.pipeline, error = %e, "writing the stopped status failed");
    }
}

/// Waits `how_long`, or less if the desired definition changes or the host stops; with a
/// lease, keeps writing `status` every heartbeat so that no other host takes the pipeline.
async fn wait(
    host: &Host,
    desired: &mut watch::Receiver<Desired>,
    how_long: Duration,
    mut beat: Option<(&mut Lease, Status)>,
) {
    let until = tokio::time::Instant::now() + how_long;
    let mut shutdown = host.shutdown.clone();
    loop {
        let next = (tokio::time::Instant::now() + HEARTBEAT).min(until);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = desired.changed() => return,
            _ = turned_true(&mut shutdown) => return,
        }
        if tokio::time::Instant::now() >= until {
            return;
        }
        if let Some((lease, status)) = beat.as_mut() {
            status.heartbeat_ms = now_ms();
            if let Err(LeaseError::Lost { .. }) = lease.write(status).await {
                return;
            }
        }
    }
}

/// Runs `pipeline` until it fails, or is asked to stop by a change of `desired`, a host
/// shutdown or a lost lease; writes its status every heartbeat (with the applied `revision` and
/// the `restarts` so far).
async fn run_once(
    host: &Host,
    pipeline: Pipeline,
    (revision, restarts): (u64, u32),
    metrics: &Arc<Metrics>,
    lease: &mut Lease,
    desired: &mut watch::Receiver<Desired>,
) -> Ended {
    let name = pipeline.config.name.get_ref().clone();
    let consumers: Vec<(String, String)> = (pipeline.config.inputs().iter().enumerate())
        .map(|(i, input)| (input.stream.clone(), pipeline.consumer_name_of(i)))
        .collect();
    let (stop, stopped) = watch::channel(false);
    let mut result = match spawn_run(host, pipeline, metrics.clone(), stopped) {
        Ok(r) => r,
        Err(e) => return Ended::Failed(e),
    };
    let started = now_ms();
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut shutdown = host.shutdown.clone();
    let mut stopping: Option<Ended> = None;
    loop {
        tokio::select! {
            r = &mut result => {
                return match (r, stopping) {
                    (Ok(Ok(_)), Some(why)) => why,
                    (Ok(Ok(_)), None) => Ended::Failed("the pipeline ended by itself".into()),
                    (Ok(Err(e)), _) => Ended::Failed(format!("{e:#}")),
                    (Err(_), _) => Ended::Failed("the pipeline's thread panicked".into()),
                };
            }
            _ = beat.tick() => {
                let pending = host.consumers_pending(&consumers).await;
                metrics.consumer_pending.store(pending.map_or(-1, |p| p as i64), std::sync::atomic::Ordering::Relaxed);
                let state = match metrics.health.readiness() {
                    Ok(()) => State::Running,
                    Err(_) => State::Starting,
                };
                let mut status = host.status(&name, metrics, revision, state, None, restarts);
                if let Err(why) = metrics.health.readiness() && state == State::Starting && status.events_in > 0 {
                    status.reason = Some(why);
                }
                status.started_at_ms = started;
                status.consumer_pending = pending;
                host.keep_status(&name, &status);
                match lease.write(&status).await {
                    Ok(()) => {}
                    Err(LeaseError::Lost { host: other }) if stopping.is_none() => {
                        let _ = stop.send(true);
                        stopping = Some(Ended::LeaseLost(other));
                    }
                    Err(LeaseError::Lost { .. }) => {}
                    Err(LeaseError::Nats(e)) => tracing::warn!(pipeline = %name, error = %e, "writing the status failed"),
                }
            }
            _ = desired.changed(), if stopping.is_none() => {
                let _ = stop.send(true);
                stopping = Some(Ended::Stopped);
            }
            _ = turned_true(&mut shutdown), if stopping.is_none() => {
                let _ = stop.send(true);
                stopping = Some(Ended::Stopped);
            }
        }
    }
}

/// Completes when `flag` is true (or its sender is gone).
async fn turned_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|s| *s).await;
}

/// Runs `pipeline` on a thread of its own, with its own Tokio runtime, until `stop` turns
/// true; its result comes on the returned channel (dropped without one: the thread panicked).
fn spawn_run(
    host: &Host,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> Result<oneshot::Receiver<anyhow::Result<RunSummary>>, String> {
    let (tx, rx) = oneshot::channel();
    let name = pipeline.config.name.get_ref().clone();
    let (runtime, nats) = (host.runtime.clone(), host.nats.clone());
    std::thread::Builder::new()
        .name(format!("weir-{name}"))
        .spawn(move || {
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(format!("weir-{name}-io"))
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    let stopped = async move { turned_true(&mut stop).await };
                    rt.block_on(crate::pipeline::nats::run(
                        &runtime,
                        &pipeline,
                        &nats,
                        stopped,
                        metrics,
                        StartFrom::Latest,
                        false,
                    ))
                });
            let _ = tx.send(result);
        })
        .map_err(|e| format!("starting the pipeline's thread: {e}"))?;
    Ok(rx)
}
