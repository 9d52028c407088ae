//! `json-filter`: keeps the events whose JSON payload satisfies a predicate.
//!
//! Config: `{"field": "amount", "op": "gt", "value": 100}` where `field` is a dotted path
//! (`user.country`), `op` one of `eq ne gt ge lt le exists missing contains` (default `eq`).
//! Numbers compare numerically, strings lexically; a payload that is not JSON is an error
//! (dead-lettered), a missing field simply does not match (except for `missing`).

use serde::Deserialize;
use serde_json::Value;
use std::cmp::Ordering;
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
    fn matches(&self, doc: &Value) -> bool {
        let found = lookup(doc, &self.path);
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
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let doc: Value = event.json()?;
        if self.matches(&doc) {
            out.forward();
        }
        Ok(())
    }
}

weir_sdk::export_transform!(Filter);
