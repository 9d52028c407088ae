//! Values from a JSON field of the payload: the event time (`[source] time = { field = … }`)
//! and the key (`[source] key = { field = … }`), at a dotted path (`a.b`: field `b` of
//! object `a`). Errors say what was wrong, for the dead-letter headers.

use serde_json::Value;

/// The value at dotted `path` in `doc`, if there is one.
fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, part| v.get(part))
}

/// Reads the integer at dotted `path` in the JSON `payload` as milliseconds since the epoch.
pub fn time_from_json_field(payload: &[u8], path: &str) -> Result<i64, String> {
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("event time field {path:?}: payload is not JSON ({e})"))?;
    let v = at(&doc, path).ok_or_else(|| format!("event time field {path:?} is missing"))?;
    v.as_i64().ok_or_else(|| {
        format!("event time field {path:?} is {v}, not milliseconds since the epoch")
    })
}

/// Writes the key at dotted `path` in the JSON `payload` into `key` (cleared first): a string
/// as it is, a number or boolean as its JSON text; a missing or `null` field leaves it empty
/// (no key).
pub fn key_from_json_field(payload: &[u8], path: &str, key: &mut Vec<u8>) -> Result<(), String> {
    key.clear();
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("key field {path:?}: payload is not JSON ({e})"))?;
    match at(&doc, path) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => key.extend_from_slice(s.as_bytes()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => {
            key.extend_from_slice(v.to_string().as_bytes())
        }
        Some(v) => return Err(format!("key field {path:?} is {v}, not a string or number")),
    }
    Ok(())
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

    #[test]
    fn key_is_a_string_or_number_field_and_missing_means_no_key() {
        let mut key = Vec::new();
        let key_of = |payload: &[u8], key: &mut Vec<u8>| {
            key_from_json_field(payload, "user.id", key).map(|()| key.clone())
        };
        assert_eq!(
            key_of(br#"{"user":{"id":"u1"}}"#, &mut key),
            Ok(b"u1".to_vec())
        );
        assert_eq!(
            key_of(br#"{"user":{"id":42}}"#, &mut key),
            Ok(b"42".to_vec())
        );
        assert_eq!(key_of(br#"{"user":{}}"#, &mut key), Ok(Vec::new()));
        assert_eq!(key_of(br#"{"user":{"id":null}}"#, &mut key), Ok(Vec::new()));
        assert!(
            key_of(br#"{"user":{"id":[1]}}"#, &mut key)
                .unwrap_err()
                .contains("not a string")
        );
        assert!(key_of(b"nope", &mut key).unwrap_err().contains("not JSON"));
    }
}
