//! What hot-loading costs a running pipeline, through a real nats-server: the **swap stall**
//! (how long a swap holds the pipeline between two batches) and **events/s during a series of
//! swaps vs. without**, for a Rust and a Python transform.
//!
//! Per language, one `weir::pipeline::nats::run` in-process with `watch = true` (as `weir run
//! --watch`) over a backlog of 100-byte JSON events pre-published to stream IN, the operator's
//! plugin file in a temp dir. In the same run, alternating rounds:
//! - **baseline**: `WEIR_BENCH_EVENTS` events (default 1,000,000), no swap;
//! - **swaps**: the plugin file replaced (temp file + rename) 50 times, alternating two
//!   versions, each time waiting for `Metrics::swaps` to move before the next; the round ends
//!   when both the 50 swaps and `WEIR_BENCH_EVENTS` events are done. After each swap
//!   `Metrics::swap_stall_us` is read.
//!
//! Reported: stall p50/p99/max (the host's metric), the split of each stall (install, snapshot
//! and waiting for the outputs in flight, checkpoint commit, source ack — from the host's
//! checkpoint trace events, taken by a tracing layer here), events/s per round and the ratio.
//! Independently of the host's metric, from the sink side: a core NATS subscriber on the sink
//! subject timestamps every output; the longest gap between two outputs around each swap (file
//! written → swap seen + 100 ms) vs. the gaps between batches in the baseline rounds.
//!
//! Versions: Rust `stamp` / `stamp_v2` (`plugins/build.sh`); Python: a stamp transform in two
//! versions (`"v": 1|2`) built here with `sdk/python/build.sh` (componentize-py from
//! `.tools/`), so they are new components on every run — the first swap to each is to a
//! version never compiled: it shows the compile happens before the barrier, not in the stall.
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo bench -p weir-host --bench hotload`
//! (`WEIR_BENCH_EVENTS` per round, default 1000000; `WEIR_BENCH_CASE=rust|python` runs one
//! language; `WEIR_BENCH_SWAPS`, default 50).

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use support::*;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use weir::admin::Metrics;
use weir::runtime::Runtime;

/// Rounds of each kind, alternating (baseline, swaps, baseline, swaps).
const ROUNDS: usize = 2;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The host's own account of each swap, from its log events.

/// Log events of a swap, in the order the run loop emits them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// `plugin swapped`: the new version is installed (the stall began just before).
    Swapped,
    /// `covered outputs stored`: the barrier checkpoint's snapshot is taken and the outputs
    /// of the batches before it are acknowledged by the sink stream.
    Covered,
    /// `committed; publishing held outputs`: the manifest is in the KV bucket.
    Committed,
    /// `swap done`: the source is acknowledged and the checkpoint collected; next batch.
    Done { stall_us: u64 },
}

type Timeline = Arc<Mutex<Vec<(Instant, Mark)>>>;

/// A tracing layer recording [`Mark`]s with the time they were logged.
struct MarkLayer(Timeline);

#[derive(Default)]
struct MarkVisitor {
    message: String,
    stall_us: u64,
}

impl tracing::field::Visit for MarkVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "stall_us" {
            self.stall_us = value;
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for MarkLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let now = Instant::now();
        let mut v = MarkVisitor::default();
        event.record(&mut v);
        let mark = match v.message.as_str() {
            "plugin swapped" => Mark::Swapped,
            "covered outputs stored" => Mark::Covered,
            "committed; publishing held outputs" => Mark::Committed,
            "swap done" => Mark::Done {
                stall_us: v.stall_us,
            },
            _ => return,
        };
        self.0.lock().unwrap().push((now, mark));
    }
}

/// The phases of one swap's stall (µs): install, snapshot + outputs in flight acknowledged,
/// checkpoint commit (KV), source ack + collect. `None` if a mark is missing.
fn split(marks: &[(Instant, Mark)]) -> Vec<[u64; 4]> {
    let mut out = Vec::new();
    for (i, &(done_at, mark)) in marks.iter().enumerate() {
        let Mark::Done { stall_us } = mark else {
            continue;
        };
        let began = done_at - Duration::from_micros(stall_us);
        let before = &marks[..i];
        let last = |m: fn(&Mark) -> bool| {
            before
                .iter()
                .rev()
                .take_while(|(t, _)| *t >= began)
                .find(|(_, k)| m(k))
                .map(|(t, _)| *t)
        };
        let (Some(sw), Some(cov), Some(com)) = (
            last(|m| *m == Mark::Swapped),
            last(|m| *m == Mark::Covered),
            last(|m| *m == Mark::Committed),
        ) else {
            continue;
        };
        let us = |a: Instant, b: Instant| b.saturating_duration_since(a).as_micros() as u64;
        out.push([us(began, sw), us(sw, cov), us(cov, com), us(com, done_at)]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The sink side: when outputs arrive.

/// Gaps of more than [`GAP_FLOOR`] between two consecutive outputs: (arrival of the second,
/// gap). Smaller gaps are between the messages of one batch.
type Gaps = Arc<Mutex<Vec<(Instant, Duration)>>>;

const GAP_FLOOR: Duration = Duration::from_micros(500);

async fn watch_arrivals(client: async_nats::Client, subject: String, gaps: Gaps) {
    let mut sub = client.subscribe(subject).await.unwrap();
    let mut last: Option<Instant> = None;
    while sub.next().await.is_some() {
        let now = Instant::now();
        if let Some(l) = last {
            let gap = now - l;
            if gap > GAP_FLOOR {
                gaps.lock().unwrap().push((now, gap));
            }
        }
        last = Some(now);
    }
}

/// The longest gap ending within `[from, to]`.
fn longest_gap(gaps: &[(Instant, Duration)], from: Instant, to: Instant) -> Duration {
    gaps.iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, g)| *g)
        .max()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// p50 / p99 / max of `values` (µs) in ms.
fn summary(values: &[u64]) -> String {
    let mut v = values.to_vec();
    v.sort_unstable();
    format!(
        "{} / {} / {}",
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.99)),
        ms(*v.last().unwrap_or(&0))
    )
}

/// Replaces `live` with `component` the way a build does: a new file renamed over it.
fn install(component: &Path, live: &Path) {
    let tmp = live.with_extension("wasm.tmp");
    std::fs::copy(component, &tmp).unwrap();
    std::fs::rename(&tmp, live).unwrap();
}

/// Builds a Python stamp transform adding `"v": version` into `dir` (componentize-py).
fn build_python_stamp(dir: &Path, version: u32) -> PathBuf {
    let src = dir.join(format!("stamp-py-v{version}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("weir-plugin.toml"),
        "name = \"stamp\"\nlang = \"python\"\nworld = \"transform\"\nmodule = \"app\"\n",
    )
    .unwrap();
    std::fs::write(
        src.join("app.py"),
        format!(
            "\"\"\"stamp, version {version}: adds \\\"v\\\": {version} to JSON object payloads.\"\"\"\n\n\
             import weir\n\n\
             VERSION = {version}\n\n\n\
             @weir.transform\n\
             def process(event, config):\n    doc = event.json\n    doc[\"v\"] = VERSION\n    return doc\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("stamp_py_v{version}.wasm"));
    let t = Instant::now();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(root().join("sdk/python/build.sh"))
        .arg(&src)
        .arg(&out);
    plugin_toolchains(&mut cmd);
    let status = cmd.status().expect("running sdk/python/build.sh");
    assert!(
        status.success(),
        "building the Python stamp v{version} failed"
    );
    println!(
        "built Python stamp v{version} ({:.1} MB) in {:.1}s",
        std::fs::metadata(&out).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    out
}

/// One pipeline run of a language, driven round by round.
struct Hot {
    metrics: Arc<Metrics>,
    live: PathBuf,
    versions: [PathBuf; 2],
    /// The version the file holds now (index into `versions`).
    current: usize,
    timeline: Timeline,
    gaps: Gaps,
}

/// One swap as the bench saw it.
struct Swap {
    /// The host's `swap_stall_us`.
    stall_us: u64,
    /// File written → `Metrics::swaps` moved (watch debounce, load, compile, the barrier).
    latency: Duration,
    /// The longest gap between two outputs at the sink around it.
    sink_gap: Duration,
}

impl Hot {
    /// Writes the other version and waits for the swap.
    async fn swap(&mut self) -> Swap {
        let next = 1 - self.current;
        let before = self.metrics.swaps.load(Relaxed);
        let written = Instant::now();
        install(&self.versions[next], &self.live);
        while self.metrics.swaps.load(Relaxed) == before {
            assert!(
                written.elapsed() < Duration::from_secs(180),
                "no swap within 180 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let latency = written.elapsed();
        // `swaps` moves before the barrier commits; the stall is logged after it.
        let waited = Instant::now();
        let stall_us = loop {
            let done = self
                .timeline
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take_while(|(at, _)| *at >= written)
                .find_map(|(_, m)| match m {
                    Mark::Done { stall_us } => Some(*stall_us),
                    _ => None,
                });
            if let Some(s) = done {
                break s;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "no \"swap done\" within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        self.current = next;
        // Outputs after the barrier arrive within a batch's time: look a little further.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sink_gap = longest_gap(&self.gaps.lock().unwrap(), written, Instant::now());
        Swap {
            stall_us,
            latency,
            sink_gap,
        }
    }

    /// Waits until `n` more events are read; returns events/s and the count.
    async fn round(&self, n: u64) -> (f64, u64) {
        let from = self.metrics.inputs.load(Relaxed);
        let started = Instant::now();
        while self.metrics.inputs.load(Relaxed) < from + n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let read = self.metrics.inputs.load(Relaxed) - from;
        (read as f64 / started.elapsed().as_secs_f64(), read)
    }
}

/// Result of one language.
struct CaseResult {
    label: String,
    swaps: Vec<Swap>,
    phases: Vec<[u64; 4]>,
    base: Vec<f64>,
    with: Vec<f64>,
    first: Vec<Swap>,
    baseline_gaps: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn run_case(
    rt: &Runtime,
    server: &NatsServer,
    js: &jetstream::Context,
    label: &str,
    name: &str,
    versions: [PathBuf; 2],
    n: u64,
    swaps: usize,
    timeline: &Timeline,
) -> CaseResult {
    let out_stream = format!("OUT_{name}");
    let subject = format!("out.{name}");
    js.create_stream(stream::Config {
        name: out_stream.clone(),
        subjects: vec![subject.clone(), format!("dlq.{name}")],
        // effectively-once needs checkpoint.interval + recovery_time (1 s + 10 s); outputs
        // are not read back, so the stream keeps the newest only.
        duplicate_window: Duration::from_secs(15),
        max_messages: 200_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stamp.wasm");
    std::fs::copy(&versions[0], &live).unwrap();
    let text = format!(
        "name = \"{name}\"\n[source]\nstream = \"IN\"\nbatch_size = 1000\nmax_wait = \"20ms\"\n\
         [[operators]]\nname = \"stamp\"\nplugin = \"stamp.wasm\"\nconfig = {{}}\n\
         [sink]\nsubject = \"{subject}\"\ndead_letter = \"dlq.{name}\"\n\
         [checkpoint]\nrecovery_time = \"10s\"\n"
    );
    let pipeline = weir::config::parse(&dir.path().join("p.toml"), text).unwrap();
    let gaps: Gaps = Arc::default();
    let client = async_nats::connect(server.url()).await.unwrap();
    let watcher = tokio::spawn(watch_arrivals(client, subject, gaps.clone()));
    let metrics = Metrics::new(name);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (rt2, url, m2) = (rt.clone(), server.url(), metrics.clone());
    let task = tokio::spawn(async move {
        weir::pipeline::nats::run(
            &rt2,
            &pipeline,
            &weir::connect::NatsOptions::from_url(&url).unwrap(),
            async {
                let _ = stop_rx.await;
            },
            m2,
            weir::checkpoint::StartFrom::Fresh,
            true,
        )
        .await
    });
    let started = Instant::now();
    while metrics.inputs.load(Relaxed) == 0 {
        assert!(
            !task.is_finished(),
            "the pipeline stopped: {:?}",
            task.await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "[{label}] consuming {:.1}s after the start",
        started.elapsed().as_secs_f64()
    );
    let mut hot = Hot {
        metrics: metrics.clone(),
        live,
        versions,
        current: 0,
        timeline: timeline.clone(),
        gaps: gaps.clone(),
    };
    // Warm-up: the first swap to each version; v2 was never compiled (for Python: built
    // above, new bytes), so its swap includes the compile — before the barrier.
    let mut first = Vec::new();
    for _ in 0..2 {
        let s = hot.swap().await;
        println!(
            "[{label}] warm-up swap to v{}: file → swap {:.0} ms, stall {} ms, sink gap {:.1} ms",
            hot.current + 1,
            s.latency.as_secs_f64() * 1000.0,
            ms(s.stall_us),
            s.sink_gap.as_secs_f64() * 1000.0
        );
        first.push(s);
    }
    let marks_from = timeline.lock().unwrap().len();
    let mut result = CaseResult {
        label: label.into(),
        swaps: Vec::new(),
        phases: Vec::new(),
        base: Vec::new(),
        with: Vec::new(),
        first,
        baseline_gaps: Vec::new(),
    };
    for round in 0..ROUNDS {
        let t = Instant::now();
        let (rate, read) = hot.round(n).await;
        let round_gaps: Vec<u64> = gaps
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, g)| g.as_micros() as u64)
            .collect();
        result.baseline_gaps.extend(round_gaps);
        println!("[{label}] round {round}, baseline: {read} events, {rate:.0} events/s");
        result.base.push(rate);

        let mut done = Vec::new();
        let (rate, read) = {
            let busy = async {
                for _ in 0..swaps {
                    done.push(hot.swap().await);
                }
            };
            // `hot` is borrowed mutably by `busy`: count inputs on the metrics directly.
            let from = metrics.inputs.load(Relaxed);
            let began = Instant::now();
            busy.await;
            while metrics.inputs.load(Relaxed) < from + n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let read = metrics.inputs.load(Relaxed) - from;
            (read as f64 / began.elapsed().as_secs_f64(), read)
        };
        let stalls: Vec<u64> = done.iter().map(|s| s.stall_us).collect();
        println!(
            "[{label}] round {round}, {swaps} swaps: {read} events, {rate:.0} events/s; \
             stall p50/p99/max {} ms",
            summary(&stalls)
        );
        result.with.push(rate);
        result.swaps.extend(done);
    }
    assert!(
        !task.is_finished(),
        "the pipeline stopped: {:?}",
        task.await
    );
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    watcher.abort();
    result.phases = split(&timeline.lock().unwrap()[marks_from..]);
    let _ = js.delete_stream(&out_stream).await;
    result
}

/// The table row of `r`.
fn row(r: &CaseResult) {
    let stalls: Vec<u64> = r.swaps.iter().map(|s| s.stall_us).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (b, w) = (mean(&r.base), mean(&r.with));
    let rates = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| {} | {} | {} | {} | {} | {:.2} |",
        r.label,
        stalls.len(),
        summary(&stalls),
        rates(&r.base),
        rates(&r.with),
        w / b
    );
}

/// What the table does not show: the sink side, latency, the stall's phases, first loads.
fn details(r: &CaseResult) {
    let gaps: Vec<u64> = r
        .swaps
        .iter()
        .map(|s| s.sink_gap.as_micros() as u64)
        .collect();
    let latency: Vec<u64> = r
        .swaps
        .iter()
        .map(|s| s.latency.as_micros() as u64)
        .collect();
    println!();
    println!("== {} ==", r.label);
    println!(
        "sink-side longest gap around a swap, p50/p99/max: {} ms",
        summary(&gaps)
    );
    println!(
        "sink-side gaps between batches in the baseline rounds (> {} µs), p50/p99/max: {} ms",
        GAP_FLOOR.as_micros(),
        summary(&r.baseline_gaps)
    );
    println!("file written → swap, p50/p99/max: {} ms", summary(&latency));
    if r.phases.is_empty() {
        // The swap does not wait for a checkpoint: the stall is the install alone.
        println!("stall split: none (the swap waits for no checkpoint)");
    } else {
        let phase = |i: usize| -> Vec<u64> { r.phases.iter().map(|p| p[i]).collect() };
        println!(
            "stall split over {} swaps, p50/p99/max ms: install {}; snapshot + outputs in flight \
             acknowledged {}; checkpoint commit {}; source ack + collect {}",
            r.phases.len(),
            summary(&phase(0)),
            summary(&phase(1)),
            summary(&phase(2)),
            summary(&phase(3))
        );
    }
    for (s, what) in r
        .first
        .iter()
        .zip(["to v2, never loaded before", "back to v1"])
    {
        println!(
            "warm-up swap {what}: file → swap {:.0} ms, stall {} ms, sink gap {:.1} ms",
            s.latency.as_secs_f64() * 1000.0,
            ms(s.stall_us),
            s.sink_gap.as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    let n = env_or("WEIR_BENCH_EVENTS", 1_000_000);
    let swaps = env_or("WEIR_BENCH_SWAPS", 50) as usize;
    let only = std::env::var("WEIR_BENCH_CASE").ok();
    let want = |c: &str| only.as_deref().is_none_or(|o| o == c);
    let timeline: Timeline = Arc::default();
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("weir::checkpoint", tracing::Level::TRACE)
        .with_target("weir::pipeline", tracing::Level::INFO);
    let errors = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(MarkLayer(timeline.clone()).with_filter(filter))
            .with(errors),
    )
    .unwrap();

    let work = tempfile::tempdir().unwrap();
    let mut cases: Vec<(&str, &str, [PathBuf; 2])> = Vec::new();
    if want("rust") {
        cases.push((
            "Rust (stamp ↔ stamp_v2)",
            "hot-rust",
            [plugin("stamp"), plugin("stamp_v2")],
        ));
    }
    if want("python") {
        let v = [
            build_python_stamp(work.path(), 1),
            build_python_stamp(work.path(), 2),
        ];
        cases.push(("Python (stamp v1 ↔ v2)", "hot-python", v));
    }

    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "IN", &["in.>"]).await;
        // Every case reads IN from its start: enough for the rounds, a swap round running
        // past its `n` events while its swaps finish, and the warm-up.
        let total = n * (3 * ROUNDS as u64 + 1);
        let t = Instant::now();
        let mut window = std::collections::VecDeque::new();
        for i in 0..total {
            let mut p = format!(
                "{{\"user\":{i},\"amount\":{},\"page\":\"/p/{}\"",
                i % 200,
                i % 97
            )
            .into_bytes();
            p.resize(99, b' ');
            p.push(b'}');
            window.push_back(js.publish("in.clicks", p.into()).await.unwrap());
            if window.len() >= 4000 {
                window.pop_front().unwrap().await.unwrap();
            }
        }
        for f in window {
            f.await.unwrap();
        }
        println!(
            "published {total} events of 100 B in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let rt = Runtime::new(Some(cache_dir())).unwrap();
        let mut results = Vec::new();
        for (label, name, versions) in cases {
            let r = run_case(&rt, &server, &js, label, name, versions, n, swaps, &timeline).await;
            assert!(
                r.base.len() == ROUNDS,
                "{label}: rounds missing"
            );
            results.push(r);
        }
        println!();
        println!("| case | swaps | stall p50 / p99 / max (ms) | events/s without swaps | events/s with swaps | ratio |");
        println!("|---|---:|---|---|---|---:|");
        for r in &results {
            row(r);
        }
        for r in &results {
            details(r);
        }
    });
}
