//! Joins of two inputs through a real nats-server, each checked against a plain computation of
//! the same join over the same events: an interval join across a restart (no pair lost or
//! repeated) and a left outer window join.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Streams AUCTIONS (`auctions.>`), BIDS (`bids.>`) and OUT (`out`, `dlq`).
async fn server_with_two_inputs() -> (NatsServer, async_nats::jetstream::Context) {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "AUCTIONS", &["auctions.>"]).await;
    create_stream(&js, "BIDS", &["bids.>"]).await;
    create_stream(&js, "OUT", &["out", "dlq"]).await;
    (server, js)
}

/// Auctions (keyed by `id`) joined with bids (keyed by `auction`) by `join`.
fn pipeline(name: &str, join: &str) -> String {
    format!(
        r#"name = "{name}"

[[sources]]
name = "auctions"
stream = "AUCTIONS"
batch_size = 50
max_wait = "20ms"
key = {{ field = "id" }}
time = {{ field = "ts" }}

[[sources]]
name = "bids"
stream = "BIDS"
batch_size = 50
max_wait = "20ms"
key = {{ field = "auction" }}
time = {{ field = "ts" }}

[join]
left = "auctions"
right = "bids"
{join}

[sink]
subject = "out"
dead_letter = "dlq"

[checkpoint]
interval = "200ms"
"#
    )
}

fn payloads(events: &[Value]) -> Vec<(Option<String>, Vec<u8>)> {
    events
        .iter()
        .map(|e| (None, e.to_string().into_bytes()))
        .collect()
}

/// (auction n, bid n or -1) of each joined pair, with the pair's key and time, counted.
fn pairs(out: &[Received]) -> BTreeMap<(String, i64, i64, i64), usize> {
    let mut got = BTreeMap::new();
    for m in out {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        let key = m.header("Weir-Key").unwrap();
        let time: i64 = m.header("Weir-Time").unwrap().parse().unwrap();
        let n = |side: &str| p[side]["n"].as_i64().unwrap_or(-1);
        *got.entry((key, time, n("left"), n("right"))).or_default() += 1;
    }
    got
}

fn auctions(range: std::ops::Range<i64>) -> Vec<Value> {
    range
        .map(|n| json!({"id": format!("a{}", n % 5), "ts": n * 1_000, "n": n}))
        .collect()
}

