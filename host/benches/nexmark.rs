//! Nexmark in process (no NATS), per query of `plugins/pipelines/nexmark/`, printed in the
//! table form of Flink's Nexmark runs (query, events, cores, time, events/s per core) with
//! Flink 1.13's published per-core figures beside.
//!
//! The events — every Nexmark event, persons, auctions and bids 1 : 3 : 46 — are generated
//! and written as JSON once, before the rounds, and that is timed apart. What a round then
//! measures, on one thread, is the engine: for the events of the query's inputs (its subject
//! filters), reading key and event time from the JSON fields the pipeline names (as the
//! JetStream source does) into packed batches of 1,000; and the pipeline — its operator
//! plugins, window, join or process state and watermarks — to the end of the input. Not
//! measured: NATS, publishing results (they are counted and dropped). Events per second count
//! every generated event, as Flink's Nexmark runs do (their source generates all of them).
//! Two rates are printed: the engine's alone, and with the generation's time added — the
//! closer to Flink's figures, whose source generates the events in the same job (as objects,
//! without writing JSON).
//!
//! q4 is two pipelines — the winning bids (`q4.toml`), then their average per category
//! (`q4-average.toml`, which reads the first's results from a subject): its round runs the
//! second over the first's results as they come, in the same thread, and counts the second's
//! results. q3 and q4 have no published Flink 1.13 figure.
//!
//! Rows `q1-python` and `q1-js` run q1 with the Python and JavaScript versions of its plugin
//! (`plugins/{python,js}/nexmark-q1`), when built (`weir plugin build plugins/python/nexmark-q1`
//! and likewise for `js`): the cost of the language.
//!
//! The first row, `source`, runs no query: reading key and time into batches for every event
//! (the floor of every query's time).
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
    /// The `Weir-Input` header its events carry (a pipeline of several inputs).
    headers: Vec<u8>,
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
    let mut headers = Vec::new();
    if let Some(name) = &s.name {
        weir_packed::push_header(&mut headers, b"Weir-Input", name.get_ref().as_bytes());
    }
    Input {
        kind,
        subject: subject.into(),
        key,
        time,
        headers,
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

/// The second pipeline of a query of two (q4: `q4-average.toml` over `q4.toml`'s results):
/// its stages and where it reads its key.
struct Downstream {
    stages: Stages,
    key: Option<String>,
    /// Results passed on so far (their sequence numbers).
    passed: u64,
}

impl Downstream {
    /// The second pipeline of `query`, if it has one.
    fn of(runtime: &Runtime, query: &str) -> Option<Downstream> {
        let second = match query {
            "q4" => "q4-average",
            _ => return None,
        };
        let pipeline = load(second);
        let key = match &pipeline.config.source.key {
            KeyFrom::Field(f) => Some(f.clone()),
            _ => None,
        };
        let partitions = SourcePartitions::of(&pipeline.config);
        let stages = Stages::build(runtime, &pipeline, Metrics::new(second), &partitions)
            .unwrap_or_else(|e| panic!("{second}: {e:#}"));
        Some(Downstream {
            stages,
            key,
            passed: 0,
        })
    }

    /// Runs the first pipeline's timer and window results `out` through the second, as the
    /// second's source would give them (key from the payload field, time the result's):
    /// the second's results.
    fn run(&mut self, out: &weir::operator::BatchOutput) -> u64 {
        let results = out.timers.iter().map(|t| (t.time, &t.payload[..]));
        let results = results.chain(
            out.windows
                .iter()
                .map(|w| (w.window.end - 1, &w.payload[..])),
        );
        let mut b = BatchBuilder::with_capacity(out.results(), 64);
        let (mut origins, mut key) = (Vec::new(), Vec::new());
        for (time, payload) in results {
            key.clear();
            if let Some(path) = &self.key {
                weir::source::field::key_from_json_field(payload, path, &mut key).unwrap();
            }
            b.push(&key, time, b"", payload, origins.len() as u32);
            self.passed += 1;
            origins.push(Origin {
                subject: "nexmark.downstream".into(),
                sequence: self.passed,
                input: 0,
            });
        }
        if origins.is_empty() {
            return 0;
        }
        let out = self
            .stages
            .run(EventBatch::from_source(b), Vec::new(), &[], &origins);
        refuse_dead_letters("downstream", &out.chain);
        refuse_dead_letters("downstream", &out.stateful);
        out.chain.results() as u64 + out.stateful.results() as u64
    }
}

/// Every event of a round, generated and written as JSON before the round starts: what the
/// engine reads. Generating them is timed apart ([`Generated::time`]).
struct Generated {
    kinds: Vec<&'static str>,
    json: Vec<u8>,
    ends: Vec<usize>,
}

impl Generated {
    /// `events` Nexmark events (the generator's defaults), kept.
    fn new(events: u64) -> Generated {
        let mut g = Generated {
            kinds: Vec::with_capacity(events as usize),
            json: Vec::with_capacity(events as usize * 256),
            ends: Vec::with_capacity(events as usize),
        };
        for event in Generator::new(generator(events)).unwrap() {
            event.to_json(&mut g.json);
            g.kinds.push(event.kind());
            g.ends.push(g.json.len());
        }
        g
    }

    /// How long generating `events` events and writing each one's JSON takes, one after the
    /// other into one reused buffer — what a source generating them as it goes pays (keeping
    /// them all, as [`Generated::new`] does, costs page faults besides).
    fn time(events: u64) -> Duration {
        let started = Instant::now();
        let mut json = Vec::with_capacity(1024);
        let mut bytes = 0;
        for event in Generator::new(generator(events)).unwrap() {
            json.clear();
            event.to_json(&mut json);
            bytes += std::hint::black_box(json.len());
        }
        std::hint::black_box(bytes);
        started.elapsed()
    }

    /// Each event's kind (`person`, `auction`, `bid`) and JSON, in order.
    fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        self.kinds
            .iter()
            .zip(starts.zip(self.ends.iter().copied()))
            .map(|(kind, (start, end))| (*kind, &self.json[start..end]))
    }
}

