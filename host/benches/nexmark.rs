//! Nexmark in process (no NATS), per query of `plugins/pipelines/nexmark/`, printed in the
//! table form of Flink's Nexmark runs (query, events, cores, time, events/s per core) with
//! Flink 1.13's published per-core figures beside.
//!
//! What a round measures, on one thread: generating every Nexmark event (persons, auctions
//! and bids, 1 : 3 : 46) and writing it as JSON; for the events of the query's inputs (its
//! subject filters), reading key and event time from the JSON fields the pipeline names (as
//! the JetStream source does) into packed batches of 1,000; and the pipeline's engine — its
//! operator plugins, window or join state and watermarks — to the end of the input. Not
//! measured: NATS, publishing results (they are counted and dropped). Events per second count
//! every generated event, as Flink's Nexmark runs do (their source generates all of them).
//!
//! Rows `q1-python` and `q1-js` run q1 with the Python and JavaScript versions of its plugin
//! (`plugins/{python,js}/nexmark-q1`), when built (`weir plugin build plugins/python/nexmark-q1`
//! and likewise for `js`): the cost of the language.
//!
//! The first row, `source`, runs no query: the input side alone for every event (the floor
//! of every query's time).
//!
//! Run: `bash plugins/build.sh && cargo bench -p weir-host --bench nexmark`
//! (`WEIR_BENCH_EVENTS`, default 1,000,000; `WEIR_BENCH_QUERIES=q0,q2`; `WEIR_BENCH_ROUNDS`,
//! default 3, medians reported).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weir::admin::Metrics;
use weir::config::{KeyFrom, SourceConfig, TimeFrom};
use weir::nexmark::{Generator, GeneratorConfig};
use weir::operator::EventBatch;
use weir::pipeline::stages::Stages;
use weir::runtime::Runtime;
use weir::source::{Origin, SourcePartitions};
use weir_packed::BatchBuilder;

/// Flink 1.13's Nexmark figures, events/s per core (8 task managers × 1 slot, RocksDB,
/// exactly-once), for the queries it published.
const FLINK: &[(&str, f64)] = &[
    ("q0", 155_000.0),
    ("q1", 158_000.0),
    ("q2", 175_000.0),
    ("q5", 22_100.0),
    ("q7", 12_300.0),
    ("q8", 146_000.0),
    ("q11", 39_700.0),
];

const BATCH: usize = 1000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One input of a query: the kind of events it reads and where its key and time come from.
struct Input {
    kind: &'static str,
    subject: async_nats::Subject,
    key: Option<String>,
    time: String,
}

fn input_of(s: &SourceConfig) -> Input {
    let subject = s.subjects.first().cloned().unwrap_or_default();
    let kind = ["person", "auction", "bid"]
        .into_iter()
        .find(|k| subject.ends_with(k))
        .expect("a nexmark subject");
    let key = match &s.key {
        KeyFrom::Field(f) => Some(f.clone()),
        _ => None,
    };
    let time = match &s.time {
        TimeFrom::Field(f) => f.clone(),
        other => panic!("nexmark pipelines take event time from a field, not {other:?}"),
    };
    Input {
        kind,
        subject: subject.into(),
        key,
        time,
    }
}