fn bids(range: std::ops::Range<i64>) -> Vec<Value> {
    range
        .map(|n| json!({"auction": format!("a{}", n % 5), "ts": n * 700, "n": n}))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interval_join_pairs_exactly_what_a_plain_computation_pairs_across_a_restart() {
    let (server, js) = server_with_two_inputs().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline(
        "bids-of-auctions",
        "type = \"interval\"\nlower = \"0s\"\nupper = \"3s\"",
    );
    let file = write_pipeline(dir.path(), &text);
    let log = dir.path().join("weir.log");
    let mut weir = WeirProcess::start(&file, &server.url(), &log);
    weir.wait_running(Duration::from_secs(120));
    let (a, b) = (auctions(0..60), bids(0..90));
    // What the join must give: bid within [auction, auction + 3 s] of the same key, at the
    // later of the two times — events in time order per input, so none is late.
    let mut want = BTreeMap::new();
    for x in &a {
        for y in &b {
            let (ta, tb) = (x["ts"].as_i64().unwrap(), y["ts"].as_i64().unwrap());
            if x["id"] == y["auction"] && tb >= ta && tb <= ta + 3_000 {
                let k = x["id"].as_str().unwrap().to_owned();
                let pair = (
                    k,
                    ta.max(tb),
                    x["n"].as_i64().unwrap(),
                    y["n"].as_i64().unwrap(),
                );
                *want.entry(pair).or_insert(0) += 1;
            }
        }
    }
    assert!(want.len() > 50, "{}", want.len());
    // Half before a stop, half after the restart.
    publish_all(&js, "auctions.new", &payloads(&a[..30])).await;
    publish_all(&js, "bids.new", &payloads(&b[..45])).await;
    let first = collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    assert!(!first.is_empty(), "log:\n{}", weir.log());
    assert_eq!(weir.terminate(), Some(0));
    publish_all(&js, "auctions.new", &payloads(&a[30..])).await;
    publish_all(&js, "bids.new", &payloads(&b[45..])).await;
    let mut weir = WeirProcess::start(&file, &server.url(), &log);
    weir.wait_running(Duration::from_secs(120));
    let total: usize = want.values().sum();
    let out = collect(&js, "OUT", "out", total, Duration::from_secs(60)).await;
    let got = pairs(&out);
    assert_eq!(got, want, "log:\n{}", weir.log());
    let ids: std::collections::BTreeSet<String> = out
        .iter()
        .map(|m| m.header("Nats-Msg-Id").unwrap())
        .collect();
    assert_eq!(ids.len(), out.len());
    assert!(ids.iter().all(|id| id.contains("/j/")), "{ids:?}");
    // A bid older than the watermark is late: to the late subject (the dead-letter one).
    publish_all(
        &js,
        "bids.new",
        &payloads(&[json!({"auction": "a0", "ts": 0, "n": 999})]),
    )
    .await;
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1, "log:\n{}", weir.log());
    let reason = dead[0].header("Weir-Error").unwrap_or_default();
    assert!(reason.contains("late"), "{reason}");
    let reader = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", reader());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_left_outer_window_join_keeps_auctions_without_bids() {
    let (server, js) = server_with_two_inputs().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline(
        "auction-windows",
        "type = \"window\"\nkind = \"left\"\nwindow = { type = \"tumbling\", size = \"10s\" }",
    );
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    let a = auctions(0..40);
    // Bids only on keys a0..a2 and only in the first 14 s.
    let b: Vec<Value> = bids(0..20)
        .into_iter()
        .filter(|y| {
            let k = y["auction"].as_str().unwrap();
            k < "a3"
        })
        .collect();
    let window = |t: i64| t.div_euclid(10_000) * 10_000;
    let mut want = BTreeMap::new();
    for x in &a {
        let ta = x["ts"].as_i64().unwrap();
        let matches: Vec<&Value> = b
            .iter()
            .filter(|y| y["auction"] == x["id"] && window(y["ts"].as_i64().unwrap()) == window(ta))
            .collect();
        let k = x["id"].as_str().unwrap().to_owned();
        let end = window(ta) + 9_999;
        if matches.is_empty() {
            *want
                .entry((k.clone(), end, x["n"].as_i64().unwrap(), -1))
                .or_insert(0) += 1;
        }
        for y in matches {
            *want
                .entry((
                    k.clone(),
                    end,
                    x["n"].as_i64().unwrap(),
                    y["n"].as_i64().unwrap(),
                ))
                .or_insert(0) += 1;
        }
    }
    publish_all(&js, "auctions.new", &payloads(&a)).await;
    publish_all(&js, "bids.new", &payloads(&b)).await;
    // Move both inputs' event time past the last window: markers of neither key.
    publish_all(
        &js,
        "auctions.new",
        &payloads(&[json!({"id": "end", "ts": 100_000, "n": -9})]),
    )
    .await;
    publish_all(
        &js,
        "bids.new",
        &payloads(&[json!({"auction": "end", "ts": 100_000, "n": -9})]),
    )
    .await;
    let total: usize = want.values().sum();
    let out = collect(&js, "OUT", "out", total, Duration::from_secs(60)).await;
    let got = pairs(&out);
    assert_eq!(got, want, "log:\n{}", weir.log());
    assert!(
        out.iter().all(|m| m.header("Weir-Window-End").is_some()),
        "window headers"
    );
    let reader = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", reader());
}

/// The `[join]` lines of conformance case `join`, over inputs `left` and `right`.
fn join_lines(join: &Value, lateness: i64) -> String {
    match join["type"].as_str().unwrap() {
        "interval" => format!(
            "type = \"interval\"\nlower = \"{}{}ms\"\nupper = \"{}{}ms\"\n\
             lower_inclusive = {}\nupper_inclusive = {}",
            if join["lower_ms"].as_i64().unwrap() < 0 {
                "-"
            } else {
                ""
            },
            join["lower_ms"].as_i64().unwrap().abs(),
            if join["upper_ms"].as_i64().unwrap() < 0 {
                "-"
            } else {
                ""
            },
            join["upper_ms"].as_i64().unwrap().abs(),
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
                "type = \"window\"\nkind = {}\nwindow = {window}\nallowed_lateness = \"{lateness}ms\"",
                join["kind"]
            )
        }
    }
}

