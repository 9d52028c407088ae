//! Window conformance end to end: every vector of `tests/conformance/windows.json` through
//! `weir run --local` with the real `window-stats` aggregate plugin.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::*;

fn window_block(w: &Value, lateness: i64) -> String {
    let kind = match w["type"].as_str().unwrap() {
        "tumbling" => format!("type = \"tumbling\"\nsize = \"{}ms\"", w["size_ms"]),
        "sliding" => format!(
            "type = \"sliding\"\nsize = \"{}ms\"\nslide = \"{}ms\"",
            w["size_ms"], w["slide_ms"]
        ),
        "session" => format!("type = \"session\"\ngap = \"{}ms\"", w["gap_ms"]),
        other => panic!("unknown window type {other}"),
    };
    format!(
        "[window]\n{kind}\nallowed_lateness = \"{lateness}ms\"\n\n[window.aggregate]\nname = \"stats\"\nplugin = \"{}\"\nconfig = {{ field = \"v\" }}\n",
        toml_path(&plugin("window_stats"))
    )
}

type Results = BTreeMap<(String, i64, i64), Vec<i64>>;

/// The union of a case's `expect` steps: results per window (in firing order) and late events.
fn expected(case: &Value) -> (Results, Vec<(String, i64)>) {
    let (mut results, mut late) = (Results::new(), Vec::new());
    for step in case["steps"].as_array().unwrap() {
        for x in step
            .get("expect")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(l) = x.get("late") {
                late.push((
                    l["key"].as_str().unwrap().to_owned(),
                    l["ts"].as_i64().unwrap(),
                ));
            } else {
                let k = (
                    x["key"].as_str().unwrap().to_owned(),
                    x["start"].as_i64().unwrap(),
                    x["end"].as_i64().unwrap(),
                );
                results
                    .entry(k)
                    .or_default()
                    .push(x["value"].as_i64().unwrap());
            }
        }
    }
    late.sort();
    (results, late)
}

