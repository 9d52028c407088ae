//! Count windows (`type = "global"`, `count`) and processing-time windows, with
//! `weir run --local` and through nats-server.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::*;

fn pipeline(name: &str, window: &str) -> String {
    pipeline_text(
        name,
        "time = { field = \"ts\" }",
        &window_section(window, "stats", "window_stats", r#"{ field = "amount" }"#),
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 40 transactions over 3 cards: (card, ts, amount).
fn transactions() -> Vec<(String, i64, i64)> {
    (0..40i64)
        .map(|i| (format!("card-{}", i * i % 3), 1_000 + i * 10, i))
        .collect()
}

/// The expected count windows of 4: per card, each run of 4 transactions, in order:
/// (card, start, end) → sum.
fn count_windows(txs: &[(String, i64, i64)], count: usize) -> BTreeMap<(String, i64, i64), i64> {
    let mut by_card: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (card, ts, amount) in txs {
        by_card.entry(card).or_default().push((*ts, *amount));
    }
    let mut out = BTreeMap::new();
    for (card, txs) in by_card {
        for full in txs.chunks_exact(count) {
            let start = full.iter().map(|t| t.0).min().unwrap();
            let end = full.iter().map(|t| t.0).max().unwrap() + 1;
            out.insert(
                (card.to_owned(), start, end),
                full.iter().map(|t| t.1).sum(),
            );
        }
    }
    out
}

fn local(file: &std::path::Path, lines: &[String]) -> (Vec<Value>, String) {
    let input = file.with_file_name("in.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = weir()
        .args(["run", "--local", "--input"])
        .arg(&input)
        .arg(file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let results = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"].clone())
        .collect();
    (results, stderr)
}

fn by_window(results: &[Value]) -> BTreeMap<(String, i64, i64), i64> {
    results
        .iter()
        .map(|p| {
            let k = (
                p["key"].as_str().unwrap().to_owned(),
                p["start"].as_i64().unwrap(),
                p["end"].as_i64().unwrap(),
            );
            (k, p["sum"].as_f64().unwrap() as i64)
        })
        .collect()
}

#[test]
fn count_windows_fire_every_n_events_per_key_with_weir_run_local() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        &pipeline("count", "type = \"global\"\ncount = 4"),
    );
    let txs = transactions();
    let lines: Vec<String> = txs
        .iter()
        .map(|(k, ts, a)| json!({"key": k, "time": ts, "payload": {"amount": a}}).to_string())
        .collect();
    let (results, stderr) = local(&file, &lines);
    let want = count_windows(&txs, 4);
    assert!(want.len() >= 8, "{want:?}");
    // Windows that never filled (fewer than 4 left of a card) do not fire, not even at the
    // end of the input.
    assert_eq!(by_window(&results), want, "{stderr}");
    assert!(results.iter().all(|p| p["count"] == 4), "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn count_windows_through_nats_carry_serial_ids() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        &pipeline("count", "type = \"global\"\ncount = 4"),
    );
    let weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    let txs = transactions();
    let msgs: Vec<(Option<String>, Vec<u8>)> = txs
        .iter()
        .map(|(k, ts, a)| {
            (
                Some(k.clone()),
                json!({"ts": ts, "amount": a}).to_string().into_bytes(),
            )
        })
        .collect();
    publish_all(&js, "in.tx", &msgs).await;
    let want = count_windows(&txs, 4);
    let out = collect(&js, "OUT", "out", want.len(), Duration::from_secs(60)).await;
    let results: Vec<Value> = out
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(by_window(&results), want, "log:\n{}", weir.log());
    assert_eq!(out.len(), want.len());
    let mut ids: Vec<String> = out
        .iter()
        .map(|m| m.header("Nats-Msg-Id").unwrap())
        .collect();
    assert!(ids.iter().all(|id| id.starts_with("count/c/")), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), want.len());
    assert_eq!(weir.terminate(), Some(0));
}

#[test]
fn processing_time_windows_use_the_host_clock_with_weir_run_local() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        &pipeline(
            "proc",
            "type = \"tumbling\"\nsize = \"1h\"\ntime = \"processing\"",
        ),
    );
    // Event times far apart and out of order: in event time these are 3 windows and late
    // events; in processing time they all land in the current hour's window.
    let lines: Vec<String> = [(5, 1), (1_000_000_000, 2), (3, 4)]
        .iter()
        .map(|(ts, a)| json!({"key": "k", "time": ts, "payload": {"amount": a}}).to_string())
        .collect();
    let before = now_ms();
    let (results, stderr) = local(&file, &lines);
    let after = now_ms();
    assert_eq!(results.len(), 1, "{results:?} {stderr}");
    let r = &results[0];
    assert_eq!(
        (r["count"].as_i64(), r["sum"].as_f64()),
        (Some(3), Some(7.0))
    );
    let start = r["start"].as_i64().unwrap();
    assert!(start <= after && start > before - 3_600_000, "{r}");
    assert_eq!(r["end"].as_i64().unwrap() - start, 3_600_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn processing_time_windows_fire_by_the_clock_through_nats() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(
        dir.path(),
        &pipeline(
            "proc",
            "type = \"tumbling\"\nsize = \"1s\"\ntime = \"processing\"",
        ),
    );
    let weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    // All with event time 0: in event time nothing would ever fire (no later event moves the
    // watermark); in processing time the wall clock closes the windows.
    let msgs: Vec<(Option<String>, Vec<u8>)> = (1..=20)
        .map(|a| {
            (
                Some("k".to_string()),
                json!({"ts": 0, "amount": a}).to_string().into_bytes(),
            )
        })
        .collect();
    let before = now_ms();
    publish_all(&js, "in.p", &msgs).await;
    let out = collect(&js, "OUT", "out", 20, Duration::from_secs(4)).await;
    let after = now_ms();
    let results: Vec<Value> = out
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert!(!results.is_empty(), "log:\n{}", weir.log());
    let total: i64 = results.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    let sum: f64 = results.iter().map(|r| r["sum"].as_f64().unwrap()).sum();
    assert_eq!((total, sum), (20, 210.0), "{results:?}");
    for r in &results {
        let start = r["start"].as_i64().unwrap();
        assert!(start >= before - 1_000 && start <= after, "{r}");
        assert_eq!(r["end"].as_i64().unwrap() - start, 1_000);
    }
    assert_eq!(weir.terminate(), Some(0));
}
