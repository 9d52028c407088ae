//! `weir run` refusing to start, fast and saying why in the first line of its error: NATS
//! unreachable, credentials refused, a TLS certificate not trusted (credentials in the URL
//! never shown), a sink subject the source stream captures (a feedback loop), a subject filter
//! outside the source stream.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// Runs `weir run PIPELINE --nats-url URL`, which must fail: its exit code, its `error:` line,
/// its whole stderr, and how long it took.
fn refused_run(pipeline: &Path, url: &str) -> (Option<i32>, String, String, Duration) {
    let mut cmd = weir();
    cmd.arg("run").arg(pipeline).args(["--nats-url", url]);
    let started = Instant::now();
    let out = output_within(cmd, Duration::from_secs(60));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_owned();
    (out.status.code(), error, stderr, took)
}

fn passthrough_pipeline(dir: &Path, source_extra: &str) -> std::path::PathBuf {
    let ops = operator("p", "passthrough", "{}");
    write_pipeline(dir, &pipeline_text("start", source_extra, &ops))
}

#[test]
fn an_unreachable_server_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough_pipeline(dir.path(), "");
    let url = format!("nats://{}", free_addr());
    let (code, error, stderr, took) = refused_run(&pipeline, &url);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        error.starts_with(&format!("error: cannot connect to NATS at {url}")),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn refused_credentials_are_named_and_the_password_is_not_shown() {
    let server = NatsServer::start_with(&["--user", "weir", "--pass", "right-one"]);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough_pipeline(dir.path(), "");
    let url = format!("nats://weir:wrong-one@127.0.0.1:{}", server.port);
    let (code, error, stderr, took) = refused_run(&pipeline, &url);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(error.contains("refused the credentials"), "{stderr}");
    assert!(error.contains("authorization violation"), "{stderr}");
    assert!(
        error.contains(&format!("nats://***@127.0.0.1:{}", server.port)),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-one"), "{stderr}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// A self-signed certificate and key for 127.0.0.1 in `dir` (by `openssl`).
fn self_signed_certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=weir-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl (needed to make a test certificate)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn an_untrusted_tls_certificate_is_named() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_certificate(certs.path());
    let server = NatsServer::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough_pipeline(dir.path(), "");
    let url = format!("tls://127.0.0.1:{}", server.port);
    let (code, error, stderr, took) = refused_run(&pipeline, &url);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        error.starts_with(&format!(
            "error: the TLS certificate of NATS at {url} is not trusted"
        )),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_subject_the_source_stream_captures_is_a_feedback_loop() {
    let (server, js) = server_with_streams().await;
    create_stream(&js, "LATE", &["late"]).await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("p", "passthrough", "{}");
    let text =
        pipeline_text("loop", "", &ops).replace("subject = \"out\"", "subject = \"in.results\"");
    let pipeline = write_pipeline(dir.path(), &text);
    let (code, error, stderr, _) = refused_run(&pipeline, &server.url());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        error.contains("pipeline.toml:15: field `sink.subject`"),
        "{stderr}"
    );
    assert!(error.contains("feedback loop"), "{stderr}");

    // A filter that leaves the sink subject out is no loop.
    let narrowed = text.replace(
        "max_wait = \"50ms\"",
        "max_wait = \"50ms\"\nsubjects = [\"in.orders.>\"]",
    );
    let pipeline = write_pipeline(dir.path(), &narrowed);
    let mut weir = WeirProcess::start(&pipeline, &server.url(), &dir.path().join("weir.log"));
    weir.wait_running(Duration::from_secs(60));
    assert_eq!(weir.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_filter_outside_the_source_stream_is_named() {
    let (server, _js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough_pipeline(dir.path(), "subjects = [\"in.a\", \"orders.>\"]");
    let (code, error, stderr, _) = refused_run(&pipeline, &server.url());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        error.contains(
            "pipeline.toml:6: field `source.subjects[1]`: \"orders.>\" is not within stream \"IN\""
        ),
        "{stderr}"
    );
}
