//! Nexmark end to end through nats-server: each query of `plugins/pipelines/nexmark/` run by
//! weir against JetStream, beside the raw-client bound — a hand-written async-nats consumer
//! that only reads and acknowledges the same messages (the least any client of those
//! subjects does; the throughput bench's "consume + ack" side, `raw_baseline.rs`).
//!
//! `WEIR_BENCH_EVENTS` generated Nexmark events (default 500,000; persons, auctions and bids
//! 1 : 3 : 46, at the generator's default 10,000 events/s of event time) are published once
//! to stream NEXMARK (`nexmark.>`: `nexmark.person|auction|bid`, as `weir nexmark publish`
//! does). Then per query, alternating rounds (`WEIR_BENCH_ROUNDS`, default 3): weir runs the
//! query's pipeline in this process (the file as it is, renamed per round so that every round
//! has fresh durable consumers and checkpoint buckets) until it has consumed every message of
//! its inputs; the raw client reads the same subjects with one fresh durable pull consumer
//! (`AckPolicy::All`, batches of 1,000, the last message of each acknowledged) until it has
//! read as many. What weir publishes after its last input (the results a final checkpoint
//! releases) is not timed, as in `raw_baseline.rs`.
//!
//! q4 is two pipelines: `q4` (the winning bids, to `nexmark.q4.winning`) and `q4-average`,
//! which reads what the last `q4` round published there; run `q4` before `q4-average`.
//! For q0 and q1, where every bid gives a result, the raw client also publishes every message
//! it reads (to `nexmark.raw.out`, with a deterministic `Nats-Msg-Id`, up to 4,096 publishes
//! in flight, a batch acknowledged once its publishes are stored): the throughput bench's
//! effectively-once passthrough client. The other queries publish few results, and their
//! bound is reading and acknowledging.
//! Events per second count the messages of the query's inputs (bids only for q0, q1, q2, q5,
//! q7, q11), not every generated event as the in-process bench (`nexmark.rs`) does.
//! Reported per query: medians of events/s of both, weir / raw, and CPU per event of this
//! process (weir or the raw client) and of nats-server.
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo bench -p weir-host --bench
//! nexmark_nats` (`WEIR_BENCH_QUERIES=q0,q8`: only these).

#[path = "support/measure.rs"]
mod measure;
#[path = "support/outbox.rs"]
mod outbox;
#[path = "../../tests/e2e/support.rs"]
mod support;
#[path = "support/weir_side.rs"]
mod weir_side;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use measure::{Meter, Round, median, ticks_per_second};
use outbox::{Outbox, raw_batches};
use support::*;
use weir::nexmark::{Generator, GeneratorConfig};
use weir::runtime::Runtime;
use weir_side::run_until_taken_in;

