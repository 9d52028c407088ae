//! `weir validate` and `weir run` on broken pipeline files: exit 1, the field named.

use crate::support::*;

fn validate(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(dir.path(), text);
    let out = weir().arg("validate").arg(&p).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_pipeline_validates() {
    let ops = operator("f", "json_filter", r#"{ field = "a", op = "exists" }"#);
    let dir = tempfile::tempdir().unwrap();
    let p = write_pipeline(dir.path(), &pipeline_text("ok", "", &ops));
    let out = weir().arg("validate").arg(&p).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_field_exits_1_naming_it() {
    let ops = operator("f", "json_filter", r#"{ field = "a", op = "exists" }"#);
    let (code, err) = validate(&pipeline_text("bad", "fetch_size = 3", &ops));
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `fetch_size`"), "{err}");
    assert!(err.contains("pipeline.toml:6"), "{err}");
}

#[test]
fn missing_plugin_file_exits_1_naming_the_field() {
    let ops = "[[operators]]\nname = \"f\"\nplugin = \"nowhere/op.wasm\"\n";
    let (code, err) = validate(&pipeline_text("bad", "", ops));
    assert_eq!(code, 1);
    assert!(err.contains("operators[0].plugin"), "{err}");
    assert!(err.contains("nowhere/op.wasm"), "{err}");
}

#[test]
fn a_component_of_the_wrong_world_exits_1_naming_the_field() {
    let wrong = plugins_dir().join("weir-plugin-wrong-world.wasm");
    let ops = format!(
        "[[operators]]\nname = \"f\"\nplugin = \"{}\"\n",
        toml_path(&wrong)
    );
    let (code, err) = validate(&pipeline_text("bad", "", &ops));
    assert_eq!(code, 1);
    assert!(err.contains("operators[0].plugin"), "{err}");
    assert!(
        err.contains("does not implement the `transform` world"),
        "{err}"
    );
}

#[test]
fn an_aggregate_built_against_an_older_contract_is_refused_with_how_to_rebuild_it() {
    // Its `merge` takes two accumulators: the contract before `merge` took groups.
    let older = plugins_dir().join("weir_plugin_older_contract.wasm");
    let window = format!(
        "[window]\ntype = \"sliding\"\nsize = \"10s\"\nslide = \"2s\"\n\n\
         [window.aggregate]\nname = \"count\"\nplugin = \"{}\"\n",
        toml_path(&older)
    );
    let (code, err) = validate(&pipeline_text("older", "", &window));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("window.aggregate.plugin"), "{err}");
    assert!(
        err.contains("does not implement the `aggregate` world"),
        "{err}"
    );
    assert!(err.contains("`merge`"), "{err}");
    assert!(
        err.contains("older version of the contract? rebuild it with this weir"),
        "{err}"
    );
}

#[test]
fn a_plugin_refusing_its_config_exits_1_naming_the_operator() {
    let ops = operator("f", "json_filter", r#"{ fild = "a" }"#);
    let (code, err) = validate(&pipeline_text("bad", "", &ops));
    assert_eq!(code, 1);
    assert!(err.contains("transform `f` (operators[0])"), "{err}");
    assert!(err.contains("unknown field `fild`"), "{err}");
}

#[test]
fn a_file_that_is_not_wasm_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.wasm");
    std::fs::write(&fake, b"hello").unwrap();
    let ops = format!(
        "[[operators]]\nname = \"f\"\nplugin = \"{}\"\n",
        toml_path(&fake)
    );
    let (code, err) = validate(&pipeline_text("bad", "", &ops));
    assert_eq!(code, 1);
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}

#[test]
fn validate_refuses_what_the_run_would_refuse_naming_field_and_line() {
    let ops = operator("f", "json_filter", r#"{ field = "a", op = "exists" }"#);
    let window = |w: &str| format!("{ops}\n{}", window_section(w, "agg", "window_stats", "{}"));
    for (source_extra, stages, expected) in [
        (
            "consumer = \"my.consumer\"",
            ops.clone(),
            "pipeline.toml:6: field `source.consumer`",
        ),
        (
            "subjects = [\"in..x\"]",
            ops.clone(),
            "pipeline.toml:6: field `source.subjects[0]`",
        ),
        (
            "time = { field = \"\" }",
            ops.clone(),
            "pipeline.toml:6: field `source.time.field`",
        ),
        (
            "ack_wait = \"500ms\"",
            ops.clone(),
            "field `source.ack_wait`: 500ms is out of range",
        ),
        (
            "",
            window("type = \"sliding\"\nsize = \"1h\"\nslide = \"1ms\""),
            "field `window.slide`: 1ms puts every event in 3600000 windows",
        ),
        (
            "",
            window("type = \"tumbling\"\nsize = \"1s\"").replace("name = \"agg\"", "name = \"a*\""),
            "field `window.aggregate.name`: \"a*\"",
        ),
    ] {
        let text = pipeline_text("bad", source_extra, &stages);
        let (code, err) = validate(&text);
        assert_eq!(code, 1, "{expected}: {err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
    let late = pipeline_text("bad", "", &ops).replace(
        "dead_letter = \"dlq\"",
        "dead_letter = \"dlq\"\nlate = \"late.*\"",
    );
    let (code, err) = validate(&late);
    assert_eq!(code, 1);
    assert!(
        err.contains("field `sink.late`: \"late.*\" has a wildcard"),
        "{err}"
    );
}
