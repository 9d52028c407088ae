//! Test harness: a real `nats-server` with JetStream on a free loopback port (temp store dir,
//! stopped by PID on drop), the example plugins built from `plugins/`, and helpers to publish
//! and collect messages.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `weir` binary under test (tests get it from cargo; the demo example from `target/`).
pub fn weir_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_weir") {
        Some(p) => PathBuf::from(p),
        None => root().join("target/debug/weir"),
    }
}

/// A compile cache shared by all tests (components compile once per content).
pub fn cache_dir() -> PathBuf {
    root().join("target").join("weir-test-cache")
}

/// Directory of the built example plugins; builds them once per test process.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("plugins/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running plugins/build.sh");
        assert!(out.status.success(), "plugins/build.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// Path of the example plugin `name` (e.g. "json_filter").
pub fn plugin(name: &str) -> PathBuf {
    let p = plugins_dir().join(format!("weir_plugin_{name}.wasm"));
    assert!(p.is_file(), "{} was not built", p.display());
    p
}

fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let p = root().join(".tools/bin/nats-server");
    assert!(
        p.is_file(),
        "nats-server not found at {} (run `bash tests/run.sh`, which installs it, or set NATS_SERVER_BIN)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server child process with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: tempfile::TempDir,
    /// Extra command-line options (e.g. `--user`, `--tls`).
    options: Vec<String>,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server started with extra command-line `options` (kept across restarts).
    pub fn start_with(options: &[&str]) -> Self {
        let store = tempfile::tempdir().unwrap();
        let mut s = NatsServer {
            child: None,
            port: free_port(),
            store,
            options: options.iter().map(|o| o.to_string()).collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args(["-js", "-sd"])
            .arg(self.store.path())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the server process (SIGSTOP): connections stay open, nothing is answered — a
    /// stall, as of a server under a long GC pause or a frozen VM.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT): it handles what queued up meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("server running")
            .id()
            .to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's JetStream store directory (`-sd`).
    pub fn store(&self) -> &Path {
        self.store.path()
    }

    /// The id of the running server process (e.g. to read its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Stops the server (by PID) and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("connecting to nats-server");
        jetstream::new(client)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates stream `name` capturing `subjects` (2 min duplicate window).
pub async fn create_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("creating stream");
}

/// Publishes `payloads` to `subject` with `Weir-Key` headers (key = `keys[i]` if given),
/// keeping many acks in flight.
pub async fn publish_all(
    js: &jetstream::Context,
    subject: &str,
    events: &[(Option<String>, Vec<u8>)],
) {
    let mut window = std::collections::VecDeque::new();
    for (key, payload) in events {
        let mut h = HeaderMap::new();
        if let Some(k) = key {
            h.insert("Weir-Key", k.as_str());
        }
        let fut = js
            .publish_with_headers(subject.to_string(), h, payload.clone().into())
            .await
            .expect("publish");
        window.push_back(fut);
        if window.len() >= 1000 {
            window.pop_front().unwrap().await.expect("publish ack");
        }
    }
    for f in window {
        f.await.expect("publish ack");
    }
}

/// A received message: subject, headers, payload.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.as_str().to_owned())
    }
}

/// Reads every message of `stream` matching `subject` until `expected` arrived or `timeout`
/// passes, then waits `settle` for extra (duplicate) messages.
pub async fn collect(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    let s = js.get_stream(stream).await.expect("stream");
    // Read through an ephemeral pull consumer; if its message stream ends or fails (a server
    // that just restarted may drop it), a new one resumes after the last message read.
    let open = |from: u64| {
        let s = s.clone();
        let subject = subject.to_owned();
        async move {
            let consumer = s
                .create_consumer(pull::Config {
                    filter_subject: subject,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: from,
                    },
                    ..Default::default()
                })
                .await?;
            consumer.messages().await.map_err(async_nats::Error::from)
        }
    };
    let mut msgs = open(1).await.expect("consumer");
    let mut next_seq = 1;
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let until = match settle_until {
            Some(t) => t,
            None => deadline,
        };
        if now >= until {
            break;
        }
        match tokio::time::timeout(until - now, msgs.next()).await {
            Ok(Some(Ok(m))) => {
                if let Ok(info) = m.info() {
                    next_seq = info.stream_sequence + 1;
                }
                out.push(Received {
                    subject: m.subject.to_string(),
                    headers: m.headers.clone().unwrap_or_default(),
                    payload: m.payload.to_vec(),
                });
                if out.len() >= expected && settle_until.is_none() {
                    settle_until = Some(Instant::now() + Duration::from_millis(500));
                }
            }
            Ok(Some(Err(_)) | None) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(fresh) = open(next_seq).await {
                    msgs = fresh;
                }
            }
            Err(_) => break,
        }
    }
    out
}

