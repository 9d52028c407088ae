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
//!
//! Damage is reported, not fatal to reading: a head that does not parse is a [`Head::Corrupt`]
//! (its revision is kept, so the next commit replaces it), unparsable archived manifests are
//! listed apart ([`Listing::unreadable`]). Read-only users open the buckets with
//! [`CheckpointStore::open_existing`], which creates nothing. A bucket deleted under a running
//! host makes the commit fail with [`CheckpointError::StoreDeleted`].

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv, object_store};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::buckets::{deleted, kv_stream, object_stream, stream_exists};
use super::format::{BlobRef, CheckpointError, Manifest, StateBlob, sha256_hex};
use crate::config::CheckpointConfig;

/// The head of a pipeline's checkpoints, as read.
#[derive(Debug)]
pub enum Head {
    /// No head: a first run, or the key was deleted.
    Missing,
    /// The latest committed checkpoint.
    Committed(Box<Manifest>),
    /// The head's value does not parse ([`CheckpointError::CorruptManifest`]).
    Corrupt(CheckpointError),
}

/// A manifest key whose value does not parse.
#[derive(Debug)]
pub struct Unreadable {
    pub key: String,
    pub error: CheckpointError,
}

/// The pipeline's manifests: the retained checkpoints and the head, oldest first, and the keys
/// that do not parse.
#[derive(Debug, Default)]
pub struct Listing {
    pub manifests: Vec<Manifest>,
    pub unreadable: Vec<Unreadable>,
}

