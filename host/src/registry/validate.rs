//! What a deploy checks before it stores anything: the file is a component that this host
//! loads — compiled, importing only interfaces weir provides — and implements one of the
//! weir worlds. The loader's own error is passed on, so a refused deploy reads like a refused
//! `weir run`.

use std::path::Path;
use std::sync::Arc;

use super::RegistryError;
use crate::runtime::cache::content_hash;
use crate::runtime::{Grants, Limits, Plugin, PluginError, Runtime, World};

/// Every world, in the order a component is tried against them.
pub const WORLDS: [World; 3] = [World::Transform, World::Aggregate, World::Process];

/// The world named `name` (`transform`, `aggregate`, `process`).
pub fn world_named(name: &str) -> Option<World> {
    WORLDS.into_iter().find(|w| w.name() == name)
}

/// Loads the component at `path` as each world in turn; the first that fits wins. A file
/// that is not a component, or imports what weir does not provide, fails at the first try
/// with the loader's error; one that fits no world fails naming what each world missed.
pub fn detect_world(runtime: &Runtime, path: &Path) -> Result<Arc<Plugin>, RegistryError> {
    let mut reasons = Vec::new();
    for world in WORLDS {
        match Plugin::load(runtime, path, world, Limits::default(), Grants::default()) {
            Ok(plugin) => return Ok(plugin),
            Err(e @ PluginError::WrongWorld { .. }) => reasons.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(RegistryError::NoWorld {
        path: path.to_owned(),
        reasons: reasons.join("\n"),
    })
}

/// A component that loads, with the world it implements.
#[derive(Debug)]
pub struct Validated {
    pub bytes: Vec<u8>,
    pub world: World,
    /// SHA-256 of `bytes`, lowercase hex.
    pub digest: String,
}

/// Reads the component at `path` and checks that it loads ([`detect_world`]). The bytes
/// returned are the ones that were checked: a file replaced while it was being loaded is an
/// error, not a deploy of unchecked bytes.
pub fn validate(runtime: &Runtime, path: &Path) -> Result<Validated, RegistryError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    let digest = content_hash(&bytes);
    let plugin = detect_world(runtime, path)?;
    if plugin.hash != digest {
        return Err(PluginError::Invalid {
            path: path.to_owned(),
            message: "the file changed while it was being checked; deploy it again".into(),
        }
        .into());
    }
    Ok(Validated {
        bytes,
        world: plugin.world,
        digest,
    })
}

/// [`validate`] on a blocking thread: compiling takes seconds for some languages (Python).
pub async fn validate_blocking(runtime: &Runtime, path: &Path) -> Result<Validated, RegistryError> {
    let (runtime, owned) = (runtime.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || validate(&runtime, &owned))
        .await
        .map_err(|e| {
            RegistryError::from(PluginError::Invalid {
                path: path.to_owned(),
                message: format!("checking the component failed: {e}"),
            })
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_world_is_found_by_its_name() {
        for w in WORLDS {
            assert_eq!(world_named(w.name()), Some(w));
        }
        assert_eq!(world_named("sink"), None);
    }
}
