//! How long the container image takes from start to ready, against the same static binary run
//! natively — both `weir serve` against one real nats-server, in alternating rounds:
//! - **empty**: no pipeline applied (connect to NATS, open the buckets, serve `/ready`);
//! - **demo**: the demo pipeline (`plugins/pipelines/orders.toml`, four Rust plugins) applied
//!   before the start, with an empty compile cache each time (the container's cache is a fresh
//!   tmpfs; the native run gets a fresh temp dir) — fetch from the registry, compile, restore,
//!   consume.
//!
//! Start to ready = from spawning `podman run` (or the binary) to the first `200` of `/ready`
//! (polled every 10 ms). Also printed: the image size.
//!
//! Run: `bash plugins/build.sh && cargo bench -p weir-host --bench container_start`
//! (`WEIR_BENCH_ROUNDS`, default 5). It builds the image first (`deploy/build-image.sh`).

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const IMAGE: &str = "weir:bench";

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("deploy/podman.sh"))
        .args(args)
        .output()
        .expect("deploy/podman.sh")
}

/// Polls `/ready` on `admin` until it answers 200: the time since `started`.
fn until_ready(admin: &str, started: Instant, child: &mut Option<Child>) -> Duration {
    use std::io::{Read, Write};
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(admin) {
            let _ = write!(s, "GET /ready HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.split(' ').nth(1) == Some("200") {
                return started.elapsed();
            }
        }
        if let Some(c) = child
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!("weir serve exited: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready in 2 min"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One container start: the time to ready; the container is removed after.
fn container_round(url: &str, name: &str) -> Duration {
    let admin = free_addr();
    let _ = podman(&["rm", "-f", "-t", "0", name]);
    let started = Instant::now();
    let out = podman(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/var/cache/weir:rw,U",
        "-e",
        &format!("WEIR_NATS_URL={url}"),
        "-e",
        &format!("WEIR_ADMIN={admin}"),
        "-e",
        &format!("WEIR_HOST_ID={name}"),
        IMAGE,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = until_ready(&admin, started, &mut None);
    let _ = podman(&["stop", "-t", "30", name]);
    let _ = podman(&["rm", "-f", name]);
    took
}

/// One native start of the same static binary: the time to ready.
fn native_round(url: &str, name: &str) -> Duration {
    let admin = free_addr();
    let cache = tempfile::tempdir().unwrap();
    let binary = root().join("target/x86_64-unknown-linux-musl/container/weir");
    let started = Instant::now();
    let child = Command::new(binary)
        .arg("serve")
        .env("WEIR_NATS_URL", url)
        .env("WEIR_ADMIN", &admin)
        .env("WEIR_HOST_ID", name)
        .env("WEIR_CACHE_DIR", cache.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Some(child);
    let took = until_ready(&admin, started, &mut child);
    if let Some(mut c) = child {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let build = Command::new("bash")
        .arg(root().join("deploy/build-image.sh"))
        .arg(IMAGE)
        .output()
        .unwrap();
    let built = String::from_utf8_lossy(&build.stdout);
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    println!("{}", built.trim());
    let rounds: usize = std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "ORDERS", &["orders.>"]).await;
    create_stream(&js, "WAREHOUSE", &["warehouse.>"]).await;
    let url = server.url();
    println!("| case | native (median of {rounds}) | container | ratio |\n|---|---:|---:|---:|");
    for case in ["empty", "demo"] {
        if case == "demo" {
            let mut apply = weir();
            apply
                .args(["pipeline", "apply"])
                .arg(root().join("plugins/pipelines/orders.toml"))
                .env("WEIR_NATS_URL", &url);
            let out = output_within(apply, Duration::from_secs(120));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (mut native, mut container) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let name = format!("weir-bench-{}-{case}-{i}", server.port);
            native.push(native_round(&url, &name));
            container.push(container_round(&url, &name));
        }
        let (n, c) = (median(native), median(container));
        let ratio = c.as_secs_f64() / n.as_secs_f64();
        println!("| {case} | {} | {} | {ratio:.2} |", ms(n), ms(c));
    }
}
