//! The container image (`deploy/build-image.sh`, run with `deploy/podman.sh`): built FROM
//! scratch with no shell, running as uid 65532, within its size budget; `weir serve` in it with
//! a read-only root filesystem against a real nats-server on the host's loopback (host
//! networking) runs the demo pipeline, `podman stop` drains it (exit 0, final checkpoint), and
//! a new container goes on with no loss or duplicate. Podman missing or failing is a test
//! failure, never a skip.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::json;

use crate::support::*;

/// The image the tests build and run.
const IMAGE: &str = "weir:test";

/// The image size budget (issue: at most 40 MB).
const MAX_IMAGE_BYTES: u64 = 40_000_000;

/// `bash deploy/podman.sh ARGS` (podman with the checkout's storage and settings).
fn podman(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join("deploy/podman.sh"))
        .args(args)
        .output()
        .expect("running deploy/podman.sh: podman is needed (bash deploy/setup.sh installs it)")
}

/// `podman ARGS`, which must succeed; its standard output, trimmed.
fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds the image once per test process (incremental: the static binary is rebuilt only when
/// the code changed); its build output.
fn image() -> &'static str {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("deploy/build-image.sh")).arg(IMAGE);
        let out = output_within(cmd, Duration::from_secs(3600));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "building the image failed:\n{text}");
        text
    })
}

#[test]
fn the_image_has_no_shell_runs_as_65532_and_fits_its_budget() {
    let built = image();
    assert!(built.contains("digest sha256:"), "{built}");
    assert_eq!(
        podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", IMAGE]),
        "65532:65532"
    );
    let size: u64 = podman_ok(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .unwrap();
    assert!(
        size <= MAX_IMAGE_BYTES,
        "image of {size} bytes, over {MAX_IMAGE_BYTES}"
    );
    let entry = podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}}",
        IMAGE,
    ]);
    assert_eq!(entry, r#"["/usr/local/bin/weir"]"#);
    let health = podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .HealthCheck}}",
        IMAGE,
    ]);
    assert!(health.contains("health"), "{health}");

    // Every file of the image: the binary, the users, the CA certificates — no shell.
    let id = podman_ok(&["create", IMAGE]);
    let export = root().join(format!("target/containers/export-{id}.tar"));
    podman_ok(&["export", "-o", export.to_str().unwrap(), &id]);
    podman_ok(&["rm", &id]);
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&export)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&export);
    let files = String::from_utf8_lossy(&listing.stdout).into_owned();
    for wanted in [
        "usr/local/bin/weir",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
    ] {
        assert!(
            files.lines().any(|f| f.trim_end_matches('/') == wanted),
            "{wanted} missing:\n{files}"
        );
    }
    for shell in ["bin/sh", "bin/bash", "bin/busybox", "usr/bin/env"] {
        assert!(
            !files.lines().any(|f| f.ends_with(shell)),
            "{shell} in the image:\n{files}"
        );
    }
    let no_shell = podman(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "true",
    ]);
    assert!(!no_shell.status.success(), "a shell ran in the image");

    let version = podman_ok(&["run", "--rm", "--network", "host", IMAGE, "--version"]);
    assert!(version.starts_with("weir "), "{version}");
}

/// A container running `weir serve` (removed when dropped).
struct Container {
    name: String,
}

impl Container {
    /// Starts `weir serve` in a container named `name` against `nats_url`, read-only, with
    /// the compile cache on a tmpfs and the admin endpoint on `admin`.
    fn serve(name: &str, nats_url: &str, admin: &str) -> Container {
        let _ = podman(&["rm", "-f", name]);
        podman_ok(&[
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
            &format!("WEIR_NATS_URL={nats_url}"),
            "-e",
            &format!("WEIR_ADMIN={admin}"),
            "-e",
            &format!("WEIR_HOST_ID={name}"),
            IMAGE,
        ]);
        Container {
            name: name.to_owned(),
        }
    }

    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The uid the container's main process runs as, seen from the host.
    fn uid(&self) -> String {
        let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &self.name]);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().to_owned()
    }

    /// `podman stop` (SIGTERM, then SIGKILL after `grace`): the exit code and how long it took.
    fn stop(&self, grace: Duration) -> (i64, Duration) {
        let started = Instant::now();
        podman_ok(&["stop", "-t", &grace.as_secs().to_string(), &self.name]);
        let took = started.elapsed();
        let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &self.name]);
        (code.parse().unwrap(), took)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// The demo orders `from..to`, each with two line items.
fn orders(from: usize, to: usize) -> Vec<(Option<String>, Vec<u8>)> {
    (from..to)
        .map(|i| {
            let order = json!({
                "order_id": i, "customer": "ada", "amount": 150,
                "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
            });
            (Some("ada".to_owned()), order.to_string().into_bytes())
        })
        .collect()
}

