//! `top-k`: the `k` most frequent values of a JSON field per key and window (e.g. the top pages
//! per site and minute).
//!
//! Config: `{"field": "page", "k": 3}`. Events whose field is missing are ignored; numbers and
//! booleans count in their JSON text. Result payload:
//! `{"key", "start", "end", "top": [{"value", "count"}, ...]}`, by count descending, then value.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopK {
    field: String,
    #[serde(default = "default_k")]
    k: usize,
}

fn default_k() -> usize {
    3
}

impl Aggregate for TopK {
    /// Count per value.
    type Acc = BTreeMap<String, u64>;
    type Out = Value;

    fn configure(config: &str) -> Result<Self, String> {
        let t: TopK = serde_json::from_str(config).map_err(|e| format!("top-k config: {e}"))?;
        if t.k == 0 {
            return Err("top-k config: `k` must be at least 1".into());
        }
        Ok(t)
    }

    fn add(&mut self, acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), String> {
        let doc: Value = event.json()?;
        let value = match doc.get(&self.field) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(other) => return Err(format!("field `{}` is {other}, not a scalar", self.field)),
        };
        *acc.entry(value).or_default() += 1;
        Ok(())
    }

    fn merge(&mut self, mut a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, String> {
        for (v, n) in b {
            *a.entry(v).or_default() += n;
        }
        Ok(a)
    }

    fn finish(
        &mut self,
        key: Option<&str>,
        window: Window,
        acc: Self::Acc,
    ) -> Result<Option<Value>, String> {
        let mut counts: Vec<(String, u64)> = acc.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(self.k);
        let top: Vec<Value> = counts
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect();
        Ok(Some(
            json!({"key": key, "start": window.start, "end": window.end, "top": top}),
        ))
    }
}

weir_sdk::export_aggregate!(TopK);
