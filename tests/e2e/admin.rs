//! The admin endpoint of `weir run --admin`: an address in use fails the start, `/ready`
//! follows the NATS connection, `/health` fails when the run loop is stuck.

use std::time::{Duration, Instant};

use crate::support::*;

/// Polls `GET path` on `addr` until it answers `status`, at most `limit`; the body.
fn wait_for_status(addr: &str, path: &str, status: u16, limit: Duration, log: &str) -> String {
    let started = Instant::now();
    loop {
        let (got, body) = http_get_status(addr, path);
        if got == status {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "{path} answered {got} {body:?}, not {status}, for {limit:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_address_in_use_fails_the_start() {
    let (server, _js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("p", "passthrough", "{}");
    let pipeline = write_pipeline(dir.path(), &pipeline_text("taken", "", &ops));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = weir();
    cmd.arg("run")
        .arg(&pipeline)
        .args(["--nats-url", &server.url(), "--admin", &addr]);
    let out = output_within(cmd, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--admin {addr}")), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
    assert!(
        !err.contains("plugin ready"),
        "failed before loading plugins:\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_follows_the_nats_connection_and_health_stays_live_through_an_outage() {
    let (mut server, _js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("p", "passthrough", "{}");
    let pipeline = write_pipeline(dir.path(), &pipeline_text("ready", "", &ops));
    let port = free_addr().rsplit(':').next().unwrap().to_owned();
    let (listen, addr) = (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}"));
    // Beyond loopback, a bearer token is required for all but /health and /ready.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ken-for-tests\n").unwrap();
    let mut host = WeirProcess::start_with(
        &pipeline,
        &server.url(),
        &dir.path().join("weir.log"),
        &[
            "--admin",
            &listen,
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    host.wait_running(Duration::from_secs(60));
    let limit = Duration::from_secs(20);
    assert_eq!(
        wait_for_status(&addr, "/ready", 200, limit, &host.log()),
        "ready\n"
    );
    assert_eq!(http_get_status(&addr, "/health"), (200, "ok\n".into()));
    assert_eq!(http_get_status(&addr, "/metrics").0, 401);
    let (code, body) = http_get_with_token(&addr, "/metrics", "t0ken-for-tests");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("weir_input_events_total"), "{body}");
    assert_eq!(http_get_with_token(&addr, "/metrics", "wrong").0, 401);
    assert!(!host.log().contains("t0ken-for-tests"), "{}", host.log());

    server.stop();
    let why = wait_for_status(&addr, "/ready", 503, limit, &host.log());
    assert!(why.contains("not connected to NATS"), "{why}");
    assert_eq!(http_get_status(&addr, "/health"), (200, "ok\n".into()));

    server.restart();
    wait_for_status(&addr, "/ready", 200, Duration::from_secs(30), &host.log());
    assert_eq!(host.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_fails_when_the_run_loop_is_stuck_not_when_the_stream_is_quiet() {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    // Every event loops until its 1 s deadline: isolating 20 of them takes the loop far
    // longer than the 2 s liveness timeout.
    let ops =
        operator("spin", "hostile", r#"{ mode = "loop", trigger = "" }"#) + "deadline = \"1s\"\n";
    let pipeline = write_pipeline(dir.path(), &pipeline_text("stuck", "", &ops));
    let addr = free_addr();
    let mut host = WeirProcess::start_with_env(
        &pipeline,
        &server.url(),
        &dir.path().join("weir.log"),
        &["--admin", &addr],
        &[("WEIR_LIVENESS_TIMEOUT", "2s")],
    );
    host.wait_running(Duration::from_secs(60));
    wait_for_status(&addr, "/ready", 200, Duration::from_secs(20), &host.log());
    // A quiet stream for longer than the liveness timeout is no sign of trouble.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(http_get_status(&addr, "/health"), (200, "ok\n".into()));

    let events: Vec<_> = (0..20)
        .map(|i| (None, format!("e{i}").into_bytes()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    let why = wait_for_status(&addr, "/health", 503, Duration::from_secs(20), &host.log());
    assert!(why.contains("stuck"), "{why}");
    let (status, why) = http_get_status(&addr, "/ready");
    assert_eq!(status, 503);
    assert!(why.contains("stuck"), "{why}");
    host.kill9();
}
