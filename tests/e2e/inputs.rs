//! Pipelines of several inputs (`[[sources]]`) through a real nats-server: each input with
//! its own stream, key, time and watermark; events carry their input's name; message ids stay
//! distinct across inputs; the watermark is the minimum over inputs; a restart resumes every
//! input from the checkpoint's position of it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// A pipeline over bids (keyed by `auction`) and auctions (keyed by `id`), both timed by
/// `ts`, ending with `stages`.
fn two_inputs(name: &str, stages: &str) -> String {
    format!(
        r#"name = "{name}"

[[sources]]
name = "bids"
stream = "BIDS"
batch_size = 100
max_wait = "50ms"
key = {{ field = "auction" }}
time = {{ field = "ts" }}

[[sources]]
name = "auctions"
stream = "AUCTIONS"
batch_size = 100
max_wait = "50ms"
key = {{ field = "id" }}
time = {{ field = "ts" }}

{stages}

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

#[tokio::test(flavor = "multi_thread")]
async fn events_of_two_inputs_carry_their_input_and_key_and_no_id_collides() {
    let (server, js) = server_with_two_inputs().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        &two_inputs("both", &operator("pass", "passthrough", "{}")),
    );
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    // Both streams hold sequences 1..=150: the message ids name the input and the position,
    // so none of the 300 is taken for a duplicate.
    let bids: Vec<Value> = (0..150)
        .map(|i| json!({"auction": format!("a{}", i % 7), "ts": 1_000 + i, "bid": i}))
        .collect();
    let auctions: Vec<Value> = (0..150)
        .map(|i| json!({"id": format!("a{i}"), "ts": 1_000 + i, "auction": i}))
        .collect();
    publish_all(&js, "bids.new", &payloads(&bids)).await;
    publish_all(&js, "auctions.new", &payloads(&auctions)).await;
    let out = collect(&js, "OUT", "out", 300, Duration::from_secs(60)).await;
    assert_eq!(out.len(), 300, "log:\n{}", weir.log());
    let mut by_input: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for m in &out {
        let input = m.header("Weir-Input").expect("Weir-Input header");
        let key = m.header("Weir-Key").unwrap_or_default();
        let payload: Value = serde_json::from_slice(&m.payload).unwrap();
        by_input.entry(input).or_default().push((key, payload));
    }
    assert_eq!(by_input.len(), 2, "{:?}", by_input.keys());
    for (key, p) in &by_input["bids"] {
        assert_eq!(key, p["auction"].as_str().unwrap());
    }
    for (key, p) in &by_input["auctions"] {
        assert_eq!(key, p["id"].as_str().unwrap());
    }
    let mut ids: Vec<String> = out
        .iter()
        .map(|m| m.header("Nats-Msg-Id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    let consumers: Vec<String> = {
        use futures::StreamExt;
        let mut names = Vec::new();
        for stream in ["BIDS", "AUCTIONS"] {
            let s = js.get_stream(stream).await.unwrap();
            let mut n = s.consumer_names();
            while let Some(c) = n.next().await {
                names.push(c.unwrap());
            }
        }
        names
    };
    assert_eq!(consumers, ["weir-both-bids", "weir-both-auctions"]);
    let log = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

/// Sums of `amount` per (key, window start) of the window results in `out`.
fn sums(out: &[Received]) -> BTreeMap<(String, i64), i64> {
    let mut sums = BTreeMap::new();
    for m in out {
        let p: Value = serde_json::from_slice(&m.payload).unwrap();
        let k = (
            p["key"].as_str().unwrap().to_owned(),
            p["start"].as_i64().unwrap(),
        );
        *sums.entry(k).or_default() += p["sum"].as_f64().unwrap() as i64;
    }
    sums
}

#[tokio::test(flavor = "multi_thread")]
async fn the_watermark_waits_for_the_slower_input_and_a_restart_resumes_both() {
    let (server, js) = server_with_two_inputs().await;
    let dir = tempfile::tempdir().unwrap();
    let text = two_inputs(
        "slowest",
        &window_section(
            "type = \"tumbling\"\nsize = \"10s\"",
            "stats",
            "window_stats",
            r#"{ field = "amount" }"#,
        ),
    );
    let file = write_pipeline(dir.path(), &text);
    let log = dir.path().join("weir.log");
    let mut weir = WeirProcess::start(&file, &server.url(), &log);
    weir.wait_running(Duration::from_secs(120));
    // Bids reach 25 s; auctions stay at 5 s: window [0, 10 s) must not fire yet.
    let bid = |ts: i64, amount: i64| json!({"auction": "k", "ts": ts, "amount": amount});
    let auction = |ts: i64, amount: i64| json!({"id": "k", "ts": ts, "amount": amount});
    publish_all(&js, "bids.x", &payloads(&[bid(1_000, 1), bid(25_000, 10)])).await;
    publish_all(&js, "auctions.x", &payloads(&[auction(5_000, 100)])).await;
    let early = collect(&js, "OUT", "out", 1, Duration::from_secs(3)).await;
    assert!(
        early.is_empty(),
        "fired before the slower input passed the window: {:?}",
        sums(&early)
    );
    // Stop (a last checkpoint), publish to both while down, restart: each input resumes
    // after its own position, nothing is read twice or skipped.
    assert_eq!(weir.terminate(), Some(0));
    publish_all(&js, "auctions.x", &payloads(&[auction(9_000, 1_000)])).await;
    publish_all(&js, "bids.x", &payloads(&[bid(26_000, 20)])).await;
    let mut weir = WeirProcess::start(&file, &server.url(), &log);
    weir.wait_running(Duration::from_secs(120));
    publish_all(&js, "auctions.x", &payloads(&[auction(30_000, 5)])).await;
    let out = collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    let got = sums(&out);
    // [0, 10 s): 1 + 100 + 1000; [20 s, 30 s): 10 + 20 (the auctions' watermark is 30 s - 1,
    // bids' 26 s - 1: [20 s, 30 s) fires once both pass 29 999 — not yet).
    assert_eq!(
        got,
        BTreeMap::from([(("k".to_owned(), 0), 1_101)]),
        "log:\n{}",
        weir.log()
    );
    publish_all(&js, "bids.x", &payloads(&[bid(31_000, 0)])).await;
    let out = collect(&js, "OUT", "out", 2, Duration::from_secs(30)).await;
    assert_eq!(
        sums(&out),
        BTreeMap::from([(("k".to_owned(), 0), 1_101), (("k".to_owned(), 20_000), 30)]),
        "log:\n{}",
        weir.log()
    );
    let reader = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", reader());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_checkpoint_store_is_noticed_from_any_inputs_consumer() {
    // Before: only the first input's consumer was asked whether the pipeline had run, so with
    // it gone the host started with empty window state although the second had acknowledged.
    let (server, js) = server_with_two_inputs().await;
    let dir = tempfile::tempdir().unwrap();
    let window = window_section(
        "type = \"tumbling\"\nsize = \"10s\"",
        "stats",
        "window_stats",
        r#"{ field = "amount" }"#,
    );
    let file = write_pipeline(dir.path(), &two_inputs("forgot", &window));
    let mut host = WeirProcess::start(&file, &server.url(), &dir.path().join("1.log"));
    host.wait_running(Duration::from_secs(120));
    let bid = json!({"auction": "k", "ts": 1_000, "amount": 1});
    let auction = json!({"id": "k", "ts": 2_000, "amount": 2});
    publish_all(&js, "bids.x", &payloads(&[bid])).await;
    publish_all(&js, "auctions.x", &payloads(&[auction])).await;
    let acked = |consumer: &'static str, stream: &'static str| {
        let js = js.clone();
        async move {
            let s = js.get_stream(stream).await.unwrap();
            let info = s.consumer_info(consumer).await.unwrap();
            info.ack_floor.stream_sequence
        }
    };
    let started = std::time::Instant::now();
    while acked("weir-forgot-auctions", "AUCTIONS").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
    // The checkpoint store is lost, and so is the first input's consumer.
    js.delete_key_value("weir-checkpoints").await.unwrap();
    js.delete_object_store("weir-state").await.unwrap();
    let bids = js.get_stream("BIDS").await.unwrap();
    bids.delete_consumer("weir-forgot-bids").await.unwrap();
    let mut cmd = weir();
    cmd.arg("run")
        .arg(&file)
        .args(["--nats-url", &server.url()]);
    let out = output_within(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("weir-forgot-auctions")
            && stderr.contains("\"AUCTIONS\"")
            && stderr.contains("acknowledged")
            && stderr.contains("--from-checkpoint none"),
        "{stderr}"
    );
}
