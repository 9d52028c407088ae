//! Hot-loading: a new version of a plugin swapped into a running pipeline, against a real
//! nats-server with real components — no event lost or doubled, one switch in source order,
//! and a version that cannot run refused while the old one keeps going.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Replaces `live` with `component` the way a build does: a new file renamed over it.
fn install(component: &Path, live: &Path) {
    let tmp = live.with_extension("wasm.tmp");
    std::fs::copy(component, &tmp).unwrap();
    std::fs::rename(&tmp, live).unwrap();
}

/// Waits until `log()` contains `text` (the host's log).
fn wait_for_log(log: &dyn Fn() -> String, text: &str, limit: Duration) {
    let started = std::time::Instant::now();
    while !log().contains(text) {
        assert!(
            started.elapsed() < limit,
            "no {text:?} in the log within {limit:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_transform_is_swapped_in_under_load_with_no_event_lost_or_doubled() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stamp.wasm");
    std::fs::copy(plugin("stamp"), &live).unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"stamp.wasm\"\nconfig = {}\n";
    let file = write_pipeline(dir.path(), &pipeline_text("hot", "", ops));
    let mut weir = WeirProcess::start_with(
        &file,
        &server.url(),
        &dir.path().join("weir.log"),
        &["--watch"],
    );
    weir.wait_running(Duration::from_secs(120));
    let log = weir.log_reader();

    // Steady load: steps of 100 events every 60 ms, until 10 steps after version 2 took
    // over (a busy machine may take a while over the refusals before it).
    let swapped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (js, swapped) = (js.clone(), swapped.clone());
        tokio::spawn(async move {
            let (mut step, mut after) = (0, 0);
            while after < 10 {
                let events: Vec<(Option<String>, Vec<u8>)> = (step * 100..(step + 1) * 100)
                    .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
                    .collect();
                publish_all(&js, "in.a", &events).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
                step += 1;
                if swapped.load(std::sync::atomic::Ordering::Relaxed) {
                    after += 1;
                }
            }
            step * 100
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    // A component of another world is refused; the running version stays.
    install(&plugin("window_stats"), &live);
    wait_for_log(&log, "hot-load refused", Duration::from_secs(60));
    assert!(
        log().contains("does not implement the `transform` world"),
        "{}",
        log()
    );
    // So is one whose `configure` refuses the operator's config.
    install(&plugin("hostile"), &live);
    let refusals = || log().matches("hot-load refused").count();
    let started = std::time::Instant::now();
    while refusals() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(log().contains("refused its config"), "{}", log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    install(&plugin("stamp_v2"), &live);
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    swapped.store(true, std::sync::atomic::Ordering::Relaxed);
    let events = publisher.await.unwrap();

    let out = collect(&js, "OUT", "out", events, Duration::from_secs(60)).await;
    let mut version_of: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &out {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let i = v["i"].as_u64().unwrap();
        assert!(
            version_of.insert(i, v["v"].as_u64().unwrap()).is_none(),
            "event {i} doubled"
        );
    }
    assert_eq!(version_of.len(), events, "events lost: log:\n{}", log());
    // One switch, in source order: every event before some position ran on version 1, every
    // one from it on version 2.
    let versions: Vec<u64> = version_of.values().copied().collect();
    let switch = versions
        .iter()
        .position(|&v| v == 2)
        .expect("version 2 never ran");
    assert!(switch > 0, "version 1 never ran");
    assert!(versions[..switch].iter().all(|&v| v == 1), "{versions:?}");
    assert!(versions[switch..].iter().all(|&v| v == 2), "{versions:?}");
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_millis(500)).await;
    assert!(dead.is_empty(), "{} dead letters", dead.len());
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

/// `weir plugin deploy|rollback` with `args` against `url`; panics unless it succeeds.
fn registry_cli(url: &str, args: &[&str]) {
    let mut cmd = weir();
    cmd.arg("plugin").args(args).args(["--nats-url", url]);
    let out = output_within(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "weir plugin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_following_a_registry_tag_swaps_on_deploy_and_on_rollback() {
    let (server, js) = server_with_streams().await;
    let url = server.url();
    let v1 = plugin("stamp");
    registry_cli(&url, &["deploy", v1.to_str().unwrap(), "--name", "stamp"]);
    let dir = tempfile::tempdir().unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"nats:stamp\"\nconfig = {}\n";
    let file = write_pipeline(dir.path(), &pipeline_text("follow", "", ops));
    let mut weir = WeirProcess::start(&file, &url, &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    let log = weir.log_reader();

    let publish = |from: usize, to: usize| {
        let js = js.clone();
        async move {
            let events: Vec<(Option<String>, Vec<u8>)> = (from..to)
                .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
                .collect();
            publish_all(&js, "in.a", &events).await;
        }
    };
    publish(0, 500).await;
    collect(&js, "OUT", "out", 500, Duration::from_secs(60)).await;
    let v2 = plugin("stamp_v2");
    registry_cli(&url, &["deploy", v2.to_str().unwrap(), "--name", "stamp"]);
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    publish(500, 1000).await;
    collect(&js, "OUT", "out", 1000, Duration::from_secs(60)).await;
    registry_cli(&url, &["rollback", "stamp", "--reason", "test"]);
    let swaps = || log().matches("plugin swapped").count();
    let started = std::time::Instant::now();
    while swaps() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rollback swap:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    publish(1000, 1500).await;

    let out = collect(&js, "OUT", "out", 1500, Duration::from_secs(60)).await;
    let mut version_of: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &out {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let i = v["i"].as_u64().unwrap();
        assert!(
            version_of.insert(i, v["v"].as_u64().unwrap()).is_none(),
            "event {i} doubled"
        );
    }
    assert_eq!(version_of.len(), 1500, "events lost; log:\n{}", log());
    for (&i, &v) in &version_of {
        let want = if (500..1000).contains(&i) { 2 } else { 1 };
        assert_eq!(v, want, "event {i}");
    }
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_replays_on_the_checkpointed_version_then_swaps_to_the_configured_one() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stamp.wasm");
    std::fs::copy(plugin("stamp"), &live).unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"stamp.wasm\"\nconfig = {}\n";
    let file = write_pipeline(dir.path(), &pipeline_text("restart", "", ops));
    let events = |from: usize, to: usize| -> Vec<(Option<String>, Vec<u8>)> {
        (from..to)
            .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
            .collect()
    };
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir1.log"));
    weir.wait_running(Duration::from_secs(120));
    publish_all(&js, "in.a", &events(0, 300)).await;
    collect(&js, "OUT", "out", 300, Duration::from_secs(60)).await;
    assert_eq!(weir.terminate(), Some(0));

    // The file changes while the host is down: the checkpoint records version 1.
    install(&plugin("stamp_v2"), &live);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir2.log"));
    weir.wait_running(Duration::from_secs(120));
    let log = weir.log_reader();
    assert!(
        log().contains("replaying with the plugin version the checkpoint records"),
        "{}",
        log()
    );
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    publish_all(&js, "in.a", &events(300, 600)).await;
    let out = collect(&js, "OUT", "out", 600, Duration::from_secs(60)).await;
    assert_eq!(out.len(), 600, "log:\n{}", log());
    for m in &out {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let want = if v["i"].as_u64().unwrap() < 300 { 1 } else { 2 };
        assert_eq!(v["v"].as_u64(), Some(want), "{v}");
    }
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_failing_its_canary_is_rolled_back_and_no_event_is_dead_lettered() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stamp.wasm");
    std::fs::copy(plugin("stamp"), &live).unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"stamp.wasm\"\nconfig = {}\n\
               rollout = { canary_events = 100, max_error_rate = 0.05 }\n";
    let file = write_pipeline(dir.path(), &pipeline_text("canary", "", ops));
    let admin = free_addr();
    let args = ["--watch", "--admin", admin.as_str()];
    let mut weir =
        WeirProcess::start_with(&file, &server.url(), &dir.path().join("weir.log"), &args);
    weir.wait_running(Duration::from_secs(120));
    let log = weir.log_reader();
    let events = |from: usize, to: usize| -> Vec<(Option<String>, Vec<u8>)> {
        (from..to)
            .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
            .collect()
    };
    publish_all(&js, "in.a", &events(0, 200)).await;
    collect(&js, "OUT", "out", 200, Duration::from_secs(60)).await;

    // Version 4 traps on every event: its canary fails, the previous version takes its events.
    install(&plugin("stamp_broken"), &live);
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    publish_all(&js, "in.a", &events(200, 400)).await;
    wait_for_log(&log, "canary failed: rolled back", Duration::from_secs(60));
    collect(&js, "OUT", "out", 400, Duration::from_secs(60)).await;

    // Version 2 passes its canary and stays.
    install(&plugin("stamp_v2"), &live);
    let swaps = || log().matches("plugin swapped").count();
    let started = std::time::Instant::now();
    while swaps() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    publish_all(&js, "in.a", &events(400, 600)).await;
    wait_for_log(&log, "canary passed", Duration::from_secs(60));

    let out = collect(&js, "OUT", "out", 600, Duration::from_secs(60)).await;
    let mut version_of: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &out {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let i = v["i"].as_u64().unwrap();
        assert!(
            version_of.insert(i, v["v"].as_u64().unwrap()).is_none(),
            "event {i} doubled"
        );
    }
    assert_eq!(version_of.len(), 600, "log:\n{}", log());
    for (&i, &v) in &version_of {
        assert_eq!(v, if i < 400 { 1 } else { 2 }, "event {i}; log:\n{}", log());
    }
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_millis(500)).await;
    assert!(dead.is_empty(), "{} dead letters", dead.len());
    assert!(rollback_reason_logged(&log()), "{}", log());
    // `/plugins` shows version 2 with the events it took since it took over.
    let v2 = sha256_of(&plugin("stamp_v2"));
    let started = std::time::Instant::now();
    loop {
        let plugins: serde_json::Value =
            serde_json::from_str(&http_get(&admin, "/plugins")).unwrap();
        let stamp = &plugins[0];
        if stamp["events"] == 200 {
            assert_eq!(stamp["operator"], "stamp");
            assert_eq!(stamp["digest"], v2.as_str());
            assert_eq!(stamp["errors"], 0);
            assert!(stamp["canary_previous"].is_null(), "{plugins}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{plugins}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = http_get(&admin, "/metrics");
    assert!(
        metrics.contains("weir_plugin_rollbacks_total{pipeline=\"canary\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_plugin_swaps_total{pipeline=\"canary\"} 2"),
        "{metrics}"
    );
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

/// The hex SHA-256 of `file`.
fn sha256_of(file: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(file).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rollback is logged with its reason.
fn rollback_reason_logged(log: &str) -> bool {
    log.contains("events failed (budget") || log.contains("consecutive events failed")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_rollback_of_a_registry_version_moves_the_tag_back_with_the_reason() {
    let (server, js) = server_with_streams().await;
    let url = server.url();
    registry_cli(
        &url,
        &[
            "deploy",
            plugin("stamp").to_str().unwrap(),
            "--name",
            "stamp",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"nats:stamp\"\nconfig = {}\n\
               rollout = { canary_events = 50, max_error_rate = 0.1 }\n";
    let file = write_pipeline(dir.path(), &pipeline_text("canary-tag", "", ops));
    let mut host = WeirProcess::start(&file, &url, &dir.path().join("weir.log"));
    host.wait_running(Duration::from_secs(120));
    let log = host.log_reader();
    let broken = plugin("stamp_broken");
    registry_cli(
        &url,
        &["deploy", broken.to_str().unwrap(), "--name", "stamp"],
    );
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    let events: Vec<(Option<String>, Vec<u8>)> = (0..100)
        .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    wait_for_log(&log, "registry tag moved back", Duration::from_secs(60));
    let out = collect(&js, "OUT", "out", 100, Duration::from_secs(60)).await;
    assert_eq!(out.len(), 100);
    assert!(out.iter().all(|m| {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        v["v"] == 1
    }));

    let mut history = weir();
    history.args(["plugin", "history", "stamp", "--nats-url", &url]);
    let history = output_within(history, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&history.stdout);
    assert!(text.contains("automatic rollback: canary failed"), "{text}");
    let mut list = weir();
    list.args(["plugin", "list", "--nats-url", &url]);
    let list =
        String::from_utf8_lossy(&output_within(list, Duration::from_secs(60)).stdout).to_string();
    let row = list
        .lines()
        .find(|l| l.starts_with("stamp"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        row.split_whitespace().nth(1) == Some("1"),
        "the tag is back at version 1: {list}"
    );
    assert_eq!(host.terminate(), Some(0), "log:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_aggregate_swapped_mid_window_migrates_its_accumulators_and_a_downgrade_is_refused()
 {
    use crate::recovery::publish_events;
    const BASE: i64 = 1_700_000_000_000;
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("count.wasm");
    std::fs::copy(plugin("versioned_count"), &live).unwrap();
    let text = r#"name = "hot-window"
[source]
stream = "IN"
batch_size = 100
max_wait = "20ms"
time = { header = "T" }
watermarks = { strategy = "punctuated" }

[window]
type = "tumbling"
size = "10s"

[window.aggregate]
name = "count"
plugin = "count.wasm"
config = { migrate = true }

[sink]
subject = "out"
dead_letter = "dlq"
"#;
    let file = write_pipeline(dir.path(), text);
    let mut host = WeirProcess::start_with(
        &file,
        &server.url(),
        &dir.path().join("weir.log"),
        &["--watch"],
    );
    host.wait_running(Duration::from_secs(120));
    let log = host.log_reader();
    let events = |range: std::ops::Range<i64>| -> Vec<(String, i64, Vec<u8>)> {
        range
            .map(|i| ("k".to_string(), BASE + i * 100, b"{}".to_vec()))
            .collect()
    };
    // Version 1 (state version 0) counts the first half of the window.
    publish_events(&js, &events(0..50)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Version 2 (state version 1) takes over mid-window: the live accumulator is migrated.
    install(&plugin("versioned_count_v2"), &live);
    wait_for_log(&log, "plugin swapped", Duration::from_secs(60));
    assert!(log().contains("accumulators migrated"), "{}", log());
    // Back to state version 0 is a downgrade: refused, version 2 keeps running.
    install(&plugin("versioned_count"), &live);
    wait_for_log(&log, "swap refused", Duration::from_secs(60));
    assert!(
        log().contains("older than the running version"),
        "{}",
        log()
    );

    publish_events(&js, &events(50..100)).await;
    let mut h = async_nats::HeaderMap::new();
    h.insert("Weir-Watermark", (BASE + 20_000).to_string().as_str());
    js.publish_with_headers("in.e", h, "".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let got = collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "{}", log());
    let v: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    // Events counted before the swap are in the result, through the migration.
    assert_eq!(
        v,
        serde_json::json!({"count": 100, "migrated": true}),
        "{}",
        log()
    );
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

/// Builds `plugins/<lang>/inactivity` with `weir plugin build` and loads it once (`weir
/// validate`) so its compile is cached; returns the component.
fn built_inactivity(lang: &str, dir: &Path) -> std::path::PathBuf {
    let project = root().join("plugins").join(lang).join("inactivity");
    let mut cmd = weir();
    cmd.args(["plugin", "build"]).arg(&project);
    let out = output_within(cmd, Duration::from_secs(600));
    assert!(
        out.status.success(),
        "building {}:\n{}",
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let component = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let text = pipeline_text(
        "warm",
        "time = { field = \"ts\" }",
        &process_section("inactivity", &component, "{ timeout_ms = 3000 }"),
    );
    let warm = dir.join(format!("warm-{lang}"));
    std::fs::create_dir_all(&warm).unwrap();
    let mut validate = weir();
    validate.arg("validate").arg(write_pipeline(&warm, &text));
    assert!(
        output_within(validate, Duration::from_secs(600))
            .status
            .success()
    );
    component
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_function_swapped_across_languages_keeps_its_keys_state_and_timers() {
    let dir = tempfile::tempdir().unwrap();
    let python = built_inactivity("python", dir.path());
    let js_version = built_inactivity("js", dir.path());
    let (server, js) = server_with_streams().await;
    let live = dir.path().join("idle.wasm");
    std::fs::copy(plugin("inactivity"), &live).unwrap();
    let section = "[process.function]\nname = \"inactivity\"\nplugin = \"idle.wasm\"\n\
                   config = { timeout_ms = 10000 }\n";
    let text = pipeline_text("hot-process", "time = { field = \"ts\" }", section);
    let file = write_pipeline(dir.path(), &text);
    let mut host = WeirProcess::start_with(
        &file,
        &server.url(),
        &dir.path().join("weir.log"),
        &["--watch"],
    );
    host.wait_running(Duration::from_secs(120));
    let log = host.log_reader();
    let reading = |device: &str, ts: i64| {
        (
            Some(device.to_owned()),
            serde_json::json!({"ts": ts, "temp": 20})
                .to_string()
                .into_bytes(),
        )
    };
    let swaps = || log().matches("plugin swapped").count();
    let wait_swaps = |n: usize| {
        let started = std::time::Instant::now();
        while swaps() < n {
            assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // The Rust version registers d1's state and its processing-time timer (10 s: preparing
    // the Python version takes seconds on a busy machine).
    publish_all(&js, "in.iot", &[reading("d1", 5)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The Python version takes over before the timer fires: it fires on Python, from the
    // state the Rust version wrote.
    install(&python, &live);
    wait_swaps(1);
    let early = collect(&js, "OUT", "out", 1, Duration::from_millis(100)).await;
    assert!(
        early.is_empty(),
        "d1's timer fired before the swap; log:\n{}",
        log()
    );
    let alert = collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    assert_eq!(
        alert.len(),
        1,
        "d1's timer was lost in the swap; log:\n{}",
        log()
    );
    let a: serde_json::Value = serde_json::from_slice(&alert[0].payload).unwrap();
    assert_eq!(
        (a["key"].as_str(), a["last_event_time"].as_i64()),
        (Some("d1"), Some(5))
    );

    // The JavaScript version takes over from Python the same way.
    publish_all(&js, "in.iot", &[reading("d2", 7)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    install(&js_version, &live);
    wait_swaps(2);
    let alerts = collect(&js, "OUT", "out", 2, Duration::from_secs(30)).await;
    assert_eq!(
        alerts.len(),
        2,
        "d2's timer was lost in the swap; log:\n{}",
        log()
    );
    let a: serde_json::Value = serde_json::from_slice(&alerts[1].payload).unwrap();
    assert_eq!(
        (a["key"].as_str(), a["last_event_time"].as_i64()),
        (Some("d2"), Some(7))
    );
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

/// Under steady load, swaps `stamp` for `stamp-v2` and `kill -9`s the host as soon as its log
/// shows `step`; a restarted host must leave every event in the sink exactly once, with one
/// switch of versions in source order.
async fn killed_during_a_swap_at(step: &str) {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stamp.wasm");
    std::fs::copy(plugin("stamp"), &live).unwrap();
    let ops = "[[operators]]\nname = \"stamp\"\nplugin = \"stamp.wasm\"\nconfig = {}\n";
    let name = format!("kill-{}", step.replace(' ', "-"));
    let file = write_pipeline(dir.path(), &pipeline_text(&name, "", ops));
    let args = ["--watch"];
    let host = WeirProcess::start_with(&file, &server.url(), &dir.path().join("a.log"), &args);
    let mut host = host;
    host.wait_running(Duration::from_secs(120));
    let log = host.log_reader();
    const EVENTS: usize = 2000;
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for step in 0..20 {
                let events: Vec<(Option<String>, Vec<u8>)> = (step * 100..(step + 1) * 100)
                    .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
                    .collect();
                publish_all(&js, "in.a", &events).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    install(&plugin("stamp_v2"), &live);
    wait_for_log(&log, step, Duration::from_secs(60));
    host.kill9();
    let host = WeirProcess::start_with(&file, &server.url(), &dir.path().join("b.log"), &args);
    let log = host.log_reader();
    publisher.await.unwrap();
    let out = collect(&js, "OUT", "out", EVENTS, Duration::from_secs(60)).await;
    let mut version_of: BTreeMap<u64, u64> = BTreeMap::new();
    for m in &out {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let i = v["i"].as_u64().unwrap();
        assert!(
            version_of.insert(i, v["v"].as_u64().unwrap()).is_none(),
            "{step}: event {i} doubled"
        );
    }
    assert_eq!(
        version_of.len(),
        EVENTS,
        "{step}: events lost; log:\n{}",
        log()
    );
    let versions: Vec<u64> = version_of.values().copied().collect();
    let switch = versions
        .iter()
        .position(|&v| v == 2)
        .unwrap_or(versions.len());
    assert!(
        versions[switch..].iter().all(|&v| v == 2),
        "{step}: {versions:?}"
    );
    assert_eq!(host.terminate(), Some(0), "{step}: log:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_the_new_version_is_prepared_the_output_stays_exact() {
    killed_during_a_swap_at("new plugin version ready").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_the_switch_before_its_checkpoint_the_output_stays_exact() {
    killed_during_a_swap_at("plugin swapped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_right_after_the_barrier_checkpoint_the_output_stays_exact() {
    killed_during_a_swap_at("recorded by a committed checkpoint").await;
}
