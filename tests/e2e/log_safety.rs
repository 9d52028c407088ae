//! What plugins and URLs put on the terminal and in logs: a plugin's log text cannot forge
//! log lines or send terminal sequences, a flooding plugin is capped and says how much it
//! dropped, plugin config secrets stay out of errors and dead-letter headers, and NATS
//! credentials are never printed.

use std::time::Duration;

use crate::support::*;

const API_KEY: &str = "sk-live-0123456789";

/// A TOML basic string holding `text` (JSON string escapes are TOML's).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Runs `weir run` (with `extra` arguments) over one `hostile` operator with `config` on
/// `payloads`, waits for `expected` messages on `subject`, stops the host cleanly; returns
/// the messages and the host's log.
async fn run_hostile(
    config: &str,
    payloads: &[&str],
    subject: &str,
    expected: usize,
    extra: &[&str],
) -> (Vec<Received>, String) {
    let (server, js) = server_with_streams().await;
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("hostile", "hostile", config);
    let pipeline = write_pipeline(dir.path(), &pipeline_text("hostile", "", &ops));
    let mut host = WeirProcess::start_with(
        &pipeline,
        &server.url(),
        &dir.path().join("weir.log"),
        extra,
    );
    host.wait_running(Duration::from_secs(60));
    let events: Vec<_> = payloads
        .iter()
        .map(|p| (None, p.as_bytes().to_vec()))
        .collect();
    publish_all(&js, "in.a", &events).await;
    let out = collect(&js, "OUT", subject, expected, Duration::from_secs(30)).await;
    let log = host.log_reader();
    assert_eq!(host.terminate(), Some(0), "{}", log());
    assert_eq!(out.len(), expected, "{}", log());
    (out, log())
}

/// A message that tries to start a log line of its own and to drive the terminal.
const FORGERY: &str = "hello\nERROR weir: forged line\r\u{1b}[2J\u{1b}]0;pwned\u{7}";

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_log_message_cannot_forge_log_lines_or_drive_the_terminal() {
    let config = format!(
        r#"{{ mode = "log", trigger = "", message = {} }}"#,
        toml_string(FORGERY)
    );
    let (_, log) = run_hostile(&config, &["a"], "out", 1, &[]).await;
    assert!(
        log.contains(r"hello\nERROR weir: forged line\r\u{1b}[2J\u{1b}]0;pwned\u{7}"),
        "the message is on one line, escaped:\n{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR weir: forged")),
        "{log}"
    );
    for raw in ['\u{1b}', '\r', '\u{7}'] {
        assert!(!log.contains(raw), "raw {raw:?} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_a_plugin_message_intact_one_object_a_line() {
    let config = format!(
        r#"{{ mode = "log", trigger = "", message = {} }}"#,
        toml_string(FORGERY)
    );
    let (_, log) = run_hostile(&config, &["a"], "out", 1, &["--log-json"]).await;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{log}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == FORGERY && l["fields"]["plugin"].is_string()),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_plugin_is_capped_in_rate_and_length_and_says_what_it_dropped() {
    const LINES_PER_EVENT: usize = 3000;
    let long = "x".repeat(10_000);
    let config = format!(
        r#"{{ mode = "log", trigger = "", count = {LINES_PER_EVENT}, message = "{long}" }}"#
    );
    let (_, log) = run_hostile(&config, &["a", "b"], "out", 2, &[]).await;
    let written: Vec<&str> = log.lines().filter(|l| l.contains("xxxxxxxxxx")).collect();
    assert!(
        !written.is_empty() && written.len() < 1000,
        "{} lines written",
        written.len()
    );
    for line in &written {
        assert!(line.len() < 4096 + 300, "a line of {} bytes", line.len());
        assert!(line.contains("[log line cut: 5904 more bytes]"), "{line}");
    }
    let dropped: usize = log
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("dropped ")? + "dropped ".len()..];
            let (n, rest) = rest.split_once(' ')?;
            rest.starts_with("log lines from plugin")
                .then(|| n.parse::<usize>().ok())?
        })
        .sum();
    assert_eq!(
        written.len() + dropped,
        2 * LINES_PER_EVENT,
        "every line is written or counted as dropped:\n{}",
        log.lines()
            .filter(|l| !l.contains("xxxxxxxxxx"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_refused_config_is_named_not_printed_and_its_error_is_escaped() {
    let config = format!(
        r#"{{ mode = {}, api_key = "{API_KEY}" }}"#,
        toml_string("bogus\u{1b}[31m\nERROR forged")
    );
    let ops = operator("enrich", "hostile", &config);
    let dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(dir.path(), &pipeline_text("refused", "", &ops));
    let out = output_within(
        {
            let mut c = weir();
            c.arg("validate").arg(&p);
            c
        },
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`enrich` (operators[0])"), "{err}");
    assert!(err.contains("refused its config"), "{err}");
    assert!(
        err.contains(r"unknown mode `bogus\u{1b}[31m\nERROR forged`"),
        "{err}"
    );
    assert!(
        !err.contains(API_KEY),
        "the config's key was printed:\n{err}"
    );
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_quoting_its_api_key_has_it_redacted_from_dead_letters_and_logs() {
    let config = format!(r#"{{ mode = "leak", trigger = "bad", api_key = "{API_KEY}" }}"#);
    let (dead, log) = run_hostile(&config, &["ok", "bad"], "dlq", 1, &[]).await;
    let error = dead[0].header("Weir-Error").unwrap();
    assert!(
        error.contains("upstream refused api key [redacted]"),
        "{error}"
    );
    assert!(!error.contains(API_KEY), "{error}");
    assert!(!log.contains(API_KEY), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn weir_checkpoint_never_prints_nats_credentials() {
    let server = NatsServer::start_with(&["--user", "weir", "--pass", "right-pass"]);
    let dir = tempfile::tempdir().unwrap();
    let ops = operator("p", "passthrough", "{}");
    let p = write_pipeline(dir.path(), &pipeline_text("creds", "", &ops));
    let url = |pass: &str| format!("nats://weir:{pass}@127.0.0.1:{}", server.port);
    let checkpoint = |url: &str| {
        let mut c = weir();
        c.args(["checkpoint", "list"])
            .arg(&p)
            .args(["--nats-url", url]);
        output_within(c, Duration::from_secs(60))
    };
    // The server refuses a wrong password: the error names the server, not the password.
    let refused = checkpoint(&url("s3cret-pass"));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("nats://***@127.0.0.1:{}", server.port)),
        "{err}"
    );
    assert!(!err.contains("s3cret-pass"), "{err}");
    // `--help` does not show the environment's URL.
    for cmd in [&["checkpoint", "list", "--help"][..], &["run", "--help"]] {
        let help = weir()
            .args(cmd)
            .env("WEIR_NATS_URL", url("s3cret-pass"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("WEIR_NATS_URL"), "{text}");
        assert!(!text.contains("s3cret-pass"), "{cmd:?}:\n{text}");
    }
}
