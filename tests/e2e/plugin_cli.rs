//! `weir plugin new`, `build` and `test` — the plugin author's loop of the language guides,
//! followed word for word in a temporary folder, for every language.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn run_ok(args: &[&str], dir: &std::path::Path) -> String {
    let mut cmd = weir();
    cmd.current_dir(dir).args(args);
    let out = output_within(cmd, Duration::from_secs(600));
    assert!(
        out.status.success(),
        "weir {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_new_plugin_builds_and_runs_its_sample_events_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["rust", "python", "js", "c"] {
        let name = format!("my-{lang}");
        run_ok(&["plugin", "new", "--lang", lang, &name], dir.path());
        let component = run_ok(&["plugin", "build", &name], dir.path());
        let component = component.trim();
        assert!(
            dir.path().join(component).is_file() || std::path::Path::new(component).is_file(),
            "{lang}: no component at {component}"
        );
        let events = format!("{name}/events.jsonl");
        let out = run_ok(
            &["plugin", "test", component, "--input", &events],
            dir.path(),
        );
        let results: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!results.is_empty(), "{lang}: the template emitted nothing");
        assert!(results.iter().all(|r| r["time"].is_i64()), "{lang}: {out}");
        // A second project of the same name is refused, naming the folder.
        let mut again = weir();
        again
            .current_dir(dir.path())
            .args(["plugin", "new", "--lang", lang, &name]);
        let err = output_within(again, Duration::from_secs(30));
        assert!(!err.status.success());
        assert!(String::from_utf8_lossy(&err.stderr).contains("already exists"));
    }
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
