//! Values from a JSON field of the payload: the event time (`[source] time = { field = … }`)
//! and the key (`[source] key = { field = … }`), at a dotted path (`a.b`: field `b` of
//! object `a`). Errors say what was wrong, for the dead-letter headers.
//!
//! The payload is not built into a document: one pass validates it as serde_json does,
//! compares keys as they come, skips every other value and keeps the wanted one as raw text.
//! A key that appears twice counts with its last value, as in a parsed map.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The raw value at dotted `path` in the JSON `payload`, if there is one.
fn at<'a>(payload: &'a [u8], path: &str) -> Result<Option<&'a RawValue>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let found = Find(path).deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// Finds the value at a dotted path (what is left of it) in the value being deserialized.
struct Find<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Find<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (part, rest) = match self.0.split_once('.') {
            Some((part, rest)) => (part, Some(rest)),
            None => (self.0, None),
        };
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(IsKey(part))? {
            match (wanted, rest) {
                (false, _) => {
                    map.next_value::<IgnoredAny>()?;
                }
                (true, None) => found = Some(map.next_value::<&RawValue>()?),
                (true, Some(rest)) => found = map.next_value_seed(Find(rest))?,
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Whether an object key (escapes decoded) is the wanted one.
struct IsKey<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for IsKey<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsKey<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// Reads the integer at dotted `path` in the JSON `payload` as milliseconds since the epoch.
pub fn time_from_json_field(payload: &[u8], path: &str) -> Result<i64, String> {
    let v = at(payload, path)
        .map_err(|e| format!("event time field {path:?}: payload is not JSON ({e})"))?
        .ok_or_else(|| format!("event time field {path:?} is missing"))?;
    serde_json::from_str::<i64>(v.get()).map_err(|_| {
        format!(
            "event time field {path:?} is {}, not milliseconds since the epoch",
            v.get()
        )
    })
}

/// Writes the key at dotted `path` in the JSON `payload` into `key` (cleared first): a string
/// as it is, a number or boolean as its JSON text; a missing or `null` field leaves it empty
/// (no key).
pub fn key_from_json_field(payload: &[u8], path: &str, key: &mut Vec<u8>) -> Result<(), String> {
    key.clear();
    let found =
        at(payload, path).map_err(|e| format!("key field {path:?}: payload is not JSON ({e})"))?;
    let Some(raw) = found else {
        return Ok(());
    };
    if let Ok(s) = serde_json::from_str::<&str>(raw.get()) {
        key.extend_from_slice(s.as_bytes());
        return Ok(());
    }
    // Escaped strings, numbers, booleans and the rest: as a parsed value says them.
    let v: Value = serde_json::from_str(raw.get())
        .map_err(|e| format!("key field {path:?}: payload is not JSON ({e})"))?;
    match v {
        Value::Null => {}
        Value::String(s) => key.extend_from_slice(s.as_bytes()),
        v @ (Value::Number(_) | Value::Bool(_)) => key.extend_from_slice(v.to_string().as_bytes()),
        v => return Err(format!("key field {path:?} is {v}, not a string or number")),
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

    #[test]
    fn the_payload_is_read_as_a_parsed_document_would_say() {
        let time = |p: &[u8]| time_from_json_field(p, "a.ts");
        // Escaped keys, whitespace, other values of every kind skipped, the last of two.
        assert_eq!(
            time(br#" { "x": [1, {"ts": 5}], "\u0061" : { "t\u0073": 7, "n": null } } "#),
            Ok(7)
        );
        assert_eq!(time(br#"{"a":{"ts":1},"a":{"ts":2}}"#), Ok(2));
        assert_eq!(
            time(br#"{"a":{"ts":1},"a":3}"#).unwrap_err(),
            "event time field \"a.ts\" is missing"
        );
        assert!(
            time(br#"{"a":{"ts":1}} x"#)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            time(br#"{"a":{"ts":1}, "b": tru}"#)
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(time(br#"[1]"#).unwrap_err().contains("missing"));
        assert!(
            time(br#"{"a":{"ts":1.5}}"#)
                .unwrap_err()
                .contains("is 1.5, not milliseconds")
        );
        let mut key = Vec::new();
        key_from_json_field(br#"{"user":{"id":"a\"b"}}"#, "user.id", &mut key).unwrap();
        assert_eq!(key, br#"a"b"#);
        key_from_json_field(br#"{"user":{"id":true}}"#, "user.id", &mut key).unwrap();
        assert_eq!(key, b"true");
    }
}
