//! The join conformance vectors (`tests/conformance/joins.json`) end to end: through
//! `weir run --local` (one input file, each line saying its input) and through a real
//! nats-server (two streams, punctuated watermarks on both; each step is published once the
//! previous one is processed, so that event time at each arrival is the vector's).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The `[join]` lines of a vector's `join`, over inputs `left` and `right`.
fn join_lines(join: &Value, lateness: i64) -> String {
    let signed = |ms: i64| format!("\"{}{}ms\"", if ms < 0 { "-" } else { "" }, ms.abs());
    match join["type"].as_str().unwrap() {
        "interval" => format!(
            "type = \"interval\"\nlower = {}\nupper = {}\nlower_inclusive = {}\n\
             upper_inclusive = {}",
            signed(join["lower_ms"].as_i64().unwrap()),
            signed(join["upper_ms"].as_i64().unwrap()),
            join["lower_inclusive"],
            join["upper_inclusive"],
        ),
        _ => {
            let w = &join["window"];
            let window = match w["type"].as_str().unwrap() {
                "tumbling" => format!("{{ type = \"tumbling\", size = \"{}ms\" }}", w["size_ms"]),
                "sliding" => format!(
                    "{{ type = \"sliding\", size = \"{}ms\", slide = \"{}ms\" }}",
                    w["size_ms"], w["slide_ms"]
                ),
                _ => format!("{{ type = \"session\", gap = \"{}ms\" }}", w["gap_ms"]),
            };
            format!(
                "type = \"window\"\nkind = {}\nwindow = {window}\n\
                 allowed_lateness = \"{lateness}ms\"",
                join["kind"]
            )
        }
    }
}

/// The pipeline of a vector: inputs `left` and `right` (each with `input` lines, e.g. its
/// stream), the case's join, and `tail` (sink, checkpoint).
fn case_pipeline(case: &Value, left: &str, right: &str, tail: &str) -> String {
    let lateness = case["allowed_lateness_ms"].as_i64().unwrap_or(0);
    format!(
        "name = \"conf\"\n[[sources]]\nname = \"left\"\n{left}\n[[sources]]\nname = \"right\"\n\
         {right}\n[join]\nleft = \"left\"\nright = \"right\"\n{}\n{tail}",
        join_lines(&case["join"], lateness)
    )
}

/// A joined pair (key, time, left `v`, right `v`, window) or a late event (key, time, side,
/// `v`, no window).
type Row = (String, i64, String, String, Option<(i64, i64)>);

fn v(x: &Value) -> String {
    x["v"].as_str().unwrap_or_default().to_owned()
}

/// Every pair and late event a vector expects, sorted.
fn expected(case: &Value) -> (Vec<Row>, Vec<Row>) {
    let (mut pairs, mut late) = (Vec::new(), Vec::new());
    for step in case["steps"].as_array().unwrap() {
        let Some(expect) = step.get("expect") else {
            continue;
        };
        for x in expect.as_array().unwrap() {
            if let Some(l) = x.get("late") {
                let side = l["side"].as_str().unwrap().to_owned();
                let key = l["key"].as_str().unwrap().to_owned();
                late.push((key, l["ts"].as_i64().unwrap(), side, v(l), None));
                continue;
            }
            let key = [&x["left"], &x["right"]]
                .iter()
                .find_map(|s| s["key"].as_str())
                .unwrap()
                .to_owned();
            let window = x
                .get("window")
                .filter(|w| !w.is_null())
                .map(|w| (w["start"].as_i64().unwrap(), w["end"].as_i64().unwrap()));
            let time = x["ts"].as_i64().unwrap();
            pairs.push((key, time, v(&x["left"]), v(&x["right"]), window));
        }
    }
    pairs.sort();
    late.sort();
    (pairs, late)
}

/// A pair's row from its key, time, `{"left", "right"}` payload and window bounds.
fn pair_row(key: &str, time: i64, payload: &Value, window: Option<(i64, i64)>) -> Row {
    (
        key.to_owned(),
        time,
        v(&payload["left"]),
        v(&payload["right"]),
        window,
    )
}

/// Checks one case's outputs, returning how many pairs and late events it checked.
fn check(name: &str, case: &Value, mut got: Vec<Row>, mut got_late: Vec<Row>) -> (usize, usize) {
    let (want, want_late) = expected(case);
    got.sort();
    got_late.sort();
    assert_eq!(got, want, "{name}: pairs");
    assert_eq!(got_late, want_late, "{name}: late events");
    (want.len(), want_late.len())
}

fn cases() -> Vec<Value> {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../conformance/joins.json")).unwrap();
    assert!(cases.len() >= 30);
    cases
}