/// Writes a pipeline file into `dir` and returns its path.
pub fn write_pipeline(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `weir` with the shared compile cache.
pub fn weir() -> Command {
    let mut c = Command::new(weir_bin());
    c.env("WEIR_CACHE_DIR", cache_dir());
    plugin_toolchains(&mut c);
    // WEIR_TEST_LOG=debug,weir=trace turns up the logs of every host a test starts.
    c.env(
        "WEIR_LOG",
        std::env::var("WEIR_TEST_LOG").unwrap_or_else(|_| "info".into()),
    );
    c
}

/// Points `weir plugin build` at the plugin toolchains `tests/setup.sh` installs into the
/// checkout (componentize-py in `.tools/`, componentize-qjs in `sdk/js/node_modules/`): weir
/// looks for them in `$COMPONENTIZE_PY` / `$COMPONENTIZE_QJS`, the plugin's folder and PATH,
/// never in its own source tree.
pub fn plugin_toolchains(cmd: &mut Command) {
    for (var, tool) in [
        ("COMPONENTIZE_PY", ".tools/bin/componentize-py"),
        (
            "COMPONENTIZE_QJS",
            "sdk/js/node_modules/.bin/componentize-qjs",
        ),
    ] {
        let tool = root().join(tool);
        if std::env::var_os(var).is_none() && tool.is_file() {
            cmd.env(var, tool);
        }
    }
}

/// Runs `cmd` to completion, killing it after `limit` (a hang fails the test with its
/// output instead of hanging the suite). Its output is read as it comes, so a command writing
/// more than a pipe holds does not wait for a reader.
pub fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a command");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Escapes a path for a TOML string.
pub fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

/// A running `weir run` child process.
pub struct WeirProcess {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl WeirProcess {
    /// Starts `weir run PIPELINE --nats-url URL`, logging to `log`.
    pub fn start(pipeline: &Path, url: &str, log: &Path) -> Self {
        Self::start_with(pipeline, url, log, &[])
    }

    /// Like [`WeirProcess::start`] with extra arguments.
    pub fn start_with(pipeline: &Path, url: &str, log: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(pipeline, url, log, extra, &[])
    }

    /// Like [`WeirProcess::start_with`] with extra environment variables.
    pub fn start_with_env(
        pipeline: &Path,
        url: &str,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let stderr = std::fs::File::create(log).unwrap();
        let child = weir()
            .envs(env.iter().copied())
            .arg("run")
            .arg(pipeline)
            .args(["--nats-url", url])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting weir");
        WeirProcess {
            child,
            stderr_path: log.to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until the host logs that it is running (plugins compiled — a Python component
    /// takes tens of seconds on a loaded machine — restored, consuming), at most `limit`.
    pub fn wait_running(&mut self, limit: Duration) {
        let started = Instant::now();
        while !self.log().contains("running") {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("weir exited ({status}) before running:\n{}", self.log());
            }
            assert!(
                started.elapsed() < limit,
                "weir was not running within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Reads the log later, also after the process is gone.
    pub fn log_reader(&self) -> impl Fn() -> String + use<> {
        let path = self.stderr_path.clone();
        move || std::fs::read_to_string(&path).unwrap_or_default()
    }

    /// SIGTERM, then waits; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("weir did not stop within 30 s of SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (`kill -9`).
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline file over streams IN (subjects `in.>`) → OUT (`out`, `dlq`) with `operators`
/// (TOML `[[operators]]` blocks) and extra `[source]` lines.
pub fn pipeline_text(name: &str, source_extra: &str, operators: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
stream = "IN"
batch_size = 200
max_wait = "50ms"
{source_extra}

{operators}

[sink]
subject = "out"
dead_letter = "dlq"
"#
    )
}

/// An `[[operators]]` block.
pub fn operator(name: &str, plugin_name: &str, config: &str) -> String {
    operator_in("operators", name, plugin_name, config)
}

/// An `[[after]]` block (a transform over window or process results).
pub fn after_operator(name: &str, plugin_name: &str, config: &str) -> String {
    operator_in("after", name, plugin_name, config)
}

fn operator_in(list: &str, name: &str, plugin_name: &str, config: &str) -> String {
    format!(
        "[[{list}]]\nname = \"{name}\"\nplugin = \"{}\"\nconfig = {config}\n",
        toml_path(&plugin(plugin_name))
    )
}

/// A `[window]` section (`window`: its lines) aggregated by plugin `plugin_name`.
pub fn window_section(window: &str, name: &str, plugin_name: &str, config: &str) -> String {
    format!(
        "[window]\n{window}\n\n[window.aggregate]\nname = \"{name}\"\nplugin = \"{}\"\nconfig = {config}\n",
        toml_path(&plugin(plugin_name))
    )
}

/// A `[process.function]` section with plugin `plugin` (a path).
pub fn process_section(name: &str, plugin: &Path, config: &str) -> String {
    format!(
        "[process.function]\nname = \"{name}\"\nplugin = \"{}\"\nconfig = {config}\n",
        toml_path(plugin)
    )
}

/// Starts a server with streams IN and OUT.
pub async fn server_with_streams() -> (NatsServer, jetstream::Context) {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "IN", &["in.>"]).await;
    create_stream(&js, "OUT", &["out", "dlq"]).await;
    (server, js)
}

/// Starts a server with streams BIDS (`bids.>`), AUCTIONS (`auctions.>`) and OUT (`out`,
/// `dlq`): two inputs and their sink.
pub async fn server_with_two_inputs() -> (NatsServer, jetstream::Context) {
    let server = NatsServer::start();
    let js = server.jetstream().await;
    create_stream(&js, "BIDS", &["bids.>"]).await;
    create_stream(&js, "AUCTIONS", &["auctions.>"]).await;
    create_stream(&js, "OUT", &["out", "dlq"]).await;
    (server, js)
}

/// A free loopback address for a server of the test.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// `GET path` on `addr` over plain HTTP/1.0; the response body.
pub fn http_get(addr: &str, path: &str) -> String {
    http_get_status(addr, path).1
}

/// `GET path` on `addr` over plain HTTP/1.0; the status code and the response body.
pub fn http_get_status(addr: &str, path: &str) -> (u16, String) {
    http_request(addr, path, "")
}

/// `GET path` on `addr` with `Authorization: Bearer token`; the status code and the body.
pub fn http_get_with_token(addr: &str, path: &str, token: &str) -> (u16, String) {
    http_request(addr, path, &format!("Authorization: Bearer {token}\r\n"))
}

/// `GET path` on `addr` over plain HTTP/1.0 with extra header lines `headers`.
fn http_request(addr: &str, path: &str, headers: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let started = Instant::now();
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(mut s) => {
                write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").unwrap();
                let mut response = String::new();
                s.read_to_string(&mut response).unwrap();
                // "HTTP/1.1 503 Service Unavailable"
                let status = response
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
                return (status, body.to_owned());
            }
            Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("{addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
