//! `[[after]]` operators: transforms over window results, locally and through nats-server,
//! with message ids derived from the window result they came from.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::*;

/// Tumbling 1 s counts per key, then `[[after]]`: keep counts ≥ 6, project and tag them.
fn pipeline() -> String {
    let stages = [
        window_section(
            "type = \"tumbling\"\nsize = \"1s\"",
            "stats",
            "window_stats",
            "{}",
        ),
        after_operator(
            "busy",
            "json_filter",
            r#"{ field = "count", op = "ge", value = 6 }"#,
        ),
        after_operator(
            "tag",
            "json_map",
            r#"{ fields = ["key", "start", "count"], set = { stage = "after" } }"#,
        ),
    ];
    pipeline_text(
        "after",
        "time = { field = \"ts\" }\nwatermarks = { out_of_orderness = \"5s\" }",
        &stages.join("\n"),
    )
}

/// Results by (key, window start).
type ByWindow = BTreeMap<(String, i64), Value>;

/// 90 events over 3 keys and 5 s; the expected `[[after]]` outputs.
fn events() -> (Vec<(String, i64)>, ByWindow) {
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut events = Vec::new();
    for i in 0..90i64 {
        let key = format!("k{}", i % 3);
        let ts = (i * 397) % 5000;
        *counts.entry((key.clone(), ts - ts % 1000)).or_default() += 1;
        events.push((key, ts));
    }
    let expected = counts
        .into_iter()
        .filter(|(_, n)| *n >= 6)
        .map(|((key, start), count)| {
            let v = json!({"key": key, "start": start, "count": count, "stage": "after"});
            ((key, start), v)
        })
        .collect();
    (events, expected)
}

fn by_window(payloads: impl IntoIterator<Item = Value>) -> ByWindow {
    payloads
        .into_iter()
        .map(|p| {
            let k = (
                p["key"].as_str().unwrap().to_owned(),
                p["start"].as_i64().unwrap(),
            );
            (k, p)
        })
        .collect()
}

#[test]
fn after_operators_transform_window_results_with_weir_run_local() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), &pipeline());
    let (events, expected) = events();
    assert!(expected.len() > 3 && expected.len() < 15, "{expected:?}");
    let lines: Vec<String> = events
        .iter()
        .map(|(k, ts)| json!({"key": k, "time": ts, "payload": {"ts": ts}}).to_string())
        .collect();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = weir()
        .args(["run", "--local", "--input"])
        .arg(&input)
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].clone())
        .collect();
    assert_eq!(results.len(), expected.len(), "{results:?}");
    assert_eq!(by_window(results), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_operators_transform_window_results_through_nats_with_derived_ids() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), &pipeline());
    let weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    let (events, expected) = events();
    let mut msgs: Vec<(Option<String>, Vec<u8>)> = events
        .iter()
        .map(|(k, ts)| (Some(k.clone()), json!({"ts": ts}).to_string().into_bytes()))
        .collect();
    // Closes every window.
    msgs.push((
        Some("k0".into()),
        json!({"ts": 60_000}).to_string().into_bytes(),
    ));
    publish_all(&js, "in.a", &msgs).await;
    let out = collect(
        &js,
        "OUT",
        "out",
        expected.len(),
        std::time::Duration::from_secs(60),
    )
    .await;
    assert_eq!(out.len(), expected.len(), "log:\n{}", weir.log());
    for m in &out {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        let start = p["start"].as_i64().unwrap();
        let id = m.header("Nats-Msg-Id").unwrap();
        let prefix = format!("after/w/{start}/{}/", start + 1000);
        assert!(id.starts_with(&prefix) && id.ends_with("/0"), "{id}");
        assert_eq!(m.header("Weir-Key").as_deref(), p["key"].as_str());
    }
    let got = by_window(
        out.iter()
            .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()),
    );
    assert_eq!(got, expected);
    assert_eq!(weir.terminate(), Some(0));
}
