//! `weir plugin new`, `build` and `test` — the plugin author's loop of the language guides,
//! followed word for word in a temporary folder, for every language, by a copy of the binary
//! that has no source tree to read from.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A copy of the `weir` binary in a folder of its own, as after an install: run from a folder
/// outside the source tree, without `WEIR_HOME`, with a cache folder of its own. Only the
/// language toolchains come from the checkout (`plugin_toolchains`); the WIT contract, the
/// templates and the SDKs must come from the binary.
struct Installed {
    dir: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        std::fs::copy(weir_bin(), dir.path().join("bin/weir")).unwrap();
        Installed { dir }
    }

    /// Where plugin projects are created.
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn weir(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir.path().join("bin/weir"));
        cmd.current_dir(self.work())
            .args(args)
            .env_remove("WEIR_HOME")
            .env("WEIR_CACHE_DIR", self.cache())
            // Registry crates built once for every run of this test (the projects are new).
            .env("CARGO_TARGET_DIR", root().join("target/e2e-plugin-new"));
        plugin_toolchains(&mut cmd);
        cmd
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = output_within(self.weir(args), Duration::from_secs(900));
        assert!(
            out.status.success(),
            "weir {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn an_installed_weir_creates_builds_and_tests_a_plugin_in_every_language() {
    let weir = Installed::new();
    assert!(!weir.work().starts_with(root()));
    for lang in ["rust", "python", "js", "c"] {
        let name = format!("my-{lang}");
        weir.run_ok(&["plugin", "new", "--lang", lang, &name]);
        let component = weir.run_ok(&["plugin", "build", &name]);
        let component = component.trim();
        assert!(
            weir.work().join(component).is_file(),
            "{lang}: no component at {component}"
        );
        let events = format!("{name}/events.jsonl");
        let out = weir.run_ok(&["plugin", "test", component, "--input", &events]);
        let results: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!results.is_empty(), "{lang}: the template emitted nothing");
        assert!(results.iter().all(|r| r["time"].is_i64()), "{lang}: {out}");
        // A second project of the same name is refused, naming the folder.
        let err = output_within(
            weir.weir(&["plugin", "new", "--lang", lang, &name]),
            Duration::from_secs(30),
        );
        assert!(!err.status.success());
        assert!(String::from_utf8_lossy(&err.stderr).contains("already exists"));
    }
    // The SDK the builds read was written by the binary into its cache, identical to the
    // source tree's.
    let sdk: Vec<PathBuf> = std::fs::read_dir(weir.cache())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("sdk-"))
        .collect();
    assert_eq!(sdk.len(), 1, "{sdk:?}");
    for file in [
        "wit/types.wit",
        "sdk/c/weir.h",
        "sdk/python/weir/__init__.py",
        "sdk/js/weir.js",
    ] {
        assert_eq!(
            std::fs::read(sdk[0].join(file)).unwrap(),
            std::fs::read(root().join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn a_rust_project_carries_a_standalone_sdk() {
    let weir = Installed::new();
    weir.run_ok(&["plugin", "new", "--lang", "rust", "vendored"]);
    let project = weir.work().join("vendored");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"weir-sdk = { path = "vendor/weir-sdk" }"#),
        "{manifest}"
    );
    for krate in ["weir-sdk", "weir-packed"] {
        let text =
            std::fs::read_to_string(project.join("vendor").join(krate).join("Cargo.toml")).unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["package"]["name"].as_str(), Some(krate));
        let inherits = text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("workspace"));
        assert!(!inherits, "{krate}: {text}");
    }
    for file in ["sdk/src/lib.rs", "sdk/packed/src/lib.rs"] {
        let vendored = file
            .replace("sdk/packed/", "vendor/weir-packed/")
            .replace("sdk/", "vendor/weir-sdk/");
        assert_eq!(
            std::fs::read(project.join(&vendored)).unwrap(),
            std::fs::read(root().join(file)).unwrap(),
            "{vendored}"
        );
    }
    assert_eq!(
        std::fs::read(project.join("vendor/wit/types.wit")).unwrap(),
        std::fs::read(root().join("wit/types.wit")).unwrap()
    );
    // The lock file pins the SDK's registry crates to weir's own versions, and nothing else.
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(project.join("Cargo.lock")).unwrap()).unwrap();
    let names: Vec<&str> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"wit-bindgen") && names.contains(&"serde_json"),
        "{names:?}"
    );
    assert!(!names.contains(&"wasmtime"), "{names:?}");
}

#[test]
fn weir_home_overrides_the_embedded_sdk_and_must_be_a_weir_tree() {
    let weir = Installed::new();
    let mut cmd = weir.weir(&["plugin", "new", "--lang", "python", "p"]);
    cmd.env("WEIR_HOME", weir.work().join("nowhere"));
    let out = output_within(cmd, Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WEIR_HOME") && err.contains("nowhere"),
        "{err}"
    );
    let mut cmd = weir.weir(&["plugin", "new", "--lang", "python", "p"]);
    cmd.env("WEIR_HOME", root());
    assert!(output_within(cmd, Duration::from_secs(30)).status.success());
    assert!(
        !weir.cache().exists(),
        "the embedded SDK was written despite WEIR_HOME"
    );
}

#[test]
fn plugin_test_reports_failing_events_with_their_line_and_strict_fails() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(
        &input,
        "{\"key\":\"a\",\"time\":1,\"payload\":{\"amount\":50,\"user\":\"a\"}}\n\
         {\"key\":\"a\",\"time\":2,\"payload_text\":\"not json\"}\n",
    )
    .unwrap();
    let filter = plugin("kit_filter");
    let mut cmd = weir();
    cmd.args(["plugin", "test"])
        .arg(&filter)
        .arg("--input")
        .arg(&input);
    let out = output_within(cmd, Duration::from_secs(60));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"key":"a","time":1,"payload":{"amount":50,"user":"a"}}"#
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"line\":2") && err.contains("payload is not a JSON object"),
        "{err}"
    );
    let mut strict = weir();
    strict
        .args(["plugin", "test"])
        .arg(&filter)
        .arg("--input")
        .arg(&input)
        .arg("--strict");
    assert_eq!(
        output_within(strict, Duration::from_secs(60)).status.code(),
        Some(1)
    );
}

#[test]
fn plugin_test_refuses_a_window_for_a_plugin_that_is_no_aggregate() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "{\"payload\":{\"a\":1}}\n").unwrap();
    let mut cmd = weir();
    cmd.args(["plugin", "test"])
        .arg(plugin("passthrough"))
        .arg("--input")
        .arg(&events)
        .args(["--window", "session:5s"]);
    let out = output_within(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--window applies to aggregate plugins") && stderr.contains("`transform`"),
        "{stderr}"
    );
}
