//! The registry's buckets and what is read from them: opening (creating only when asked),
//! tags, versions, the list of plugins, the history of a tag, and a watch on a tag. Moving
//! tags is in `deploy.rs`; the key layout in [`super::names`].

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv, object_store};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use super::names::{
    check_name, check_version, is_tag_key, log_prefix, tag_key, version_key, version_prefix,
};
use super::{OBJECTS, RegistryError, TAGS, Tag};
use crate::checkpoint::buckets::{kv_stream, object_stream, stream_exists};

/// How many values of each key the tag bucket keeps (the most NATS allows); the moves of a
/// tag are also recorded under their own keys, so a longer history is not lost.
const KV_HISTORY: i64 = 64;

/// The plugin registry in one NATS server: see [the module](super).
#[derive(Clone)]
pub struct Registry {
    pub(super) kv: kv::Store,
    pub(super) objects: object_store::ObjectStore,
}

/// A tag as read, with the KV revision a move must replace.
pub(super) struct Current {
    pub(super) tag: Option<Tag>,
    pub(super) revision: Option<u64>,
}

fn parse(key: &str, value: &[u8]) -> Result<Tag, RegistryError> {
    serde_json::from_slice(value).map_err(|e| RegistryError::Corrupt {
        bucket: TAGS.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn encode(tag: &Tag) -> Bytes {
    // A struct of strings and integers always serializes.
    Bytes::from(serde_json::to_vec(tag).unwrap_or_default())
}

impl Registry {
    /// Opens the buckets; with `create`, creates those that are missing (a deploy), else a
    /// missing bucket is [`RegistryError::BucketMissing`] (read-only commands create nothing).
    pub async fn open(js: &jetstream::Context, create: bool) -> Result<Self, RegistryError> {
        if !create {
            for (kind, bucket, stream) in [
                ("key-value bucket", TAGS, kv_stream(TAGS)),
                ("object store", OBJECTS, object_stream(OBJECTS)),
            ] {
                let exists = stream_exists(js, &stream)
                    .await
                    .map_err(|e| RegistryError::nats(format!("opening {kind} {bucket:?}"), e))?;
                if !exists {
                    return Err(RegistryError::BucketMissing {
                        kind,
                        bucket: bucket.to_owned(),
                    });
                }
            }
        }
        let kv = match js.get_key_value(TAGS).await {
            Ok(kv) => kv,
            Err(_) if create => {
                let config = kv::Config {
                    bucket: TAGS.to_owned(),
                    description: "weir plugin tags and versions".into(),
                    history: KV_HISTORY,
                    ..Default::default()
                };
                match js.create_key_value(config).await {
                    Ok(kv) => kv,
                    // Another deploy may have created it meanwhile.
                    Err(e) => js.get_key_value(TAGS).await.map_err(|_| {
                        RegistryError::nats(format!("creating key-value bucket {TAGS:?}"), e)
                    })?,
                }
            }
            Err(e) => {
                return Err(RegistryError::nats(
                    format!("opening key-value bucket {TAGS:?}"),
                    e,
                ));
            }
        };
        let objects = match js.get_object_store(OBJECTS).await {
            Ok(o) => o,
            Err(_) if create => {
                let config = object_store::Config {
                    bucket: OBJECTS.to_owned(),
                    description: Some("weir plugin components, by SHA-256".into()),
                    ..Default::default()
                };
                match js.create_object_store(config).await {
                    Ok(o) => o,
                    Err(e) => js.get_object_store(OBJECTS).await.map_err(|_| {
                        RegistryError::nats(format!("creating object store {OBJECTS:?}"), e)
                    })?,
                }
            }
            Err(e) => {
                return Err(RegistryError::nats(
                    format!("opening object store {OBJECTS:?}"),
                    e,
                ));
            }
        };
        Ok(Registry { kv, objects })
    }

    pub(super) async fn read(&self, key: &str) -> Result<Option<Tag>, RegistryError> {
        let value =
            self.kv.get(key).await.map_err(|e| {
                RegistryError::nats(format!("reading {key:?} of bucket {TAGS:?}"), e)
            })?;
        value.map(|v| parse(key, &v)).transpose()
    }

    pub(super) async fn current(&self, name: &str) -> Result<Current, RegistryError> {
        let key = tag_key(name);
        let entry =
            self.kv.entry(key.as_str()).await.map_err(|e| {
                RegistryError::nats(format!("reading {key:?} of bucket {TAGS:?}"), e)
            })?;
        Ok(match entry {
            None => Current {
                tag: None,
                revision: None,
            },
            Some(e) => Current {
                tag: match e.operation {
                    kv::Operation::Put => Some(parse(&key, &e.value)?),
                    kv::Operation::Delete | kv::Operation::Purge => None,
                },
                revision: Some(e.revision),
            },
        })
    }

    /// Every key of the bucket starting with `prefix`.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let listing = format!("listing the keys of bucket {TAGS:?}");
        let keys = self
            .kv
            .keys()
            .await
            .map_err(|e| RegistryError::nats(listing.clone(), e))?;
        let keys: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|e| RegistryError::nats(listing, e))?;
        Ok(keys.into_iter().filter(|k| k.starts_with(prefix)).collect())
    }

    /// What the tag of `name` points at now (`None`: no such plugin).
    pub async fn tag(&self, name: &str) -> Result<Option<Tag>, RegistryError> {
        check_name(name)?;
        Ok(self.current(name).await?.tag)
    }

    /// Version `version` of `name` as it was deployed.
    pub async fn version(&self, name: &str, version: &str) -> Result<Option<Tag>, RegistryError> {
        check_name(name)?;
        check_version(name, version)?;
        self.read(&version_key(name, version)).await
    }

    /// Every version of `name`, in the order they were deployed.
    pub async fn versions(&self, name: &str) -> Result<Vec<Tag>, RegistryError> {
        check_name(name)?;
        let mut by_revision = BTreeMap::new();
        for key in self.keys(&version_prefix(name)).await? {
            let entry = self.kv.entry(key.as_str()).await.map_err(|e| {
                RegistryError::nats(format!("reading {key:?} of bucket {TAGS:?}"), e)
            })?;
            if let Some(e) = entry.filter(|e| e.operation == kv::Operation::Put) {
                by_revision.insert(e.revision, parse(&key, &e.value)?);
            }
        }
        Ok(by_revision.into_values().collect())
    }

    /// Every plugin's current tag, by name.
    pub async fn list(&self) -> Result<Vec<Tag>, RegistryError> {
        let mut tags = Vec::new();
        for key in self.keys("").await? {
            if is_tag_key(&key)
                && let Some(tag) = self.read(&key).await?
            {
                tags.push(tag);
            }
        }
        tags.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tags)
    }

    /// Every move of the tag of `name` — deploys and rollbacks with their notes — oldest
    /// first; empty for a name never deployed.
    pub async fn history(&self, name: &str) -> Result<Vec<Tag>, RegistryError> {
        check_name(name)?;
        let mut moves = BTreeMap::new();
        for key in self.keys(&log_prefix(name)).await? {
            let revision = key[log_prefix(name).len()..].parse::<u64>().ok();
            if let (Some(revision), Some(tag)) = (revision, self.read(&key).await?) {
                moves.insert(revision, tag);
            }
        }
        // The tag key's own history covers a move whose record could not be written.
        let key = tag_key(name);
        let reading = format!("reading the history of {key:?} of bucket {TAGS:?}");
        let mut values = self
            .kv
            .history(key.as_str())
            .await
            .map_err(|e| RegistryError::nats(reading.clone(), e))?;
        while let Some(entry) = values.next().await {
            let entry = entry.map_err(|e| RegistryError::nats(reading.clone(), e))?;
            if entry.operation == kv::Operation::Put && !moves.contains_key(&entry.revision) {
                moves.insert(entry.revision, parse(&key, &entry.value)?);
            }
        }
        Ok(moves.into_values().collect())
    }

    /// Every later move of the tag of `name`, for a running host to follow. A deleted tag
    /// yields nothing (there is no version to switch to).
    pub async fn watch(
        &self,
        name: &str,
    ) -> Result<impl Stream<Item = Result<Tag, RegistryError>> + Send + 'static, RegistryError>
    {
        check_name(name)?;
        let key = tag_key(name);
        let watch =
            self.kv.watch(key.as_str()).await.map_err(|e| {
                RegistryError::nats(format!("watching {key:?} of bucket {TAGS:?}"), e)
            })?;
        Ok(watch.filter_map(move |entry| {
            let item = match entry {
                Err(e) => Some(Err(RegistryError::nats(
                    format!("watching {key:?} of bucket {TAGS:?}"),
                    e,
                ))),
                Ok(e) if e.operation == kv::Operation::Put => Some(parse(&key, &e.value)),
                Ok(_) => None,
            };
            std::future::ready(item)
        }))
    }
}
