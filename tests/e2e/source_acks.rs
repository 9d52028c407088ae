//! How the source is acknowledged: batch by batch once the outputs are stored, ahead of the
//! checkpoints, so nats-server never holds a checkpoint interval of pending acknowledgements —
//! while the checkpoint alone says where a restart resumes.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;

use crate::recovery::{check_exact, events, publish_events, stream_messages};
use crate::support::*;

/// The durable consumer `name` of stream IN, once the host has created it.
async fn consumer_info(js: &jetstream::Context, name: &str) -> Option<jetstream::consumer::Info> {
    let stream = js.get_stream("IN").await.unwrap();
    stream.consumer_info(name).await.ok()
}

/// A first checkpoint far away (the duplicate window of the test streams is 120 s).
const CHECKPOINT_IN_50S: &str = "\n[checkpoint]\ninterval = \"50s\"\nrecovery_time = \"10s\"\n";

/// Waits until stream OUT holds `n` messages.
async fn wait_for_out(js: &jetstream::Context, n: u64, log: &dyn Fn() -> String) {
    let started = Instant::now();
    while stream_messages(js, "OUT").await < n {
        assert!(started.elapsed() < Duration::from_secs(60), "{}", log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stateless_pipeline_acknowledges_its_source_long_before_its_first_checkpoint() {
    // Before: one ack per checkpoint; a whole interval of messages stayed pending on the server.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("shape", "json_map", r#"{ fields = ["id"] }"#);
    let text = pipeline_text("acks", "ack_wait = \"2m\"", &ops) + CHECKPOINT_IN_50S;
    let pipeline = write_pipeline(dir.path(), &text);
    let n = 5_000u64;
    let events: Vec<_> = (0..n)
        .map(|i| (None, json!({ "id": i }).to_string().into_bytes()))
        .collect();
    publish_all(&js, "in.e", &events).await;

    let host = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("w.log"));
    wait_for_out(&js, n, &host.log_reader()).await;
    // Every output is stored, no checkpoint is due for 50 s: the source is acknowledged
    // up to the end anyway, and nothing waits on the server.
    let started = Instant::now();
    loop {
        let info = consumer_info(&js, "weir-acks").await;
        if let Some(info) = info.as_ref().filter(|i| i.ack_floor.stream_sequence == n) {
            assert_eq!(info.num_ack_pending, 0, "{info:?}");
            assert_eq!(info.num_pending, 0, "consumer lag: {info:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the source is not acknowledged before the checkpoint: {info:?}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windowed_pipeline_killed_before_its_first_checkpoint_reads_its_source_again() {
    // The source is acknowledged ahead of the checkpoints; a stateful pipeline with no
    // checkpoint must not resume from that ack floor, where its window state was lost.
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let window = window_section(
        "type = \"tumbling\"\nsize = \"10s\"",
        "sum",
        "kit_sum",
        r#"{ field = "amount" }"#,
    );
    let text = format!(
        "name = \"early\"\n[source]\nstream = \"IN\"\nbatch_size = 200\nmax_wait = \"20ms\"\n\
         ack_wait = \"2m\"\ntime = {{ header = \"T\" }}\n\
         watermarks = {{ out_of_orderness = \"1s\" }}\n\n{window}\n\
         [sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n"
    );
    let pipeline = write_pipeline(dir.path(), &(text.clone() + CHECKPOINT_IN_50S));
    let (events, expected) = events(20_000, 31);
    publish_events(&js, &events).await;

    let first = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("1.log"));
    let started = Instant::now();
    loop {
        let info = consumer_info(&js, "weir-early").await;
        if info
            .as_ref()
            .is_some_and(|i| i.ack_floor.stream_sequence >= 5_000)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no acknowledgement ahead of the checkpoint: {info:?}\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill9();
    assert_eq!(
        stream_messages(&js, "OUT").await,
        0,
        "window results went out before any checkpoint held them"
    );

    // The restarted host checkpoints often, not to hold the results back for 50 s.
    let pipeline = write_pipeline(
        dir.path(),
        &(text + "\n[checkpoint]\ninterval = \"200ms\"\n"),
    );
    let second = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("2.log"));
    check_exact(&js, &expected, &|| second.log()).await;
    assert_eq!(second.terminate(), Some(0));
}