/// The pipeline of `query`: `plugins/pipelines/nexmark/<query>.toml`, or for `q1-python` and
/// `q1-js` the q1 pipeline running `plugins/<lang>/nexmark-q1` (built by `weir plugin build`).
fn load(query: &str) -> weir::config::Pipeline {
    let dir = root().join("plugins/pipelines/nexmark");
    let Some(lang) = query.strip_prefix("q1-") else {
        let file = dir.join(format!("{query}.toml"));
        return weir::config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    };
    let file = dir.join("q1.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let rust = "../../../target/plugins/wasm32-wasip2/release/weir_plugin_nexmark.wasm";
    let component = language_q1(lang);
    let text = text.replace(rust, &component.display().to_string());
    weir::config::parse(&file, text).unwrap_or_else(|e| panic!("{e}"))
}

/// Where `weir plugin build plugins/<lang>/nexmark-q1` puts its component.
fn language_q1(lang: &str) -> PathBuf {
    root().join(format!("plugins/{lang}/nexmark-q1/target/nexmark-q1.wasm"))
}

/// One round of `query` over `events` generated events: (time, results). The query
/// `source` runs no pipeline: the input side alone (generating, JSON, key and time, batches)
/// for every event, the baseline of the others.
fn round(runtime: &Runtime, query: &str, events: u64) -> (Duration, u64) {
    let (inputs, mut stages) = if query == "source" {
        let every = ["person", "auction", "bid"].map(|kind| Input {
            kind,
            subject: format!("nexmark.{kind}").into(),
            key: None,
            time: "dateTime".into(),
        });
        (every.into_iter().collect::<Vec<_>>(), None)
    } else {
        let pipeline = load(query);
        let inputs: Vec<Input> = pipeline.config.inputs().iter().map(input_of).collect();
        let partitions = SourcePartitions::of(&pipeline.config);
        let stages = Stages::build(runtime, &pipeline, Metrics::new(query), &partitions)
            .unwrap_or_else(|e| panic!("{query}: {e:#}"));
        (inputs, Some(stages))
    };
    let config = GeneratorConfig {
        events: Some(events),
        ..GeneratorConfig::default()
    };
    let mut results = 0u64;
    let mut run = |stages: &mut Option<Stages>, events: EventBatch, origins: &[Origin]| {
        if let Some(s) = stages {
            let out = s.run(events, Vec::new(), &[], origins);
            results += out.chain.results() as u64 + out.stateful.results() as u64;
        }
    };
    let started = Instant::now();
    let (mut json, mut key) = (Vec::new(), Vec::new());
    let mut b = BatchBuilder::with_capacity(BATCH, 256);
    let mut origins = Vec::with_capacity(BATCH);
    for (n, event) in Generator::new(config).unwrap().enumerate() {
        json.clear();
        event.to_json(&mut json);
        let Some(i) = inputs.iter().position(|i| i.kind == event.kind()) else {
            continue;
        };
        let input = &inputs[i];
        let time = weir::source::field::time_from_json_field(&json, &input.time).unwrap();
        key.clear();
        if let Some(path) = &input.key {
            weir::source::field::key_from_json_field(&json, path, &mut key).unwrap();
        }
        b.push(&key, time, b"", &json, origins.len() as u32);
        origins.push(Origin {
            subject: input.subject.clone(),
            sequence: n as u64 + 1,
            input: i as u16,
        });
        if origins.len() == BATCH {
            let full = std::mem::replace(&mut b, BatchBuilder::with_capacity(BATCH, 256));
            run(&mut stages, EventBatch::from_source(full), &origins);
            origins.clear();
        }
    }
    if !origins.is_empty() {
        run(&mut stages, EventBatch::from_source(b), &origins);
    }
    if let Some(s) = &mut stages {
        results += s.end_of_input().results() as u64;
    }
    (started.elapsed(), results)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let events: u64 = env_or("WEIR_BENCH_EVENTS", 1_000_000);
    let rounds: usize = env_or("WEIR_BENCH_ROUNDS", 3);
    let queries: Vec<String> = match std::env::var("WEIR_BENCH_QUERIES") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => ["source", "q0", "q1", "q2", "q8", "q11"]
            .into_iter()
            .map(str::to_owned)
            .chain(
                ["python", "js"]
                    .into_iter()
                    .filter(|lang| language_q1(lang).is_file())
                    .map(|lang| format!("q1-{lang}")),
            )
            .collect(),
    };
    let tokio = tokio::runtime::Runtime::new().unwrap();
    // Plugin calls run in a Tokio runtime's context, as in a pipeline.
    let _context = tokio.enter();
    let runtime = Runtime::new(Some(std::env::temp_dir().join("weir-bench-cache"))).unwrap();
    println!("Nexmark in process: {events} events per round, {rounds} rounds (medians), 1 core");
    println!(
        "| query | events | cores | time (s) | events/s/core | results | Flink 1.13 events/s/core | weir / Flink |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for query in &queries {
        let mut times = Vec::with_capacity(rounds);
        let mut results = 0;
        for _ in 0..rounds {
            let (t, r) = round(&runtime, query, events);
            times.push(t);
            results = r;
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64();
        let rate = events as f64 / median;
        let flink = FLINK
            .iter()
            .find(|(q, _)| query.split('-').next() == Some(*q))
            .map(|(_, r)| *r);
        println!(
            "| {query} | {events} | 1 | {median:.2} | {rate:.0} | {results} | {} | {} |",
            flink.map_or("—".into(), |f| format!("{f:.0}")),
            flink.map_or("—".into(), |f| format!("{:.1}×", rate / f)),
        );
    }
}
