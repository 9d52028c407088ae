//! Compiled components on disk, keyed by the SHA-256 of the component bytes and the engine's
//! compatibility hash. Cranelift takes seconds for language-runtime components (Python, JS);
//! a cached artifact loads in milliseconds.
//!
//! Entries are written to a temporary file and renamed into place, so concurrent hosts and
//! tests sharing the directory never read a half-written artifact. A corrupt or incompatible
//! entry is recompiled and overwritten.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
pub struct CompileCache {
    dir: PathBuf,
    engine_tag: String,
}

/// Hex SHA-256 of `bytes`: the identity of a plugin version.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    /// `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`, else a temp dir.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("WEIR_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("weir");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache").join("weir");
        }
        std::env::temp_dir().join("weir-cache")
    }

    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        CompileCache {
            dir,
            engine_tag: format!("{:016x}", h.finish()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a copy of the component of `hash` is kept (`components/<hash>.wasm`, the layout
    /// the plugin registry fetches into): a restore can run the exact version a checkpoint
    /// records even after the plugin file changed.
    pub fn component_path(&self, hash: &str) -> PathBuf {
        self.dir.join("components").join(format!("{hash}.wasm"))
    }

    /// Keeps a copy of `bytes` (whose hash is `hash`) at [`CompileCache::component_path`],
    /// written once; a failure only costs that copy, so it is logged, not returned.
    pub fn keep_component(&self, hash: &str, bytes: &[u8]) {
        let path = self.component_path(hash);
        if path.is_file() {
            return;
        }
        let write = || -> std::io::Result<()> {
            let dir = path.parent().unwrap_or(&self.dir);
            std::fs::create_dir_all(dir)?;
            let tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::fs::write(tmp.path(), bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "keeping a copy of the plugin failed");
        }
    }

    fn entry(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_tag))
    }

    /// The compiled form of `bytes` (whose content hash is `hash`), from the cache when present.
    /// `source` names the component file in errors.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
        source: &Path,
    ) -> anyhow::Result<Component> {
        let entry = self.entry(hash);
        if entry.exists() {
            // SAFETY: the file was produced by `Component::serialize` of an engine with the same
            // compatibility hash (it is part of the name) and written atomically by this cache.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(c) => {
                    tracing::debug!(path = %entry.display(), "compiled component loaded from cache");
                    return Ok(c);
                }
                Err(e) => tracing::warn!(
                    path = %entry.display(),
                    error = %e,
                    "cached compiled component unusable; recompiling"
                ),
            }
        }
        let started = std::time::Instant::now();
        let component = Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{} is not a valid WebAssembly component", source.display())
            })?;
        tracing::info!(
            component = %source.display(),
            ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        if let Err(e) = self.store(&entry, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the compile cache");
        }
        Ok(component)
    }

    fn store(&self, entry: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize()?;
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, entry)
            .with_context(|| format!("renaming into {}", entry.display()))?;
        Ok(())
    }
}
