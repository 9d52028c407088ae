//! `weir run --local` input: streamed line by line, a bad line ends the run naming its line
//! after the lines before it were processed, payloads that are not UTF-8 as `payload_base64`,
//! and the flags that do nothing with or without `--local` refused.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn run_local(pipeline: &Path, input: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = weir();
    cmd.args(["run", "--local", "--input"])
        .arg(input)
        .args(extra)
        .arg(pipeline);
    let out = output_within(cmd, Duration::from_secs(120));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn passthrough(dir: &Path) -> std::path::PathBuf {
    let ops = operator("p", "passthrough", "{}");
    write_pipeline(
        dir,
        &pipeline_text("local", "", &ops).replace("batch_size = 200", "batch_size = 2"),
    )
}

#[test]
fn a_bad_line_ends_the_run_naming_it_after_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough(dir.path());
    let input = dir.path().join("in.jsonl");
    let lines = [
        r#"{"key":"a","payload":{"n":1}}"#,
        r#"{"key":"b","payload":{"n":2}}"#,
        r#"{"key":"c","payload":{"n":3}}"#,
        r#"{"key":"d","payload":{"n":4},"payload_text":"4"}"#,
        r#"{"key":"e","payload":{"n":5}}"#,
    ];
    std::fs::write(&input, lines.join("\n")).unwrap();
    let (code, stdout, stderr) = run_local(&pipeline, &input, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let keys: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, ["a", "b", "c"], "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains("in.jsonl:4: give the payload once"),
        "{stderr}"
    );
}

#[test]
fn payloads_that_are_not_utf8_go_through_as_base64() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough(dir.path());
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"key\":\"k\",\"payload_base64\":\"//4AQQ==\"}\n").unwrap();
    let (code, stdout, stderr) = run_local(&pipeline, &input, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["payload_base64"], "//4AQQ==", "{stdout}");
    // Raw bytes on a line are refused with the way to give them.
    std::fs::write(&input, b"{\"payload_text\":\"\xff\"}\n").unwrap();
    let (code, _, stderr) = run_local(&pipeline, &input, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("in.jsonl:1: not UTF-8 text"), "{stderr}");
    assert!(stderr.contains("payload_base64"), "{stderr}");
}

#[test]
fn input_is_processed_as_it_is_read() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough(dir.path());
    // A named pipe: what is written so far is all there is to read.
    let fifo = dir.path().join("in.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = weir()
        .args(["run", "--local", "--input"])
        .arg(&fifo)
        .arg(&pipeline)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Read and write: opening does not wait for weir to open its end (Linux).
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    writeln!(
        writer,
        "{{\"key\":\"a\",\"payload\":1}}\n{{\"key\":\"b\",\"payload\":2}}"
    )
    .unwrap();
    writer.flush().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    // A full batch (2 lines) comes out while the input is still open.
    for key in ["a", "b"] {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a result before the input ends");
        assert!(line.contains(&format!("\"key\":\"{key}\"")), "{line}");
    }
    writeln!(writer, "{{\"key\":\"c\",\"payload\":3}}").unwrap();
    drop(writer);
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(line.contains("\"key\":\"c\""), "{line}");
    assert!(child.wait().unwrap().success());
}

#[test]
fn flags_that_do_nothing_in_a_mode_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = passthrough(dir.path());
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"payload\":1}\n").unwrap();
    for extra in [
        &["--nats-url", "nats://127.0.0.1:1"][..],
        &["--admin", "127.0.0.1:9"],
        &["--from-checkpoint", "none"],
    ] {
        let (code, _, stderr) = run_local(&pipeline, &input, extra);
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{} does nothing with --local", extra[0])),
            "{stderr}"
        );
    }
    // WEIR_NATS_URL in the environment is not a flag: --local ignores it.
    let mut cmd = weir();
    cmd.env("WEIR_NATS_URL", "nats://127.0.0.1:1")
        .args(["run", "--local", "--input"])
        .arg(&input)
        .arg(&pipeline);
    let out = output_within(cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --input without --local would have run against NATS.
    let mut cmd = weir();
    cmd.args(["run", "--input"]).arg(&input).arg(&pipeline);
    let out = output_within(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--input is read only with --local"),
        "{stderr}"
    );
}
