//! `json-filter`: keeps the events whose JSON payload satisfies a predicate.
//!
//! Config: `{"field": "amount", "op": "gt", "value": 100}` where `field` is a dotted path
//! (`user.country`), `op` one of `eq ne gt ge lt le exists missing contains` (default `eq`).
//! Numbers compare numerically, strings lexically; a payload that is not JSON is an error
//! (dead-lettered), a missing field simply does not match (except for `missing`).
//!
//! An object payload is read with the SDK's borrowed JSON (`weir_sdk::json`): only the tested
//! field is decoded, and a kept event is forwarded as it came. Any other JSON payload (an
//! array, a number) goes through a `serde_json::Value`.

use serde::Deserialize;
use serde_json::Value;
use std::cmp::Ordering;
use weir_sdk::json::{ObjectParser, RawObject};
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    Missing,
    Contains,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    field: String,
    #[serde(default = "default_op")]
    op: Op,
    #[serde(default)]
    value: Value,
}

fn default_op() -> Op {
    Op::Eq
}

struct Filter {
    path: Vec<String>,
    op: Op,
    value: Value,
    parser: ObjectParser,
}

/// The value at `path` (not empty) in `doc`, decoded: a scalar from its raw text, a nested
/// path through its parent parsed as a `Value`.
fn lookup_raw(doc: &RawObject<'_>, path: &[String]) -> Result<Option<Value>, String> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(raw) = doc.get(first) else {
        return Ok(None);
    };
    let v: Value = raw
        .parse()
        .map_err(|e| format!("payload field {first:?} is not JSON: {e}"))?;
    if rest.is_empty() {
        return Ok(Some(v));
    }
    Ok(lookup(&v, rest).cloned())
}

