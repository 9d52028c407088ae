//! The Rust SDK inside a new Rust plugin project: `weir plugin new --lang rust` writes weir-sdk
//! (and the codec crate it re-exports, weir-packed) into the project's `vendor/`, with the WIT
//! files their bindings are generated from, and the template's `Cargo.toml` depends on it by
//! path. weir-sdk is not on crates.io; vendored, a project builds anywhere cargo and the
//! `wasm32-wasip2` target are installed, outside any weir checkout.
//!
//! ```text
//! my-plugin/
//!   Cargo.toml  Cargo.lock  src/lib.rs  events.jsonl
//!   vendor/weir-sdk/    Cargo.toml (standalone), README.md, src/
//!   vendor/weir-packed/ Cargo.toml (standalone), src/
//!   vendor/wit/         the contract (weir-sdk's bindings read `../wit`, as in the weir tree)
//! ```
//!
//! In the weir tree the SDK's manifest inherits from the workspace (`version.workspace = true`,
//! `serde.workspace = true`); here it is made standalone: every inherited field and dependency
//! is replaced by the workspace's value (versions, features), path dependencies point at the
//! vendored crates, and dev-dependencies and test targets (the SDK's own tests, not vendored)
//! are dropped. `Cargo.lock` pins the registry crates of the SDK and the template to the
//! versions weir's own lock file has, which weir was tested with: a first build then needs no
//! registry access when they are in cargo's cache already, as on any machine that built weir.
//! Cargo completes the lock file (the project's own packages) on the first build. The vendored
//! SDK belongs to the project: a newer weir does not change it (a new project gets the new one).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, bail};
use toml::{Table, Value};

/// The vendored crates: (folder in the weir tree, package name = folder under `vendor/`).
const CRATES: [(&str, &str); 2] = [("sdk", "weir-sdk"), ("sdk/packed", "weir-packed")];

/// Writes `vendor/` and `Cargo.lock` into the Rust project `project`, from the weir tree `tree`
/// (its `Cargo.toml` gives the workspace's versions). The project's `Cargo.toml` is in place.
pub fn write(tree: &Path, project: &Path) -> anyhow::Result<()> {
    let workspace_file = tree.join("Cargo.toml");
    let workspace = read_table(&workspace_file)?;
    let vendor = project.join("vendor");
    let mut registry_deps = BTreeSet::new();
    for (from, name) in CRATES {
        let member_file = tree.join(from).join("Cargo.toml");
        let member = read_table(&member_file)?;
        let manifest = standalone_manifest(member, &member_file, &workspace, &workspace_file)?;
        registry_deps.extend(registry_dependencies(&manifest));
        let dest = vendor.join(name);
        super::copy_tree(&tree.join(from).join("src"), &dest.join("src"))?;
        let readme = tree.join(from).join("README.md");
        if readme.is_file() {
            copy_file(&readme, &dest.join("README.md"))?;
        }
        let text = render_manifest(&manifest)
            .with_context(|| format!("writing the standalone {}", member_file.display()))?;
        let header = format!(
            "# {name}, vendored by `weir plugin new` (weir {}): the manifest of the weir \
             source tree,\n# standalone (the workspace's versions filled in).\n\n",
            env!("CARGO_PKG_VERSION")
        );
        write_file(&dest.join("Cargo.toml"), &(header + &text))?;
    }
    super::copy_tree(&tree.join("wit"), &vendor.join("wit"))?;
    write_file(&vendor.join("README.md"), VENDOR_README)?;
    let project_manifest = read_table(&project.join("Cargo.toml"))?;
    registry_deps.extend(registry_dependencies(&project_manifest));
    let lock_file = tree.join("Cargo.lock");
    let lock = read_table(&lock_file)?;
    let pruned = pruned_lock(&lock, &registry_deps)
        .with_context(|| format!("reading {}", lock_file.display()))?;
    write_file(&project.join("Cargo.lock"), &pruned)
}

const VENDOR_README: &str = "\
# vendor/

weir's Rust SDK, written here by `weir plugin new`: `weir-sdk` (the crate `Cargo.toml` depends
on), `weir-packed` (its packed-batch codec) and `wit/` (the `weir:operator` contract their
bindings are generated from). They are part of the project: commit them with it. To move the
project to the SDK of a newer weir, replace this folder with the one of a project that weir
creates (`weir plugin new --lang rust scratch`).
";

fn read_table(file: &Path) -> anyhow::Result<Table> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message()))
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// `manifest` as TOML, sections in the usual order (`[package]` first) and one line per
/// dependency.
fn render_manifest(manifest: &Table) -> anyhow::Result<String> {
    const ORDER: [&str; 4] = ["package", "lib", "features", "dependencies"];
    let mut keys: Vec<&String> = manifest.keys().collect();
    keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), *k));
    let mut out = String::new();
    for key in keys {
        let value = &manifest[key.as_str()];
        match value.as_table() {
            Some(deps) if key.ends_with("dependencies") => {
                out.push_str(&format!("[{key}]\n"));
                for (name, spec) in deps {
                    out.push_str(&format!("{name} = {spec}\n"));
                }
            }
            _ => {
                let section = Table::from_iter([(key.clone(), value.clone())]);
                out.push_str(&toml::to_string(&section)?);
            }
        }
        out.push('\n');
    }
    Ok(out)
}

