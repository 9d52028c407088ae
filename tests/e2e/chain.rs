//! A filter → flat-map → map chain through JetStream, and poison events.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn order(i: usize) -> Value {
    let items: Vec<Value> = (0..(i % 3))
        .map(|n| json!({"sku": format!("s{n}"), "qty": n + 1}))
        .collect();
    json!({"id": i, "amount": i % 100, "items": items, "noise": "x".repeat(40)})
}

/// What the chain below must produce from `order(i)`, as canonical JSON text.
fn expected(i: usize) -> Vec<String> {
    if i % 100 < 50 {
        return Vec::new();
    }
    (0..(i % 3))
        .map(|n| json!({"id": i, "sku": format!("s{n}"), "qty": n + 1, "src": "weir"}).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_split_map_chain_over_10000_events_is_exact() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = [
        operator(
            "big",
            "json_filter",
            r#"{ field = "amount", op = "ge", value = 50 }"#,
        ),
        operator(
            "split",
            "split_array",
            r#"{ field = "items", with = ["id"] }"#,
        ),
        operator(
            "shape",
            "json_map",
            r#"{ fields = ["id", "sku", "qty"], set = { src = "weir" } }"#,
        ),
    ]
    .join("\n");
    let pipeline = write_pipeline(dir.path(), &pipeline_text("chain", "", &ops));
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));

    let n = 10_000;
    let events: Vec<_> = (0..n)
        .map(|i| {
            (
                Some(format!("k{}", i % 7)),
                order(i).to_string().into_bytes(),
            )
        })
        .collect();
    publish_all(&js, "in.orders", &events).await;

    let mut want: Vec<String> = (0..n).flat_map(expected).collect();
    let got = collect(&js, "OUT", "out", want.len(), Duration::from_secs(120)).await;
    let mut got_payloads: Vec<String> = got
        .iter()
        .map(|m| {
            serde_json::from_slice::<Value>(&m.payload)
                .unwrap()
                .to_string()
        })
        .collect();
    want.sort();
    got_payloads.sort();
    assert_eq!(got_payloads.len(), want.len(), "log:\n{}", weir.log());
    assert_eq!(got_payloads, want);

    // Lineage: deterministic, unique ids; key and time carried through.
    let ids: HashSet<String> = got
        .iter()
        .map(|m| m.header("Nats-Msg-Id").unwrap())
        .collect();
    assert_eq!(ids.len(), got.len());
    assert!(ids.iter().all(|id| id.starts_with("chain/IN/")));
    assert!(
        got.iter()
            .all(|m| m.header("Weir-Key").is_some_and(|k| k.starts_with('k')))
    );
    assert!(got.iter().all(|m| m.header("Weir-Time").is_some()));
    let dlq = collect(&js, "OUT", "dlq", 0, Duration::from_millis(300)).await;
    assert!(dlq.is_empty(), "unexpected dead letters: {dlq:?}");
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_events_are_dead_lettered_and_all_others_arrive() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    // `big` fails on non-JSON payloads (an error value); `trap` panics on "poison" (a trap).
    let ops = [
        operator(
            "big",
            "json_filter",
            r#"{ field = "amount", op = "exists" }"#,
        ),
        operator(
            "trap",
            "hostile",
            r#"{ mode = "panic", trigger = "poison" }"#,
        ),
    ]
    .join("\n");
    let pipeline = write_pipeline(dir.path(), &pipeline_text("poison", "", &ops));
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));

    let n = 1000;
    let payload = |i: usize| -> Vec<u8> {
        match i % 97 {
            13 => b"{not json".to_vec(),
            41 => json!({"amount": i, "tag": "poison"})
                .to_string()
                .into_bytes(),
            _ => json!({"amount": i}).to_string().into_bytes(),
        }
    };
    let events: Vec<_> = (0..n).map(|i| (None, payload(i))).collect();
    publish_all(&js, "in.x", &events).await;

    let bad_json = (0..n).filter(|i| i % 97 == 13).count();
    let poison = (0..n).filter(|i| i % 97 == 41).count();
    let good = n - bad_json - poison;
    let out = collect(&js, "OUT", "out", good, Duration::from_secs(60)).await;
    let dlq = collect(
        &js,
        "OUT",
        "dlq",
        bad_json + poison,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(out.len(), good, "log:\n{}", weir.log());
    assert_eq!(dlq.len(), bad_json + poison);

    let mut seqs = HashSet::new();
    for m in &dlq {
        let op = m.header("Weir-Operator").unwrap();
        let err = m.header("Weir-Error").unwrap();
        assert_eq!(m.header("Weir-Source-Stream").as_deref(), Some("IN"));
        assert_eq!(m.header("Weir-Source-Subject").as_deref(), Some("in.x"));
        seqs.insert(
            m.header("Weir-Source-Sequence")
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
        if m.payload == b"{not json" {
            assert_eq!(op, "big");
            assert!(err.contains("not the expected JSON"), "{err}");
        } else {
            assert_eq!(op, "trap");
            assert!(err.contains("trapped"), "{err}");
            assert!(
                m.header("Weir-Plugin")
                    .unwrap()
                    .starts_with("weir_plugin_hostile@")
            );
        }
    }
    // Source sequences are 1-based stream positions of the failing inputs.
    let want: HashSet<u64> = (0..n)
        .filter(|i| i % 97 == 13 || i % 97 == 41)
        .map(|i| i as u64 + 1)
        .collect();
    assert_eq!(seqs, want);
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn event_time_from_a_header_and_malformed_times_are_dead_lettered() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("pass", "json_map", "{}");
    let source = "time = { header = \"Event-Time\" }\nkey = \"subject\"";
    let pipeline = write_pipeline(dir.path(), &pipeline_text("times", source, &ops));
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));

    for (i, t) in ["1700000000123", "soon", "", "42"].iter().enumerate() {
        let mut h = async_nats::HeaderMap::new();
        if i != 2 {
            h.insert("Event-Time", *t);
        }
        js.publish_with_headers(format!("in.s{i}"), h, json!({"i": i}).to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let out = collect(&js, "OUT", "out", 2, Duration::from_secs(30)).await;
    let times: Vec<(String, String)> = out
        .iter()
        .map(|m| {
            (
                m.header("Weir-Key").unwrap(),
                m.header("Weir-Time").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            ("in.s0".to_string(), "1700000000123".to_string()),
            ("in.s3".into(), "42".into())
        ]
    );
    let dlq = collect(&js, "OUT", "dlq", 2, Duration::from_secs(10)).await;
    let mut errors: Vec<String> = dlq
        .iter()
        .map(|m| m.header("Weir-Error").unwrap())
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("\"Event-Time\" is \"soon\""),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("\"Event-Time\" is missing"),
        "{errors:?}"
    );
    assert!(
        dlq.iter()
            .all(|m| m.header("Weir-Operator").as_deref() == Some("source"))
    );
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_comes_from_a_payload_field() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("p", "passthrough", "{}");
    let text = pipeline_text("keyed", "key = { field = \"user.id\" }", &ops);
    let pipeline = write_pipeline(dir.path(), &text);
    let weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    let events: Vec<_> = [
        json!({"user": {"id": "u1"}, "n": 1}),
        json!({"user": {"id": 7}, "n": 2}),
        json!({"user": {}, "n": 3}),
        json!({"user": {"id": ["not", "a", "key"]}, "n": 4}),
    ]
    .iter()
    .map(|v| (None, v.to_string().into_bytes()))
    .collect();
    publish_all(&js, "in.x", &events).await;
    let out = collect(&js, "OUT", "out", 3, Duration::from_secs(60)).await;
    let mut keys: Vec<(i64, Option<String>)> = out
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            (v["n"].as_i64().unwrap(), m.header("Weir-Key"))
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [(1, Some("u1".into())), (2, Some("7".into())), (3, None)],
        "{}",
        weir.log()
    );
    let dlq = collect(&js, "OUT", "dlq", 1, Duration::from_secs(30)).await;
    assert_eq!(dlq.len(), 1);
    let error = dlq[0].header("Weir-Error").unwrap_or_default();
    assert!(error.contains("key field \"user.id\""), "{error}");
    assert_eq!(weir.terminate(), Some(0));
}
