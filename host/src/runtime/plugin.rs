//! A loaded plugin version: its bytes' content hash, the world it implements, and a
//! pre-linked `InstancePre` from which instances start in microseconds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use super::Runtime;
use super::bindings::TransformPre;
use super::bindings_aggregate::AggregatePre;
use super::bindings_process::ProcessPre;
use super::cache::content_hash;
use super::sandbox::{Grants, Limits, StoreState, check_imports};

/// The contract version this host implements.
pub const PACKAGE: &str = "weir:operator@0.1.0";

/// Said of a plugin whose exports are there but of other types: the contract changed since it
/// was built (e.g. `merge` took two accumulators before it took groups).
const REBUILD: &str = " (built against an older version of the contract? rebuild it with this weir: `weir plugin \
     build`)";

/// Why a plugin could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("plugin {path} is refused: it {message}")]
    Refused { path: PathBuf, message: String },
    #[error("plugin {path} does not implement the `{expected}` world of {PACKAGE}: {message}")]
    WrongWorld {
        path: PathBuf,
        expected: &'static str,
        message: String,
    },
}

/// The world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Transform,
    Aggregate,
    Process,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::Transform => "transform",
            World::Aggregate => "aggregate",
            World::Process => "process",
        }
    }

    fn exports(self) -> &'static [&'static str] {
        match self {
            World::Transform => &["configure", "process"],
            World::Aggregate => &[
                "configure",
                "create",
                "add",
                "merge",
                "finish",
                "state-version",
                "migrate",
            ],
            World::Process => &["configure", "on-events", "on-timer"],
        }
    }
}

/// Pre-linked instantiation of a plugin, by world.
pub(crate) enum Pre {
    Transform(TransformPre<StoreState>),
    Aggregate(AggregatePre<StoreState>),
    Process(ProcessPre<StoreState>),
}

/// One version of one plugin, ready to instantiate.
pub struct Plugin {
    pub path: PathBuf,
    /// SHA-256 of the component bytes: the version's identity.
    pub hash: String,
    pub limits: Limits,
    pub grants: Grants,
    pub world: World,
    pub(crate) pre: Pre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("hash", &self.hash)
            .finish()
    }
}

impl Plugin {
    /// Loads the `transform` plugin at `path`; see [`Plugin::load`].
    pub fn load_transform(
        runtime: &Runtime,
        path: &Path,
        limits: Limits,
        grants: Grants,
    ) -> Result<Arc<Plugin>, PluginError> {
        Self::load(runtime, path, World::Transform, limits, grants)
    }

    /// Loads the plugin at `path`, which must implement `world`: reads it, compiles it (or
    /// loads it from the compile cache), checks its imports against `grants` and its exports
    /// against the world.
    pub fn load(
        runtime: &Runtime,
        path: &Path,
        world: World,
        limits: Limits,
        grants: Grants,
    ) -> Result<Arc<Plugin>, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_owned(),
            source,
        })?;
        let hash = content_hash(&bytes);
        runtime.cache().keep_component(&hash, &bytes);
        let engine = runtime.engine();
        let component = runtime
            .cache()
            .load_or_compile(engine, &bytes, &hash, path)
            .map_err(|e| PluginError::Invalid {
                path: path.to_owned(),
                message: format!("{e:#}"),
            })?;

        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        check_imports(imports.iter().map(String::as_str)).map_err(|message| {
            PluginError::Refused {
                path: path.to_owned(),
                message,
            }
        })?;
        let wrong_world = |message: String| PluginError::WrongWorld {
            path: path.to_owned(),
            expected: world.name(),
            message,
        };
        check_exports(&component, engine, world).map_err(wrong_world)?;

        let mut linker: Linker<StoreState> = Linker::new(engine);
        let link = |e: wasmtime::Error| PluginError::Invalid {
            path: path.to_owned(),
            message: format!("linking host interfaces: {e:#}"),
        };
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        type Data = wasmtime::component::HasSelf<StoreState>;
        match world {
            World::Process => {
                super::bindings_process::Process::add_to_linker::<_, Data>(&mut linker, |s| s)
            }
            World::Transform | World::Aggregate => {
                super::bindings::Transform::add_to_linker::<_, Data>(&mut linker, |s| s)
            }
        }
        .map_err(link)?;
        let instance_pre =
            linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::Refused {
                    path: path.to_owned(),
                    message: format!("cannot be linked: {e:#}"),
                })?;
        let pre = match world {
            World::Transform => TransformPre::new(instance_pre).map(Pre::Transform),
            World::Aggregate => AggregatePre::new(instance_pre).map(Pre::Aggregate),
            World::Process => ProcessPre::new(instance_pre).map(Pre::Process),
        }
        .map_err(|e| wrong_world(format!("{e:#}{REBUILD}")))?;
        Ok(Arc::new(Plugin {
            path: path.to_owned(),
            hash,
            limits,
            grants,
            world,
            pre,
        }))
    }

    /// A short label for logs and headers: file stem and hash prefix.
    pub fn label(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{stem}@{}", &self.hash[..12])
    }
}

/// Checks that the component exports the functions of `world`; names what is missing and what
/// it does export (e.g. another world's functions).
fn check_exports(
    component: &Component,
    engine: &wasmtime::Engine,
    world: World,
) -> Result<(), String> {
    let exports: Vec<(String, bool)> = component
        .component_type()
        .exports(engine)
        .map(|(n, item)| {
            (
                n.to_owned(),
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
            )
        })
        .collect();
    let missing: Vec<&str> = world
        .exports()
        .iter()
        .copied()
        .filter(|want| !exports.iter().any(|(n, is_fn)| n == want && *is_fn))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let found: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
    Err(format!(
        "missing export(s) {}; it exports [{}]",
        missing.join(", "),
        found.join(", ")
    ))
}
