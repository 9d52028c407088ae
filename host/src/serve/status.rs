//! Where each applied pipeline stands, kept by the host running it in the key-value bucket
//! [`STATUS`] (one key per pipeline, rewritten every [`HEARTBEAT`]): state and why, host,
//! plugin versions, events in and out, dead letters, consumer lag, watermark lag, last
//! checkpoint.
//!
//! The key is also the pipeline's lease: a host writes it only at the revision it wrote last
//! ([`Lease`]), so two hosts never both run one pipeline. A host takes a pipeline whose status
//! is missing, stopped, or older than [`LEASE_TTL`] (its host is gone); it stops a pipeline
//! whose status another host has written since.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::applied::{now_ms, open_or_create};
use crate::admin::plugins::PluginStatus;
use crate::checkpoint::buckets::{kv_stream, stream_exists};

/// The key-value bucket of pipeline statuses.
pub const STATUS: &str = "weir-pipeline-status";

/// How often the host running a pipeline rewrites its status.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A status not rewritten for this long belongs to a host that is gone: another may take the
/// pipeline.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// What a pipeline is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Loading plugins, connecting, restoring its checkpoint.
    Starting,
    Running,
    /// Failed (the reason says why); retried after a backoff.
    Failed,
    /// Stopped by a delete or a host shutdown, after its final checkpoint.
    Stopped,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// One pipeline's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pipeline: String,
    pub state: State,
    /// Why it failed or stopped.
    pub reason: Option<String>,
    /// The host running it (`weir serve --host-id`).
    pub host: String,
    /// The revision of the applied pipeline it runs.
    pub applied_revision: u64,
    /// Each operator's plugin version.
    pub plugins: Vec<PluginStatus>,
    pub events_in: u64,
    pub events_out: u64,
    pub dead_letters: u64,
    pub late: u64,
    /// Source messages not yet delivered to it (consumer lag), when known.
    pub consumer_pending: Option<u64>,
    /// How far its event-time watermark trails the wall clock, ms.
    pub watermark_lag_ms: Option<i64>,
    /// When its last checkpoint committed, ms since the Unix epoch.
    pub last_checkpoint_ms: Option<i64>,
    pub checkpoints: u64,
    /// Starts after a failure since it was applied.
    pub restarts: u32,
    /// When the current run started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When this status was written, ms since the Unix epoch.
    pub heartbeat_ms: i64,
}

impl Status {
    /// Whether the host that wrote this status is presumed gone (no heartbeat for
    /// [`LEASE_TTL`]).
    pub fn stale(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.heartbeat_ms) > LEASE_TTL.as_millis() as i64
    }

    /// How long ago the last checkpoint committed, ms.
    pub fn checkpoint_age_ms(&self, now_ms: i64) -> Option<i64> {
        self.last_checkpoint_ms.map(|t| now_ms.saturating_sub(t))
    }
}

/// The status bucket.
#[derive(Clone)]
pub struct StatusStore {
    kv: kv::Store,
}

impl StatusStore {
    /// Opens the bucket; with `create`, creates it if missing, else a missing bucket is `None`.
    pub async fn open(js: &jetstream::Context, create: bool) -> anyhow::Result<Option<Self>> {
        if !create {
            let exists = stream_exists(js, &kv_stream(STATUS))
                .await
                .with_context(|| format!("opening key-value bucket {STATUS:?}"))?;
            if !exists {
                return Ok(None);
            }
        }
        let kv = open_or_create(js, STATUS, "weir: pipeline status and leases", 1).await?;
        Ok(Some(StatusStore { kv }))
    }

