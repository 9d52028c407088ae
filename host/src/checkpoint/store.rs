//! Checkpoints in JetStream: manifests in a key-value bucket, state blobs in an object store.
//!
//! Keys of pipeline `p` in the manifest bucket:
//! - `p.head`: the manifest of the latest committed checkpoint. Commits replace it with
//!   compare-and-set on its revision, so of two hosts running the same pipeline only one can
//!   commit; the other gets [`CheckpointError::Conflict`] and stops.
//! - `p.cp.<id>`: every retained checkpoint's manifest (written after the head), for `weir
//!   checkpoint list` and for falling back when the latest blob is damaged.
//!
//! Blobs are objects `p/<id>-<run>` (`run` is unique per host process, so a losing writer
//! never overwrites the winner's blob). After each commit, checkpoints older than the newest
//! `retain` are deleted.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv, object_store};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::format::{BlobRef, CheckpointError, Manifest, StateBlob, sha256_hex};
use crate::config::CheckpointConfig;

/// A pipeline's checkpoints.
pub struct CheckpointStore {
    kv: kv::Store,
    objects: object_store::ObjectStore,
    state_bucket: String,
    pipeline: String,
    retain: usize,
    /// Revision of the head as this host last read or wrote it (`None`: no head).
    head_revision: Option<u64>,
    /// Unique per process: part of blob names.
    run: String,
    /// Retained checkpoints: id → blob object, as known to this host.
    retained: BTreeMap<u64, Option<String>>,
    /// A head written by this host whose commit did not answer (a NATS stall): it may or may
    /// not have been stored, and the next commit finds out first.
    unconfirmed: Option<Bytes>,
}

