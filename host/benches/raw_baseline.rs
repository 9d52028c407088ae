//! weir beside a raw async-nats client doing the same work, through one real nats-server: what
//! the engine costs over the least a hand-written JetStream consumer has to do.
//!
//! `WEIR_BENCH_EVENTS` 100-byte JSON events (default 300,000) are pre-published to stream IN
//! (`in.>`); results go to stream OUT (`out`, `dlq`). Three cases, each run in alternating
//! rounds (`WEIR_BENCH_ROUNDS` of each, default 3): weir, raw, weir, raw, …
//! 1. **passthrough, effectively-once** — weir: the `passthrough` plugin, batch 1000, guarantee
//!    effectively-once. Raw: a durable pull consumer (`AckPolicy::All`) pulling batches of up to
//!    1000, every message published to `out` with a deterministic `Nats-Msg-Id`
//!    (`<consumer>/<stream sequence>`), up to 4096 publish acks in flight, the last message of a
//!    batch acknowledged once the publishes of its batch (and all before) are acknowledged.
//!    **passthrough, at-least-once** — the same without message ids on either side.
//! 2. **99 % filter** — weir: `json_filter` keeping `pct == 0` (1 % of the events). Raw: the
//!    same consumer, the `pct` field parsed (serde) and the 1 % published as in case 1.
//! 3. **count window, small output** — weir: a 10 s tumbling event-time window (time from the
//!    `ts` field, 1 ms apart; 100 keys) counted by the `window_stats` plugin, about 1 % as many
//!    results as events. Raw: consume and acknowledge only.
//!
//! Every round reads the whole backlog with a fresh durable consumer (weir: a fresh pipeline
//! name, so also fresh checkpoint buckets) and ends when all N events are consumed (weir: its
//! `Metrics::inputs` reaches N; raw: counted after its batch is published); shutdown and the
//! last publish acks are not timed. Measured per round: wall time → events/s, this process's CPU
//! (utime + stime from `/proc/self/stat`; weir and the raw client both run in it, one at a time)
//! and nats-server's CPU (`/proc/<pid>/stat`), each per event. Reported: medians per case.
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo bench -p weir-host --bench raw_baseline`
//! (`WEIR_BENCH_CASE=pass,pass-alo,filter,window`: only these cases; `WEIR_BENCH_SIDES=weir`
//! or `raw`: one side only, to profile it).

#[path = "support/measure.rs"]
mod measure;
#[path = "support/outbox.rs"]
mod outbox;
#[path = "../../tests/e2e/support.rs"]
mod support;
#[path = "support/weir_side.rs"]
mod weir_side;

use std::future::IntoFuture;
use std::time::Instant;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use measure::{Meter, Round, median, ticks_per_second};
use outbox::{Outbox, raw_batches};
use support::*;
use weir::runtime::Runtime;
use weir_side::run_until_taken_in;

/// Messages per pull (weir's `batch_size`, the raw client's batch).
const BATCH: usize = 1000;
/// Event time of the first event (ms since the epoch); events are 1 ms apart.
const T0_MS: u64 = 1_700_000_000_000;
/// Keys (`Weir-Key` header) the events are spread over.
const KEYS: u64 = 100;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Passthrough,
    PassthroughAtLeastOnce,
    Filter,
    Window,
}

impl Case {
    const ALL: [Case; 4] = [
        Case::Passthrough,
        Case::PassthroughAtLeastOnce,
        Case::Filter,
        Case::Window,
    ];

    fn label(self) -> &'static str {
        match self {
            Case::Passthrough => "passthrough, effectively-once",
            Case::PassthroughAtLeastOnce => "passthrough, at-least-once",
            Case::Filter => "99 % filter",
            Case::Window => "count window (10 s tumbling, 100 keys)",
        }
    }

    /// Part of the pipeline and consumer names.
    fn slug(self) -> &'static str {
        match self {
            Case::Passthrough => "pass",
            Case::PassthroughAtLeastOnce => "pass-alo",
            Case::Filter => "filter",
            Case::Window => "window",
        }
    }

    /// The pipeline file of weir's side, named `name`.
    fn pipeline_text(self, name: &str) -> String {
        let (source_extra, stages) = match self {
            Case::Passthrough | Case::PassthroughAtLeastOnce => {
                (String::new(), operator("pass", "passthrough", "{}"))
            }
            Case::Filter => (
                String::new(),
                operator(
                    "keep1",
                    "json_filter",
                    r#"{ field = "pct", op = "eq", value = 0 }"#,
                ),
            ),
            Case::Window => (
                "time = { field = \"ts\" }".to_owned(),
                window_section(
                    "type = \"tumbling\"\nsize = \"10s\"",
                    "count",
                    "window_stats",
                    "{}",
                ),
            ),
        };
        let guarantee = match self {
            Case::PassthroughAtLeastOnce => "at-least-once",
            _ => "effectively-once",
        };
        format!(
            "name = \"{name}\"\n[source]\nstream = \"IN\"\nbatch_size = {BATCH}\nmax_wait = \"20ms\"\n\
             {source_extra}\n\n{stages}\n[sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n\n\
             [checkpoint]\nguarantee = \"{guarantee}\"\n"
        )
    }

    /// Whether the raw client gives its publishes a message id (effectively-once).
    fn raw_ids(self) -> bool {
        self != Case::PassthroughAtLeastOnce
    }

    /// Whether the raw client publishes the event with `payload` to `out`.
    fn raw_forwards(self, payload: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Pct {
            pct: u64,
        }
        match self {
            Case::Passthrough | Case::PassthroughAtLeastOnce => true,
            Case::Filter => serde_json::from_slice::<Pct>(payload).is_ok_and(|e| e.pct == 0),
            Case::Window => false,
        }
    }
}

/// What every round needs.
struct Bench {
    rt: Runtime,
    js: jetstream::Context,
    url: String,
    server_pid: String,
    ticks_per_s: f64,
    n: u64,
}

// ---------------------------------------------------------------------------------------------
// weir's side.

/// Runs `case` as pipeline `name` over the backlog, in this process.
async fn weir_round(b: &Bench, case: Case, name: &str) -> Round {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = weir::config::parse(&dir.path().join("p.toml"), case.pipeline_text(name))
        .unwrap_or_else(|e| panic!("pipeline {name}: {e:?}"));
    let consumer = pipeline.consumer_name();
    let server = (b.server_pid.as_str(), b.ticks_per_s);
    let (round, _) = run_until_taken_in(&b.rt, &b.url, pipeline, b.n, server).await;
    delete_consumer(&b.js, &consumer).await;
    round
}

async fn delete_consumer(js: &jetstream::Context, name: &str) {
    let stream = js.get_stream("IN").await.expect("stream IN");
    let _ = stream.delete_consumer(name).await;
}

// ---------------------------------------------------------------------------------------------
// The raw client's side.

/// Consumes the backlog with fresh durable consumer `durable`, doing `case`'s raw work.
async fn raw_round(b: &Bench, case: Case, durable: &str) -> Round {
    let meter = Meter::start(&b.server_pid);
    let stream = b.js.get_stream("IN").await.expect("stream IN");
    let mut batches = raw_batches(&stream, durable, &[], BATCH).await;
    let mut outbox = Outbox::default();
    let mut consumed = 0;
    while consumed < b.n {
        let batch = batches.next().await.expect("the pull ended");
        let mut last = None;
        for m in batch {
            let m = m.expect("pulled message");
            consumed += 1;
            if case.raw_forwards(&m.payload) {
                let mut headers = HeaderMap::new();
                if case.raw_ids() {
                    let seq = m.info().expect("JetStream message").stream_sequence;
                    headers.insert("Nats-Msg-Id", format!("{durable}/{seq}").as_str());
                }
                let ack =
                    b.js.publish_with_headers("out", headers, m.payload.clone())
                        .await
                        .expect("publishing to out");
                outbox.publish(ack.into_future()).await;
            }
            last = Some(m);
        }
        if let Some(m) = last {
            outbox.ack_after(m);
        }
        outbox.settle_ready().await;
    }
    let round = meter.stop(b.n, b.ticks_per_s);
    outbox.drain().await;
    drop(batches);
    delete_consumer(&b.js, durable).await;
    round
}

// ---------------------------------------------------------------------------------------------
// Setup and report.

/// Publishes `n` 100-byte JSON events to IN: `pct` (0..99, 1 % are 0), `ts` 1 ms apart.
async fn publish_events(js: &jetstream::Context, n: u64) {
    let events: Vec<_> = (0..n)
        .map(|i| {
            let mut p = format!(
                "{{\"user\":{i},\"amount\":{},\"pct\":{},\"ts\":{},\"page\":\"/p/{}\"",
                i % 200,
                i % 100,
                T0_MS + i,
                i % 97
            )
            .into_bytes();
            if p.len() < 99 {
                p.resize(99, b' ');
            }
            p.push(b'}');
            (Some(format!("user-{}", i % KEYS)), p)
        })
        .collect();
    let t = Instant::now();
    publish_all(js, "in.clicks", &events).await;
    println!(
        "published {n} events of 100 B in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

/// The table row of `case` from its weir and raw rounds.
fn row(case: Case, weir: &[Round], raw: &[Round]) {
    let med = |rs: &[Round], f: fn(&Round) -> f64| median(rs.iter().map(f).collect());
    let (w, r) = (med(weir, |x| x.events_per_s), med(raw, |x| x.events_per_s));
    println!(
        "| {} | {w:.0} | {r:.0} | {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
        case.label(),
        w / r,
        med(weir, |x| x.client_us),
        med(raw, |x| x.client_us),
        med(weir, |x| x.server_us),
        med(raw, |x| x.server_us),
    );
}

/// Threads of this process (a round that leaves some behind shows here).
fn threads() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        })
        .unwrap_or_default()
}

fn print_round(case: Case, side: &str, round: usize, r: &Round) {
    println!(
        "[{}] round {round}, {side}: {:.0} events/s, client {:.2} µs/event, server {:.2} µs/event, {} threads after",
        case.slug(),
        r.events_per_s,
        r.client_us,
        r.server_us,
        threads()
    );
}

/// Alternating weir and raw rounds of `case`; the OUT stream is emptied after each.
async fn run_case(b: &Bench, case: Case, rounds: usize) -> (Vec<Round>, Vec<Round>) {
    let out = b.js.get_stream("OUT").await.expect("stream OUT");
    let (mut weir, mut raw) = (Vec::new(), Vec::new());
    // `WEIR_BENCH_SIDES=weir` (or `raw`): one side only, e.g. to profile it.
    let sides = std::env::var("WEIR_BENCH_SIDES").unwrap_or_default();
    let side = |s: &str| sides.is_empty() || sides.split(',').any(|x| x == s);
    for i in 0..rounds {
        if side("weir") {
            let w = weir_round(b, case, &format!("{}-w{i}", case.slug())).await;
            print_round(case, "weir", i, &w);
            weir.push(w);
            out.purge().await.expect("purging OUT");
        }
        if side("raw") {
            let r = raw_round(b, case, &format!("raw-{}-{i}", case.slug())).await;
            print_round(case, "raw ", i, &r);
            raw.push(r);
            out.purge().await.expect("purging OUT");
        }
    }
    (weir, raw)
}

fn main() {
    let n = env_or("WEIR_BENCH_EVENTS", 300_000);
    let rounds = env_or("WEIR_BENCH_ROUNDS", 3).max(1) as usize;
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime");
    tokio.block_on(async {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "IN", &["in.>"]).await;
        create_stream(&js, "OUT", &["out", "dlq"]).await;
        publish_events(&js, n).await;
        let bench = Bench {
            rt: Runtime::new(Some(cache_dir())).expect("weir runtime"),
            js,
            url: server.url(),
            server_pid: server.pid().to_string(),
            ticks_per_s: ticks_per_second(),
            n,
        };
        // `WEIR_BENCH_CASE=pass,window`: only these cases (by slug).
        let only = std::env::var("WEIR_BENCH_CASE").ok();
        let chosen = |c: &Case| only.as_deref().is_none_or(|o| o.split(',').any(|s| s == c.slug()));
        let mut results = Vec::new();
        for case in Case::ALL.into_iter().filter(chosen) {
            results.push((case, run_case(&bench, case, rounds).await));
        }
        println!();
        println!(
            "{n} events of 100 B, medians of {rounds} rounds; CPU per event: this process \
             (weir or the raw client) and nats-server"
        );
        println!();
        println!(
            "| case | weir events/s | raw events/s | weir / raw | client CPU µs/event (weir / raw) | server CPU µs/event (weir / raw) |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (case, (weir, raw)) in &results {
            row(*case, weir, raw);
        }
    });
}
