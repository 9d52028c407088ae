//! Tests of pipeline-file parsing and checks: every refusal names the field and line.

use super::*;

fn parse_in(dir: &Path, text: &str) -> Result<Pipeline, ConfigError> {
    parse(&dir.join("p.toml"), text.to_owned())
}

fn with_plugin() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("op.wasm"), b"\0asm").unwrap();
    dir
}

const GOOD: &str = r#"
name = "orders"
[source]
stream = "ORDERS"
[[operators]]
name = "f"
plugin = "op.wasm"
config = { field = "amount", op = "gt", value = 100 }
[sink]
subject = "out"
dead_letter = "dlq"
"#;

#[test]
fn a_valid_pipeline_gets_defaults() {
    let dir = with_plugin();
    let p = parse_in(dir.path(), GOOD).unwrap();
    assert_eq!(p.config.source.batch_size, 500);
    assert_eq!(p.consumer_name(), "weir-orders");
    let config: serde_json::Value = serde_json::from_str(&p.operator_config_json(0)).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"field": "amount", "op": "gt", "value": 100})
    );
    assert_eq!(p.config.source.key, KeyFrom::Header("Weir-Key".into()));
}

#[test]
fn unknown_field_is_named_with_its_line() {
    let dir = with_plugin();
    let text = GOOD.replace("stream = \"ORDERS\"", "stream = \"ORDERS\"\nbatch = 5");
    let err = parse_in(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("p.toml:5"), "{err}");
    assert!(err.contains("unknown field `batch`"), "{err}");
}

