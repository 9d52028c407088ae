//! Fault injection against checkpoints: the host `kill -9`-ed at random moments, nats-server
//! restarted under it, a damaged state blob, a second host on the same pipeline — and the
//! output of a windowed pipeline still equals the expected output exactly: no loss, no
//! duplicates.
//!
//! `WEIR_RECOVERY_RUNS` sets how many seeded runs the random-kill test makes (default 1;
//! `WEIR_RECOVERY_RUNS=100` for a long local soak); `WEIR_RECOVERY_SEED` fixes the first seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use serde_json::{Value, json};

use crate::support::*;

/// Keys of the generated events.
const KEYS: u64 = 200;
/// Tumbling window size, ms.
const WINDOW: i64 = 10_000;
const BASE: i64 = 1_700_000_000_000;

/// (key, window start) → (count, sum): what the pipeline must output, once each.
pub(crate) type Expected = BTreeMap<(String, i64), (u64, i64)>;

/// `n` events 10 ms apart in event time, up to 900 ms out of order, over [`KEYS`] keys,
/// then one `flush` event far ahead that closes every window (its own window stays open).
pub(crate) fn events(n: u64, seed: u64) -> (Vec<(String, i64, Vec<u8>)>, Expected) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut expected = Expected::new();
    for i in 0..n {
        let key = format!("k{}", rng.u64(0..KEYS));
        let t = BASE + i as i64 * 10 - rng.i64(0..900);
        let amount = rng.i64(-50..1000);
        let start = t - t.rem_euclid(WINDOW);
        let e = expected.entry((key.clone(), start)).or_default();
        e.0 += 1;
        e.1 += amount;
        let payload = json!({"amount": amount, "i": i}).to_string().into_bytes();
        out.push((key, t, payload));
    }
    let end = BASE + n as i64 * 10 + 10 * WINDOW;
    out.push(("flush".into(), end, br#"{"amount": 0}"#.to_vec()));
    (out, expected)
}

pub(crate) async fn publish_events(js: &jetstream::Context, events: &[(String, i64, Vec<u8>)]) {
    let mut window = std::collections::VecDeque::new();
    for (key, t, payload) in events {
        let mut h = HeaderMap::new();
        h.insert("Weir-Key", key.as_str());
        h.insert("T", t.to_string().as_str());
        window.push_back(
            js.publish_with_headers("in.e", h, payload.clone().into())
                .await
                .expect("publish"),
        );
        if window.len() >= 2000 {
            window.pop_front().unwrap().await.expect("publish ack");
        }
    }
    for f in window {
        f.await.expect("publish ack");
    }
}

/// The windowed pipeline: per key, tumbling 10 s windows, count and sum (`kit-sum`).
pub(crate) fn windowed_pipeline(dir: &Path, name: &str, checkpoint: &str) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
[source]
stream = "IN"
batch_size = 500
max_wait = "20ms"
ack_wait = "3s"
time = {{ header = "T" }}
watermarks = {{ out_of_orderness = "1s" }}

[window]
type = "tumbling"
size = "10s"

[window.aggregate]
name = "sum"
plugin = "{}"
config = {{ field = "amount" }}

[sink]
subject = "out"
dead_letter = "dlq"

[checkpoint]
{checkpoint}
"#,
        toml_path(&plugin("kit_sum"))
    );
    write_pipeline(dir, &text)
}