/// A window-stats result payload as (key, start, end) → the case's measure.
fn measured(case: &Value, p: &Value) -> ((String, i64, i64), i64) {
    let measure = if case["aggregate"] == "sum" {
        "sum"
    } else {
        "count"
    };
    (
        (
            p["key"].as_str().unwrap().to_owned(),
            p["start"].as_i64().unwrap(),
            p["end"].as_i64().unwrap(),
        ),
        p[measure].as_f64().unwrap_or(0.0) as i64,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn window_vectors_pass_end_to_end_through_nats_with_punctuated_watermarks() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../conformance/windows.json")).unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (server, js) = server_with_streams().await;
        create_stream(&js, "LATE", &["late"]).await;
        let dir = tempfile::tempdir().unwrap();
        let lateness = case["allowed_lateness_ms"].as_i64().unwrap();
        let source = "time = { field = \"ts\" }\nwatermarks = { strategy = \"punctuated\" }";
        let text = pipeline_text("conf", source, "").replace(
            "dead_letter = \"dlq\"\n",
            "dead_letter = \"dlq\"\nlate = \"late\"\n",
        ) + &window_block(&case["window"], lateness);
        let pipeline = write_pipeline(dir.path(), &text);
        let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
        for step in case["steps"].as_array().unwrap() {
            let mut h = async_nats::HeaderMap::new();
            let payload = if let Some(e) = step.get("event") {
                h.insert("Weir-Key", e["key"].as_str().unwrap());
                json!({"ts": e["ts"], "v": e.get("v").and_then(Value::as_i64).unwrap_or(0)})
                    .to_string()
            } else if let Some(w) = step.get("watermark") {
                h.insert("Weir-Watermark", w.to_string().as_str());
                String::new()
            } else {
                continue;
            };
            js.publish_with_headers("in.conf", h, payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let (want_results, want_late) = expected(&case);
        let n: usize = want_results.values().map(Vec::len).sum();
        let out = collect(&js, "OUT", "out", n, std::time::Duration::from_secs(30)).await;
        let mut got = Results::new();
        for m in &out {
            let (k, v) = measured(&case, &serde_json::from_slice(&m.payload).unwrap());
            got.entry(k).or_default().push(v);
        }
        let wait = std::time::Duration::from_secs(if want_late.is_empty() { 1 } else { 10 });
        let late = collect(&js, "LATE", "late", want_late.len(), wait).await;
        let mut got_late: Vec<(String, i64)> = late
            .iter()
            .map(|m| {
                let p: Value = serde_json::from_slice(&m.payload).unwrap();
                (m.header("Weir-Key").unwrap(), p["ts"].as_i64().unwrap())
            })
            .collect();
        got_late.sort();
        assert_eq!(got, want_results, "{name}: results\n{}", weir.log());
        assert_eq!(got_late, want_late, "{name}: late events");
        assert_eq!(weir.terminate(), Some(0), "{name}");
    }
}

#[test]
fn window_vectors_pass_end_to_end_through_weir_run_local() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../conformance/windows.json")).unwrap();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let lateness = case["allowed_lateness_ms"].as_i64().unwrap();
        let text = pipeline_text("conf", "", "").replace("batch_size = 200", "batch_size = 1")
            + &window_block(&case["window"], lateness);
        let pipeline = write_pipeline(dir.path(), &text);
        let mut input = String::new();
        for step in case["steps"].as_array().unwrap() {
            if let Some(e) = step.get("event") {
                let v = e.get("v").and_then(Value::as_i64).unwrap_or(0);
                let line = json!({"key": e["key"], "time": e["ts"], "payload": {"v": v}});
                input.push_str(&format!("{line}\n"));
            } else if let Some(w) = step.get("watermark") {
                input.push_str(&format!("{{\"watermark\": {w}}}\n"));
            }
        }
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, input).unwrap();
        let out = weir()
            .args(["run", "--local", "--input"])
            .arg(&events)
            .arg(&pipeline)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");

        let (want_results, want_late) = expected(&case);
        let mut got_results = Results::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            let p = &r["payload"];
            assert_eq!(
                r["time"].as_i64().unwrap(),
                p["end"].as_i64().unwrap() - 1,
                "{name}: result time"
            );
            let (k, v) = measured(&case, p);
            got_results.entry(k).or_default().push(v);
        }
        let mut got_late: Vec<(String, i64)> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("late").cloned())
            .map(|l| {
                (
                    l["key"].as_str().unwrap().to_owned(),
                    l["time"].as_i64().unwrap(),
                )
            })
            .collect();
        got_late.sort();
        assert_eq!(got_results, want_results, "{name}: results");
        assert_eq!(got_late, want_late, "{name}: late events");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tumbling_counts_over_nats_with_event_time_from_a_field_and_a_late_event() {
    let (server, js) = server_with_streams().await;
    crate::support::create_stream(&js, "LATE", &["late"]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "win"
[source]
stream = "IN"
batch_size = 200
max_wait = "50ms"
time = {{ field = "ts" }}
watermarks = {{ out_of_orderness = "200ms" }}

[window]
type = "tumbling"
size = "1s"

[window.aggregate]
name = "stats"
plugin = "{}"
config = {{ field = "v" }}

[sink]
subject = "out"
dead_letter = "dlq"
late = "late"
"#,
        toml_path(&plugin("window_stats"))
    );
    let pipeline = write_pipeline(dir.path(), &text);
    let admin = free_addr();
    let weir = WeirProcess::start_with(
        &pipeline,
        &server.url(),
        &dir.path().join("weir.log"),
        &["--admin", &admin],
    );

    // 3 keys, times 0..6000 ms in steps of 10 (slightly out of order), then one far event that
    // closes every window, then an event for the long-closed window [0, 1000).
    let mut events = Vec::new();
    let mut want: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for i in 0..600i64 {
        let ts = i * 10 - if i % 5 == 0 { 150 } else { 0 };
        let ts = ts.max(0);
        let key = format!("k{}", i % 3);
        *want.entry((key.clone(), ts - ts % 1000)).or_default() += 1;
        events.push((
            Some(key),
            json!({"ts": ts, "v": 1}).to_string().into_bytes(),
        ));
    }
    events.push((
        Some("k0".into()),
        json!({"ts": 100_000, "v": 1}).to_string().into_bytes(),
    ));
    publish_all(&js, "in.w", &events).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    publish_all(
        &js,
        "in.w",
        &[(
            Some("k1".into()),
            json!({"ts": 5, "v": 1}).to_string().into_bytes(),
        )],
    )
    .await;

    let out = collect(
        &js,
        "OUT",
        "out",
        want.len(),
        std::time::Duration::from_secs(60),
    )
    .await;
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for m in &out {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        let key = m.header("Weir-Key").unwrap();
        assert_eq!(p["key"].as_str(), Some(key.as_str()));
        assert_eq!(
            m.header("Weir-Window-Start").unwrap(),
            p["start"].to_string()
        );
        got.insert(
            (key, p["start"].as_i64().unwrap()),
            p["count"].as_u64().unwrap(),
        );
    }
    assert_eq!(got, want, "log:\n{}", weir.log());
    let late = collect(&js, "LATE", "late", 1, std::time::Duration::from_secs(20)).await;
    assert_eq!(late.len(), 1);
    assert!(late[0].header("Weir-Error").unwrap().starts_with("late"));
    // The admin endpoint reports what happened, and the event-time watermark.
    assert_eq!(http_get(&admin, "/health"), "ok\n");
    let metrics = http_get(&admin, "/metrics");
    assert!(
        metrics.contains(&format!(
            "weir_results_total{{pipeline=\"win\"}} {}",
            want.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_late_events_total{pipeline=\"win\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_input_events_total{pipeline=\"win\"} 602"),
        "{metrics}"
    );
    // The far event at 100 s moved the watermark to 100000 - 200 - 1.
    assert!(
        metrics.contains("weir_watermark_ms{pipeline=\"win\"} 99799"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_watermark_lag_ms{pipeline=\"win\"}"),
        "{metrics}"
    );
    assert_eq!(weir.terminate(), Some(0));
}

#[test]
fn top_k_pages_per_site_and_minute_with_weir_run_local() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "top"
[source]
stream = "IN"
[window]
type = "tumbling"
size = "1m"
[window.aggregate]
name = "top-pages"
plugin = "{}"
config = {{ field = "page", k = 2 }}
[sink]
subject = "out"
dead_letter = "dlq"
"#,
        toml_path(&plugin("top_k"))
    );
    let pipeline = write_pipeline(dir.path(), &text);
    let views = [
        ("a", 1_000, "/home"),
        ("a", 2_000, "/cart"),
        ("a", 3_000, "/home"),
        ("a", 4_000, "/buy"),
        ("a", 5_000, "/cart"),
        ("a", 6_000, "/home"),
        ("b", 7_000, "/x"),
        ("a", 61_000, "/buy"),
    ];
    let lines: Vec<String> = views
        .iter()
        .map(|(site, t, page)| {
            json!({"key": site, "time": t, "payload": {"page": page}}).to_string()
        })
        .collect();
    let input = dir.path().join("views.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = weir()
        .args(["run", "--local", "--input"])
        .arg(&input)
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].clone())
        .collect();
    results.sort_by_key(|p| {
        (
            p["key"].as_str().unwrap().to_owned(),
            p["start"].as_i64().unwrap(),
        )
    });
    assert_eq!(
        results,
        [
            json!({"key": "a", "start": 0, "end": 60_000, "top": [{"value": "/home", "count": 3}, {"value": "/cart", "count": 2}]}),
            json!({"key": "a", "start": 60_000, "end": 120_000, "top": [{"value": "/buy", "count": 1}]}),
            json!({"key": "b", "start": 0, "end": 60_000, "top": [{"value": "/x", "count": 1}]}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_partition_stops_holding_the_watermark_back() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"name = "idle"
[source]
stream = "IN"
subjects = ["in.fast", "in.slow"]
max_wait = "20ms"
time = {{ field = "ts" }}
watermarks = {{ idle_timeout = "1s", interval = "100ms" }}

[window]
type = "tumbling"
size = "1s"

[window.aggregate]
name = "stats"
plugin = "{}"

[sink]
subject = "out"
dead_letter = "dlq"
"#,
        toml_path(&plugin("window_stats"))
    );
    let pipeline = write_pipeline(dir.path(), &text);
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    let slow = [(
        Some("s".to_string()),
        json!({"ts": 100}).to_string().into_bytes(),
    )];
    publish_all(&js, "in.slow", &slow).await;
    // The fast partition keeps sending (one event every 40 ms of wall time, for 2 s).
    for i in 0..50 {
        let e = [(
            Some("f".to_string()),
            json!({"ts": i * 100}).to_string().into_bytes(),
        )];
        publish_all(&js, "in.fast", &e).await;
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }

    // While both partitions are active the slow one (at 100 ms) holds the watermark at 99: no
    // window can fire. Once it has been idle for 1 s, the fast partition's watermark alone
    // moves on; it ends at 4899, closing [0, 1000) .. [3000, 4000).
    let out = collect(&js, "OUT", "out", 5, std::time::Duration::from_secs(20)).await;
    let mut got: Vec<(String, i64, u64)> = out
        .iter()
        .map(|m| {
            let p: Value = serde_json::from_slice(&m.payload).unwrap();
            (
                p["key"].as_str().unwrap().to_owned(),
                p["start"].as_i64().unwrap(),
                p["count"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let want = vec![
        ("f".to_string(), 0, 10),
        ("f".to_string(), 1000, 10),
        ("f".to_string(), 2000, 10),
        ("f".to_string(), 3000, 10),
        ("s".to_string(), 0, 1),
    ];
    assert_eq!(got, want, "log:\n{}", weir.log());
    assert_eq!(weir.terminate(), Some(0));
}
