//! What checkpoints cost, through a real nats-server:
//!
//! 1. throughput of a windowed pipeline holding 100,000 keys of state with a checkpoint every
//!    second vs. none during the run (an interval of 100 s), alternated in the same process;
//! 2. the processing pause per checkpoint (state snapshot) and the blob size;
//! 3. recovery: `kill -9` of a `weir run` process, restart, time to its first new output.
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo build --release &&
//! cargo bench -p weir-host --bench checkpoint` (`WEIR_BENCH_EVENTS`, default 400000).

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use support::*;
use weir::admin::Metrics;
use weir::runtime::Runtime;

const KEYS: u64 = 100_000;
const BASE: i64 = 1_700_000_000_000;
/// Rounds of (no checkpoint, checkpoint every second).
const ROUNDS: usize = 5;

fn pipeline_text(name: &str, interval: &str, window: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
stream = "IN"
batch_size = 1000
max_wait = "20ms"
time = {{ header = "T" }}
watermarks = {{ out_of_orderness = "1s" }}
[window]
type = "tumbling"
size = "{window}"
[window.aggregate]
name = "sum"
plugin = "{}"
config = {{ field = "amount" }}
[sink]
subject = "out.{name}"
dead_letter = "dlq.{name}"
[checkpoint]
interval = "{interval}"
recovery_time = "10s"
"#,
        toml_path(&plugin("kit_sum"))
    )
}

/// Runs one case over the `n` events in IN: (events/s, checkpoints, max pause µs, last blob B).
async fn run_case(
    rt: &Runtime,
    server: &NatsServer,
    js: &async_nats::jetstream::Context,
    name: &str,
    interval: &str,
    n: u64,
) -> (f64, u64, u64, u64) {
    create_stream(
        js,
        &format!("OUT_{name}"),
        &[&format!("out.{name}"), &format!("dlq.{name}")],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text(name, interval, "1h");
    let pipeline = weir::config::parse(&dir.path().join("p.toml"), text).unwrap();
    let metrics = Metrics::new(name);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (rt2, url, m2) = (rt.clone(), server.url(), metrics.clone());
    let started = Instant::now();
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
            false,
        )
        .await
    });
    let mut max_pause = 0;
    let mut seen = 0;
    while metrics.inputs.load(Relaxed) < n {
        if task.is_finished() {
            panic!("the pipeline stopped: {:?}", task.await);
        }
        let c = metrics.checkpoints.load(Relaxed);
        if c != seen {
            seen = c;
            max_pause = max_pause.max(metrics.checkpoint_pause_us.load(Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    let m: Arc<Metrics> = metrics;
    (
        n as f64 / secs,
        m.checkpoints.load(Relaxed),
        max_pause.max(m.checkpoint_pause_us.load(Relaxed)),
        m.checkpoint_bytes.load(Relaxed),
    )
}

async fn stream_count(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Kills a `weir run` process mid-stream and measures the time from the restart to its first
/// new output (restore + replay + the first window results).
async fn recovery(server: &NatsServer, js: &async_nats::jetstream::Context) -> Duration {
    create_stream(js, "OUT_recovery", &["out.recovery", "dlq.recovery"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_pipeline(dir.path(), &pipeline_text("recovery", "1s", "1s"));
    let release = root().join("target/release/weir");
    let bin = if release.is_file() {
        release
    } else {
        weir_bin()
    };
    let start = || {
        std::process::Command::new(&bin)
            .env("WEIR_CACHE_DIR", cache_dir())
            .arg("run")
            .arg(&file)
            .args(["--nats-url", &server.url()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = start();
    while stream_count(js, "OUT_recovery").await < 20_000 {
        assert!(first.try_wait().unwrap().is_none(), "weir run exited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let before = stream_count(js, "OUT_recovery").await;
    let t = Instant::now();
    let mut second = start();
    while stream_count(js, "OUT_recovery").await <= before {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = t.elapsed();
    let _ = second.kill();
    let _ = second.wait();
    took
}

fn main() {
    let n: u64 = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "IN", &["in.>"]).await;
        let t = Instant::now();
        let mut window = std::collections::VecDeque::new();
        for i in 0..n {
            let mut h = HeaderMap::new();
            h.insert("Weir-Key", format!("user-{}", i % KEYS).as_str());
            h.insert("T", (BASE + i as i64).to_string().as_str());
            let payload = format!("{{\"amount\":{},\"pad\":\"{}\"}}", i % 500, "x".repeat(40));
            window.push_back(js.publish_with_headers("in.e", h, payload.into()).await.unwrap());
            if window.len() >= 4000 {
                window.pop_front().unwrap().await.unwrap();
            }
        }
        for f in window {
            f.await.unwrap();
        }
        println!("published {n} events over {KEYS} keys in {:.1}s", t.elapsed().as_secs_f64());
        let rt = Runtime::new(Some(cache_dir())).unwrap();
        println!("| run | no checkpoint during the run (interval 100 s; ev/s) | checkpoint every 1 s (ev/s) | ratio | checkpoints | max pause | blob |");
        println!("|---|---|---|---|---|---|---|");
        let mut ratios = Vec::new();
        // The order alternates (the first case of a round runs on a colder server).
        for round in 0..ROUNDS {
            let (base, rate, cps, pause, bytes) = if round % 2 == 0 {
                let (base, ..) =
                    run_case(&rt, &server, &js, &format!("none{round}"), "100s", n).await;
                let (rate, cps, pause, bytes) =
                    run_case(&rt, &server, &js, &format!("every{round}"), "1s", n).await;
                (base, rate, cps, pause, bytes)
            } else {
                let (rate, cps, pause, bytes) =
                    run_case(&rt, &server, &js, &format!("every{round}"), "1s", n).await;
                let (base, ..) =
                    run_case(&rt, &server, &js, &format!("none{round}"), "100s", n).await;
                (base, rate, cps, pause, bytes)
            };
            ratios.push(rate / base);
            println!(
                "| {round} | {base:.0} | {rate:.0} | {:.3} | {cps} | {:.1} ms | {:.1} MB |",
                rate / base,
                pause as f64 / 1000.0,
                bytes as f64 / 1e6
            );
        }
        ratios.sort_by(f64::total_cmp);
        println!("median ratio: {:.3}", ratios[ROUNDS / 2]);
        let took = recovery(&server, &js).await;
        println!("recovery, kill -9 → restart → first new output: {:.0} ms", took.as_secs_f64() * 1000.0);
    });
}