/// Messages per pull of the raw client (the pipelines' `batch_size`).
const BATCH: usize = 1000;
/// The subject q4's first stage publishes its winning bids to (the second stage's input).
const WINNING: &str = "nexmark.q4.winning";
const QUERIES: &[&str] = &[
    "q0",
    "q1",
    "q2",
    "q3",
    "q4",
    "q4-average",
    "q5",
    "q7",
    "q8",
    "q11",
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What every round needs.
struct Bench {
    rt: Runtime,
    js: jetstream::Context,
    url: String,
    server_pid: String,
    ticks_per_s: f64,
}

/// Publishes `n` generated events to `nexmark.<kind>`, printing the count per subject.
async fn publish_events(js: &jetstream::Context, n: u64) {
    let config = GeneratorConfig {
        events: Some(n),
        ..GeneratorConfig::default()
    };
    let started = Instant::now();
    let mut counts = BTreeMap::new();
    let mut pending = std::collections::VecDeque::new();
    let mut json = Vec::new();
    for event in Generator::new(config).expect("generator") {
        json.clear();
        event.to_json(&mut json);
        let subject = format!("nexmark.{}", event.kind());
        *counts.entry(subject.clone()).or_insert(0) += 1;
        let ack = js
            .publish(subject, json.clone().into())
            .await
            .expect("publish");
        pending.push_back(ack);
        if pending.len() >= 4096 {
            pending.pop_front().expect("an ack").await.expect("stored");
        }
    }
    for ack in pending {
        ack.await.expect("stored");
    }
    println!(
        "published {n} events ({counts:?}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Query `query`'s pipeline, named `name`.
fn load(query: &str, name: &str) -> weir::config::Pipeline {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/pipelines/nexmark")
        .join(format!("{query}.toml"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{query}: {e}"));
    let line = format!("name = \"nexmark-{query}\"");
    assert!(text.contains(&line), "{}: no {line}", file.display());
    let text = text.replace(&line, &format!("name = \"{name}\""));
    weir::config::parse(&file, text).unwrap_or_else(|e| panic!("{query}: {e:?}"))
}

/// The subjects the inputs of `pipeline` read.
fn subjects(pipeline: &weir::config::Pipeline) -> Vec<String> {
    let inputs = pipeline.config.inputs();
    inputs.iter().flat_map(|s| s.subjects.clone()).collect()
}

/// Messages stored on `subjects` (a fresh consumer's pending count).
async fn stored(b: &Bench, subjects: &[String]) -> u64 {
    let stream = b.js.get_stream("NEXMARK").await.expect("stream NEXMARK");
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            filter_subjects: subjects.to_vec(),
            ..Default::default()
        })
        .await
        .expect("counting consumer");
    let n = consumer.info().await.expect("consumer info").num_pending;
    let name = consumer.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    n
}

/// Runs `query` as pipeline `name` over its inputs' backlog of `n` messages, in this process.
async fn weir_round(b: &Bench, query: &str, name: &str, n: u64) -> Round {
    let pipeline = load(query, name);
    let consumers: Vec<String> = (0..pipeline.config.inputs().len())
        .map(|i| pipeline.consumer_name_of(i))
        .collect();
    let server = (b.server_pid.as_str(), b.ticks_per_s);
    let (round, metrics) = run_until_taken_in(&b.rt, &b.url, pipeline, n, server).await;
    let dead = metrics.dead_letters.load(Relaxed) + metrics.late.load(Relaxed);
    assert_eq!(dead, 0, "{name}: dead letters or late events");
    for c in consumers {
        delete_consumer(&b.js, &c).await;
    }
    round
}

async fn delete_consumer(js: &jetstream::Context, name: &str) {
    let stream = js.get_stream("NEXMARK").await.expect("stream NEXMARK");
    let _ = stream.delete_consumer(name).await;
}

/// The queries whose every input event gives a result (q0, q1): their raw bound publishes
/// too, as the throughput bench's effectively-once passthrough client does.
fn forwards_every_event(query: &str) -> bool {
    matches!(query, "q0" | "q1")
}

/// Reads and acknowledges `n` messages of `subjects` with fresh durable consumer `durable`;
/// with `forward`, publishes each to `nexmark.raw.out` with a deterministic `Nats-Msg-Id`
/// first, and acknowledges a batch once its publishes are stored.
async fn raw_round(b: &Bench, subjects: &[String], durable: &str, n: u64, forward: bool) -> Round {
    let meter = Meter::start(&b.server_pid);
    let stream = b.js.get_stream("NEXMARK").await.expect("stream NEXMARK");
    let mut batches = raw_batches(&stream, durable, subjects, BATCH).await;
    let (mut consumed, mut outbox) = (0, Outbox::default());
    while consumed < n {
        let batch = batches.next().await.expect("the pull ended");
        let mut last = None;
        for m in batch {
            let m = m.expect("pulled message");
            consumed += 1;
            if forward {
                let seq = m.info().expect("JetStream message").stream_sequence;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("{durable}/{seq}").as_str());
                let ack =
                    b.js.publish_with_headers("nexmark.raw.out", headers, m.payload.clone());
                let ack = ack.await.expect("publishing to nexmark.raw.out");
                outbox.publish(ack.into_future()).await;
            }
            last = Some(m);
        }
        if let Some(m) = last {
            outbox.ack_after(m);
        }
        outbox.settle_ready().await;
    }
    let round = meter.stop(n, b.ticks_per_s);
    outbox.drain().await;
    drop(batches);
    delete_consumer(&b.js, durable).await;
    round
}

/// Alternating weir and raw rounds of `query`: (input messages, weir's rounds, raw's).
async fn run_query(b: &Bench, query: &str, rounds: u64) -> (u64, Vec<Round>, Vec<Round>) {
    let subjects = subjects(&load(query, "count"));
    let stream = b.js.get_stream("NEXMARK").await.expect("stream NEXMARK");
    let n = stored(b, &subjects).await;
    assert!(
        n > 0,
        "{query}: nothing on {subjects:?} (run q4 before q4-average)"
    );
    let (mut weir, mut raw) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if query == "q4" {
            // The second stage reads the last round's winning bids only.
            stream.purge().filter(WINNING).await.expect("purging");
        }
        let name = format!("nexmark-{query}-w{i}");
        let w = weir_round(b, query, &name, n).await;
        let durable = format!("raw-{query}-{i}");
        let r = raw_round(b, &subjects, &durable, n, forwards_every_event(query)).await;
        println!(
            "[{query}] round {i}: weir {:.0} events/s, raw {:.0} events/s",
            w.events_per_s, r.events_per_s
        );
        weir.push(w);
        raw.push(r);
        stream
            .purge()
            .filter("nexmark.*.out")
            .await
            .expect("purging");
    }
    (n, weir, raw)
}

fn main() {
    let n = env_or("WEIR_BENCH_EVENTS", 500_000);
    let rounds = env_or("WEIR_BENCH_ROUNDS", 3).max(1);
    let queries: Vec<String> = match std::env::var("WEIR_BENCH_QUERIES") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => QUERIES.iter().map(|q| q.to_string()).collect(),
    };
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime");
    tokio.block_on(async {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "NEXMARK", &["nexmark.>"]).await;
        publish_events(&js, n).await;
        let bench = Bench {
            rt: Runtime::new(Some(cache_dir())).expect("weir runtime"),
            js,
            url: server.url(),
            server_pid: server.pid().to_string(),
            ticks_per_s: ticks_per_second(),
        };
        let mut rows = Vec::new();
        for query in &queries {
            rows.push((query, run_query(&bench, query, rounds).await));
        }
        println!();
        println!("Nexmark through nats-server: {n} events published, medians of {rounds} rounds");
        println!();
        println!(
            "| query | input messages | weir events/s | raw client events/s | weir / raw | client CPU µs/event (weir / raw) | server CPU µs/event (weir / raw) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (query, (inputs, weir, raw)) in &rows {
            let med = |rs: &[Round], f: fn(&Round) -> f64| median(rs.iter().map(f).collect());
            let (w, r) = (med(weir, |x| x.events_per_s), med(raw, |x| x.events_per_s));
            println!(
                "| {query} | {inputs} | {w:.0} | {r:.0} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
                w / r,
                med(weir, |x| x.client_us),
                med(raw, |x| x.client_us),
                med(weir, |x| x.server_us),
                med(raw, |x| x.server_us),
            );
        }
    });
}
