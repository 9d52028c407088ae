//! Plugin toolchains: `weir plugin new` (a project from a template) and `weir plugin build`
//! (the right compiler for the project's language, ending in a component).
//!
//! A plugin project is a folder with a `weir-plugin.toml` (`name`, `lang`, `world`, and
//! `module` for Python, `main` for JavaScript) — or, for Rust, just a `Cargo.toml`. Languages:
//! - Rust: `cargo build --release --target wasm32-wasip2` (the SDK's macros export the world);
//!   the project carries the SDK in `vendor/` ([`vendor`]);
//! - Python: componentize-py, via `sdk/python/build.sh`;
//! - JavaScript: componentize-qjs (QuickJS), via `sdk/js/build.sh`;
//! - C: bindings from `wit-bindgen-c` and the wrapping into a component with the WASI preview 1
//!   reactor adapter happen here, in-process ([`c`]); only clang and wasi-libc are external.
//!
//! Only the language's own toolchain is needed: the WIT contract, the templates, the SDKs and
//! the build scripts are embedded in the binary ([`embedded`]) and written, once per weir
//! version and SDK content, into the cache folder (`$WEIR_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`) as `sdk-<version>-<hash>/`; Python, JavaScript
//! and C builds read them there. `$WEIR_HOME`, when set, names a weir source tree to read
//! instead (for SDK developers: their edits apply without rebuilding weir).

pub mod c;
pub mod embedded;
pub mod vendor;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

/// A plugin language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }
}

/// `weir-plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub lang: Lang,
    /// `transform`, `aggregate` or `process`.
    pub world: String,
    /// C: source files (default: every `*.c` of the folder).
    #[serde(default)]
    pub sources: Vec<PathBuf>,
    /// Python: the module (default `app`); JavaScript: `main` (default `app.js`).
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub main: Option<String>,
}

const WORLDS: [&str; 3] = ["transform", "aggregate", "process"];

/// The weir source tree (`wit/`, `sdk/`, the workspace's `Cargo.toml` and `Cargo.lock`) the
/// toolchains read: `$WEIR_HOME` when set, else the tree embedded in this binary, written into
/// the cache folder ([`embedded::materialize`]).
pub fn sdk_tree() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("WEIR_HOME") {
        let home = PathBuf::from(home);
        if !home.join("wit/types.wit").is_file() || !home.join("sdk").is_dir() {
            bail!(
                "WEIR_HOME is {}, which is not a weir source tree (no wit/types.wit or sdk/); \
                 unset it to use the SDK built into weir",
                home.display()
            );
        }
        return Ok(home);
    }
    embedded::materialize(&crate::runtime::cache::CompileCache::default_dir())
}

/// Reads `dir/weir-plugin.toml` (Rust projects may have only a `Cargo.toml`).
pub fn manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let file = dir.join("weir-plugin.toml");
    if !file.is_file() {
        if dir.join("Cargo.toml").is_file() {
            return Ok(Manifest {
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                lang: Lang::Rust,
                world: String::new(),
                sources: Vec::new(),
                module: None,
                main: None,
            });
        }
        bail!(
            "{} has neither a weir-plugin.toml nor a Cargo.toml: not a plugin project \
             (create one with `weir plugin new`)",
            dir.display()
        );
    }
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let m: Manifest = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message().trim()))?;
    if m.lang != Lang::Rust && !WORLDS.contains(&m.world.as_str()) {
        bail!(
            "{}: field `world`: {:?} is not one of transform, aggregate, process",
            file.display(),
            m.world
        );
    }
    Ok(m)
}

/// Builds the plugin project in `dir`; returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let m = manifest(dir)?;
    match m.lang {
        Lang::Rust => build_rust(dir),
        Lang::C => c::build(&sdk_tree()?, dir, &m),
        Lang::Python | Lang::Js => {
            let script = sdk_tree()?.join("sdk").join(m.lang.name()).join("build.sh");
            let out = dir.join("target").join(format!("{}.wasm", m.name));
            let status = Command::new("bash")
                .arg(&script)
                .arg(dir)
                .arg(&out)
                .stdout(std::process::Stdio::null())
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !status.success() {
                bail!(
                    "building {} ({}) failed; see the messages above",
                    dir.display(),
                    m.lang.name()
                );
            }
            Ok(out)
        }
    }
}

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    if Command::new("cargo").arg("--version").output().is_err() {
        bail!(
            "cargo is not installed: install Rust from https://rustup.rs, then `rustup target add wasm32-wasip2`"
        );
    }
    let out = Command::new("cargo")
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        let hint = if String::from_utf8_lossy(&out.stdout).contains("wasm32-wasip2") {
            " (is the target installed? `rustup target add wasm32-wasip2`)"
        } else {
            ""
        };
        bail!("cargo build of {} failed{hint}", dir.display());
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" {
            for f in v["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                    wasm = Some(PathBuf::from(f));
                }
            }
        }
    }
    wasm.ok_or_else(|| {
        anyhow::anyhow!(
            "cargo built no .wasm in {}: is the crate a `cdylib`?",
            dir.display()
        )
    })
}

/// Creates plugin project `name` in language `lang` at `dest` from the SDK's template.
pub fn new_project(lang: Lang, name: &str, dest: &Path) -> anyhow::Result<()> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || name.is_empty()
    {
        bail!("{name:?} is not a plugin name: use letters, digits, - and _");
    }
    if dest.exists() {
        bail!("{} already exists", dest.display());
    }
    let tree = sdk_tree()?;
    let template = tree.join("sdk").join(lang.name()).join("template");
    if !template.is_dir() {
        bail!("no template for {} at {}", lang.name(), template.display());
    }
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{name_snake}}", &name.replace('-', "_"))
    };
    copy_dir(&template, dest, Some(&fill))?;
    if lang == Lang::Rust {
        vendor::write(&tree, dest)?;
    }
    Ok(())
}

/// Copies the folder `from` to `to` as it is (without build outputs and installed tools).
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    copy_dir(from, to, None)
}

/// Copies `from` to `to`, leaving out build outputs (`target/`, `*.wasm`), installed tools
/// (`node_modules/`) and Python caches. With `fill`, a template: text files go through `fill`
/// and a `.tmpl` suffix is dropped from file names.
fn copy_dir(from: &Path, to: &Path, fill: Option<&dyn Fn(&str) -> String>) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let skipped = matches!(&*name_str, "target" | "node_modules" | "__pycache__")
            || name_str.ends_with(".wasm")
            || name_str.ends_with(".pyc");
        if skipped {
            continue;
        }
        let target_name = match fill {
            Some(_) => name_str.trim_end_matches(".tmpl"),
            None => &name_str,
        };
        let target = to.join(target_name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target, fill)?;
            continue;
        }
        let Some(fill) = fill else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!("copying {} to {}", entry.path().display(), target.display())
            })?;
            continue;
        };
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => fill(&text).into_bytes(),
            Err(binary) => binary.into_bytes(),
        };
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}