fn lookup<'v>(mut v: &'v Value, path: &[String]) -> Option<&'v Value> {
    for part in path {
        v = v.get(part.as_str())?;
    }
    Some(v)
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Filter {
    fn matches(&self, found: Option<&Value>) -> bool {
        match (self.op, found) {
            (Op::Exists, f) => f.is_some(),
            (Op::Missing, f) => f.is_none(),
            (_, None) => false,
            (Op::Eq, Some(v)) => {
                compare(v, &self.value) == Some(Ordering::Equal) || *v == self.value
            }
            (Op::Ne, Some(v)) => {
                !(compare(v, &self.value) == Some(Ordering::Equal) || *v == self.value)
            }
            (Op::Gt, Some(v)) => compare(v, &self.value) == Some(Ordering::Greater),
            (Op::Ge, Some(v)) => matches!(
                compare(v, &self.value),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            (Op::Lt, Some(v)) => compare(v, &self.value) == Some(Ordering::Less),
            (Op::Le, Some(v)) => matches!(
                compare(v, &self.value),
                Some(Ordering::Less | Ordering::Equal)
            ),
            (Op::Contains, Some(Value::String(s))) => {
                self.value.as_str().is_some_and(|n| s.contains(n))
            }
            (Op::Contains, Some(Value::Array(a))) => a.contains(&self.value),
            (Op::Contains, Some(_)) => false,
        }
    }
}

impl Transform for Filter {
    fn configure(config: &str) -> Result<Self, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("json-filter config: {e}"))?;
        if c.field.is_empty() {
            return Err("json-filter config: `field` must not be empty".into());
        }
        if !matches!(c.op, Op::Exists | Op::Missing) && c.value.is_null() {
            return Err(
                format!("json-filter config: op `{:?}` needs a `value`", c.op).to_lowercase(),
            );
        }
        Ok(Filter {
            path: c.field.split('.').map(str::to_owned).collect(),
            op: c.op,
            value: c.value,
            parser: ObjectParser::new(),
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let found = match event.json_object(&mut self.parser) {
            Ok(doc) => lookup_raw(&doc, &self.path)?,
            // Not an object (or not JSON: this names the error as before).
            Err(_) => {
                let doc: Value = event.json()?;
                lookup(&doc, &self.path).cloned()
            }
        };
        if self.matches(found.as_ref()) {
            out.forward();
        }
        Ok(())
    }
}

weir_sdk::export_transform!(Filter);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use weir_sdk::testing::{TestEvent, TransformHarness};

    use super::Filter;

    fn filter(config: serde_json::Value) -> TransformHarness<Filter> {
        TransformHarness::configure(&config.to_string()).unwrap()
    }

    #[test]
    fn matching_events_are_forwarded_unchanged_and_others_dropped() {
        let mut f = filter(json!({"field": "user.country", "value": "FR"}));
        let events = [
            TestEvent::json(&json!({"user": {"country": "FR"}, "n": 1}))
                .key("a")
                .time(5)
                .header("trace", "t1"),
            TestEvent::json(&json!({"user": {"country": "DE"}})),
            TestEvent::json(&json!({"n": 3})),
        ];
        let run = f.process(&events);
        assert!(run.failures.is_empty());
        assert_eq!(run.outputs.len(), 1);
        let kept = &run.outputs[0];
        assert_eq!(kept.origin(), Some(0));
        assert_eq!(
            (kept.key(), kept.time(), kept.header("trace")),
            (Some("a"), 5, Some(&b"t1"[..]))
        );
        assert_eq!(
            kept.json::<serde_json::Value>().unwrap(),
            json!({"user": {"country": "FR"}, "n": 1})
        );
    }

    #[test]
    fn numbers_compare_numerically() {
        let mut f = filter(json!({"field": "amount", "op": "gt", "value": 100}));
        let run = f.process(&[
            TestEvent::json(&json!({"amount": 100.5})),
            TestEvent::json(&json!({"amount": 99})),
            TestEvent::json(&json!({"amount": "1000"})),
        ]);
        let kept: Vec<_> = run.outputs.iter().map(|e| e.origin()).collect();
        assert_eq!(kept, [Some(0)]);
    }

    #[test]
    fn a_payload_that_is_not_json_is_dead_lettered_alone() {
        let mut f = filter(json!({"field": "k", "op": "exists"}));
        let run = f.process(&[
            TestEvent::new("not json"),
            TestEvent::json(&json!({"k": null})),
        ]);
        assert_eq!(run.failures.len(), 1);
        assert_eq!(run.failures[0].index, 0);
        assert_eq!(run.outputs[0].origin(), Some(1));
    }

    #[test]
    fn payloads_that_are_not_objects_and_escaped_or_nested_fields_still_match() {
        let mut f = filter(json!({"field": "a", "op": "missing"}));
        let run = f.process(&[TestEvent::new("[1, 2]"), TestEvent::new("7")]);
        assert!(run.failures.is_empty());
        assert_eq!(run.outputs.len(), 2);
        let mut f = filter(json!({"field": "na\"me", "value": "x\ny"}));
        let run = f.process(&[
            TestEvent::new(r#"{"na\"me": "x\ny"}"#),
            TestEvent::new(r#"{"na\"me": "x y"}"#),
        ]);
        let kept: Vec<_> = run.outputs.iter().map(|e| e.origin()).collect();
        assert_eq!(kept, [Some(0)]);
        let mut f = filter(json!({"field": "a.b", "op": "contains", "value": 2}));
        let run = f.process(&[
            TestEvent::new(r#"{"a": {"b": [1, 2]}}"#),
            TestEvent::new(r#"{"a": {"b": [3]}}"#),
            TestEvent::new(r#"{"a": 5}"#),
        ]);
        let kept: Vec<_> = run.outputs.iter().map(|e| e.origin()).collect();
        assert_eq!(kept, [Some(0)]);
    }

    #[test]
    fn a_comparison_without_a_value_is_refused_at_start() {
        let err = TransformHarness::<Filter>::configure(r#"{"field": "a", "op": "gt"}"#)
            .err()
            .unwrap();
        assert_eq!(err, "json-filter config: op `gt` needs a `value`");
    }
}
