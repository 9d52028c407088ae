//! A damaged or missing checkpoint store: the head manifest gone, the manifest bucket
//! deleted, a store deleted under a running host. weir restores the newest usable checkpoint
//! or refuses to start saying what is missing and how to go on — it never starts silently
//! with empty state.

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::recovery::{check_exact, events, publish_events, stream_messages, windowed_pipeline};
use crate::support::*;

const MANIFESTS: &str = "weir-checkpoints";
const BLOBS: &str = "weir-state";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `error:` line of a failed command's stderr.
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_owned()
}

async fn stream_exists(js: &jetstream::Context, name: &str) -> bool {
    js.get_stream(name).await.is_ok()
}

/// Runs the first `half` of the events through a host that then stops cleanly: several
/// checkpoints with open windows, the consumer acknowledged up to the last one.
async fn first_run(
    server: &NatsServer,
    js: &jetstream::Context,
    pipeline: &Path,
    events: &[(String, i64, Vec<u8>)],
    log: &Path,
) -> Box<dyn Fn() -> String> {
    publish_events(js, events).await;
    let host = WeirProcess::start(pipeline, &server.url(), log);
    let started = Instant::now();
    while stream_messages(js, "OUT").await < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
    Box::new(log)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_head_restores_the_newest_archived_checkpoint() {
    // Before: the host started from the consumer's ack floor with empty window state, and
    // the windows open at the restart came out with wrong counts, without a warning.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "headless", "interval = \"100ms\"\nretain = 4");
    let (events, expected) = events(20_000, 21);
    let first_log = first_run(
        &server,
        &js,
        &pipeline,
        &events[..10_000],
        &dir.path().join("1.log"),
    )
    .await;
    let kv = js.get_key_value(MANIFESTS).await.unwrap();
    kv.purge("headless.head").await.unwrap();

    publish_events(&js, &events[10_000..]).await;
    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("2.log"));
    check_exact(&js, &expected, &|| {
        format!("{}\n{}", first_log(), second.log())
    })
    .await;
    let log = second.log();
    assert!(
        log.contains("headless.head") && log.contains("archived checkpoint"),
        "the missing head is not reported:\n{log}"
    );
    assert_eq!(second.terminate(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_manifest_bucket_refuses_to_start_a_pipeline_that_ran_before() {
    // Before: the host created an empty bucket and started with empty window state.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "lost", "interval = \"100ms\"");
    let (events, _) = events(5_000, 22);
    let _first_log = first_run(&server, &js, &pipeline, &events, &dir.path().join("1.log")).await;
    js.delete_key_value(MANIFESTS).await.unwrap();

    let refused = |why: &'static str| {
        let mut cmd = weir();
        cmd.arg("run")
            .arg(&pipeline)
            .args(["--nats-url", &server.url()]);
        let out = output_within(cmd, Duration::from_secs(60));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{why}: {stderr}");
        let error = error_line(&stderr);
        assert!(
            error.contains(&format!("{MANIFESTS:?}"))
                && error.contains("does not exist")
                && error.contains("--from-checkpoint none"),
            "{why}: {error}\n{stderr}"
        );
        error
    };
    // The state blobs are still there (and the consumer has progressed).
    let error = refused("blobs left");
    assert!(error.contains("state blob"), "{error}");
    assert!(
        !stream_exists(&js, &format!("KV_{MANIFESTS}")).await,
        "a bucket was created"
    );
    // Without the blobs, the consumer's acknowledgements still say the pipeline ran.
    js.delete_object_store(BLOBS).await.unwrap();
    let error = refused("consumer left");
    assert!(
        error.contains("weir-lost") && error.contains("acknowledged"),
        "{error}"
    );
    assert!(
        !stream_exists(&js, &format!("KV_{MANIFESTS}")).await,
        "a bucket was created"
    );

    // Starting empty on purpose works, and creates the buckets.
    let mut host = WeirProcess::start_with(
        &pipeline,
        &server.url(),
        &dir.path().join("fresh.log"),
        &["--from-checkpoint", "none"],
    );
    host.wait_running(Duration::from_secs(60));
    assert!(stream_exists(&js, &format!("KV_{MANIFESTS}")).await);
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

/// Whether pipeline `name` has committed a checkpoint.
async fn committed(js: &jetstream::Context, name: &str) -> bool {
    let Ok(kv) = js.get_key_value(MANIFESTS).await else {
        return false;
    };
    matches!(kv.get(format!("{name}.head")).await, Ok(Some(_)))
}

/// Waits up to 20 s for `host` to stop by itself, then stops it; its exit code.
fn exit_code(mut host: WeirProcess) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Some(status) = host.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    host.terminate()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_store_deleted_under_a_running_host_stops_it_with_an_error() {
    // Before: every later commit failed with a warning, and SIGTERM ended the host with
    // "stopped cleanly" and exit code 0.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = events(4_000, 25);
    for (name, deleted) in [("kv-gone", MANIFESTS), ("blobs-gone", BLOBS)] {
        let pipeline = windowed_pipeline(dir.path(), name, "interval = \"100ms\"");
        let host = WeirProcess::start(
            &pipeline,
            &server.url(),
            &dir.path().join(format!("{name}.log")),
        );
        publish_events(&js, &events[..2_000]).await;
        let started = Instant::now();
        while !committed(&js, name).await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{}",
                host.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if deleted == MANIFESTS {
            js.delete_key_value(MANIFESTS).await.unwrap();
        } else {
            js.delete_object_store(BLOBS).await.unwrap();
        }
        publish_events(&js, &events[2_000..]).await;
        let log = host.log_reader();
        let code = exit_code(host);
        let log = log();
        assert_eq!(code, Some(1), "{name}:\n{log}");
        assert!(!log.contains("stopped cleanly"), "{name}:\n{log}");
        let error = error_line(&log);
        assert!(
            error.contains(&format!("{deleted:?}")) && error.contains("deleted"),
            "{name}: {error}\n{log}"
        );
    }
}
