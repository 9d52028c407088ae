//! One engine for every driver: `weir run --local` (JSON lines in, stdout out) and `weir run`
//! through nats-server give the same results, dead letters and late events for the same
//! events — a windowed pipeline with a filter, lateness and `[[after]]`, and a keyed process
//! pipeline with event-time timers. Watermarks are punctuated (markers in both inputs) so that
//! both runs see event time move at the same events.

use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::{Value, json};

use crate::support::*;

/// One input: an event (key, event time, payload text) or a watermark marker.
#[derive(Clone)]
enum Input {
    Event(String, i64, String),
    Watermark(i64),
}

/// What a run produced, in a form both drivers share: results as (key, time, window start,
/// window end, payload), dead letters as (operator, payload), late events as payloads. Sorted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outputs {
    results: Vec<(String, i64, String, String, String)>,
    dead: Vec<(String, String)>,
    late: Vec<String>,
}

impl Outputs {
    fn sorted(mut self) -> Self {
        self.results.sort();
        self.dead.sort();
        self.late.sort();
        self
    }
}

/// Payload text as both drivers print it (JSON normalised).
fn normal(payload: &str) -> String {
    serde_json::from_str::<Value>(payload).map_or(payload.to_owned(), |v| v.to_string())
}

fn run_local(dir: &std::path::Path, pipeline: &std::path::Path, inputs: &[Input]) -> Outputs {
    let lines: Vec<String> = inputs
        .iter()
        .map(|i| match i {
            Input::Event(key, time, payload) => match serde_json::from_str::<Value>(payload) {
                Ok(v) => json!({"key": key, "time": time, "payload": v}).to_string(),
                Err(_) => json!({"key": key, "time": time, "payload_text": payload}).to_string(),
            },
            Input::Watermark(w) => json!({ "watermark": w }).to_string(),
        })
        .collect();
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let mut cmd = weir();
    cmd.args(["run", "--local", "--input"])
        .arg(&input)
        .arg(pipeline);
    let out = output_within(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut got = Outputs::default();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let h = &v["headers"];
        got.results.push((
            v["key"].as_str().unwrap_or_default().to_owned(),
            v["time"].as_i64().unwrap(),
            h["Weir-Window-Start"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            h["Weir-Window-End"].as_str().unwrap_or_default().to_owned(),
            payload_of(&v),
        ));
    }
    for l in stderr.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(l).unwrap();
        if let Some(d) = v.get("dead_letter") {
            got.dead
                .push((v["operator"].as_str().unwrap().to_owned(), payload_of(d)));
        } else if let Some(e) = v.get("late") {
            got.late.push(payload_of(e));
        }
    }
    got.sorted()
}

/// The payload of a JSON-lines event, normalised.
fn payload_of(v: &Value) -> String {
    match (&v["payload"], &v["payload_text"]) {
        (Value::Null, Value::String(t)) => normal(t),
        (p, _) => p.to_string(),
    }
}

