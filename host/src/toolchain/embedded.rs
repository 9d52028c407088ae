//! The files of the weir source tree that `weir plugin new` and `weir plugin build` need,
//! embedded in the binary by `host/build.rs` (the WIT contract, the templates, the language
//! SDKs, the Rust SDK's crates, the workspace's `Cargo.toml` and `Cargo.lock`), and their copy
//! on disk.
//!
//! The toolchains read files, so the embedded tree is written once into the cache folder (see
//! [`crate::runtime::cache::CompileCache::default_dir`]: `$WEIR_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`) as `sdk-<weir version>-<content hash>/`, in the
//! source tree's layout. A folder of that name is never changed once it is in place: it is
//! written beside and renamed into place, so concurrent builds never see half of it, and a new
//! weir (or a changed SDK) gets a folder of its own. A copy found incomplete is written again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// One embedded file: its path relative to the weir source tree (`/`-separated) and its bytes.
#[derive(Debug)]
pub struct EmbeddedFile {
    pub path: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/embedded_sdk.rs"));

/// The embedded file at `path` (relative to the source tree), if any.
pub fn file(path: &str) -> Option<&'static EmbeddedFile> {
    FILES
        .binary_search_by(|f| f.path.cmp(path))
        .ok()
        .map(|i| &FILES[i])
}

/// Hex SHA-256 of every embedded path and content, in order: the identity of this SDK.
pub fn digest() -> String {
    let mut h = Sha256::new();
    for f in FILES {
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update((f.bytes.len() as u64).to_le_bytes());
        h.update(f.bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes every embedded file under `dir`, in the source tree's layout.
pub fn write_all(dir: &Path) -> anyhow::Result<()> {
    for f in FILES {
        let path = dir.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, f.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Whether `dir` holds every embedded file at its size (a copy someone trimmed is rewritten).
fn complete(dir: &Path) -> bool {
    FILES
        .iter()
        .all(|f| std::fs::metadata(dir.join(f.path)).is_ok_and(|m| m.len() == f.bytes.len() as u64))
}

/// The embedded tree on disk under `cache`, written there first if needed; returns its folder.
pub fn materialize(cache: &Path) -> anyhow::Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let dir = cache.join(format!("sdk-{version}-{}", &digest()[..16]));
    if complete(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let staging = cache.join(format!(".sdk-staging-{}-{nanos}", std::process::id()));
    write_all(&staging)?;
    if dir.exists() {
        // Incomplete (a concurrent writer renames whole folders, so it is not one of theirs).
        let _ = std::fs::remove_dir_all(&dir);
    }
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another process put its (identical) copy in place first.
        Err(_) if complete(&dir) => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e).with_context(|| format!("moving the SDK into place at {}", dir.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weir source tree this binary was built from (tests only).
    fn source_tree() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("host/ is inside the workspace")
            .to_path_buf()
    }

    /// Every file of `dir` (recursively), relative to the source tree, without build outputs.
    fn files_under(dir: &str, out: &mut Vec<String>) {
        let root = source_tree();
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("reading the source tree") {
                let path = entry.expect("reading the source tree").path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let junk = ["target", "node_modules", "__pycache__"].contains(&name.as_str())
                    || name.starts_with('.')
                    || name.ends_with(".pyc")
                    || name.ends_with(".wasm");
                if junk {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }

    #[test]
    fn every_file_plugin_new_and_build_read_is_embedded() {
        let mut expected = Vec::new();
        for dir in [
            "wit",
            "sdk/src",
            "sdk/packed/src",
            "sdk/python/weir",
            "sdk/js/lib",
            "sdk/rust/template",
            "sdk/python/template",
            "sdk/js/template",
            "sdk/c/template",
        ] {
            files_under(dir, &mut expected);
        }
        for entry in std::fs::read_dir(source_tree().join("sdk/c")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".c") || name.ends_with(".h") {
                expected.push(format!("sdk/c/{name}"));
            }
        }
        expected.extend(
            [
                "Cargo.toml",
                "Cargo.lock",
                "sdk/Cargo.toml",
                "sdk/README.md",
                "sdk/packed/Cargo.toml",
                "sdk/python/build.sh",
                "sdk/js/build.sh",
                "sdk/js/weir.js",
            ]
            .map(String::from),
        );
        expected.sort();
        let embedded: Vec<&str> = FILES.iter().map(|f| f.path).collect();
        assert_eq!(embedded, expected);
        for must in [
            "wit/types.wit",
            "sdk/src/lib.rs",
            "sdk/c/weir.h",
            "sdk/python/weir/__init__.py",
        ] {
            assert!(file(must).is_some(), "{must} is not embedded");
        }
    }

    #[test]
    fn the_written_tree_is_identical_to_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        let written = materialize(dir.path()).unwrap();
        assert!(written.starts_with(dir.path()));
        for f in FILES {
            let copy = std::fs::read(written.join(f.path)).unwrap();
            let source = std::fs::read(source_tree().join(f.path)).unwrap();
            assert!(copy == source, "{} differs from its source", f.path);
        }
        // A second call finds the copy in place; a trimmed copy is written again.
        assert_eq!(materialize(dir.path()).unwrap(), written);
        std::fs::remove_file(written.join("wit/types.wit")).unwrap();
        assert_eq!(materialize(dir.path()).unwrap(), written);
        assert!(written.join("wit/types.wit").is_file());
    }
}