impl CheckpointStore {
    /// Opens (creating if missing) the buckets of `config` for pipeline `pipeline`.
    pub async fn open(
        js: &jetstream::Context,
        pipeline: &str,
        config: &CheckpointConfig,
    ) -> Result<Self, CheckpointError> {
        let kv = match js.get_key_value(&config.bucket).await {
            Ok(kv) => kv,
            Err(_) => js
                .create_key_value(kv::Config {
                    bucket: config.bucket.clone(),
                    description: "weir checkpoint manifests".into(),
                    history: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    CheckpointError::nats(
                        format!("creating key-value bucket {:?}", config.bucket),
                        e,
                    )
                })?,
        };
        let objects = match js.get_object_store(&config.state_bucket).await {
            Ok(o) => o,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: config.state_bucket.clone(),
                    description: Some("weir checkpoint state".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    CheckpointError::nats(
                        format!("creating object store {:?}", config.state_bucket),
                        e,
                    )
                })?,
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut store = CheckpointStore {
            kv,
            objects,
            state_bucket: config.state_bucket.clone(),
            pipeline: pipeline.to_owned(),
            retain: config.retain,
            head_revision: None,
            run: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff_ffff),
            retained: BTreeMap::new(),
            unconfirmed: None,
        };
        for m in store.list().await? {
            store.retained.insert(m.id, m.blob.map(|b| b.object));
        }
        Ok(store)
    }

    fn head_key(&self) -> String {
        format!("{}.head", self.pipeline)
    }

    fn archive_key(&self, id: u64) -> String {
        format!("{}.cp.{id:020}", self.pipeline)
    }

    fn parse(&self, key: &str, bytes: &[u8]) -> Result<Manifest, CheckpointError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| CheckpointError::CorruptBlob {
                object: format!("manifest {key}"),
                reason: e.to_string(),
            })?;
        if m.format > super::format::FORMAT_VERSION {
            return Err(CheckpointError::NewerFormat {
                pipeline: m.pipeline,
                id: m.id,
                version: m.format,
            });
        }
        Ok(m)
    }

    /// The latest committed checkpoint; remembers its revision for the next commit.
    pub async fn head(&mut self) -> Result<Option<Manifest>, CheckpointError> {
        let key = self.head_key();
        let entry = self
            .kv
            .entry(key.clone())
            .await
            .map_err(|e| CheckpointError::nats(format!("reading {key}"), e))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                self.head_revision = Some(e.revision);
                self.parse(&key, &e.value).map(Some)
            }
            Some(e) => {
                self.head_revision = Some(e.revision);
                Ok(None)
            }
            None => {
                self.head_revision = None;
                Ok(None)
            }
        }
    }

    /// Every retained checkpoint of the pipeline (and the head), oldest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, CheckpointError> {
        let prefix = format!("{}.cp.", self.pipeline);
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| CheckpointError::nats("listing checkpoints", e))?;
        let mut found = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| CheckpointError::nats("listing checkpoints", e))?;
            if !key.starts_with(&prefix) && key != self.head_key() {
                continue;
            }
            let Some(value) = self
                .kv
                .get(key.clone())
                .await
                .map_err(|e| CheckpointError::nats(format!("reading {key}"), e))?
            else {
                continue;
            };
            let m = self.parse(&key, &value)?;
            found.insert(m.id, m);
        }
        Ok(found.into_values().collect())
    }

    /// The blob of `m`, checked against its size and digest and decoded.
    pub async fn load_blob(&self, m: &Manifest) -> Result<StateBlob, CheckpointError> {
        let Some(blob) = &m.blob else {
            return Ok(StateBlob::default());
        };
        let mut object = match self.objects.get(&blob.object).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                return Err(CheckpointError::MissingBlob {
                    bucket: blob.bucket.clone(),
                    object: blob.object.clone(),
                });
            }
            Err(e) => {
                return Err(CheckpointError::nats(
                    format!("reading state blob {}", blob.object),
                    e,
                ));
            }
        };
        let mut bytes = Vec::with_capacity(blob.size as usize);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| CheckpointError::CorruptBlob {
                object: blob.object.clone(),
                reason: e.to_string(),
            })?;
        if bytes.len() as u64 != blob.size || sha256_hex(&bytes) != blob.sha256 {
            return Err(CheckpointError::CorruptBlob {
                object: blob.object.clone(),
                reason: format!(
                    "{} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                    bytes.len(),
                    sha256_hex(&bytes),
                    blob.size,
                    blob.sha256
                ),
            });
        }
        StateBlob::decode(&blob.object, &bytes)
    }

    /// Writes checkpoint `m` with its encoded `blob` (if any), commits it as the head
    /// (compare-and-set), archives its manifest and applies retention. Fills `m.blob`.
    pub async fn commit(
        &mut self,
        m: &mut Manifest,
        blob: Option<Vec<u8>>,
    ) -> Result<(), CheckpointError> {
        if let Some(bytes) = blob {
            let object = format!("{}/{:020}-{}", self.pipeline, m.id, self.run);
            let sha256 = sha256_hex(&bytes);
            let size = bytes.len() as u64;
            self.objects
                .put(object.as_str(), &mut bytes.as_slice())
                .await
                .map_err(|e| CheckpointError::nats(format!("writing state blob {object}"), e))?;
            m.blob = Some(BlobRef {
                bucket: self.state_bucket.clone(),
                object,
                size,
                sha256,
            });
        }
        let value = Bytes::from(serde_json::to_vec(m).expect("manifests serialize"));
        let key = self.head_key();
        if let Err(e) = self.confirm_unanswered().await {
            self.discard_blob(m).await;
            return Err(e);
        }
        let committed: Result<u64, (bool, async_nats::Error)> = match self.head_revision {
            Some(rev) => self
                .kv
                .update(&key, value.clone(), rev)
                .await
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.into())),
            None => self
                .kv
                .create(&key, value.clone())
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.into())),
        };
        match committed {
            Ok(rev) => self.head_revision = Some(rev),
            Err((true, _)) => {
                let their_id = self.head().await?.map(|h| h.id).unwrap_or(0);
                self.discard_blob(m).await;
                return Err(CheckpointError::Conflict {
                    pipeline: self.pipeline.clone(),
                    our_id: m.id,
                    their_id,
                });
            }
            Err((false, e)) => match self.head_entry().await {
                // The answer was lost but the write happened: it is committed.
                Ok(Some((rev, stored))) if stored == value => self.head_revision = Some(rev),
                Ok(_) => {
                    self.discard_blob(m).await;
                    return Err(CheckpointError::nats(format!("committing {key}"), e));
                }
                Err(_) => {
                    // Unknown: the blob may be the head's now, so it stays; the next commit
                    // finds out.
                    self.unconfirmed = Some(value);
                    return Err(CheckpointError::nats(format!("committing {key}"), e));
                }
            },
        }
        // The head is the commit; the archive copy only serves listing and fallback.
        let archive = self.archive_key(m.id);
        if let Err(e) = self.kv.put(&archive, value).await {
            tracing::warn!(key = %archive, error = %e, "archiving a checkpoint manifest failed");
        }
        self.retained
            .insert(m.id, m.blob.as_ref().map(|b| b.object.clone()));
        while self.retained.len() > self.retain {
            let (&old, _) = self.retained.iter().next().expect("not empty");
            if let Err(e) = self.delete(old).await {
                tracing::warn!(checkpoint = old, error = %e, "deleting an old checkpoint failed");
                break;
            }
        }
        Ok(())
    }

    /// Records on the head that checkpoint `m` (the head this host committed) had its held
    /// outputs stored. A failure only means a restore publishes them again (deduplicated
    /// within the duplicate window), so it is logged, not returned.
    pub async fn mark_delivered(&mut self, m: &mut Manifest) {
        m.pending_delivered = true;
        let value = Bytes::from(serde_json::to_vec(m).expect("manifests serialize"));
        let key = self.head_key();
        let Some(rev) = self.head_revision else {
            return;
        };
        match self.kv.update(&key, value.clone(), rev).await {
            Ok(rev) => self.head_revision = Some(rev),
            Err(e) => {
                tracing::warn!(checkpoint = m.id, error = %e, "recording delivered outputs failed");
                // It may have happened all the same (a lost answer): the next commit finds
                // out before it writes, as after a commit that did not answer.
                self.unconfirmed = Some(value);
            }
        }
    }

    /// The head's revision and bytes.
    async fn head_entry(&self) -> Result<Option<(u64, Bytes)>, CheckpointError> {
        let key = self.head_key();
        let entry = self
            .kv
            .entry(key.clone())
            .await
            .map_err(|e| CheckpointError::nats(format!("reading {key}"), e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| (e.revision, e.value)))
    }

    /// Finds out whether a commit that did not answer happened: if the head holds what it
    /// wrote, that is this host's head (not another host's), and its revision is the one to
    /// update next.
    async fn confirm_unanswered(&mut self) -> Result<(), CheckpointError> {
        let Some(attempted) = self.unconfirmed.clone() else {
            return Ok(());
        };
        if let Some((rev, stored)) = self.head_entry().await?
            && stored == attempted
        {
            tracing::info!(
                revision = rev,
                "a checkpoint commit that timed out had succeeded"
            );
            self.head_revision = Some(rev);
        }
        self.unconfirmed = None;
        Ok(())
    }

    async fn discard_blob(&self, m: &Manifest) {
        if let Some(b) = &m.blob {
            let _ = self.objects.delete(&b.object).await;
        }
    }

    /// Deletes retained checkpoint `id` (manifest and blob). The head is not touched.
    pub async fn delete(&mut self, id: u64) -> Result<(), CheckpointError> {
        let key = self.archive_key(id);
        let object = match self.retained.get(&id) {
            Some(o) => o.clone(),
            None => match self.kv.get(key.clone()).await {
                Ok(Some(v)) => self.parse(&key, &v)?.blob.map(|b| b.object),
                _ => None,
            },
        };
        if let Some(object) = object {
            match self.objects.delete(&object).await {
                Ok(()) => {}
                Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => {}
                Err(e) => {
                    return Err(CheckpointError::nats(format!("deleting {object}"), e));
                }
            }
        }
        self.kv
            .purge(&key)
            .await
            .map_err(|e| CheckpointError::nats(format!("deleting {key}"), e))?;
        self.retained.remove(&id);
        Ok(())
    }

    /// Deletes every checkpoint of the pipeline, head included: the next run starts afresh.
    pub async fn delete_all(&mut self) -> Result<usize, CheckpointError> {
        let all = self.list().await?;
        for m in &all {
            self.retained
                .insert(m.id, m.blob.as_ref().map(|b| b.object.clone()));
            self.delete(m.id).await?;
        }
        let key = self.head_key();
        self.kv
            .purge(&key)
            .await
            .map_err(|e| CheckpointError::nats(format!("deleting {key}"), e))?;
        Ok(all.len())
    }
}
