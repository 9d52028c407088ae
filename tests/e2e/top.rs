//! `weir top` against a real nats-server and a `weir serve` host: one snapshot (`--once`,
//! stdout not a terminal) from the status bucket and from the host's admin endpoint shows the
//! pipeline running, its rates and totals, and its operator with version and busy share; an
//! unreachable NATS fails fast and says so; a server with nothing applied says that.

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

/// Publishes 50 events `{"n": …}` to a subject every 50 ms until stopped.
struct Publisher {
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    fn start(js: &async_nats::jetstream::Context, subject: &str) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let (js, subject, flag) = (js.clone(), subject.to_owned(), running.clone());
        let task = tokio::spawn(async move {
            let mut n = 0;
            while flag.load(Ordering::Relaxed) {
                let events: Vec<_> = (n..n + 50)
                    .map(|i| (None, format!("{{\"n\":{i}}}").into_bytes()))
                    .collect();
                publish_all(&js, &subject, &events).await;
                n += 50;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Publisher { running, task }
    }

    async fn stop(self) {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// `weir top ARGS` with `env`, within a minute.
fn top(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = weir();
    cmd.arg("top").args(args).envs(env.iter().copied());
    output_within(cmd, Duration::from_secs(60))
}

/// `weir top ARGS`, which must succeed; its standard output.
fn top_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = top(args, env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "weir top {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The whitespace-separated cells of the first line of `text` starting with `first`.
fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row starting with {first:?}:\n{text}"))
}

/// The pipeline `alpha`: `in.alpha` through `json-map` to `out.alpha`.
fn alpha(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"name = "alpha"
[source]
stream = "IN"
subjects = ["in.alpha"]
batch_size = 100
max_wait = "50ms"

[[operators]]
name = "map"
plugin = "{}"
config = {{ set = {{ v = 1 }} }}

[sink]
subject = "out.alpha"
dead_letter = "dlq.alpha"

[checkpoint]
interval = "500ms"
"#,
        toml_path(&plugin("json_map"))
    );
    let file = dir.join("alpha.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// Starts `weir serve` as `host-a` with its admin endpoint on `admin`.
fn serve(url: &str, admin: &str, log: &Path) -> WeirProcess {
    let child = weir()
        .arg("serve")
        .env("WEIR_NATS_URL", url)
        .env("WEIR_HOST_ID", "host-a")
        .env("WEIR_ADMIN", admin)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting weir serve");
    WeirProcess {
        child,
        stderr_path: log.to_owned(),
    }
}

/// Waits until the host's `/pipelines` says `alpha` is running.
fn wait_running(admin: &str, log: &dyn Fn() -> String) {
    let started = Instant::now();
    loop {
        let listed: serde_json::Value =
            serde_json::from_str(&http_get(admin, "/pipelines")).unwrap_or_default();
        let running = listed
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["pipeline"] == "alpha" && s["state"] == "running");
        if running {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "alpha not running: {listed}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Checks a snapshot: `pipeline` running on `host` with events coming in, and its operator
/// `map` with `version`, a rate and a busy share.
fn check_snapshot(text: &str, (pipeline, host): (&str, &str), version: &str) {
    let header = row(text, "PIPELINE");
    assert_eq!(header[..4], ["PIPELINE", "STATE", "HOST", "IN/S"], "{text}");
    let pipeline = row(text, pipeline);
    assert_eq!(pipeline[1..3], ["running", host], "{text}");
    let in_rate: f64 = pipeline[3].parse().unwrap_or(0.0);
    let total: u64 = pipeline[5].parse().unwrap_or(0);
    assert!(in_rate > 0.0 && total > 0, "no events coming in:\n{text}");
    let operator = row(text, "operator");
    assert_eq!(operator[1..3], ["map", version], "{text}");
    let events: f64 = operator[3].parse().unwrap_or(0.0);
    assert!(events > 0.0, "the operator's rate:\n{text}");
    assert_eq!(operator[4], "0", "no errors:\n{text}");
    let busy = operator[5]
        .strip_suffix('%')
        .unwrap_or_else(|| panic!("{text}"));
    let busy: f64 = busy.parse().unwrap_or(-1.0);
    assert!((0.0..=100.0).contains(&busy), "busy share {busy}:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn top_once_shows_a_served_pipeline_its_rates_and_its_operators_busy_share() {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "IN", &["in.>"]).await;
    create_stream(&js, "OUT", &["out.>", "dlq.>"]).await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let admin = free_addr();
    let host = serve(&url, &admin, &dir.path().join("serve.log"));
    let log = host.log_reader();
    let mut apply = weir();
    apply
        .args(["pipeline", "apply"])
        .arg(alpha(dir.path()))
        .env("WEIR_NATS_URL", &url);
    let applied = output_within(apply, Duration::from_secs(180));
    assert!(applied.status.success(), "{applied:?}");
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(
        !stderr.contains('\x1b')
            && !stderr.contains("(compiling)")
            && !stderr.contains("uploading"),
        "no progress lines when stderr is not a terminal: {stderr}"
    );
    wait_running(&admin, &log);

    // Events keep coming while top looks.
    let publisher = Publisher::start(&js, "in.alpha");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nats = [("WEIR_NATS_URL", url.as_str())];

    let text = top_ok(&["--once"], &nats);
    assert!(
        text.starts_with("weir top · 1 pipeline · status bucket at"),
        "{text}"
    );
    check_snapshot(&text, ("alpha", "host-a"), "nats:alpha-map@1");
    // One pipeline by name; the admin endpoint of the host shows the same.
    let one = top_ok(&["alpha", "--once", "--interval", "500ms"], &nats);
    check_snapshot(&one, ("alpha", "host-a"), "nats:alpha-map@1");
    let via_admin = top_ok(&["--admin", &admin, "--once"], &[]);
    assert!(
        via_admin.contains(&format!("admin endpoint http://{admin}")),
        "{via_admin}"
    );
    let version = row(&via_admin, "operator")[2].to_owned();
    assert!(version.starts_with("sha256:"), "{via_admin}");
    check_snapshot(&via_admin, ("alpha", "host-a"), &version);

    // A pipeline with no status is an error naming it.
    let missing = top(&["nope", "--once"], &nats);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("pipeline \"nope\" has no status"),
        "{stderr}"
    );

    publisher.stop().await;
    assert_eq!(host.terminate(), Some(0), "{}", log());
}

#[tokio::test(flavor = "multi_thread")]
async fn top_reads_a_weir_run_host_from_its_metrics_and_plugins_with_its_token() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline_text(
        "solo",
        "",
        &operator("map", "json_map", "{ set = { v = 1 } }"),
    );
    let file = write_pipeline(dir.path(), &text);
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let admin = free_addr();
    let token_flag = token.to_str().unwrap();
    let extra = ["--admin", &admin, "--admin-token-file", token_flag];
    let mut run =
        WeirProcess::start_with(&file, &server.url(), &dir.path().join("run.log"), &extra);
    run.wait_running(Duration::from_secs(60));
    let publisher = Publisher::start(&js, "in.solo");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let text = top_ok(
        &[
            "--admin",
            &admin,
            "--admin-token-file",
            token_flag,
            "--once",
        ],
        &[],
    );
    let version = row(&text, "operator")[2].to_owned();
    assert!(version.starts_with("weir_plugin_json_map@"), "{text}");
    check_snapshot(&text, ("solo", &admin), &version);
    // Without the token: refused, and told what to give.
    let refused = top(&["--admin", &admin, "--once"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("answered 401") && stderr.contains("--admin-token-file"),
        "{stderr}"
    );

    publisher.stop().await;
    let log = run.log_reader();
    assert_eq!(run.terminate(), Some(0), "{}", log());
}

#[test]
fn top_says_when_nothing_is_applied_and_fails_fast_without_nats() {
    let server = NatsServer::start();
    let url = server.url();
    let text = top_ok(&["--once"], &[("WEIR_NATS_URL", url.as_str())]);
    assert_eq!(text, "no pipelines applied\n");

    let nowhere = format!("nats://{}", free_addr());
    let started = Instant::now();
    let out = top(&["--once"], &[("WEIR_NATS_URL", nowhere.as_str())]);
    assert!(started.elapsed() < Duration::from_secs(15), "{out:?}");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to NATS at") && stderr.contains(&nowhere),
        "{stderr}"
    );
}