/// A joined pair or a late event, as the vectors and the outputs both say them.
type Row = (String, i64, String, String, Option<(i64, i64)>);

#[test]
fn join_vectors_pass_end_to_end_through_weir_run_local() {
    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../conformance/joins.json")).unwrap();
    assert!(cases.len() >= 30);
    let (mut pairs_checked, mut late_checked) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let lateness = case["allowed_lateness_ms"].as_i64().unwrap_or(0);
        let text = format!(
            "name = \"conf\"\n\
             [[sources]]\nname = \"left\"\nstream = \"L\"\nbatch_size = 1\n\
             [[sources]]\nname = \"right\"\nstream = \"R\"\nbatch_size = 1\n\
             [join]\nleft = \"left\"\nright = \"right\"\n{}\n\
             [sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n",
            join_lines(&case["join"], lateness)
        );
        let pipeline = write_pipeline(dir.path(), &text);
        let mut input = String::new();
        let (mut want, mut want_late): (Vec<Row>, Vec<Row>) = (Vec::new(), Vec::new());
        let v = |x: &Value| x["v"].as_str().unwrap_or_default().to_owned();
        for step in case["steps"].as_array().unwrap() {
            if let Some(e) = step.get("event") {
                let line = json!({"input": e["side"], "key": e["key"], "time": e["ts"],
                                  "payload": {"v": e["v"]}});
                input.push_str(&format!("{line}\n"));
            } else if let Some(w) = step.get("watermark") {
                input.push_str(&format!("{{\"watermark\": {w}}}\n"));
            } else if let Some(expect) = step.get("expect") {
                for x in expect.as_array().unwrap() {
                    if let Some(l) = x.get("late") {
                        let side = l["side"].as_str().unwrap().to_owned();
                        want_late.push((
                            l["key"].as_str().unwrap().to_owned(),
                            l["ts"].as_i64().unwrap(),
                            side,
                            v(l),
                            None,
                        ));
                        continue;
                    }
                    let side = |s: &str| &x[s];
                    let key = [side("left"), side("right")]
                        .iter()
                        .find_map(|s| s["key"].as_str())
                        .unwrap()
                        .to_owned();
                    let window = x
                        .get("window")
                        .filter(|w| !w.is_null())
                        .map(|w| (w["start"].as_i64().unwrap(), w["end"].as_i64().unwrap()));
                    want.push((
                        key,
                        x["ts"].as_i64().unwrap(),
                        v(side("left")),
                        v(side("right")),
                        window,
                    ));
                }
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
        let mut got: Vec<Row> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let r: Value = serde_json::from_str(line).unwrap();
                let p = &r["payload"];
                let h = &r["headers"];
                let window = h.get("Weir-Window-Start").map(|s| {
                    let n = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
                    (n(s), n(&h["Weir-Window-End"]))
                });
                (
                    r["key"].as_str().unwrap().to_owned(),
                    r["time"].as_i64().unwrap(),
                    v(&p["left"]),
                    v(&p["right"]),
                    window,
                )
            })
            .collect();
        let mut got_late: Vec<Row> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("late").cloned())
            .map(|l| {
                let side = l["headers"]["Weir-Input"].as_str().unwrap().to_owned();
                (
                    l["key"].as_str().unwrap().to_owned(),
                    l["time"].as_i64().unwrap(),
                    side,
                    v(&l["payload"]),
                    None,
                )
            })
            .collect();
        for rows in [&mut want, &mut got, &mut want_late, &mut got_late] {
            rows.sort();
        }
        assert_eq!(got, want, "{name}: pairs\n{stderr}");
        assert_eq!(got_late, want_late, "{name}: late events");
        pairs_checked += want.len();
        late_checked += want_late.len();
    }
    assert!(
        pairs_checked > 60 && late_checked > 5,
        "{pairs_checked} pairs, {late_checked} late"
    );
}
