//! The cheaper delivery guarantees do what their names say under `kill -9`:
//! `at-least-once` loses nothing (and may repeat), `at-most-once` repeats nothing (and may lose).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::recovery::{events, publish_events, stream_messages, windowed_pipeline};
use crate::support::*;

/// Waits until stream OUT holds `n` messages.
async fn wait_for(js: &async_nats::jetstream::Context, n: u64, log: &dyn Fn() -> String) {
    let started = Instant::now();
    while stream_messages(js, "OUT").await < n {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_loses_no_window_result_across_a_kill_9() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(
        dir.path(),
        "alo",
        "interval = \"200ms\"\nguarantee = \"at-least-once\"",
    );
    let (events, expected) = events(40_000, 3);
    publish_events(&js, &events).await;
    let first = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w1.log"));
    wait_for(&js, expected.len() as u64 / 3, &first.log_reader()).await;
    first.kill9();
    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w2.log"));
    let got = collect(&js, "OUT", "out", expected.len(), Duration::from_secs(120)).await;
    let mut seen: HashMap<(String, i64), usize> = HashMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let k = (
            v["key"].as_str().unwrap().to_owned(),
            v["start"].as_i64().unwrap(),
        );
        let want = expected
            .get(&k)
            .expect("a result for a window that has no events");
        assert_eq!(
            (v["count"].as_u64().unwrap(), v["sum"].as_i64().unwrap()),
            *want,
            "window {k:?}"
        );
        *seen.entry(k).or_default() += 1;
    }
    let missing = expected.keys().filter(|k| !seen.contains_key(*k)).count();
    assert_eq!(missing, 0, "{missing} windows lost\n{}", second.log());
    assert!(got.len() >= expected.len());
    assert!(
        got.iter().all(|m| m.header("Nats-Msg-Id").is_none()),
        "at-least-once publishes without message ids"
    );
    assert_eq!(second.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_once_repeats_no_output_across_a_kill_9() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("shape", "json_map", r#"{ fields = ["id"] }"#);
    let text = pipeline_text("amo", "", &ops)
        + "\n[checkpoint]\ninterval = \"200ms\"\nguarantee = \"at-most-once\"\n";
    let pipeline = write_pipeline(dir.path(), &text);
    let n = 20_000usize;
    let input: Vec<_> = (0..n)
        .map(|i| (None, json!({"id": i}).to_string().into_bytes()))
        .collect();
    publish_all(&js, "in.e", &input).await;
    let first = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w1.log"));
    wait_for(&js, 3000, &first.log_reader()).await;
    first.kill9();
    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w2.log"));
    // Everything the second host will do: it resumes after what the first one had fetched.
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = stream_messages(&js, "OUT").await;
        if now == last {
            break;
        }
        last = now;
    }
    let got = collect(&js, "OUT", "out", last as usize, Duration::from_secs(30)).await;
    let mut ids: HashMap<u64, usize> = HashMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        *ids.entry(v["id"].as_u64().unwrap()).or_default() += 1;
    }
    let repeated = ids.values().filter(|c| **c > 1).count();
    assert_eq!(
        repeated, 0,
        "at-most-once published {repeated} inputs twice"
    );
    assert!(got.len() <= n);
    assert_eq!(second.terminate(), Some(0));
}