/// A pipeline's checkpoints.
pub struct CheckpointStore {
    js: jetstream::Context,
    kv: kv::Store,
    bucket: String,
    /// `None`: opened read-only and the object store does not exist.
    objects: Option<object_store::ObjectStore>,
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
        Self::with(js, kv, Some(objects), pipeline, config).await
    }

    /// Opens the buckets of `config` for pipeline `pipeline` without creating any: `None` when
    /// the manifest bucket does not exist (an object store that does not exist holds no
    /// blobs). For commands that only read or delete.
    pub async fn open_existing(
        js: &jetstream::Context,
        pipeline: &str,
        config: &CheckpointConfig,
    ) -> Result<Option<Self>, CheckpointError> {
        if !stream_exists(js, &kv_stream(&config.bucket)).await? {
            return Ok(None);
        }
        let kv = js.get_key_value(&config.bucket).await.map_err(|e| {
            CheckpointError::nats(format!("opening key-value bucket {:?}", config.bucket), e)
        })?;
        let objects = if stream_exists(js, &object_stream(&config.state_bucket)).await? {
            Some(
                js.get_object_store(&config.state_bucket)
                    .await
                    .map_err(|e| {
                        CheckpointError::nats(
                            format!("opening object store {:?}", config.state_bucket),
                            e,
                        )
                    })?,
            )
        } else {
            None
        };
        Self::with(js, kv, objects, pipeline, config)
            .await
            .map(Some)
    }

    async fn with(
        js: &jetstream::Context,
        kv: kv::Store,
        objects: Option<object_store::ObjectStore>,
        pipeline: &str,
        config: &CheckpointConfig,
    ) -> Result<Self, CheckpointError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut store = CheckpointStore {
            js: js.clone(),
            kv,
            bucket: config.bucket.clone(),
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

    /// The key of the head manifest (`<pipeline>.head`).
    pub fn head_key(&self) -> String {
        format!("{}.head", self.pipeline)
    }

    /// The manifest bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The pipeline whose checkpoints these are.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    fn archive_key(&self, id: u64) -> String {
        format!("{}.cp.{id:020}", self.pipeline)
    }

    fn parse(&self, key: &str, bytes: &[u8]) -> Result<Manifest, CheckpointError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| CheckpointError::CorruptManifest {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
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

    /// The latest committed checkpoint (a corrupt head is an error); remembers its revision
    /// for the next commit.
    pub async fn head(&mut self) -> Result<Option<Manifest>, CheckpointError> {
        match self.read_head().await? {
            Head::Missing => Ok(None),
            Head::Committed(m) => Ok(Some(*m)),
            Head::Corrupt(e) => Err(e),
        }
    }

    /// The head as it is, damage included; remembers its revision for the next commit (which
    /// so replaces a corrupt head).
    pub async fn read_head(&mut self) -> Result<Head, CheckpointError> {
        let key = self.head_key();
        let entry = self
            .kv
            .entry(key.clone())
            .await
            .map_err(|e| CheckpointError::nats(format!("reading {key}"), e))?;
        self.head_revision = entry.as_ref().map(|e| e.revision);
        Ok(match entry {
            Some(e) if e.operation == kv::Operation::Put => match self.parse(&key, &e.value) {
                Ok(m) => Head::Committed(Box::new(m)),
                Err(e @ CheckpointError::CorruptManifest { .. }) => Head::Corrupt(e),
                Err(e) => return Err(e),
            },
            _ => Head::Missing,
        })
    }

    /// Every readable retained checkpoint of the pipeline (and the head), oldest first; keys
    /// that do not parse are logged (but for the head: [`Self::read_head`] reports it) and
    /// left out.
    pub async fn list(&self) -> Result<Vec<Manifest>, CheckpointError> {
        let listing = self.listing().await?;
        let head = self.head_key();
        for u in listing.unreadable.iter().filter(|u| u.key != head) {
            tracing::warn!(key = %u.key, error = %u.error, "unreadable checkpoint manifest");
        }
        Ok(listing.manifests)
    }

    /// Every retained checkpoint of the pipeline (and the head), oldest first, and the keys
    /// whose manifests do not parse.
    pub async fn listing(&self) -> Result<Listing, CheckpointError> {
        let prefix = format!("{}.cp.", self.pipeline);
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| CheckpointError::nats("listing checkpoints", e))?;
        let mut found = BTreeMap::new();
        let mut unreadable = Vec::new();
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
            match self.parse(&key, &value) {
                Ok(m) => {
                    found.insert(m.id, m);
                }
                Err(error @ CheckpointError::CorruptManifest { .. }) => {
                    unreadable.push(Unreadable { key, error })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Listing {
            manifests: found.into_values().collect(),
            unreadable,
        })
    }

    /// The blob of `m`, checked against its size and digest and decoded.
    pub async fn load_blob(&self, m: &Manifest) -> Result<StateBlob, CheckpointError> {
        let Some(blob) = &m.blob else {
            return Ok(StateBlob::default());
        };
        let Some(objects) = &self.objects else {
            return Err(CheckpointError::MissingBlob {
                bucket: blob.bucket.clone(),
                object: blob.object.clone(),
            });
        };
        let mut object = match objects.get(&blob.object).await {
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
    /// A NATS failure because a bucket was deleted is [`CheckpointError::StoreDeleted`].
    pub async fn commit(
        &mut self,
        m: &mut Manifest,
        blob: Option<Vec<u8>>,
    ) -> Result<(), CheckpointError> {
        match self.write_and_commit(m, blob).await {
            Err(e @ CheckpointError::Nats { .. }) => {
                let deleted = deleted(&self.js, &self.pipeline, &self.bucket, &self.state_bucket);
                Err(deleted.await.unwrap_or(e))
            }
            done => done,
        }
    }

    async fn write_and_commit(
        &mut self,
        m: &mut Manifest,
        blob: Option<Vec<u8>>,
    ) -> Result<(), CheckpointError> {
        if let Some(bytes) = blob {
            m.blob = Some(self.write_blob(m.id, &bytes).await?);
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
                let their_id = match self.read_head().await? {
                    Head::Committed(h) => h.id,
                    Head::Missing | Head::Corrupt(_) => 0,
                };
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
        self.archive_and_retain(m, value).await;
        Ok(())
    }

    /// Writes the state blob of checkpoint `id` to the object store.
    async fn write_blob(&self, id: u64, bytes: &[u8]) -> Result<BlobRef, CheckpointError> {
        let Some(objects) = &self.objects else {
            return Err(CheckpointError::StoreDeleted {
                kind: "object store",
                bucket: self.state_bucket.clone(),
                pipeline: self.pipeline.clone(),
            });
        };
        let object = format!("{}/{:020}-{}", self.pipeline, id, self.run);
        objects
            .put(object.as_str(), &mut &bytes[..])
            .await
            .map_err(|e| CheckpointError::nats(format!("writing state blob {object}"), e))?;
        Ok(BlobRef {
            bucket: self.state_bucket.clone(),
            object,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        })
    }

    /// After the commit of `m` (its manifest `value`): archives the manifest and deletes the
    /// checkpoints beyond `retain`. Failures are logged: the head is the commit.
    async fn archive_and_retain(&mut self, m: &Manifest, value: Bytes) {
        // The archive copy only serves listing and fallback.
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
        if let (Some(b), Some(objects)) = (&m.blob, &self.objects) {
            let _ = objects.delete(&b.object).await;
        }
    }

    /// Deletes retained checkpoint `id` (manifest and blob). The head is not touched.
    pub async fn delete(&mut self, id: u64) -> Result<(), CheckpointError> {
        let key = self.archive_key(id);
        let object = match self.retained.get(&id) {
            Some(o) => o.clone(),
            // An unreadable manifest names no blob: the key alone goes.
            None => match self.kv.get(key.clone()).await {
                Ok(Some(v)) => self.parse(&key, &v).ok().and_then(|m| m.blob),
                _ => None,
            }
            .map(|b| b.object),
        };
        if let (Some(object), Some(objects)) = (object, &self.objects) {
            match objects.delete(&object).await {
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

    /// Deletes every checkpoint of the pipeline, head included (unreadable manifests too):
    /// the next run starts afresh.
    pub async fn delete_all(&mut self) -> Result<usize, CheckpointError> {
        let listing = self.listing().await?;
        for m in &listing.manifests {
            self.retained
                .insert(m.id, m.blob.as_ref().map(|b| b.object.clone()));
            self.delete(m.id).await?;
        }
        for u in &listing.unreadable {
            self.kv
                .purge(&u.key)
                .await
                .map_err(|e| CheckpointError::nats(format!("deleting {}", u.key), e))?;
        }
        let key = self.head_key();
        self.kv
            .purge(&key)
            .await
            .map_err(|e| CheckpointError::nats(format!("deleting {key}"), e))?;
        Ok(listing.manifests.len())
    }
}
