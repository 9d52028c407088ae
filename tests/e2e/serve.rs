//! `weir serve` and `weir pipeline apply|list|status|delete` against a real nats-server: two
//! pipelines applied and producing, a re-apply restarting one from its checkpoint with the new
//! definition, a delete stopping one, a broken one failing alone, the admin endpoint, and a
//! SIGTERM under load followed by a new host continuing with no loss or duplicate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::support::*;

/// `weir pipeline ARGS` against `url`.
fn pipeline_cmd(url: &str, args: &[&str]) -> Output {
    let mut cmd = weir();
    cmd.arg("pipeline").args(args).env("WEIR_NATS_URL", url);
    output_within(cmd, Duration::from_secs(180))
}

/// `weir pipeline ARGS`, which must succeed; its standard output.
fn pipeline_ok(url: &str, args: &[&str]) -> String {
    let out = pipeline_cmd(url, args);
    assert!(
        out.status.success(),
        "weir pipeline {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `weir serve` against `url` as host `host_id`, admin on `admin`, logging to `log`.
fn start_serve(url: &str, host_id: &str, admin: &str, log: &Path) -> WeirProcess {
    let stderr = std::fs::File::create(log).unwrap();
    let child = weir()
        .arg("serve")
        .env("WEIR_NATS_URL", url)
        .env("WEIR_HOST_ID", host_id)
        .env("WEIR_ADMIN", admin)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting weir serve");
    WeirProcess {
        child,
        stderr_path: log.to_owned(),
    }
}

/// A pipeline `name` from `in.NAME` to `out.NAME` through `json-map` setting `v` to `version`,
/// written to `dir/NAME.toml`.
fn mapping_pipeline(dir: &Path, name: &str, version: u32) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
[source]
stream = "IN"
subjects = ["in.{name}"]
batch_size = 100
max_wait = "50ms"

[[operators]]
name = "map"
plugin = "{}"
config = {{ set = {{ v = {version} }} }}

[sink]
subject = "out.{name}"
dead_letter = "dlq.{name}"

[checkpoint]
interval = "500ms"
"#,
        toml_path(&plugin("json_map"))
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

async fn streams(js: &jetstream::Context) {
    create_stream(js, "IN", &["in.>"]).await;
    create_stream(js, "OUT", &["out.>", "dlq.>"]).await;
}

/// Publishes events `{"n": from..to}` to `in.NAME`.
async fn publish_range(js: &jetstream::Context, name: &str, from: u32, to: u32) {
    let events: Vec<_> = (from..to)
        .map(|n| (None, format!("{{\"n\":{n}}}").into_bytes()))
        .collect();
    publish_all(js, &format!("in.{name}"), &events).await;
}

/// The outputs on `out.NAME` by `n`: the `v` of each (several if duplicated).
async fn outputs(js: &jetstream::Context, name: &str, expected: usize) -> BTreeMap<u64, Vec<u64>> {
    let got = collect(
        js,
        "OUT",
        &format!("out.{name}"),
        expected,
        Duration::from_secs(60),
    )
    .await;
    let mut by_n: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for m in got {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        by_n.entry(v["n"].as_u64().unwrap())
            .or_default()
            .push(v["v"].as_u64().unwrap());
    }
    by_n
}

/// Waits until `weir pipeline status NAME --json` satisfies `ok`, at most `limit`; the status.
fn wait_status(
    url: &str,
    name: &str,
    limit: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
    log: &dyn Fn() -> String,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let out = pipeline_cmd(url, &["status", name, "--json"]);
        let status: serde_json::Value = if out.status.success() {
            serde_json::from_slice(&out.stdout).unwrap()
        } else {
            serde_json::Value::Null
        };
        if ok(&status) {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "status of {name} not reached within {limit:?}: {status}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn state(status: &serde_json::Value) -> &str {
    status["status"]["state"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_applied_pipelines_restarts_on_reapply_stops_on_delete_and_isolates_failures() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    streams(&js).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let admin = free_addr();
    let host = start_serve(&url, "host-a", &admin, &dir.path().join("serve.log"));
    let log = host.log_reader();

    // Two pipelines applied: both produce.
    let a = mapping_pipeline(dir.path(), "alpha", 1);
    let b = mapping_pipeline(dir.path(), "beta", 1);
    let applied = pipeline_ok(&url, &["apply", a.to_str().unwrap()]);
    assert!(applied.contains("nats:alpha-map@1"), "{applied}");
    pipeline_ok(&url, &["apply", b.to_str().unwrap()]);
    let again = pipeline_ok(&url, &["apply", b.to_str().unwrap()]);
    assert!(again.contains("nothing changed"), "{again}");
    for name in ["alpha", "beta"] {
        let s = wait_status(
            &url,
            name,
            Duration::from_secs(60),
            |s| state(s) == "running",
            &log,
        );
        assert_eq!(s["status"]["host"], "host-a", "{s}");
        publish_range(&js, name, 0, 200).await;
    }
    for name in ["alpha", "beta"] {
        let got = outputs(&js, name, 200).await;
        assert_eq!(got.len(), 200, "{name}: {got:?}\n{}", log());
        assert!(got.values().all(|v| v == &[1]), "{name}: {got:?}");
    }

    // Re-apply alpha with another config: it restarts from its checkpoint with it.
    let revision_before = wait_status(
        &url,
        "alpha",
        Duration::from_secs(30),
        |s| s["status"]["events_in"].as_u64() == Some(200),
        &log,
    )["applied_revision"]
        .as_u64()
        .unwrap();
    mapping_pipeline(dir.path(), "alpha", 2);
    pipeline_ok(&url, &["apply", a.to_str().unwrap()]);
    wait_status(
        &url,
        "alpha",
        Duration::from_secs(60),
        |s| {
            s["status"]["applied_revision"].as_u64() > Some(revision_before)
                && state(s) == "running"
        },
        &log,
    );
    publish_range(&js, "alpha", 200, 400).await;
    let got = outputs(&js, "alpha", 400).await;
    assert_eq!(got.len(), 400, "{got:?}\n{}", log());
    for (n, vs) in &got {
        let want = if *n < 200 { 1 } else { 2 };
        assert_eq!(vs, &[want], "event {n}: {got:?}");
    }

    // A pipeline over a stream that does not exist fails, alone, and says why.
    let broken = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(mapping_pipeline(dir.path(), "gamma", 1))
        .unwrap()
        .replace("stream = \"IN\"", "stream = \"NOPE\"");
    std::fs::write(&broken, text).unwrap();
    pipeline_ok(&url, &["apply", broken.to_str().unwrap()]);
    let s = wait_status(
        &url,
        "gamma",
        Duration::from_secs(60),
        |s| state(s) == "failed",
        &log,
    );
    let reason = s["status"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("NOPE"), "{s}");
    let listed = pipeline_ok(&url, &["list"]);
    assert!(
        listed.contains("gamma") && listed.contains("failed"),
        "{listed}"
    );
    let (code, ready) = http_get_status(&admin, "/ready");
    assert_eq!(code, 503, "{ready}");
    assert!(ready.contains("gamma: failed"), "{ready}");
    publish_range(&js, "beta", 200, 300).await;
    assert_eq!(outputs(&js, "beta", 300).await.len(), 300, "{}", log());

    // The admin endpoint: metrics per pipeline, statuses as JSON.
    let metrics = http_get(&admin, "/metrics");
    assert!(
        metrics.contains("weir_input_events_total{pipeline=\"alpha\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_input_events_total{pipeline=\"beta\"}"),
        "{metrics}"
    );
    assert_eq!(
        metrics.matches("# TYPE weir_input_events_total").count(),
        1,
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_serve_pipelines{state=\"failed\"} 1"),
        "{metrics}"
    );
    let listed: serde_json::Value = serde_json::from_str(&http_get(&admin, "/pipelines")).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    // Deleted: beta stops (its status goes) and takes no more input; gamma too.
    let out = pipeline_ok(&url, &["delete", "beta", "--wait", "60s"]);
    assert!(out.contains("stopped"), "{out}");
    pipeline_ok(&url, &["delete", "gamma", "--wait", "60s"]);
    publish_range(&js, "beta", 300, 350).await;
    // Had it taken them, they would be out within these 2 s (and the 0.5 s `outputs` waits
    // for more after the 300 it expects).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(outputs(&js, "beta", 300).await.len(), 300);
    let gone = pipeline_cmd(&url, &["status", "beta"]);
    assert_eq!(gone.status.code(), Some(1));
    let (code, ready) = http_get_status(&admin, "/ready");
    assert_eq!(code, 200, "{ready}");

    assert_eq!(host.terminate(), Some(0), "{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_stops_every_pipeline_at_a_checkpoint_and_a_new_host_goes_on_exactly() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    streams(&js).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let names = ["one", "two"];
    for name in names {
        let file = mapping_pipeline(dir.path(), name, 1);
        pipeline_ok(&url, &["apply", file.to_str().unwrap()]);
    }
    let first = start_serve(&url, "host-1", &free_addr(), &dir.path().join("serve1.log"));
    let log = first.log_reader();
    for name in names {
        wait_status(
            &url,
            name,
            Duration::from_secs(60),
            |s| state(s) == "running",
            &log,
        );
    }
    // Publish while the host runs; stop it in the middle.
    let total = 3000;
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for chunk in (0..total).step_by(100) {
                for name in names {
                    publish_range(&js, name, chunk, chunk + 100).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let stopped_at = Instant::now();
    assert_eq!(first.terminate(), Some(0), "{}", log());
    assert!(stopped_at.elapsed() < Duration::from_secs(20));
    assert!(log().contains("stopped"), "{}", log());
    for name in names {
        let s = wait_status(&url, name, Duration::from_secs(5), |_| true, &log);
        assert_eq!(state(&s), "stopped", "{s}");
    }
    publisher.await.unwrap();

    let second = start_serve(&url, "host-2", &free_addr(), &dir.path().join("serve2.log"));
    let log2 = second.log_reader();
    for name in names {
        let got = outputs(&js, name, total as usize).await;
        assert_eq!(got.len(), total as usize, "{name}\n{}", log2());
        let doubled: Vec<_> = got.iter().filter(|(_, v)| v.len() != 1).collect();
        assert!(doubled.is_empty(), "{name}: duplicates {doubled:?}");
        let s = wait_status(
            &url,
            name,
            Duration::from_secs(10),
            |s| state(s) == "running",
            &log2,
        );
        assert_eq!(s["status"]["host"], "host-2", "{s}");
    }
    assert_eq!(second.terminate(), Some(0), "{}", log2());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_and_apply_reach_a_token_secured_server_through_the_environment() {
    let server = NatsServer::start_with(&["--auth", "s3cret-token"]);
    let url = format!("nats://127.0.0.1:{}", server.port);
    let client = async_nats::ConnectOptions::with_token("s3cret-token".into())
        .connect(&url)
        .await
        .unwrap();
    let js = jetstream::new(client);
    streams(&js).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let host = WeirProcess {
        child: weir()
            .arg("serve")
            .env("WEIR_NATS_URL", &url)
            .env("WEIR_NATS_TOKEN", "s3cret-token")
            .stderr(stderr)
            .spawn()
            .unwrap(),
        stderr_path: log,
    };
    let logs = host.log_reader();
    let file = mapping_pipeline(dir.path(), "secure", 1);
    let mut apply = weir();
    apply
        .args(["pipeline", "apply"])
        .arg(&file)
        .env("WEIR_NATS_URL", &url)
        .env("WEIR_NATS_TOKEN", "s3cret-token");
    let out = output_within(apply, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    publish_range(&js, "secure", 0, 50).await;
    let got = outputs(&js, "secure", 50).await;
    assert_eq!(got.len(), 50, "{}", logs());
    assert!(!logs().contains("s3cret-token"), "{}", logs());

    // Without the token, `weir pipeline` is refused, clearly.
    let refused = output_within(
        {
            let mut c = weir();
            c.args(["pipeline", "list"]).env("WEIR_NATS_URL", &url);
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("refused") || err.contains("authorization"),
        "{err}"
    );
    assert_eq!(host.terminate(), Some(0), "{}", logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_serve_admin_needs_its_token_beyond_loopback_and_ready_follows_nats() {
    let mut server = NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "serve-t0ken\n").unwrap();
    let port = free_addr().rsplit(':').next().unwrap().to_owned();
    let (listen, addr) = (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}"));
    let log = dir.path().join("serve.log");
    let host = WeirProcess {
        child: weir()
            .arg("serve")
            .env("WEIR_NATS_URL", &url)
            .env("WEIR_ADMIN", &listen)
            .env("WEIR_ADMIN_TOKEN_FILE", &token_file)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        stderr_path: log,
    };
    let logs = host.log_reader();
    let wait_ready = |code: u16| {
        let started = Instant::now();
        loop {
            let (got, body) = http_get_status(&addr, "/ready");
            if got == code {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{got} {body}\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_ready(200);
    assert_eq!(http_get_status(&addr, "/health").0, 200);
    assert_eq!(http_get_status(&addr, "/pipelines").0, 401);
    assert_eq!(http_get_status(&addr, "/metrics").0, 401);
    let (code, body) = http_get_with_token(&addr, "/pipelines", "serve-t0ken");
    assert_eq!((code, body.trim()), (200, "[]"));

    server.stop();
    let why = wait_ready(503);
    assert!(why.contains("not connected to NATS"), "{why}");
    server.restart();
    wait_ready(200);
    assert!(!logs().contains("serve-t0ken"), "{}", logs());
    assert_eq!(host.terminate(), Some(0), "{}", logs());
}