    /// The status of `name` and its revision.
    pub async fn get(&self, name: &str) -> anyhow::Result<Option<(Status, u64)>> {
        let entry = self
            .kv
            .entry(name)
            .await
            .with_context(|| format!("reading {name:?} of bucket {STATUS:?}"))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let status = serde_json::from_slice(&e.value).with_context(|| {
                    format!("key {name:?} of bucket {STATUS:?} is not a pipeline status")
                })?;
                Ok(Some((status, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Every status, by pipeline name (those that do not decode are skipped with a warning).
    pub async fn list(&self) -> anyhow::Result<Vec<Status>> {
        let keys = super::applied::keys(&self.kv, STATUS).await?;
        let mut out = Vec::new();
        for key in keys {
            match self.get(&key).await {
                Ok(Some((s, _))) => out.push(s),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "skipping a status"),
            }
        }
        out.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));
        Ok(out)
    }

    /// Takes the lease of pipeline `name` for `host` if it is free: no status, a stopped one,
    /// one of this host, or one whose host is gone. `Err(other host)` while another host holds
    /// it.
    pub async fn acquire(
        &self,
        name: &str,
        host: &str,
        first: &Status,
    ) -> anyhow::Result<Result<Lease, String>> {
        let value = encode(first);
        let revision = match self.get(name).await? {
            None => self.kv.create(name, value).await.map_err(|e| {
                anyhow::anyhow!("taking the lease of pipeline {name:?} in bucket {STATUS:?}: {e}")
            }),
            Some((s, _)) if s.host != host && s.state != State::Stopped && !s.stale(now_ms()) => {
                return Ok(Err(s.host));
            }
            Some((_, revision)) => self.kv.update(name, value, revision).await.map_err(|e| {
                anyhow::anyhow!("taking the lease of pipeline {name:?} in bucket {STATUS:?}: {e}")
            }),
        };
        match revision {
            Ok(revision) => Ok(Ok(Lease {
                store: self.clone(),
                name: name.to_owned(),
                revision,
            })),
            // Another host took it between the read and the write.
            Err(_) => match self.get(name).await? {
                Some((s, _)) if s.host != host => Ok(Err(s.host)),
                _ => anyhow::bail!("taking the lease of pipeline {name:?}: a concurrent write"),
            },
        }
    }
}

/// The right to run one pipeline, held by writing its status at the revision written last.
pub struct Lease {
    store: StatusStore,
    name: String,
    revision: u64,
}

/// Why a status could not be written.
#[derive(Debug)]
pub enum LeaseError {
    /// Another host wrote the status since: it runs the pipeline now.
    Lost { host: String },
    /// NATS did not take the write (the lease is kept; try again).
    Nats(String),
}

impl Lease {
    /// Writes `status` if this host still holds the lease.
    pub async fn write(&mut self, status: &Status) -> Result<(), LeaseError> {
        match self
            .store
            .kv
            .update(&self.name, encode(status), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                match self.store.get(&self.name).await {
                    Ok(Some((s, revision))) if s.host == status.host => {
                        // Our own write whose answer was lost.
                        self.revision = revision;
                        Ok(())
                    }
                    Ok(Some((s, _))) => Err(LeaseError::Lost { host: s.host }),
                    Ok(None) => Err(LeaseError::Lost {
                        host: "nobody (the status was deleted)".into(),
                    }),
                    Err(e) => Err(LeaseError::Nats(format!("{e:#}"))),
                }
            }
            Err(e) => Err(LeaseError::Nats(e.to_string())),
        }
    }

    /// Gives the lease up for good: the status is deleted (the pipeline was deleted).
    pub async fn remove(self) {
        if let Err(e) = self.store.kv.delete(&self.name).await {
            tracing::warn!(pipeline = %self.name, error = %e, "deleting the status failed");
        }
    }
}

fn encode(status: &Status) -> Bytes {
    // Strings, numbers and options of them always serialize.
    Bytes::from(serde_json::to_vec(status).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_stale_after_the_lease_ttl() {
        let s = Status {
            pipeline: "p".into(),
            state: State::Running,
            reason: None,
            host: "h".into(),
            applied_revision: 1,
            plugins: Vec::new(),
            events_in: 0,
            events_out: 0,
            dead_letters: 0,
            late: 0,
            consumer_pending: None,
            watermark_lag_ms: None,
            last_checkpoint_ms: Some(1_000),
            checkpoints: 1,
            restarts: 0,
            started_at_ms: 0,
            heartbeat_ms: 1_000,
        };
        let ttl = LEASE_TTL.as_millis() as i64;
        assert!(!s.stale(1_000 + ttl));
        assert!(s.stale(1_001 + ttl));
        assert_eq!(s.checkpoint_age_ms(3_500), Some(2_500));
    }
}
