//! The behavioural kit (`plugins/kit/README.md`) in four languages: the same filter +
//! projection and per-key count/sum aggregate, written in Rust, Python, JavaScript and C, each
//! built with `weir plugin build`, must produce byte-identical output — offline through
//! `weir plugin test`, and end to end through a real nats-server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::Value;

use crate::support::*;

const LANGS: [&str; 4] = ["rust", "python", "js", "c"];
const FILTER_CONFIG: &str =
    r#"{"field":"amount","min":10,"keep":["user","amount","country","note"]}"#;

/// `weir plugin build plugins/<lang>/<kit>`, once per test process: (lang, kit) → component.
fn components() -> &'static BTreeMap<(String, String), PathBuf> {
    static BUILT: OnceLock<BTreeMap<(String, String), PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut built = BTreeMap::new();
        for lang in LANGS {
            for kit in ["kit-filter", "kit-sum"] {
                let dir = root().join("plugins").join(lang).join(kit);
                let mut cmd = weir();
                cmd.args(["plugin", "build"]).arg(&dir);
                let out = output_within(cmd, Duration::from_secs(600));
                assert!(
                    out.status.success(),
                    "weir plugin build {} failed:\n{}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
                assert!(path.is_file(), "{} was not built", path.display());
                built.insert((lang.to_string(), kit.to_string()), path);
            }
        }
        built
    })
}

fn component(lang: &str, kit: &str) -> &'static PathBuf {
    &components()[&(lang.to_string(), kit.to_string())]
}

/// The windows `kit-sum` runs in offline: tumbling, and sliding and session windows, whose
/// panes and sessions the plugin's batched `merge` combines.
const SUM_WINDOWS: [&str; 3] = ["tumbling:10s", "sliding:10s:2s", "session:3s"];

/// `weir plugin test` of one kit operator (`window`: for `kit-sum`): (stdout, the input lines
/// that failed).
fn plugin_test(lang: &str, kit: &str, window: &str) -> (String, Vec<u64>) {
    let mut cmd = weir();
    cmd.args(["plugin", "test"])
        .arg(component(lang, kit))
        .arg("--input")
        .arg(root().join("plugins/kit/events.jsonl"));
    match kit {
        "kit-filter" => cmd.args(["--config", FILTER_CONFIG]),
        _ => cmd.args(["--config", r#"{"field":"amount"}"#, "--window", window]),
    };
    let out = output_within(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{lang} {kit} {window}:\n{stderr}");
    let failed = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["line"].as_u64())
        .collect();
    (String::from_utf8(out.stdout).unwrap(), failed)
}

/// Offline: `weir plugin test` of every implementation.
fn offline() {
    let runs = std::iter::once(("kit-filter", "")).chain(SUM_WINDOWS.map(|w| ("kit-sum", w)));
    for (kit, window) in runs {
        let (reference, ref_failed) = plugin_test("rust", kit, window);
        assert!(
            reference.lines().count() > 40,
            "{kit} {window}: too few results:\n{reference}"
        );
        assert!(
            !ref_failed.is_empty(),
            "{kit}: the kit input has bad events"
        );
        for lang in &LANGS[1..] {
            let (out, failed) = plugin_test(lang, kit, window);
            assert_eq!(out, reference, "{lang} {kit} {window} differs from Rust");
            assert_eq!(
                failed, ref_failed,
                "{lang} {kit} {window} dead-lettered other lines"
            );
        }
    }
}

/// Runs `kit` of `lang` as a pipeline over the kit events published to a fresh server;
/// returns the results' payloads in order and the number of dead letters.
async fn through_nats(lang: &str, kit: &str) -> (Vec<String>, usize) {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let template = if kit == "kit-filter" {
        "filter.toml"
    } else {
        "sum.toml"
    };
    let text = std::fs::read_to_string(root().join("plugins/kit").join(template))
        .unwrap()
        .replace("@PLUGIN@", &toml_path(component(lang, kit)))
        .replace("\"KIT\"", "\"IN\"")
        .replace("kit.in.>", "in.>")
        .replace("\"kit.out\"", "\"out\"")
        .replace("\"kit.dead\"", "\"dlq\"");
    let pipeline = write_pipeline(dir.path(), &text);
    let mut window = std::collections::VecDeque::new();
    let mut last_time = 0;
    for line in std::fs::read_to_string(root().join("plugins/kit/events.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        let mut h = HeaderMap::new();
        h.insert("Kit-Key", v["key"].as_str().unwrap());
        last_time = v["time"].as_i64().unwrap();
        h.insert("Kit-Time", last_time.to_string().as_str());
        let payload = match &v["payload_text"] {
            Value::String(t) => t.clone(),
            _ => v["payload"].to_string(),
        };
        window.push_back(
            js.publish_with_headers("in.e", h, payload.into())
                .await
                .unwrap(),
        );
    }
    // Close the last windows (a marker, not an event).
    let mut h = HeaderMap::new();
    h.insert("Weir-Watermark", (last_time + 60_000).to_string().as_str());
    window.push_back(js.publish_with_headers("in.e", h, "".into()).await.unwrap());
    for f in window {
        f.await.unwrap();
    }
    let (expected, _) = plugin_test("rust", kit, SUM_WINDOWS[0]);
    let n = expected.lines().count();
    let host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    let got = collect(&js, "OUT", "out", n, Duration::from_secs(60)).await;
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), n, "{lang} {kit}:\n{}", host.log());
    assert_eq!(host.terminate(), Some(0));
    (
        got.iter()
            .map(|m| String::from_utf8(m.payload.clone()).unwrap())
            .collect(),
        dead.len(),
    )
}

/// One test, so that the eight components are built once: offline, then through NATS.
#[tokio::test(flavor = "multi_thread")]
async fn the_kit_gives_identical_output_in_four_languages_offline_and_through_nats() {
    offline();
    for kit in ["kit-filter", "kit-sum"] {
        let (reference, ref_dead) = through_nats("rust", kit).await;
        for lang in &LANGS[1..] {
            let (got, dead) = through_nats(lang, kit).await;
            assert_eq!(
                got, reference,
                "{lang} {kit} differs from Rust through NATS"
            );
            assert_eq!(dead, ref_dead, "{lang} {kit}: dead letters");
        }
    }
}
