//! End-to-end throughput through a real nats-server: JetStream in → operator chain → JetStream
//! out, acknowledged, in one process. The baseline is the same pipeline with no operator
//! (consume → republish with message ids → ack), run in the same process right before, so the
//! ratio shows what the Wasm chain costs on this (shared, noisy) machine.
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo bench -p weir-host --bench pipeline`
//! (`WEIR_BENCH_EVENTS` sets the event count, default 200000).

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;
use weir::runtime::Runtime;

async fn out_count(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// Runs pipeline `text` over the `n` events already in stream IN; returns events/s.
async fn run_case(
    rt: &Runtime,
    server: &NatsServer,
    js: &async_nats::jetstream::Context,
    name: &str,
    ops: &str,
    n: u64,
) -> f64 {
    let out_stream = format!("OUT_{}", name.replace('-', "_"));
    let subject = format!("out.{name}");
    create_stream(js, &out_stream, &[&subject, &format!("dlq.{name}")]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"{name}\"\n[source]\nstream = \"IN\"\nbatch_size = 1000\nmax_wait = \"20ms\"\n{ops}\n[sink]\nsubject = \"{subject}\"\ndead_letter = \"dlq.{name}\"\n"
    );
    let pipeline = weir::config::parse(&dir.path().join("p.toml"), text).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (rt2, url) = (rt.clone(), server.url());
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let metrics = weir::admin::Metrics::new("bench");
        weir::pipeline::nats::run(
            &rt2,
            &pipeline,
            &weir::connect::NatsOptions::from_url(&url).unwrap(),
            async {
                let _ = stop_rx.await;
            },
            metrics,
            weir::checkpoint::StartFrom::Fresh,
            false,
        )
        .await
    });
    while out_count(js, &out_stream).await < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    n as f64 / secs
}

fn main() {
    let n: u64 = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async {
        let server = NatsServer::start();
        let js = server.jetstream().await;
        create_stream(&js, "IN", &["in.>"]).await;
        let events: Vec<_> = (0..n)
            .map(|i| {
                let mut p = format!(
                    "{{\"user\":{i},\"amount\":{},\"page\":\"/p/{}\"",
                    i % 200,
                    i % 97
                )
                .into_bytes();
                p.resize(99, b' ');
                p.push(b'}');
                (Some(format!("user-{}", i % 1000)), p)
            })
            .collect();
        let t = Instant::now();
        publish_all(&js, "in.clicks", &events).await;
        println!(
            "published {n} events of 100 B in {:.2}s",
            t.elapsed().as_secs_f64()
        );

        let rt = Runtime::new(Some(std::env::temp_dir().join("weir-bench-cache"))).unwrap();
        let pass = operator("pass", "passthrough", "{}");
        let chain = [
            operator(
                "big",
                "json_filter",
                r#"{ field = "amount", op = "ge", value = 0 }"#,
            ),
            operator("key", "rekey", r#"{ field = "page" }"#),
            operator(
                "shape",
                "json_map",
                r#"{ fields = ["user", "page"], set = { v = 1 } }"#,
            ),
        ]
        .join("\n");
        println!("| pipeline | events/s | vs. no operator |");
        println!("|---|---|---|");
        let base = run_case(&rt, &server, &js, "no-operator", "", n).await;
        println!("| consume → republish → ack, no operator (baseline) | {base:.0} | 1.00 |");
        for (name, ops, label) in [
            (
                "passthrough",
                pass.as_str(),
                "one Rust passthrough operator",
            ),
            (
                "json-chain",
                chain.as_str(),
                "filter → rekey → map (JSON parse + serialize ×3)",
            ),
        ] {
            let rate = run_case(&rt, &server, &js, name, ops, n).await;
            println!("| {label} | {rate:.0} | {:.2} |", rate / base);
        }
    });
}
