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
