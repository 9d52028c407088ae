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