async fn run_nats(
    dir: &std::path::Path,
    pipeline: &std::path::Path,
    inputs: &[Input],
    expected: &Outputs,
) -> Outputs {
    let (server, js) = server_with_streams().await;
    create_stream(&js, "LATE", &["late"]).await;
    let weir = WeirProcess::start(pipeline, &server.url(), &dir.join("weir.log"));
    for i in inputs {
        let mut h = HeaderMap::new();
        let payload = match i {
            Input::Event(key, time, payload) => {
                h.insert("Weir-Key", key.as_str());
                h.insert("ts", time.to_string().as_str());
                payload.clone()
            }
            Input::Watermark(w) => {
                h.insert("Weir-Watermark", w.to_string().as_str());
                String::new()
            }
        };
        js.publish_with_headers("in.a", h, payload.into_bytes().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Waits for as many as the local run produced (briefly for none: extra ones show up).
    let limit = |n: usize| Duration::from_secs(if n == 0 { 2 } else { 60 });
    let (n_out, n_dead, n_late) = (
        expected.results.len(),
        expected.dead.len(),
        expected.late.len(),
    );
    let out = collect(&js, "OUT", "out", n_out, limit(n_out)).await;
    let dead = collect(&js, "OUT", "dlq", n_dead, limit(n_dead)).await;
    let late = collect(&js, "LATE", "late", n_late, limit(n_late)).await;
    let text = |p: &[u8]| normal(&String::from_utf8_lossy(p));
    let got = Outputs {
        results: out
            .iter()
            .map(|m| {
                (
                    m.header("Weir-Key").unwrap_or_default(),
                    m.header("Weir-Time").unwrap().parse().unwrap(),
                    m.header("Weir-Window-Start").unwrap_or_default(),
                    m.header("Weir-Window-End").unwrap_or_default(),
                    text(&m.payload),
                )
            })
            .collect(),
        dead: dead
            .iter()
            .map(|m| (m.header("Weir-Operator").unwrap(), text(&m.payload)))
            .collect(),
        late: late.iter().map(|m| text(&m.payload)).collect(),
    };
    let log = weir.log();
    assert_eq!(weir.terminate(), Some(0), "log:\n{log}");
    got.sorted()
}

/// Both runs, compared; the local run must have produced something of every kind asked for.
async fn same_outputs(pipeline_text: &str, inputs: &[Input], kinds: (bool, bool, bool)) {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), pipeline_text);
    let local = run_local(dir.path(), &file, inputs);
    assert_eq!(
        (
            !local.results.is_empty(),
            !local.dead.is_empty(),
            !local.late.is_empty()
        ),
        kinds,
        "{local:?}"
    );
    let nats = run_nats(dir.path(), &file, inputs, &local).await;
    assert_eq!(nats, local);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windowed_pipeline_gives_the_same_outputs_locally_and_through_nats() {
    // Events of 4 keys over 6 s; amounts ≥ 10 kept; tumbling 1 s counts with 500 ms lateness,
    // then `[[after]]` keeps counts ≥ 2. A non-JSON event fails the filter; events behind the
    // watermark by more than the lateness are late; one within it re-fires its window.
    let mut inputs = Vec::new();
    for i in 0..120i64 {
        let ts = 1_000 + (i * 53) % 6_000;
        let key = format!("k{}", i % 4);
        inputs.push(Input::Event(
            key,
            ts,
            json!({ "amount": i % 30 }).to_string(),
        ));
        if i % 20 == 19 {
            inputs.push(Input::Watermark(ts - 1_000));
        }
    }
    inputs.push(Input::Event("k1".into(), 3_500, "not json".into()));
    inputs.push(Input::Watermark(5_000));
    inputs.push(Input::Event(
        "k2".into(),
        1_200,
        json!({"amount": 99}).to_string(),
    ));
    inputs.push(Input::Event(
        "k3".into(),
        4_700,
        json!({"amount": 99}).to_string(),
    ));
    inputs.push(Input::Watermark(60_000));
    let stages = [
        operator(
            "big",
            "json_filter",
            r#"{ field = "amount", op = "ge", value = 10 }"#,
        ),
        window_section(
            "type = \"tumbling\"\nsize = \"1s\"\nallowed_lateness = \"500ms\"",
            "counts",
            "window_stats",
            "{}",
        ),
        after_operator(
            "busy",
            "json_filter",
            r#"{ field = "count", op = "ge", value = 2 }"#,
        ),
    ];
    let text = pipeline_text(
        "one-engine-window",
        "time = { header = \"ts\" }\nkey = { header = \"Weir-Key\" }\nwatermarks = { strategy = \"punctuated\" }",
        &stages.join("\n"),
    )
    .replace("dead_letter = \"dlq\"", "dead_letter = \"dlq\"\nlate = \"late\"");
    same_outputs(&text, &inputs, (true, true, true)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyed_process_pipeline_gives_the_same_outputs_locally_and_through_nats() {
    // Cards with large transactions from two countries within a minute raise an alert (by an
    // event-time timer); a malformed amount is dead-lettered by the process function.
    let t0 = 1_700_000_000_000i64;
    let mut inputs = Vec::new();
    for card in 0..12i64 {
        let countries = if card % 3 == 0 {
            ["FR", "US"]
        } else {
            ["FR", "FR"]
        };
        for i in 0..4i64 {
            let ts = t0 + card * 1_000 + i * 5_000;
            let tx = json!({"card": format!("c{card}"), "amount": 600, "country": countries[(i % 2) as usize], "ts": ts});
            inputs.push(Input::Event(format!("c{card}"), ts, tx.to_string()));
        }
        inputs.push(Input::Watermark(t0 + card * 1_000));
    }
    let bad = json!({"card": "c5", "amount": "lots", "country": "FR"});
    inputs.push(Input::Event("c5".into(), t0 + 30_000, bad.to_string()));
    inputs.push(Input::Watermark(t0 + 3_600_000));
    let process = process_section(
        "rules",
        &plugin("fraud_detect"),
        "{ amount_above = 500, max_count = 3, within_ms = 60000, min_countries = 2 }",
    );
    let text = pipeline_text(
        "one-engine-process",
        "time = { header = \"ts\" }\nkey = { header = \"Weir-Key\" }\nwatermarks = { strategy = \"punctuated\" }",
        &format!("[process]\n{process}"),
    );
    same_outputs(&text, &inputs, (true, true, false)).await;
}