/// The generator's configuration for `events` events (its defaults otherwise).
fn generator(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        ..GeneratorConfig::default()
    }
}

/// Stops the bench when `out` holds dead letters or late events: a query that drops its
/// input would be measured doing nothing.
fn refuse_dead_letters(query: &str, out: &weir::operator::BatchOutput) {
    if let Some(d) = out.dead.first().or(out.late.first()) {
        panic!(
            "{query}: {} dead letters and {} late events, the first: {}",
            out.dead.len(),
            out.late.len(),
            d.error
        );
    }
    if let Some(d) = out.derived_dead.first() {
        panic!(
            "{query}: {} results failed: {}",
            out.derived_dead.len(),
            d.letter.error
        );
    }
}

/// One round of `query` over `events` generated events: (time, results). The query
/// `source` runs no pipeline: the input side alone (generating, JSON, key and time, batches)
/// for every event, the baseline of the others. A query of two pipelines (q4) runs the
/// second over the first's results in the same round; its results are the second's.
fn round(runtime: &Runtime, query: &str, generated: &Generated) -> (Duration, u64) {
    let (inputs, mut stages) = if query == "source" {
        let every = ["person", "auction", "bid"].map(|kind| Input {
            kind,
            subject: format!("nexmark.{kind}").into(),
            key: None,
            time: "dateTime".into(),
            headers: Vec::new(),
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
    let mut downstream = Downstream::of(runtime, query);
    let mut results = 0u64;
    let mut count = |out: &weir::operator::BatchOutput, results: &mut u64| {
        refuse_dead_letters(query, out);
        match &mut downstream {
            Some(d) => *results += d.run(out),
            None => *results += out.results() as u64,
        }
    };
    let mut run = |stages: &mut Option<Stages>, events: EventBatch, origins: &[Origin]| {
        if let Some(s) = stages {
            let out = s.run(events, Vec::new(), &[], origins);
            refuse_dead_letters(query, &out.chain);
            results += out.chain.results() as u64;
            count(&out.stateful, &mut results);
        }
    };
    let started = Instant::now();
    let mut key = Vec::new();
    let mut b = BatchBuilder::with_capacity(BATCH, 256);
    let mut origins = Vec::with_capacity(BATCH);
    for (n, (kind, json)) in generated.iter().enumerate() {
        let Some(i) = inputs.iter().position(|i| i.kind == kind) else {
            continue;
        };
        let input = &inputs[i];
        let time = weir::source::field::time_from_json_field(json, &input.time).unwrap();
        key.clear();
        if let Some(path) = &input.key {
            weir::source::field::key_from_json_field(json, path, &mut key).unwrap();
        }
        b.push(&key, time, &input.headers, json, origins.len() as u32);
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
        let out = s.end_of_input();
        count(&out, &mut results);
    }
    if let Some(d) = &mut downstream {
        results += d.stages.end_of_input().results() as u64;
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
        Err(_) => [
            "source", "q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11",
        ]
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
    let generated = Generated::new(events);
    let mut generation: Vec<Duration> = (0..rounds).map(|_| Generated::time(events)).collect();
    generation.sort();
    let generation = generation[generation.len() / 2].as_secs_f64();
    println!(
        "Nexmark in process: {events} events per round, {rounds} rounds (medians), 1 core; \
         generating them and writing their JSON (timed apart) takes {generation:.2} s"
    );
    println!(
        "| query | events | cores | engine time (s) | engine events/s/core | with generation events/s/core | results | Flink 1.13 events/s/core | weir / Flink, engine | weir / Flink, with generation |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for query in &queries {
        let mut times = Vec::with_capacity(rounds);
        let mut results = 0;
        for _ in 0..rounds {
            let (t, r) = round(&runtime, query, &generated);
            times.push(t);
            results = r;
        }
        times.sort();
        let median = times[times.len() / 2].as_secs_f64();
        let (rate, with) = (
            events as f64 / median,
            events as f64 / (median + generation),
        );
        let flink = FLINK
            .iter()
            .find(|(q, _)| query.split('-').next() == Some(*q))
            .map(|(_, r)| *r);
        let ratio = |r: f64| flink.map_or("—".into(), |f| format!("{:.1}×", r / f));
        println!(
            "| {query} | {events} | 1 | {median:.2} | {rate:.0} | {with:.0} | {results} | {} | {} | {} |",
            flink.map_or("—".into(), |f| format!("{f:.0}")),
            ratio(rate),
            ratio(with),
        );
    }
}