#[test]
fn missing_plugin_file_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = parse_in(dir.path(), GOOD).unwrap_err().to_string();
    assert!(err.contains("operators[0].plugin"), "{err}");
    assert!(err.contains("p.toml:7"), "{err}");
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn bad_values_are_refused_with_the_field_named() {
    let dir = with_plugin();
    for (from, to, field) in [
        ("name = \"orders\"", "name = \"or ders\"", "`name`"),
        ("subject = \"out\"", "subject = \"out.>\"", "sink.subject"),
        (
            "stream = \"ORDERS\"",
            "stream = \"ORDERS\"\nbatch_size = 0",
            "source.batch_size",
        ),
        (
            "name = \"f\"",
            "name = \"f\"\nmemory_limit_mib = 0",
            "memory_limit_mib",
        ),
        (
            "name = \"f\"",
            "name = \"f\"\ndeadline = \"soon\"",
            "deadline",
        ),
    ] {
        let err = parse_in(dir.path(), &GOOD.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn duplicate_operator_names_are_refused() {
    let dir = with_plugin();
    let text = format!("{GOOD}\n[[operators]]\nname = \"f\"\nplugin = \"op.wasm\"\n");
    let err = parse_in(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("operators[1].name"), "{err}");
}

#[test]
fn checkpoint_settings_are_checked_naming_the_field() {
    let dir = with_plugin();
    let p = parse_in(dir.path(), GOOD).unwrap();
    assert_eq!(p.config.checkpoint.guarantee, Guarantee::EffectivelyOnce);
    assert_eq!(p.config.checkpoint.interval, Duration::from_secs(1));
    let bad = format!("{GOOD}[checkpoint]\nretain = 0\n");
    let err = parse_in(dir.path(), &bad).unwrap_err().to_string();
    assert!(err.contains("checkpoint.retain"), "{err}");
    let bad = format!("{GOOD}[checkpoint]\nguarantee = \"exactly-twice\"\n");
    let err = parse_in(dir.path(), &bad).unwrap_err().to_string();
    assert!(err.contains("checkpoint.guarantee"), "{err}");
    let windowed = format!(
        "{GOOD}[window]\ntype = \"tumbling\"\nsize = \"1s\"\n[window.aggregate]\nname = \"a\"\nplugin = \"op.wasm\"\n[checkpoint]\nguarantee = \"at-most-once\"\n"
    );
    let err = parse_in(dir.path(), &windowed).unwrap_err().to_string();
    assert!(
        err.contains("at-most-once") && err.contains("[window]"),
        "{err}"
    );
    let stateless = format!("{GOOD}[checkpoint]\nguarantee = \"at-most-once\"\n");
    assert!(parse_in(dir.path(), &stateless).is_ok());
}

#[test]
fn after_operators_need_a_stateful_stage_and_names_unique_across_lists() {
    let dir = with_plugin();
    let after = GOOD.replace(
        "[sink]",
        "[[after]]\nname = \"g\"\nplugin = \"op.wasm\"\n[sink]",
    );
    let e = parse_in(dir.path(), &after).unwrap_err();
    assert!(e.message.contains("`[[after]]`"), "{e}");
    assert_eq!(e.line, Some(10));
    let windowed = after.replace(
        "[[after]]",
        "[window]\ntype = \"tumbling\"\nsize = \"1s\"\n[window.aggregate]\nname = \"a\"\nplugin = \"op.wasm\"\n[[after]]",
    );
    let p = parse_in(dir.path(), &windowed).unwrap();
    assert_eq!(p.config.after.len(), 1);
    let clash = windowed.replace("name = \"g\"", "name = \"f\"");
    let e = parse_in(dir.path(), &clash).unwrap_err();
    assert!(
        e.message
            .contains("field `after[0].name`: \"f\" is used by an earlier operator"),
        "{e}"
    );
    let missing = windowed.replace(
        "name = \"g\"\nplugin = \"op.wasm\"",
        "name = \"g\"\nplugin = \"nope.wasm\"",
    );
    let e = parse_in(dir.path(), &missing).unwrap_err();
    assert!(
        e.message.contains("field `after[0].plugin`: no such file"),
        "{e}"
    );
}

#[test]
fn count_and_processing_time_windows_are_checked() {
    let dir = with_plugin();
    let window = |w: &str| {
        GOOD.replace(
            "[sink]",
            &format!(
                "[window]\n{w}\n[window.aggregate]\nname = \"a\"\nplugin = \"op.wasm\"\n[sink]"
            ),
        )
    };
    let p = parse_in(dir.path(), &window("type = \"global\"\ncount = 5")).unwrap();
    let w = p.config.window.as_ref().unwrap();
    assert_eq!(w.spec(), crate::window::WindowSpec::Global { count: 5 });
    let p = parse_in(
        dir.path(),
        &window("type = \"tumbling\"\nsize = \"1s\"\ntime = \"processing\""),
    )
    .unwrap();
    let w = p.config.window.as_ref().unwrap();
    assert_eq!(w.time, WindowTime::Processing);
    assert!(w.description().ends_with("in processing time"));
    for (text, message) in [
        (
            "type = \"global\"",
            "field `window.count` is required for global windows",
        ),
        (
            "type = \"global\"\ncount = 0",
            "field `window.count` must be at least 1",
        ),
        (
            "type = \"global\"\ncount = 2\nsize = \"1s\"",
            "field `window.size` does not apply to global windows",
        ),
        (
            "type = \"tumbling\"\nsize = \"1s\"\ncount = 2",
            "field `window.count` does not apply to tumbling windows",
        ),
        (
            "type = \"global\"\ncount = 2\ntime = \"processing\"",
            "field `window.time`: global windows fire by count",
        ),
        (
            "type = \"session\"\ngap = \"1s\"\ntime = \"processing\"\nallowed_lateness = \"1s\"",
            "does not apply to processing-time",
        ),
        (
            "type = \"global\"\ncount = 2\nallowed_lateness = \"1s\"",
            "they are never late",
        ),
    ] {
        let e = parse_in(dir.path(), &window(text)).unwrap_err();
        assert!(e.message.contains(message), "{text}: {e}");
    }
}

/// `GOOD` with `from` replaced by `to`: the error's message and line.
fn refused(from: &str, to: &str) -> (String, Option<usize>) {
    let dir = with_plugin();
    assert!(GOOD.contains(from), "{from}");
    let e = parse_in(dir.path(), &GOOD.replace(from, to)).unwrap_err();
    (e.message, e.line)
}

#[test]
fn subjects_names_and_paths_the_run_would_refuse_are_refused_at_their_line() {
    let src = "stream = \"ORDERS\"";
    let sink = "subject = \"out\"";
    for (from, to, message, line) in [
        (src, "stream = \"OR.DERS\"", "field `source.stream`", 4),
        (
            src,
            "stream = \"ORDERS\"\nsubjects = [\"a..b\"]",
            "field `source.subjects[0]`: \"a..b\" has an empty token",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\nsubjects = [\"\"]",
            "field `source.subjects[0]`: is empty",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\nconsumer = \"my.consumer\"",
            "field `source.consumer`",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\nconsumer = \"c*\"",
            "field `source.consumer`",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\ntime = { field = \"\" }",
            "field `source.time.field`: names no field",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\nkey = { header = \"\" }",
            "field `source.key.header`",
            5,
        ),
        (
            src,
            "stream = \"ORDERS\"\nkey = { field = \"a..b\" }",
            "field `source.key.field`",
            5,
        ),
        (sink, "subject = \"\"", "field `sink.subject`: is empty", 10),
        (
            sink,
            "subject = \"out.*\"",
            "field `sink.subject`: \"out.*\" has a wildcard",
            10,
        ),
        (
            sink,
            "subject = \"out\"\nlate = \"late.>\"",
            "field `sink.late`",
            11,
        ),
        (
            "dead_letter = \"dlq\"",
            "dead_letter = \"dl q\"",
            "field `sink.dead_letter`",
            11,
        ),
    ] {
        let (m, l) = refused(from, to);
        assert!(m.contains(message), "{to}: {m}");
        assert_eq!(l, Some(line), "{to}: {m}");
    }
}

#[test]
fn range_errors_carry_the_line() {
    let src = "stream = \"ORDERS\"";
    for (to, message, line) in [
        (
            "batch_size = 0",
            "field `source.batch_size`: 0 is out of range 1..=10000",
            5,
        ),
        (
            "max_wait = \"0s\"",
            "field `source.max_wait`: 0s is out of range 1ms..=1m",
            5,
        ),
        ("max_wait = \"1year\"", "field `source.max_wait`", 5),
        (
            "ack_wait = \"500ms\"",
            "field `source.ack_wait`: 500ms is out of range 1s..=1day",
            5,
        ),
        ("ack_wait = \"1000years\"", "field `source.ack_wait`", 5),
        ("watermarks = { idle_timeout = \"0s\" }", "idle_timeout", 5),
    ] {
        let (m, l) = refused(src, &format!("{src}\n{to}"));
        assert!(m.contains(message), "{to}: {m}");
        assert_eq!(l, Some(line), "{to}: {m}");
    }
    let (m, l) = refused("name = \"f\"", "name = \"f\"\nmemory_limit_mib = 0");
    assert!(m.contains("operators[0].memory_limit_mib"), "{m}");
    assert_eq!(l, Some(7));
    let slow = format!("{GOOD}[checkpoint]\ninterval = \"1m\"\n");
    let e = parse_in(with_plugin().path(), &slow).unwrap_err();
    assert!(
        e.message.contains("must exceed `checkpoint.interval`"),
        "{e}"
    );
    assert_eq!(
        e.line,
        Some(3),
        "the [source] table: ack_wait is not written"
    );
    let e = parse_in(
        with_plugin().path(),
        &format!("{GOOD}[checkpoint]\nretain = 0\n"),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(13), "{e}");
}

/// `GOOD` ending in a window (`w`: its lines) aggregated by `a`.
fn windowed(w: &str) -> String {
    GOOD.replace(
        "[sink]",
        &format!("[window]\n{w}\n[window.aggregate]\nname = \"a\"\nplugin = \"op.wasm\"\n[sink]"),
    )
}

#[test]
fn a_sliding_window_putting_an_event_in_too_many_windows_is_refused() {
    let dir = with_plugin();
    let ok = windowed("type = \"sliding\"\nsize = \"1s\"\nslide = \"1ms\"");
    assert!(parse_in(dir.path(), &ok).is_ok());
    let e = parse_in(
        dir.path(),
        &windowed("type = \"sliding\"\nsize = \"1h\"\nslide = \"1ms\""),
    )
    .unwrap_err();
    assert!(e.message.contains("3600000 windows"), "{e}");
    assert!(e.message.contains("at most 1000"), "{e}");
    assert_eq!(e.line, Some(12), "{e}");
}

#[test]
fn aggregate_and_process_function_names_are_checked_like_operators() {
    let dir = with_plugin();
    let bad =
        windowed("type = \"tumbling\"\nsize = \"1s\"").replace("name = \"a\"", "name = \"a.b\"");
    let e = parse_in(dir.path(), &bad).unwrap_err();
    assert!(
        e.message.contains("field `window.aggregate.name`: \"a.b\""),
        "{e}"
    );
    assert_eq!(e.line, Some(13));
    let clash =
        windowed("type = \"tumbling\"\nsize = \"1s\"").replace("name = \"a\"", "name = \"f\"");
    let e = parse_in(dir.path(), &clash).unwrap_err();
    assert!(e.message.contains("used by an earlier operator"), "{e}");
    let process = GOOD.replace(
        "[sink]",
        "[process.function]\nname = \"p q\"\nplugin = \"op.wasm\"\n[sink]",
    );
    let e = parse_in(dir.path(), &process).unwrap_err();
    assert!(e.message.contains("field `process.function.name`"), "{e}");
    let memory = process.replace("name = \"p q\"", "name = \"p\"\nmemory_limit_mib = 0");
    let e = parse_in(dir.path(), &memory).unwrap_err();
    assert!(
        e.message.contains("process.function.memory_limit_mib"),
        "{e}"
    );
}

#[test]
fn the_key_may_come_from_a_payload_field() {
    let dir = with_plugin();
    let text = GOOD.replace(
        "stream = \"ORDERS\"",
        "stream = \"ORDERS\"\nkey = { field = \"user.id\" }",
    );
    let p = parse_in(dir.path(), &text).unwrap();
    assert_eq!(p.config.source.key, KeyFrom::Field("user.id".into()));
}

#[test]
fn a_canary_on_a_window_aggregate_is_refused_and_on_a_transform_accepted() {
    let dir = with_plugin();
    let rollout = "rollout = { canary_events = 100, max_error_rate = 0.01 }\n";
    let window = "[window]\ntype = \"tumbling\"\nsize = \"1s\"\n[window.aggregate]\nname = \"a\"\nplugin = \"op.wasm\"\n";
    let text = format!("{GOOD}{window}{rollout}");
    let err = parse_in(dir.path(), &text).unwrap_err().to_string();
    assert!(err.contains("field `window.aggregate.rollout`"), "{err}");
    assert!(err.contains("transform operators"), "{err}");

    let text = GOOD.replace("config = {", &format!("{rollout}config = {{"));
    let p = parse_in(dir.path(), &text).unwrap();
    assert!(p.config.operators[0].rollout.is_some());
}