fn inherits(value: &Value) -> bool {
    value
        .as_table()
        .and_then(|t| t.get("workspace"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// The member manifest `member` (read from `file`) with everything it inherits from the
/// workspace manifest `workspace` (read from `workspace_file`) filled in; see the module doc.
pub fn standalone_manifest(
    mut member: Table,
    file: &Path,
    workspace: &Table,
    workspace_file: &Path,
) -> anyhow::Result<Table> {
    let shared = |key: &str| -> anyhow::Result<&Table> {
        workspace
            .get("workspace")
            .and_then(|w| w.get(key))
            .and_then(Value::as_table)
            .ok_or_else(|| {
                anyhow::anyhow!("{}: no [workspace.{key}] table", workspace_file.display())
            })
    };
    if let Some(package) = member.get_mut("package").and_then(Value::as_table_mut) {
        for (key, value) in package.iter_mut() {
            if inherits(value) {
                *value = shared("package")?.get(key).cloned().ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}: field `package.{key}` inherits from the workspace, but {} has no \
                         `workspace.package.{key}`",
                        file.display(),
                        workspace_file.display()
                    )
                })?;
            }
        }
    }
    for section in ["dev-dependencies", "test", "bench", "example"] {
        member.remove(section);
    }
    if let Some(deps) = member.get_mut("dependencies").and_then(Value::as_table_mut) {
        for (name, spec) in deps.iter_mut() {
            if inherits(spec) {
                *spec = inherited_dependency(name, spec, shared("dependencies")?)
                    .with_context(|| format!("{}: dependency `{name}`", file.display()))?;
            }
        }
    }
    if let Some(field) = first_inherited(&member, "") {
        bail!(
            "{}: field `{field}` inherits from the workspace, which weir cannot vendor yet",
            file.display()
        );
    }
    Ok(member)
}

/// The workspace's spec of dependency `name`, with the member's `features` and `optional`, and
/// a path dependency on a vendored crate pointing at its folder under `vendor/`.
fn inherited_dependency(name: &str, member: &Value, shared: &Table) -> anyhow::Result<Value> {
    let mut spec = match shared.get(name) {
        Some(Value::String(version)) => {
            Table::from_iter([("version".to_owned(), Value::String(version.clone()))])
        }
        Some(Value::Table(t)) => t.clone(),
        _ => bail!("the workspace has no `workspace.dependencies.{name}`"),
    };
    if let Some(path) = spec.get("path").and_then(Value::as_str) {
        let Some((_, vendored)) = CRATES.iter().find(|(from, _)| *from == path) else {
            bail!("it is a path dependency on `{path}`, which is not vendored");
        };
        spec.insert("path".into(), Value::String(format!("../{vendored}")));
    }
    let member = member.as_table().cloned().unwrap_or_default();
    for (key, value) in member {
        match key.as_str() {
            "workspace" => {}
            "features" => {
                let mut all = spec
                    .get("features")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                all.extend(value.as_array().cloned().unwrap_or_default());
                spec.insert(key, Value::Array(all));
            }
            _ => {
                spec.insert(key, value);
            }
        }
    }
    Ok(Value::Table(spec))
}

/// The dotted name of the first `workspace = true` left in `table`, if any.
fn first_inherited(table: &Table, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if inherits(value) || (key == "workspace" && prefix.is_empty()) {
            return Some(name);
        }
        if let Some(inner) = value.as_table()
            && let Some(found) = first_inherited(inner, &name)
        {
            return Some(found);
        }
    }
    None
}

/// The package names of `manifest`'s registry dependencies (not path ones), of every target.
fn registry_dependencies(manifest: &Table) -> Vec<String> {
    let mut tables: Vec<&Table> = Vec::new();
    for section in ["dependencies", "build-dependencies", "dev-dependencies"] {
        tables.extend(manifest.get(section).and_then(Value::as_table));
    }
    let targets = manifest.get("target").and_then(Value::as_table);
    for target in targets.into_iter().flat_map(|t| t.values()) {
        for section in ["dependencies", "build-dependencies", "dev-dependencies"] {
            tables.extend(target.get(section).and_then(Value::as_table));
        }
    }
    let mut names = Vec::new();
    for table in tables {
        for (name, spec) in table {
            let spec = spec.as_table();
            if spec.is_some_and(|s| s.contains_key("path")) {
                continue;
            }
            let package = spec.and_then(|s| s.get("package")).and_then(Value::as_str);
            names.push(package.unwrap_or(name).to_owned());
        }
    }
    names
}

