//! A damaged or missing checkpoint store: the head manifest gone or corrupt, the manifest
//! bucket deleted, buckets that were never created, a store deleted under a running host.
//! weir restores the newest usable checkpoint or refuses to start saying what is missing and
//! how to go on — it never starts silently with empty state — and the `weir checkpoint`
//! commands keep working (and create nothing when they only read).

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;

use crate::recovery::{check_exact, events, publish_events, stream_messages, windowed_pipeline};
use crate::support::*;

const MANIFESTS: &str = "weir-checkpoints";
const BLOBS: &str = "weir-state";

/// `weir checkpoint ARGS… PIPELINE` against `url` (`args[0]` is the subcommand; the rest
/// follow the pipeline file).
fn checkpoint_cmd(pipeline: &Path, url: &str, args: &[&str]) -> Output {
    let mut cmd = weir();
    cmd.arg("checkpoint")
        .arg(args[0])
        .arg(pipeline)
        .args(&args[1..])
        .args(["--nats-url", url]);
    output_within(cmd, Duration::from_secs(60))
}

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

/// The ids `weir checkpoint list` prints, oldest first.
fn listed_ids(listing: &str) -> Vec<u64> {
    listing
        .lines()
        .filter_map(|l| l.trim_start_matches(['*', ' ']).split_whitespace().next())
        .filter_map(|id| id.parse().ok())
        .collect()
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

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_head_falls_back_to_the_newest_archived_checkpoint_and_the_commands_work() {
    // Before: `run`, `checkpoint list`, `show` and `delete` all failed on the corrupt head.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "garbled", "interval = \"100ms\"\nretain = 4");
    let (events, expected) = events(20_000, 23);
    let first_log = first_run(
        &server,
        &js,
        &pipeline,
        &events[..10_000],
        &dir.path().join("1.log"),
    )
    .await;
    let kv = js.get_key_value(MANIFESTS).await.unwrap();
    kv.put("garbled.head", Bytes::from_static(b"\x00not json"))
        .await
        .unwrap();
    let url = server.url();

    let list = checkpoint_cmd(&pipeline, &url, &["list"]);
    let listing = text(&list.stdout);
    assert!(list.status.success(), "{listing}{}", text(&list.stderr));
    assert!(
        listing.contains("garbled.head") && listing.contains("corrupt"),
        "{listing}"
    );
    let ids = listed_ids(&listing);
    assert!(ids.len() >= 2, "{listing}");
    let newest = *ids.last().unwrap();

    let show = checkpoint_cmd(&pipeline, &url, &["show"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        text(&show.stderr).contains("corrupt"),
        "{}",
        text(&show.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["id"].as_u64(), Some(newest));
    let show_one = checkpoint_cmd(&pipeline, &url, &["show", &ids[0].to_string()]);
    assert!(show_one.status.success(), "{}", text(&show_one.stderr));

    let delete = checkpoint_cmd(&pipeline, &url, &["delete", &ids[0].to_string()]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    let listing = text(&checkpoint_cmd(&pipeline, &url, &["list"]).stdout);
    assert_eq!(listed_ids(&listing), ids[1..], "{listing}");

    publish_events(&js, &events[10_000..]).await;
    let second = WeirProcess::start(&pipeline, &url, &dir.path().join("2.log"));
    check_exact(&js, &expected, &|| {
        format!("{}\n{}", first_log(), second.log())
    })
    .await;
    let log = second.log();
    assert!(
        log.contains("garbled.head")
            && log.contains("corrupt")
            && log.contains("archived checkpoint"),
        "the corrupt head is not reported:\n{log}"
    );
    assert_eq!(second.terminate(), Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_head_is_replaced_by_a_fresh_start_and_deleted_by_delete_all() {
    // Before: `run --from-checkpoint none` and `checkpoint delete --all` failed reading it.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "garbled", "interval = \"100ms\"");
    let (events, _) = events(3_000, 24);
    let _first_log = first_run(&server, &js, &pipeline, &events, &dir.path().join("1.log")).await;
    let kv = js.get_key_value(MANIFESTS).await.unwrap();
    let garbage = Bytes::from_static(b"{\"format\": 2, \"truncated");
    kv.put("garbled.head", garbage.clone()).await.unwrap();
    let url = server.url();

    // A fresh start reads the stream again with empty state; its first commit replaces the
    // corrupt head.
    let host = WeirProcess::start_with(
        &pipeline,
        &url,
        &dir.path().join("fresh.log"),
        &["--from-checkpoint", "none"],
    );
    let started = Instant::now();
    loop {
        let head = kv.get("garbled.head").await.unwrap().unwrap_or_default();
        if serde_json::from_slice::<serde_json::Value>(&head).is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the corrupt head was not replaced:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
    assert!(!log().contains("checkpoint failed"), "{}", log());

    kv.put("garbled.head", garbage).await.unwrap();
    let delete = checkpoint_cmd(&pipeline, &url, &["delete", "--all"]);
    assert!(delete.status.success(), "{}", text(&delete.stderr));
    let list = checkpoint_cmd(&pipeline, &url, &["list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout).contains("no checkpoints"),
        "{}",
        text(&list.stdout)
    );
    assert_eq!(kv.get("garbled.head").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_checkpoint_commands_create_no_buckets() {
    // Before: `list` and `show` created the manifest bucket and the object store.
    let server = NatsServer::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = windowed_pipeline(dir.path(), "never-ran", "interval = \"1s\"");
    let url = server.url();

    let list = checkpoint_cmd(&pipeline, &url, &["list"]);
    let listing = text(&list.stdout);
    assert!(list.status.success(), "{listing}{}", text(&list.stderr));
    assert!(
        listing.contains("no checkpoints")
            && listing.contains(&format!("{MANIFESTS:?}"))
            && listing.contains("does not exist"),
        "{listing}"
    );
    let show = checkpoint_cmd(&pipeline, &url, &["show"]);
    let error = error_line(&text(&show.stderr));
    assert_eq!(show.status.code(), Some(1), "{}", text(&show.stderr));
    assert!(
        error.contains("no checkpoint") && error.contains("does not exist"),
        "{error}"
    );
    for stream in [format!("KV_{MANIFESTS}"), format!("OBJ_{BLOBS}")] {
        assert!(!stream_exists(&js, &stream).await, "{stream} was created");
    }
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