/// The line items on `warehouse.items` by (order, line): how many times each arrived.
async fn items(js: &jetstream::Context, expected: usize) -> BTreeMap<(u64, u64), usize> {
    let got = collect(
        js,
        "WAREHOUSE",
        "warehouse.items",
        expected,
        Duration::from_secs(90),
    )
    .await;
    let mut seen = BTreeMap::new();
    for m in got {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let key = (v["order_id"].as_u64().unwrap(), v["line"].as_u64().unwrap());
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

fn pipeline_status(url: &str) -> serde_json::Value {
    let mut cmd = weir();
    cmd.args(["pipeline", "status", "orders", "--json"])
        .env("WEIR_NATS_URL", url);
    let out = output_within(cmd, Duration::from_secs(30));
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn wait_state(url: &str, state: &str, logs: &dyn Fn() -> String) {
    let started = Instant::now();
    loop {
        let s = pipeline_status(url);
        if s["status"]["state"] == state {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "not {state}: {s}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_in_a_read_only_container_drains_on_stop_and_a_new_container_goes_on_exactly() {
    image();
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "ORDERS", &["orders.>"]).await;
    create_stream(&js, "WAREHOUSE", &["warehouse.>"]).await;
    let url = server.url();
    let tag = server.port;

    let admin = free_addr();
    let first = Container::serve(&format!("weir-test-{tag}-1"), &url, &admin);
    let logs = || first.logs();
    // The one-shot apply of the README and the compose file: the image's own weir.
    let checkout = format!("{}:/src:ro", root().display());
    let nats = format!("WEIR_NATS_URL={url}");
    let applied = podman_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &checkout,
        "--tmpfs",
        "/var/cache/weir:rw,U",
        "-e",
        &nats,
        IMAGE,
        "pipeline",
        "apply",
        "/src/plugins/pipelines/orders.toml",
    ]);
    assert!(applied.contains("applied pipeline \"orders\""), "{applied}");
    wait_state(&url, "running", &logs);
    assert_eq!(first.uid(), "65532");

    // The health check of the image (no shell: `weir health` in the container).
    let health = podman(&["healthcheck", "run", &first.name]);
    assert!(
        health.status.success(),
        "{}{}",
        String::from_utf8_lossy(&health.stderr),
        logs()
    );
    assert_eq!(http_get_status(&admin, "/ready").0, 200, "{}", logs());

    publish_all(&js, "orders.web", &orders(0, 300)).await;
    let seen = items(&js, 600).await;
    assert_eq!(seen.len(), 600, "{}", logs());

    // Stop under load: drains, exits 0, final checkpoint.
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for chunk in (300..1500).step_by(100) {
                publish_all(&js, "orders.web", &orders(chunk, chunk + 100)).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, took) = first.stop(Duration::from_secs(30));
    let log = first.logs();
    assert_eq!(code, 0, "{log}");
    assert!(took < Duration::from_secs(25), "stopping took {took:?}");
    // Not on a terminal: JSON log lines.
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let parsed: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(parsed["fields"]["message"], "stopped", "{log}");
    assert_eq!(pipeline_status(&url)["status"]["state"], "stopped");
    publisher.await.unwrap();

    let second = Container::serve(&format!("weir-test-{tag}-2"), &url, &free_addr());
    let seen = items(&js, 3000).await;
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "duplicates: {doubled:?}");
    assert_eq!(seen.len(), 3000, "{}", second.logs());
    let (code, _) = second.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", second.logs());
}

/// The YAML documents of `file` (parsed by Python's PyYAML), as JSON.
fn yaml_documents(file: &str) -> Vec<serde_json::Value> {
    let script =
        "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root().join(file))
        .output()
        .expect("python3 with PyYAML");
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_compose_file_runs_nats_weir_serve_and_a_one_shot_apply() {
    let docs = yaml_documents("deploy/compose.yaml");
    let services = &docs[0]["services"];
    let nats = services["nats"]["command"].as_array().unwrap();
    assert!(nats.contains(&json!("-js")), "{nats:?}");
    assert!(
        services["nats"]["volumes"][0]
            .as_str()
            .unwrap()
            .ends_with(":/data")
    );
    let weir = &services["weir"];
    assert!(weir["image"].as_str().unwrap().ends_with("weir:latest"));
    assert_eq!(weir["read_only"], true);
    assert!(weir["environment"]["WEIR_NATS_URL"].is_string());
    assert!(
        weir["command"].is_null(),
        "weir serve is the image's default command"
    );
    let apply = services["apply"]["command"].as_array().unwrap();
    assert_eq!(apply[..2], [json!("pipeline"), json!("apply")]);
    assert_eq!(services["apply"]["restart"], "on-failure");
}

#[test]
fn the_kubernetes_example_probes_health_and_ready_and_takes_the_creds_from_a_secret() {
    let docs = yaml_documents("deploy/kubernetes/weir.yaml");
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    assert!(secret["stringData"]["nats.creds"].is_string());
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let env: BTreeMap<String, serde_json::Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    let creds = env["WEIR_NATS_CREDS"]["value"].as_str().unwrap();
    let mounted = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| creds.starts_with(m["mountPath"].as_str().unwrap()));
    assert!(mounted, "the creds file is not on a mounted volume");
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30);
}
