//! Event-time extraction from a JSON field of the payload.

/// Reads the integer at dotted `path` in the JSON `payload` as milliseconds since the epoch.
/// The error says what was wrong, for the dead-letter headers.
pub fn time_from_json_field(payload: &[u8], path: &str) -> Result<i64, String> {
    let doc: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| format!("event time field {path:?}: payload is not JSON ({e})"))?;
    let mut v = &doc;
    for part in path.split('.') {
        v = v
            .get(part)
            .ok_or_else(|| format!("event time field {path:?} is missing"))?;
    }
    v.as_i64().ok_or_else(|| {
        format!("event time field {path:?} is {v}, not milliseconds since the epoch")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_read_from_a_nested_field_with_clear_errors() {
        assert_eq!(time_from_json_field(br#"{"a":{"ts":42}}"#, "a.ts"), Ok(42));
        assert!(
            time_from_json_field(br#"{"a":{}}"#, "a.ts")
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            time_from_json_field(br#"{"ts":"x"}"#, "ts")
                .unwrap_err()
                .contains("not milliseconds")
        );
        assert!(
            time_from_json_field(b"nope", "ts")
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
