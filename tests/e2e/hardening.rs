//! Faults a user (or a plugin) can cause that once wedged or killed a pipeline: each test
//! reproduces one against a real nats-server and real plugins, and checks that weir reports it
//! and goes on.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A pipeline running the `hostile` plugin with `config`.
fn hostile_pipeline(name: &str, config: &str) -> String {
    pipeline_text(name, "", &operator("hostile", "hostile", config))
}

/// Publishes `payloads` (no key), then a last ordinary event, and returns what reached `out`
/// (`results` expected) and `dlq` once the last event came through; the host must then stop
/// cleanly on SIGTERM.
async fn run_through(
    text: &str,
    payloads: Vec<Vec<u8>>,
    results: usize,
) -> (Vec<Received>, Vec<Received>) {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    let mut events: Vec<(Option<String>, Vec<u8>)> =
        payloads.into_iter().map(|p| (None, p)).collect();
    events.push((None, b"{\"last\":true}".to_vec()));
    publish_all(&js, "in.a", &events).await;
    let out = collect(&js, "OUT", "out", results, Duration::from_secs(30)).await;
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_secs(30)).await;
    let log = weir.log_reader();
    assert!(
        out.iter().any(|m| m.payload == b"{\"last\":true}"),
        "the pipeline stopped after the refused output; log:\n{}",
        log()
    );
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
    (out, dead)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_larger_than_the_server_allows_is_dead_lettered_and_the_pipeline_goes_on() {
    // The input fits the server's 1 MiB max_payload; the plugin's output (4 KiB more) does
    // not: before, weir retried it forever (no checkpoint, no ack, SIGTERM ignored).
    let big = vec![b'x'; (1 << 20) - 2048];
    let text = hostile_pipeline(
        "too-big",
        &format!(
            "{{ mode = \"grow\", trigger = \"xxxx\", value = \"{}\" }}",
            "y".repeat(4096)
        ),
    );
    let (out, dead) = run_through(&text, vec![big.clone()], 1).await;
    assert_eq!(out.len(), 1, "only the last event is a result");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert!(
        d.header("Weir-Error")
            .unwrap()
            .contains("refused by JetStream"),
        "{:?}",
        d.headers
    );
    assert_eq!(d.header("Weir-Operator").as_deref(), Some("sink"));
    assert_eq!(d.header("Weir-Original-Subject").as_deref(), Some("out"));
    // The full output cannot be a dead letter either: a truncated copy says how big it was.
    assert_eq!(d.header("Weir-Truncated").as_deref(), Some("true"));
    assert_eq!(
        d.header("Weir-Original-Size"),
        Some((big.len() + 4096).to_string())
    );
    let id = d.header("Weir-Original-Id").unwrap();
    assert!(id.starts_with("too-big/IN/1/"), "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_setting_a_reserved_nats_header_gets_a_dead_letter_not_a_wedge() {
    // `Nats-Expected-Last-Sequence: 1` makes JetStream refuse every publish after the first:
    // before, weir retried such an output forever.
    let text = hostile_pipeline(
        "reserved",
        r#"{ mode = "header", trigger = "poison", header = "Nats-Expected-Last-Sequence", value = "1" }"#,
    );
    let poison = json!({"poison": true}).to_string().into_bytes();
    let (out, dead) = run_through(&text, vec![b"{}".to_vec(), poison.clone()], 2).await;
    assert_eq!(out.len(), 2, "the plain event and the last one");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.payload, poison);
    assert!(
        d.header("Weir-Error").unwrap().contains("reserved to NATS"),
        "{:?}",
        d.headers
    );
    assert_eq!(d.header("Nats-Expected-Last-Sequence"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_sleeping_in_a_host_call_is_dead_lettered_at_its_deadline() {
    // The plugin sleeps an hour in WASI (clock subscription + poll), outside wasm code: before,
    // the epoch deadline never fired, weir hung and ignored SIGTERM (run_through ends with one).
    let block = format!(
        "{}deadline = \"300ms\"\n",
        operator(
            "hostile",
            "hostile",
            r#"{ mode = "sleep", trigger = "nap" }"#
        )
    );
    let text = pipeline_text("sleepy", "", &block);
    let nap = json!({"nap": true}).to_string().into_bytes();
    let (out, dead) = run_through(&text, vec![b"{}".to_vec(), nap.clone()], 2).await;
    assert_eq!(out.len(), 2, "the plain event and the last one");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, nap);
    let error = dead[0].header("Weir-Error").unwrap();
    assert!(error.contains("deadline exceeded"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_sleeping_in_configure_fails_validate_and_run_at_its_deadline() {
    // Before, `weir validate` and `weir run` hung for as long as configure slept.
    let (server, _js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let block = format!(
        "{}deadline = \"300ms\"\n",
        operator("hostile", "hostile", r#"{ mode = "sleep-configure" }"#)
    );
    let file = write_pipeline(dir.path(), &pipeline_text("sleepy-start", "", &block));
    let mut validate = weir();
    validate.arg("validate").arg(&file);
    let mut run = weir();
    run.arg("run")
        .arg(&file)
        .args(["--nats-url", &server.url()]);
    for (what, cmd) in [("validate", validate), ("run", run)] {
        let started = std::time::Instant::now();
        let out = output_within(cmd, Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} took {:?}",
            started.elapsed()
        );
        assert!(
            stderr.contains("trapped in configure") && stderr.contains("deadline exceeded"),
            "{what}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_trapping_on_every_event_stops_the_pipeline_instead_of_dead_lettering_all() {
    // Every event loops until its 200 ms deadline: before, a batch of 300 cost 599 deadlines
    // (two minutes) and dead-lettered every event, batch after batch, and weir exited 0.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let block = format!(
        "{}deadline = \"200ms\"\nmax_consecutive_failures = 4\n",
        operator("hostile", "hostile", r#"{ mode = "loop", trigger = "" }"#)
    );
    let file = write_pipeline(dir.path(), &pipeline_text("broken", "", &block));
    let events: Vec<(Option<String>, Vec<u8>)> = (0..300)
        .map(|i| (None, format!("{{\"i\":{i}}}").into_bytes()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    let mut cmd = weir();
    cmd.arg("run")
        .arg(&file)
        .args(["--nats-url", &server.url()]);
    let started = std::time::Instant::now();
    let out = output_within(cmd, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("operator `hostile` failed: 4 consecutive events failed"),
        "{stderr}"
    );
    assert!(stderr.contains("stopped taking input"), "{stderr}");
    // Nothing of the failed batch was committed: no mass dead-lettering.
    let dead = collect(&js, "OUT", "dlq", 1, Duration::from_secs(2)).await;
    assert!(dead.is_empty(), "{} dead letters", dead.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_a_stop_that_waits_for_nats_forces_a_prompt_exit() {
    let (mut server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("signals", "", &operator("pass", "passthrough", "{}"));
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    publish_all(&js, "in.a", &[(None, b"{}".to_vec())]).await;
    collect(&js, "OUT", "out", 1, Duration::from_secs(30)).await;
    // NATS goes away: the graceful stop waits for it to take its last checkpoint.
    server.stop();
    let pid = weir.child.id().to_string();
    let signal = || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
    };
    signal();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        weir.child.try_wait().unwrap().is_none(),
        "the first signal waits for NATS"
    );
    signal();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = weir.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a second SIGTERM did not end weir:\n{}",
            weir.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{}", weir.log());
    assert!(
        weir.log().contains("second shutdown signal"),
        "{}",
        weir.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_with_control_characters_stay_distinct_downstream() {
    // Before, control characters became spaces in `Weir-Key`: "a\u{1}b" and "a\u{2}b" merged.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("keys", "", &operator("by-k", "rekey", r#"{ field = "k" }"#));
    let file = write_pipeline(dir.path(), &text);
    let weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    let keys = ["a\u{1}b", "a\u{2}b", "plain"];
    let events: Vec<(Option<String>, Vec<u8>)> = keys
        .iter()
        .map(|k| (None, json!({ "k": k }).to_string().into_bytes()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    let out = collect(&js, "OUT", "out", 3, Duration::from_secs(60)).await;
    use base64::Engine;
    let got: Vec<String> = out
        .iter()
        .map(|m| {
            let key = m.header("Weir-Key").unwrap();
            match m.header("Weir-Key-Encoding").as_deref() {
                Some("base64") => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(key)
                        .unwrap(),
                )
                .unwrap(),
                None => key,
                Some(other) => panic!("encoding {other}"),
            }
        })
        .collect();
    assert_eq!(got, keys, "log:\n{}", weir.log());
    assert_eq!(out[2].header("Weir-Key-Encoding"), None);
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_deleted_under_a_running_host_is_recreated_and_nothing_is_lost() {
    // Before, weir exited with "the JetStream consumer stream ended".
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("orphan", "", &operator("pass", "passthrough", "{}"));
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(120));
    let batch = |from: usize| -> Vec<(Option<String>, Vec<u8>)> {
        (from..from + 100)
            .map(|i| (None, json!({ "i": i }).to_string().into_bytes()))
            .collect()
    };
    publish_all(&js, "in.a", &batch(0)).await;
    collect(&js, "OUT", "out", 100, Duration::from_secs(30)).await;
    let stream = js.get_stream("IN").await.unwrap();
    let consumers: Vec<String> = {
        use futures::StreamExt;
        let mut names = stream.consumer_names();
        let mut out = Vec::new();
        while let Some(n) = names.next().await {
            out.push(n.unwrap());
        }
        out
    };
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    stream.delete_consumer(&consumers[0]).await.unwrap();
    publish_all(&js, "in.a", &batch(100)).await;
    let out = collect(&js, "OUT", "out", 200, Duration::from_secs(60)).await;
    let mut seen: Vec<i64> = out
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()["i"]
                .as_i64()
                .unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (0..200).collect::<Vec<i64>>(), "log:\n{}", weir.log());
    let log = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

/// Blocks the server from creating consumer `name` on stream IN: a plain file where the
/// consumer's store directory goes makes the server refuse it with "error creating store for
/// consumer" (500, 10012), the answer it also gives while a just-deleted consumer's store is
/// still being removed. Returns the file; removing it unblocks.
fn block_consumer_store(server: &NatsServer, name: &str) -> std::path::PathBuf {
    let obs = server.store().join("jetstream/$G/streams/IN/obs");
    std::fs::create_dir_all(&obs).unwrap();
    let blocker = obs.join(name);
    std::fs::write(&blocker, b"not a directory").unwrap();
    blocker
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_the_server_cannot_create_for_a_moment_is_tried_again() {
    // Seen in CI: the server refused to recreate a consumer right after it was deleted
    // ("error creating store for consumer", 500), and weir exited on the first refusal.
    let (server, js) = server_with_streams().await;
    let blocker = block_consumer_store(&server, "weir-busy");
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("busy", "", &operator("pass", "passthrough", "{}"));
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    let started = std::time::Instant::now();
    while !weir.log().contains("trying again") {
        assert!(
            weir.child.try_wait().unwrap().is_none(),
            "weir exited on the first refusal:\n{}",
            weir.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no retry logged:\n{}",
            weir.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&blocker).unwrap();
    weir.wait_running(Duration::from_secs(30));
    let events: Vec<(Option<String>, Vec<u8>)> = (0..50)
        .map(|i| (None, json!({ "i": i }).to_string().into_bytes()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    let out = collect(&js, "OUT", "out", 50, Duration::from_secs(30)).await;
    assert_eq!(out.len(), 50);
    let log = weir.log_reader();
    assert_eq!(weir.terminate(), Some(0), "log:\n{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_the_server_keeps_refusing_ends_the_run_with_its_error_in_bounded_time() {
    let (server, _js) = server_with_streams().await;
    block_consumer_store(&server, "weir-refused");
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text("refused", "", &operator("pass", "passthrough", "{}"));
    let file = write_pipeline(dir.path(), &text);
    let mut weir = WeirProcess::start(&file, &server.url(), &dir.path().join("weir.log"));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = weir.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "weir kept retrying:\n{}",
            weir.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = weir.log();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("creating durable consumer \"weir-refused\" on stream \"IN\"")
            && log.contains("error creating store for consumer"),
        "{log}"
    );
    assert!(log.matches("trying again").count() >= 3, "{log}");
}
