//! The desired state of a `weir serve` cluster: the pipelines applied to it, one key per
//! pipeline in the key-value bucket [`PIPELINES`]. `weir pipeline apply` writes a key,
//! `weir pipeline delete` deletes it; every serve host watches the bucket and runs what it
//! holds.
//!
//! A stored pipeline is self-contained: the plugins its file named by path were uploaded to the
//! plugin registry and the references rewritten to pinned registry versions (`nats:NAME@V`), so
//! every host runs the same bytes.

use std::path::PathBuf;

use anyhow::Context;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::checkpoint::buckets::{kv_stream, stream_exists};
use crate::config::Pipeline;

/// The key-value bucket holding the applied pipelines.
pub const PIPELINES: &str = "weir-pipelines";

/// Revisions of each pipeline kept (what `weir pipeline status` can show of its past).
const HISTORY: i64 = 10;

/// A pipeline as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The pipeline's name (its key).
    pub name: String,
    /// The pipeline file's text, plugin paths rewritten to registry references.
    pub text: String,
    /// The file it was applied from, for people reading the status.
    pub source: String,
    /// When it was applied, ms since the Unix epoch.
    pub applied_at_ms: i64,
}

impl Applied {
    /// The file name errors in this pipeline are reported against (`weir-pipelines/NAME.toml`).
    pub fn file(&self) -> PathBuf {
        PathBuf::from(format!("{PIPELINES}/{}.toml", self.name))
    }

    /// Parses and checks the stored text.
    pub fn pipeline(&self) -> anyhow::Result<Pipeline> {
        let pipeline = crate::config::parse(&self.file(), self.text.clone())?;
        let named = pipeline.config.name.get_ref();
        if *named != self.name {
            anyhow::bail!(
                "{}: the pipeline is stored under {:?} but its file names it {named:?}",
                self.file().display(),
                self.name
            );
        }
        Ok(pipeline)
    }
}

/// A change of the desired state.
#[derive(Debug, Clone)]
pub enum Change {
    /// Pipeline applied (or applied again); `revision` is the key's revision.
    Applied { applied: Applied, revision: u64 },
    /// Pipeline deleted.
    Deleted { name: String },
}

/// The bucket of applied pipelines.
#[derive(Clone)]
pub struct PipelineStore {
    kv: kv::Store,
}

impl PipelineStore {
    /// Opens the bucket; with `create`, creates it if missing. Without, a missing bucket is
    /// `None` (nothing was ever applied) and nothing is created.
    pub async fn open(js: &jetstream::Context, create: bool) -> anyhow::Result<Option<Self>> {
        if !create {
            let exists = stream_exists(js, &kv_stream(PIPELINES))
                .await
                .with_context(|| format!("opening key-value bucket {PIPELINES:?}"))?;
            if !exists {
                return Ok(None);
            }
        }
        let kv = open_or_create(js, PIPELINES, "weir: applied pipelines", HISTORY).await?;
        Ok(Some(PipelineStore { kv }))
    }

    /// Stores `applied` under its name; the key's new revision.
    pub async fn put(&self, applied: &Applied) -> anyhow::Result<u64> {
        let value = serde_json::to_vec(applied).context("encoding the pipeline")?;
        self.kv
            .put(&applied.name, Bytes::from(value))
            .await
            .with_context(|| format!("writing {:?} to bucket {PIPELINES:?}", applied.name))
    }

    /// The pipeline applied as `name`, with its revision.
    pub async fn get(&self, name: &str) -> anyhow::Result<Option<(Applied, u64)>> {
        let entry = self
            .kv
            .entry(name)
            .await
            .with_context(|| format!("reading {name:?} of bucket {PIPELINES:?}"))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                Ok(Some((decode(&e.key, &e.value)?, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Every applied pipeline, by name.
    pub async fn list(&self) -> anyhow::Result<Vec<Applied>> {
        let keys = keys(&self.kv, PIPELINES).await?;
        let mut out = Vec::new();
        for key in keys {
            if let Some((applied, _)) = self.get(&key).await? {
                out.push(applied);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes pipeline `name`; `false` when it was not applied.
    pub async fn delete(&self, name: &str) -> anyhow::Result<bool> {
        if self.get(name).await?.is_none() {
            return Ok(false);
        }
        self.kv
            .delete(name)
            .await
            .with_context(|| format!("deleting {name:?} of bucket {PIPELINES:?}"))?;
        Ok(true)
    }

    /// Every pipeline applied now, then every change as it happens. An entry that does not
    /// decode is reported in the stream as an error, naming its key.
    pub async fn watch(
        &self,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<Change>> + use<>> {
        let watch = self
            .kv
            .watch_with_history(">")
            .await
            .with_context(|| format!("watching bucket {PIPELINES:?}"))?;
        Ok(watch.map(|entry| {
            let entry = entry.with_context(|| format!("watching bucket {PIPELINES:?}"))?;
            Ok(match entry.operation {
                kv::Operation::Put => Change::Applied {
                    applied: decode(&entry.key, &entry.value)?,
                    revision: entry.revision,
                },
                kv::Operation::Delete | kv::Operation::Purge => Change::Deleted { name: entry.key },
            })
        }))
    }
}

/// Every key of `kv` (bucket `bucket`, for errors).
pub(super) async fn keys(kv: &kv::Store, bucket: &str) -> anyhow::Result<Vec<String>> {
    let listing = || format!("listing bucket {bucket:?}");
    kv.keys()
        .await
        .with_context(listing)?
        .try_collect()
        .await
        .with_context(listing)
}

fn decode(key: &str, value: &[u8]) -> anyhow::Result<Applied> {
    serde_json::from_slice(value)
        .with_context(|| format!("key {key:?} of bucket {PIPELINES:?} is not an applied pipeline"))
}

/// Opens key-value bucket `bucket`, creating it (with `description` and `history`) if it is
/// missing; one created meanwhile by another host is fine.
pub(super) async fn open_or_create(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    history: i64,
) -> anyhow::Result<kv::Store> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    let config = kv::Config {
        bucket: bucket.to_owned(),
        description: description.to_owned(),
        history,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(kv) => Ok(kv),
        Err(e) => js
            .get_key_value(bucket)
            .await
            .map_err(|_| anyhow::anyhow!("creating key-value bucket {bucket:?}: {e}")),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
