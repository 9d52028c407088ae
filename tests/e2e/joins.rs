//! Joins of two inputs through a real nats-server, each checked against a plain computation of
//! the same join over the same events: an interval join across a restart (no pair lost or
//! repeated) and a left outer window join.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

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
