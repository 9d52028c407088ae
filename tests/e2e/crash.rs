//! `kill -9` of the host mid-stream, then a restart: every input is delivered, none lost, and
//! the deterministic message ids keep replays out of the sink stream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

async fn out_count(js: &async_nats::jetstream::Context) -> u64 {
    let mut s = js.get_stream("OUT").await.unwrap();
    s.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_stream_and_restart_loses_nothing() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator(
        "shape",
        "json_map",
        r#"{ fields = ["id"], set = { seen = true } }"#,
    );
    let pipeline = write_pipeline(
        dir.path(),
        &pipeline_text("crash", "ack_wait = \"2s\"", &ops),
    );

    let n: usize = 20_000;
    let events: Vec<_> = (0..n)
        .map(|i| {
            (
                None,
                json!({"id": i, "pad": "y".repeat(64)})
                    .to_string()
                    .into_bytes(),
            )
        })
        .collect();
    publish_all(&js, "in.e", &events).await;

    let first = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir1.log"));
    let started = Instant::now();
    while out_count(&js).await < 3000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    let at_kill = out_count(&js).await;
    assert!(
        at_kill < n as u64,
        "the host finished before it was killed; nothing tested"
    );

    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir2.log"));
    let got = collect(&js, "OUT", "out", n, Duration::from_secs(120)).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        *seen.entry(v["id"].as_u64().unwrap()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..n)
        .filter(|i| !seen.contains_key(&(*i as u64)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} inputs lost, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        second.log()
    );
    let dups = seen.values().filter(|c| **c > 1).count();
    assert_eq!(
        dups, 0,
        "replayed results were not deduplicated by their Nats-Msg-Id"
    );
    assert_eq!(got.len(), n);
    assert_eq!(second.terminate(), Some(0));
}