/// The entries of the lock file `lock` that `roots` need (transitively), registry ones only,
/// as a lock file.
pub fn pruned_lock(lock: &Table, roots: &BTreeSet<String>) -> anyhow::Result<String> {
    let packages = lock
        .get("package")
        .and_then(Value::as_array)
        .context("no [[package]] entries")?;
    let field = |p: &Value, key: &str| p.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut wanted: Vec<(String, Option<String>)> =
        roots.iter().map(|r| (r.clone(), None)).collect();
    let mut kept = vec![false; packages.len()];
    while let Some((name, version)) = wanted.pop() {
        for (i, p) in packages.iter().enumerate() {
            let matches = field(p, "name").as_deref() == Some(name.as_str())
                && version
                    .as_ref()
                    .is_none_or(|v| field(p, "version").as_ref() == Some(v));
            if !matches || kept[i] {
                continue;
            }
            kept[i] = true;
            for dep in p
                .get("dependencies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // "name", "name version" or "name version (source)".
                let mut words = dep.as_str().unwrap_or_default().split(' ');
                let dep_name = words.next().unwrap_or_default().to_owned();
                wanted.push((dep_name, words.next().map(str::to_owned)));
            }
        }
    }
    let registry: Vec<Value> = packages
        .iter()
        .zip(kept)
        .filter(|(p, kept)| *kept && p.get("source").is_some())
        .map(|(p, _)| p.clone())
        .collect();
    let mut out = Table::new();
    out.insert(
        "version".into(),
        lock.get("version").cloned().unwrap_or(Value::Integer(4)),
    );
    out.insert("package".into(), Value::Array(registry));
    let text = toml::to_string(&out).context("writing the lock file")?;
    Ok(format!(
        "# Written by `weir plugin new`: the versions of weir's own lock file. Cargo maintains it.\n{text}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    const WORKSPACE: &str = r#"
[workspace.package]
version = "0.3.0"
edition = "2024"
[workspace.dependencies]
serde = { version = "1", features = ["derive"] }
wit-bindgen = { version = "0.61", default-features = false, features = ["macros"] }
bytes = "1"
weir-packed = { path = "sdk/packed" }
"#;

    #[test]
    fn an_inheriting_manifest_becomes_standalone_with_the_workspace_versions() {
        let member = table(
            r#"
[package]
name = "weir-sdk"
version.workspace = true
edition.workspace = true
[features]
guest = ["dep:wit-bindgen"]
[dependencies]
weir-packed.workspace = true
bytes.workspace = true
serde = { workspace = true, optional = true, features = ["rc"] }
wit-bindgen = { workspace = true, optional = true }
[dev-dependencies]
tempfile.workspace = true
"#,
        );
        let out = standalone_manifest(
            member,
            Path::new("sdk/Cargo.toml"),
            &table(WORKSPACE),
            Path::new("Cargo.toml"),
        )
        .unwrap();
        let expected = table(
            r#"
[package]
name = "weir-sdk"
version = "0.3.0"
edition = "2024"
[features]
guest = ["dep:wit-bindgen"]
[dependencies]
weir-packed = { path = "../weir-packed" }
bytes = { version = "1" }
serde = { version = "1", optional = true, features = ["derive", "rc"] }
wit-bindgen = { version = "0.61", default-features = false, optional = true, features = ["macros"] }
"#,
        );
        assert_eq!(out, expected);
        let text = render_manifest(&out).unwrap();
        assert!(text.starts_with("[package]\n"), "{text}");
        assert_eq!(table(&text), expected, "{text}");
    }

    #[test]
    fn an_inherited_field_the_workspace_lacks_is_named() {
        let member = table("[package]\nname = \"x\"\nlicense.workspace = true\n");
        let err = standalone_manifest(
            member,
            Path::new("sdk/Cargo.toml"),
            &table(WORKSPACE),
            Path::new("Cargo.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sdk/Cargo.toml") && err.contains("package.license"),
            "{err}"
        );
        let member = table("[package]\nname = \"x\"\n[lints]\nworkspace = true\n");
        let err = standalone_manifest(
            member,
            Path::new("sdk/Cargo.toml"),
            &table(WORKSPACE),
            Path::new("Cargo.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`lints`"), "{err}");
    }

    #[test]
    fn the_lock_keeps_what_the_roots_need_and_no_path_packages() {
        let lock = table(
            r#"
version = 4
[[package]]
name = "serde"
version = "1.0.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["serde_derive"]
[[package]]
name = "serde_derive"
version = "1.0.1"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = ["syn 2.0.0"]
[[package]]
name = "syn"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "syn"
version = "2.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "wasmtime"
version = "48.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
[[package]]
name = "weir-sdk"
version = "0.1.0"
dependencies = ["serde"]
"#,
        );
        let roots = BTreeSet::from(["serde".to_owned(), "weir-sdk".to_owned()]);
        let text = pruned_lock(&lock, &roots).unwrap();
        let out = table(&text);
        let kept: Vec<String> = out["package"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(kept, ["serde 1.0.1", "serde_derive 1.0.1", "syn 2.0.0"]);
        assert_eq!(out["version"].as_integer(), Some(4));
    }
}
