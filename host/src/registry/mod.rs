//! The plugin registry: operator components kept in NATS, where the data already lives, so
//! that hosts load plugins by name and follow a tag as it moves.
//!
//! - Components are objects of the object store [`OBJECTS`], named `sha256-<hex>` after the
//!   SHA-256 of their bytes; a read recomputes the hash and refuses bytes that do not match
//!   ([`Registry::fetch`]).
//! - Each plugin name has a tag in the key-value bucket [`TAGS`]: the version hosts should run
//!   (a [`Tag`]: version, digest, world, size, when it moved, why). Versions are immutable and
//!   the world of a name is fixed by its first version. Every move of the tag — a deploy or a
//!   rollback — is recorded, so [`Registry::history`] shows them all (keys: [`names`]).
//! - `weir plugin deploy` validates a component (it loads, implements a weir world, imports
//!   nothing weir does not provide) before anything is stored ([`validate`]).
//!
//! Tag moves are compare-and-set on the tag's KV revision: of two concurrent deploys of one
//! name, one fails with [`RegistryError::Conflict`] instead of silently losing the other.
//! Read-only users open the registry with `create = false`, which creates no bucket.
//!
//! Not here: loading a fetched component into a running pipeline (the pipeline does that,
//! following [`Registry::watch`]).

mod deploy;
pub mod names;
mod objects;
mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

pub use store::Registry;

/// The object store holding the components, one object per content (`sha256-<hex>`).
pub const OBJECTS: &str = "weir-plugins";
/// The key-value bucket holding tags, versions and tag moves.
pub const TAGS: &str = "weir-plugin-tags";

/// What a tag points at: one version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The plugin's name.
    pub name: String,
    /// The version (`1`, `2`, … by default).
    pub version: String,
    /// SHA-256 of the component, lowercase hex: the object `sha256-<digest>` of [`OBJECTS`].
    pub digest: String,
    /// The world the component implements: `transform`, `aggregate` or `process`.
    pub world: String,
    /// The component's size in bytes.
    pub size: u64,
    /// When the version was deployed (for a version) or the tag moved to it (for a tag),
    /// milliseconds since the Unix epoch.
    pub deployed_at_ms: i64,
    /// Why the tag moved when it was not a plain deploy, e.g. `rollback to 2 from 3: <reason>`.
    #[serde(default)]
    pub note: Option<String>,
}

impl Tag {
    /// The world as the runtime names it; `None` for a world this host does not know.
    pub fn runtime_world(&self) -> Option<crate::runtime::World> {
        validate::world_named(&self.world)
    }

    /// The first 12 hex digits of the digest, for people.
    pub fn short_digest(&self) -> &str {
        self.digest.get(..12).unwrap_or(&self.digest)
    }
}

/// What went wrong in the registry; every variant names the bucket, plugin, version or digest
/// involved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{name:?} cannot name a plugin: use one token of [A-Za-z0-9_-] (at most 128 characters)"
    )]
    InvalidName { name: String },
    #[error(
        "{version:?} cannot name a version of plugin {name}: use tokens of [A-Za-z0-9_-] \
         joined by single dots (at most 128 characters)"
    )]
    InvalidVersion { name: String, version: String },
    #[error("{digest:?} is not a SHA-256 digest (64 lowercase hex digits)")]
    InvalidDigest { digest: String },
    #[error("{kind} {bucket:?} does not exist")]
    BucketMissing { kind: &'static str, bucket: String },
    #[error("{context}: {source}")]
    Nats {
        context: String,
        source: async_nats::Error,
    },
    #[error("key {key:?} of bucket {bucket:?} does not hold a plugin tag: {message}")]
    Corrupt {
        bucket: String,
        key: String,
        message: String,
    },
    #[error("no plugin {name} in bucket {bucket:?}")]
    UnknownPlugin { name: String, bucket: String },
    #[error("plugin {name} has no version {version} (bucket {bucket:?})")]
    UnknownVersion {
        name: String,
        version: String,
        bucket: String,
    },
    #[error(
        "version {version} of plugin {name} already exists with other bytes (sha256 {existing}, \
         this component is sha256 {new}); versions are immutable: deploy it as another version"
    )]
    VersionExists {
        name: String,
        version: String,
        existing: String,
        new: String,
    },
    #[error(
        "plugin {name} implements the `{fixed}` world (since version {first}); this component \
         implements `{got}`: deploy it under another name"
    )]
    WorldMismatch {
        name: String,
        fixed: String,
        first: String,
        got: String,
    },
    #[error(
        "the tag of plugin {name} in bucket {bucket:?} moved while this change was being \
         made; nothing was changed, look at `weir plugin history {name}` and retry"
    )]
    Conflict { name: String, bucket: String },
    #[error("plugin {name} is at version {version}, {why}")]
    NoRollback {
        name: String,
        version: String,
        why: String,
    },
    #[error("object {object:?} (sha256 {digest}) is not in object store {bucket:?}")]
    MissingObject {
        bucket: String,
        object: String,
        digest: String,
    },
    #[error(
        "object {object:?} of object store {bucket:?} is damaged: its bytes hash to sha256 \
         {actual}, not the sha256 {expected} it is named after"
    )]
    DigestMismatch {
        bucket: String,
        object: String,
        expected: String,
        actual: String,
    },
    #[error("writing the component sha256 {digest} to {path}: {source}")]
    Cache {
        digest: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plugin(#[from] crate::runtime::PluginError),
    #[error("{path}: implements no weir world:\n{reasons}")]
    NoWorld {
        path: std::path::PathBuf,
        reasons: String,
    },
}

impl RegistryError {
    pub(crate) fn nats(context: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        RegistryError::Nats {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
