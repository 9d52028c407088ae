//! Moving tags: a deploy (a new or existing version) and a rollback. Every move replaces the
//! tag at the revision it was read at, so concurrent moves of one name cannot both succeed,
//! and is recorded under its own key for [`Registry::history`].

use async_nats::jetstream::kv;

use super::names::{
    check_name, check_version, log_key, next_version, object_name, tag_key, version_key,
};
use super::store::{Current, encode};
use super::{OBJECTS, Registry, RegistryError, TAGS, Tag, now_ms};
use crate::runtime::World;
use crate::runtime::cache::content_hash;

impl Registry {
    /// Moves the tag of `tag.name` to `tag`, replacing the value at `current.revision` (a
    /// concurrent move makes this fail with [`RegistryError::Conflict`]), and records the
    /// move.
    async fn move_tag(&self, tag: &Tag, current: &Current) -> Result<Tag, RegistryError> {
        let key = tag_key(&tag.name);
        let conflict = || RegistryError::Conflict {
            name: tag.name.clone(),
            bucket: TAGS.to_owned(),
        };
        let moving = format!("moving the tag {key:?} of bucket {TAGS:?}");
        let revision = match current.revision {
            None => self.kv.create(&key, encode(tag)).await.map_err(|e| {
                if e.kind() == kv::CreateErrorKind::AlreadyExists {
                    conflict()
                } else {
                    RegistryError::nats(moving.clone(), e)
                }
            })?,
            Some(r) => self.kv.update(&key, encode(tag), r).await.map_err(|e| {
                if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                    conflict()
                } else {
                    RegistryError::nats(moving.clone(), e)
                }
            })?,
        };
        let log = log_key(&tag.name, revision);
        if let Err(e) = self.kv.put(&log, encode(tag)).await {
            // The move itself stands; the tag key's own history still holds it.
            tracing::warn!(key = %log, bucket = TAGS, error = %e, "recording a tag move failed");
        }
        Ok(tag.clone())
    }

    /// Checks the component at `path` ([`validate`](super::validate::validate), on a blocking
    /// thread: compiling takes seconds for some languages) and publishes it; a component that
    /// does not load is refused before anything is stored.
    pub async fn deploy_file(
        &self,
        runtime: &crate::runtime::Runtime,
        path: &std::path::Path,
        name: &str,
        version: Option<&str>,
    ) -> Result<Tag, RegistryError> {
        check_name(name)?;
        let checked = super::validate::validate_blocking(runtime, path).await?;
        self.publish(name, version, checked.world, &checked.bytes)
            .await
    }

    /// Stores `bytes` (a component already validated, e.g. by
    /// [`validate`](super::validate::validate)) and moves the tag of `name` to it.
    ///
    /// Without `version`, bytes already deployed under `name` reuse their version, and new
    /// bytes get the next integer version. An existing version with other bytes is refused,
    /// as is a world other than the name's first version's. A tag already at this version
    /// and digest does not move.
    pub async fn publish(
        &self,
        name: &str,
        version: Option<&str>,
        world: World,
        bytes: &[u8],
    ) -> Result<Tag, RegistryError> {
        check_name(name)?;
        if let Some(v) = version {
            check_version(name, v)?;
        }
        let digest = content_hash(bytes);
        let versions = self.versions(name).await?;
        if let Some(first) = versions.first()
            && first.world != world.name()
        {
            return Err(RegistryError::WorldMismatch {
                name: name.to_owned(),
                fixed: first.world.clone(),
                first: first.version.clone(),
                got: world.name().to_owned(),
            });
        }
        let existing = match version {
            Some(v) => versions.iter().find(|t| t.version == v),
            None => versions.iter().rev().find(|t| t.digest == digest),
        };
        if let Some(t) = existing
            && t.digest != digest
        {
            return Err(RegistryError::VersionExists {
                name: name.to_owned(),
                version: t.version.clone(),
                existing: t.digest.clone(),
                new: digest,
            });
        }
        let record = Tag {
            name: name.to_owned(),
            version: match (existing, version) {
                (Some(t), _) => t.version.clone(),
                (None, Some(v)) => v.to_owned(),
                (None, None) => next_version(versions.iter().map(|t| t.version.as_str())),
            },
            digest: digest.clone(),
            world: world.name().to_owned(),
            size: bytes.len() as u64,
            deployed_at_ms: now_ms(),
            note: None,
        };
        self.store_object(&digest, bytes).await?;
        if existing.is_none() {
            self.create_version(&record).await?;
        }
        let current = self.current(name).await?;
        if let Some(t) = &current.tag
            && t.version == record.version
            && t.digest == record.digest
        {
            return Ok(t.clone());
        }
        self.move_tag(&record, &current).await
    }

    /// Records a new version; one created meanwhile with the same bytes is fine.
    async fn create_version(&self, record: &Tag) -> Result<(), RegistryError> {
        let key = version_key(&record.name, &record.version);
        match self.kv.create(&key, encode(record)).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.read(&key).await? {
                    Some(t) if t.digest != record.digest => Err(RegistryError::VersionExists {
                        name: record.name.clone(),
                        version: record.version.clone(),
                        existing: t.digest,
                        new: record.digest.clone(),
                    }),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(RegistryError::nats(
                format!("writing {key:?} of bucket {TAGS:?}"),
                e,
            )),
        }
    }

    /// Moves the tag of `name` back to version `to`, by default the version deployed before
    /// the current one, recording `rollback to <to> from <current>: <reason>`.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<&str>,
        reason: &str,
    ) -> Result<Tag, RegistryError> {
        check_name(name)?;
        if let Some(v) = to {
            check_version(name, v)?;
        }
        let current = self.current(name).await?;
        let Some(now) = &current.tag else {
            return Err(RegistryError::UnknownPlugin {
                name: name.to_owned(),
                bucket: TAGS.to_owned(),
            });
        };
        let versions = self.versions(name).await?;
        let no_rollback = |why: &str| RegistryError::NoRollback {
            name: name.to_owned(),
            version: now.version.clone(),
            why: why.to_owned(),
        };
        let target = match to {
            Some(v) if v == now.version => return Err(no_rollback("the version asked for")),
            Some(v) => versions.iter().find(|t| t.version == v).ok_or_else(|| {
                RegistryError::UnknownVersion {
                    name: name.to_owned(),
                    version: v.to_owned(),
                    bucket: TAGS.to_owned(),
                }
            })?,
            None => {
                let at = versions.iter().position(|t| t.version == now.version);
                match at.and_then(|i| i.checked_sub(1)) {
                    Some(i) => &versions[i],
                    None => return Err(no_rollback("the first one: there is none before it")),
                }
            }
        };
        if !self.has_object(&target.digest).await? {
            return Err(RegistryError::MissingObject {
                bucket: OBJECTS.to_owned(),
                object: object_name(&target.digest),
                digest: target.digest.clone(),
            });
        }
        let mut note = format!("rollback to {} from {}", target.version, now.version);
        if !reason.trim().is_empty() {
            note = format!("{note}: {}", reason.trim());
        }
        let moved = Tag {
            deployed_at_ms: now_ms(),
            note: Some(note),
            ..target.clone()
        };
        self.move_tag(&moved, &current).await
    }
}