#[test]
fn join_vectors_pass_end_to_end_through_weir_run_local() {
    let mut checked = (0, 0);
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = case_pipeline(
            &case,
            "stream = \"L\"\nbatch_size = 1",
            "stream = \"R\"\nbatch_size = 1",
            "[sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n",
        );
        let pipeline = write_pipeline(dir.path(), &text);
        let mut input = String::new();
        for step in case["steps"].as_array().unwrap() {
            if let Some(e) = step.get("event") {
                let line = json!({"input": e["side"], "key": e["key"], "time": e["ts"],
                                  "payload": {"v": e["v"]}});
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
        let got = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let r: Value = serde_json::from_str(line).unwrap();
                let h = &r["headers"];
                let n = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
                let window = h
                    .get("Weir-Window-Start")
                    .map(|s| (n(s), n(&h["Weir-Window-End"])));
                let key = r["key"].as_str().unwrap();
                pair_row(key, r["time"].as_i64().unwrap(), &r["payload"], window)
            })
            .collect();
        let got_late = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("late").cloned())
            .map(|l| {
                let side = l["headers"]["Weir-Input"].as_str().unwrap().to_owned();
                let key = l["key"].as_str().unwrap().to_owned();
                (
                    key,
                    l["time"].as_i64().unwrap(),
                    side,
                    v(&l["payload"]),
                    None,
                )
            })
            .collect();
        let (pairs, late) = check(name, &case, got, got_late);
        checked = (checked.0 + pairs, checked.1 + late);
    }
    assert!(
        checked.0 > 60 && checked.1 > 5,
        "{checked:?} pairs, late events"
    );
}

/// Waits until durable consumer `consumer` of `stream` has acknowledged stream sequence `seq`
/// (with `at-least-once`, once the outputs of its batch are stored).
async fn processed(js: &async_nats::jetstream::Context, stream: &str, consumer: &str, seq: u64) {
    let s = js.get_stream(stream).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Ok(info) = s.consumer_info(consumer).await
            && info.ack_floor.stream_sequence >= seq
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{consumer} did not process {stream} sequence {seq}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn join_vectors_pass_end_to_end_through_nats_with_punctuated_watermarks() {
    let mut checked = (0, 0);
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "L", &["l"]).await;
        create_stream(&js, "R", &["r"]).await;
        create_stream(&js, "OUT", &["out", "dlq"]).await;
        let dir = tempfile::tempdir().unwrap();
        let input = |stream: &str| {
            format!(
                "stream = \"{stream}\"\nbatch_size = 1\nmax_wait = \"1ms\"\n\
                 key = {{ field = \"k\" }}\ntime = {{ field = \"ts\" }}\n\
                 watermarks = {{ strategy = \"punctuated\" }}"
            )
        };
        let text = case_pipeline(
            &case,
            &input("L"),
            &input("R"),
            "[sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n\
             [checkpoint]\nguarantee = \"at-least-once\"\n",
        );
        let pipeline = write_pipeline(dir.path(), &text);
        let mut weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
        weir.wait_running(Duration::from_secs(120));
        for step in case["steps"].as_array().unwrap() {
            let mut sent = Vec::new();
            if let Some(e) = step.get("event") {
                let (stream, subject) = match e["side"].as_str().unwrap() {
                    "left" => ("L", "l"),
                    _ => ("R", "r"),
                };
                let payload = json!({"k": e["key"], "ts": e["ts"], "v": e["v"]}).to_string();
                let ack = js.publish(subject, payload.into()).await.unwrap();
                sent.push((stream, ack.await.unwrap().sequence));
            } else if let Some(w) = step.get("watermark") {
                for (stream, subject) in [("L", "l"), ("R", "r")] {
                    let mut h = async_nats::HeaderMap::new();
                    h.insert("Weir-Watermark", w.to_string().as_str());
                    let ack = js
                        .publish_with_headers(subject, h, "".into())
                        .await
                        .unwrap();
                    sent.push((stream, ack.await.unwrap().sequence));
                }
            }
            for (stream, seq) in sent {
                let consumer = match stream {
                    "L" => "weir-conf-left",
                    _ => "weir-conf-right",
                };
                processed(&js, stream, consumer, seq).await;
            }
        }
        let (want, want_late) = expected(&case);
        // Every step was acknowledged, so its outputs are stored already: a short look
        // finds them (and any that should not be there).
        let look = |n: usize| Duration::from_millis(if n == 0 { 300 } else { 5_000 });
        let out = collect(&js, "OUT", "out", want.len(), look(want.len())).await;
        let got = out
            .iter()
            .map(|m| {
                let p: Value = serde_json::from_slice(&m.payload).unwrap();
                let n = |h: &str| m.header(h).map(|v| v.parse::<i64>().unwrap());
                let window = n("Weir-Window-Start").zip(n("Weir-Window-End"));
                let key = m.header("Weir-Key").unwrap();
                pair_row(&key, n("Weir-Time").unwrap(), &p, window)
            })
            .collect();
        let dead = collect(&js, "OUT", "dlq", want_late.len(), look(want_late.len())).await;
        let got_late = dead
            .iter()
            .map(|m| {
                let p: Value = serde_json::from_slice(&m.payload).unwrap();
                let side = m.header("Weir-Input").unwrap();
                let key = m.header("Weir-Key").unwrap_or_default();
                let time = m.header("Weir-Time").unwrap().parse().unwrap();
                (key, time, side, v(&p), None)
            })
            .collect();
        let (pairs, late) = check(name, &case, got, got_late);
        checked = (checked.0 + pairs, checked.1 + late);
        let log = weir.log_reader();
        assert_eq!(weir.terminate(), Some(0), "{name}: log:\n{}", log());
    }
    assert!(
        checked.0 > 60 && checked.1 > 5,
        "{checked:?} pairs, late events"
    );
}