pub(crate) async fn stream_messages(js: &jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Reads the pipeline's results and checks them against `expected`: every (key, window)
/// exactly once with the right count and sum, and nothing else in the sink stream.
pub(crate) async fn check_exact(
    js: &jetstream::Context,
    expected: &Expected,
    logs: &dyn Fn() -> String,
) {
    let got = collect(js, "OUT", "out", expected.len(), Duration::from_secs(180)).await;
    let mut seen: BTreeMap<(String, i64), Vec<(u64, i64)>> = BTreeMap::new();
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        seen.entry((key, v["start"].as_i64().unwrap()))
            .or_default()
            .push((v["count"].as_u64().unwrap(), v["sum"].as_i64().unwrap()));
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(k)).collect();
    if !missing.is_empty() {
        // Tells a result that never reached the stream from one the reader did not get.
        let stored = stream_messages(js, "OUT").await;
        panic!(
            "{} of {} window results missing, e.g. {:?} ({} read, {stored} in stream OUT)\n{}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(5)],
            got.len(),
            logs()
        );
    }
    for (k, results) in &seen {
        assert_eq!(results.len(), 1, "window {k:?} published {results:?}");
        assert_eq!(
            Some(&results[0]),
            expected.get(k),
            "window {k:?}: got (count, sum) {:?}, expected {:?}",
            results[0],
            expected.get(k)
        );
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(stream_messages(js, "OUT").await, expected.len() as u64);
}

fn runs() -> u64 {
    std::env::var("WEIR_RECOVERY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windowed_pipeline_killed_at_random_moments_outputs_exactly_the_expected_results() {
    let first_seed = std::env::var("WEIR_RECOVERY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42u64);
    for run in 0..runs() {
        let seed = first_seed + run;
        let (server, js) = server_with_streams().await;
        let dir = tempfile::tempdir().unwrap();
        let pipeline = windowed_pipeline(dir.path(), "kills", "interval = \"200ms\"");
        let (events, expected) = events(100_000, seed);
        publish_events(&js, &events).await;

        let mut rng = fastrand::Rng::with_seed(seed);
        let mut logs = Vec::new();
        let mut kills_mid_stream = 0;
        // Kill points: mostly once the output reached a random fraction (so the kills land
        // mid-stream however fast the machine is), sometimes at a random moment after start
        // (during restore or before the first checkpoint).
        let mut fractions: Vec<f64> = (0..4).map(|_| 0.05 + 0.85 * rng.f64()).collect();
        fractions.sort_by(f64::total_cmp);
        for (k, fraction) in fractions.into_iter().enumerate() {
            let log = dir.path().join(format!("weir{k}.log"));
            let host = WeirProcess::start(&pipeline, &server.url(), &log);
            logs.push(log);
            if rng.u8(0..4) == 0 {
                tokio::time::sleep(Duration::from_millis(rng.u64(50..800))).await;
            } else {
                let target = (fraction * expected.len() as f64) as u64;
                let started = Instant::now();
                while stream_messages(&js, "OUT").await < target
                    && started.elapsed() < Duration::from_secs(60)
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(0..150))).await;
            }
            let done = stream_messages(&js, "OUT").await;
            host.kill9();
            if done < expected.len() as u64 {
                kills_mid_stream += 1;
            }
        }
        let log = dir.path().join("weir-final.log");
        let last = WeirProcess::start(&pipeline, &server.url(), &log);
        logs.push(log);
        let all_logs = || {
            logs.iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n----- restart -----\n")
        };
        check_exact(&js, &expected, &all_logs).await;
        assert!(
            kills_mid_stream >= 2,
            "seed {seed}: only {kills_mid_stream} kills hit the host mid-stream; nothing tested"
        );
        assert_eq!(last.terminate(), Some(0), "{}", all_logs());
        eprintln!(
            "seed {seed}: {} window results exact after 4 kill -9 ({kills_mid_stream} mid-stream)",
            expected.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_a_quiet_period_longer_than_the_duplicate_window_republishes_nothing() {
    // The sink stream forgets message ids after 2 s. Before, a restart after a longer quiet
    // period published the head checkpoint's held window results again: all duplicated.
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "IN", &["in.>"]).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "OUT".into(),
        subjects: vec!["out".into(), "dlq".into()],
        duplicate_window: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(
        dir.path(),
        "quiet",
        "interval = \"200ms\"\nrecovery_time = \"1s\"",
    );
    let (events, expected) = events(3_000, 5);
    publish_events(&js, &events).await;
    let log = dir.path().join("weir.log");
    let host = WeirProcess::start(&pipeline, &server.url(), &log);
    check_exact(&js, &expected, &|| host.log()).await;
    assert_eq!(host.terminate(), Some(0));
    // Quiet for longer than the duplicate window, then a restart.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("again.log"));
    host.wait_running(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stream_messages(&js, "OUT").await,
        expected.len() as u64,
        "the restart published results again:\n{}",
        host.log()
    );
    assert_eq!(host.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_stall_during_checkpoint_commits_is_not_taken_for_another_host() {
    // The server freezes for 12 s while checkpoints commit every 200 ms: a commit's answer is
    // lost although the server applies it when it thaws. Before, the next commit found the
    // head moved and the host stopped, saying another host had committed.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "stall", "interval = \"200ms\"");
    let (events, expected) = events(60_000, 11);
    publish_events(&js, &events).await;
    let mut host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    let started = Instant::now();
    while stream_messages(&js, "OUT").await < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.pause();
    tokio::time::sleep(Duration::from_secs(12)).await;
    server.resume();
    check_exact(&js, &expected, &|| host.log()).await;
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host stopped:\n{}",
        host.log()
    );
    assert!(
        !host.log().contains("another host committed"),
        "{}",
        host.log()
    );
    assert_eq!(host.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_server_restarted_mid_stream_output_is_still_exact() {
    let (mut server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "outage", "interval = \"200ms\"");
    let (events, expected) = events(60_000, 7);
    publish_events(&js, &events).await;
    let host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    let started = Instant::now();
    while stream_messages(&js, "OUT").await < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(js);
    // Down for a second: publishes, acks, pulls and checkpoint writes fail meanwhile.
    server.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    let js = server.jetstream().await;
    check_exact(&js, &expected, &|| host.log()).await;
    assert!(
        stream_messages(&js, "OUT").await < expected.len() as u64 + 1,
        "the outage duplicated results"
    );
    assert_eq!(host.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_or_missing_state_blob_falls_back_to_the_previous_checkpoint() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "damaged", "interval = \"100ms\"\nretain = 5");
    let (events, expected) = events(30_000, 11);
    // The first half, then a clean stop: several checkpoints with state.
    publish_events(&js, &events[..15_000]).await;
    let first = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir1.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first_log = first.log_reader();
    assert_eq!(first.terminate(), Some(0), "{}", first_log());

    let list = weir()
        .args(["checkpoint", "list"])
        .arg(&pipeline)
        .args(["--nats-url", &server.url()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.status.success(), "{listing}");
    let ids: Vec<u64> = listing
        .lines()
        .filter_map(|l| l.trim_start_matches(['*', ' ']).split_whitespace().next())
        .filter_map(|id| id.parse().ok())
        .collect();
    assert!(ids.len() >= 3, "expected several checkpoints:\n{listing}");
    let head = *ids.last().unwrap();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('*') && l.contains(&format!(" {head} ")))
    );

    // Damage the latest blob (garbage in its place) and delete the one before.
    let show = |id: u64| {
        let out = weir()
            .args(["checkpoint", "show"])
            .arg(&pipeline)
            .arg(id.to_string())
            .args(["--nats-url", &server.url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let objects = js.get_object_store("weir-state").await.unwrap();
    let latest = show(head)["blob"]["object"].as_str().unwrap().to_owned();
    let before = show(ids[ids.len() - 2])["blob"]["object"]
        .as_str()
        .unwrap()
        .to_owned();
    objects
        .put(latest.as_str(), &mut &b"not a checkpoint"[..])
        .await
        .unwrap();
    objects.delete(&before).await.unwrap();

    publish_events(&js, &events[15_000..]).await;
    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir2.log"));
    check_exact(&js, &expected, &|| {
        format!("{}\n{}", first_log(), second.log())
    })
    .await;
    let log = second.log();
    assert!(
        log.contains(&format!("checkpoint={head}")) && log.contains("corrupt"),
        "the damaged blob is not reported:\n{log}"
    );
    assert!(
        log.contains("is missing"),
        "the missing blob is not reported:\n{log}"
    );
    assert_eq!(second.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_stream_with_a_short_duplicate_window_is_refused_for_effectively_once() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "IN", &["in.>"]).await;
    js.create_stream(jetstream::stream::Config {
        name: "OUT".into(),
        subjects: vec!["out".into(), "dlq".into()],
        duplicate_window: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "short", "interval = \"1s\"");
    let mut cmd = weir();
    cmd.arg("run")
        .arg(&pipeline)
        .args(["--nats-url", &server.url()]);
    let out = output_within(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("duplicate") && err.contains("\"OUT\"") && err.contains("at-least-once"),
        "{err}"
    );
    // The same pipeline at-least-once runs (no message ids to deduplicate).
    let pipeline = windowed_pipeline(
        dir.path(),
        "short",
        "interval = \"1s\"\nguarantee = \"at-least-once\"",
    );
    let host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w.log"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn of_two_hosts_committing_the_same_pipeline_only_one_succeeds() {
    use weir::checkpoint::{CheckpointError, CheckpointStore, Manifest, SourcePosition};
    let server = NatsServer::start();
    let js = server.jetstream().await;
    let config = weir::config::CheckpointConfig::default();
    let manifest = |id: u64| Manifest {
        format: weir::checkpoint::FORMAT_VERSION,
        pipeline: "p".into(),
        id,
        created_ms: 0,
        guarantee: "effectively-once".into(),
        source: SourcePosition {
            stream: "IN".into(),
            sequence: id * 10,
        },
        sources: Vec::new(),
        watermark: None,
        plugins: Vec::new(),
        window: None,
        blob: None,
        pending_outputs: 0,
        pending_delivered: false,
        state_entries: 0,
    };
    let mut a = CheckpointStore::open(&js, "p", &config).await.unwrap();
    let mut b = CheckpointStore::open(&js, "p", &config).await.unwrap();
    assert!(a.head().await.unwrap().is_none());
    assert!(b.head().await.unwrap().is_none());
    a.commit(&mut manifest(1), Some(b"state a".to_vec()))
        .await
        .unwrap();
    let lost = b.commit(&mut manifest(1), Some(b"state b".to_vec())).await;
    assert!(
        matches!(lost, Err(CheckpointError::Conflict { their_id: 1, .. })),
        "{lost:?}"
    );
    // A keeps committing on its own revision; B, having lost, would stop.
    a.commit(&mut manifest(2), None).await.unwrap();
    let head = b.head().await.unwrap().unwrap();
    assert_eq!(head.id, 2);
    assert_eq!(head.source.sequence, 20);
}

/// A pipeline counting events per key in 10 s windows with `versioned-count` configured as
/// `plugin_config`, written into its own folder `dir/version`.
fn versioned_pipeline(dir: &Path, version: &str, plugin_config: &str) -> PathBuf {
    let dir = dir.join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        r#"name = "upgrade"
[source]
stream = "IN"
batch_size = 100
max_wait = "20ms"
time = {{ header = "T" }}
watermarks = {{ strategy = "punctuated" }}

[window]
type = "tumbling"
size = "10s"

[window.aggregate]
name = "count"
plugin = "{}"
config = {plugin_config}

[sink]
subject = "out"
dead_letter = "dlq"
"#,
        toml_path(&plugin("versioned_count"))
    );
    write_pipeline(&dir, &text)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aggregate_upgrade_migrates_checkpointed_accumulators_and_a_downgrade_is_refused() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let publish = |range: std::ops::Range<i64>| {
        let js = js.clone();
        async move {
            let events: Vec<_> = range
                .map(|i| ("k".to_string(), BASE + i * 100, b"{}".to_vec()))
                .collect();
            publish_events(&js, &events).await;
        }
    };
    // Version 0 sees 50 events of the first window, then stops (a checkpoint holds them).
    publish(0..50).await;
    let v0 = versioned_pipeline(dir.path(), "v0", "{ state_version = 0 }");
    let host = WeirProcess::start(&v0, &server.url(), &dir.path().join("v0.log"));
    let log = host.log_reader();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(host.terminate(), Some(0), "{}", log());

    // Version 1 without a migration: refused, naming the versions; the checkpoint stays.
    let v1_no = versioned_pipeline(dir.path(), "v1-no", "{ state_version = 1 }");
    let mut cmd = weir();
    cmd.arg("run")
        .arg(&v1_no)
        .args(["--nats-url", &server.url()]);
    let out = output_within(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot migrate its accumulators from state version 0 to 1"),
        "{err}"
    );

    // Version 1 with a migration: the open window continues from the migrated count.
    let v1 = versioned_pipeline(dir.path(), "v1", "{ state_version = 1, migrate = true }");
    let host = WeirProcess::start(&v1, &server.url(), &dir.path().join("v1.log"));
    let log = host.log_reader();
    // 50 more events of the first window, and a watermark marker closing it.
    publish(50..100).await;
    let mut h = HeaderMap::new();
    h.insert("Weir-Watermark", (BASE + 20_000).to_string().as_str());
    js.publish_with_headers("in.e", h, "".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "{}", log());
    let v: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(v, json!({"count": 100, "migrated": true}), "{}", log());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(host.terminate(), Some(0), "{}", log());

    // Back to version 0 (a downgrade) over a version-1 checkpoint with state: refused.
    publish(200..210).await;
    let host = WeirProcess::start(&v1, &server.url(), &dir.path().join("v1b.log"));
    let log = host.log_reader();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(host.terminate(), Some(0), "{}", log());
    let mut cmd = weir();
    cmd.arg("run").arg(&v0).args(["--nats-url", &server.url()]);
    let out = output_within(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("state version 1") && err.contains("downgraded"),
        "{err}"
    );
}
