//! `kit-filter`: the behavioural kit's filter + projection, in Rust (see `plugins/kit/README.md`).
//!
//! Config: `{"field": "amount", "min": 10, "keep": ["user", "amount"]}`. Keeps the events whose
//! numeric `field` is `>= min` and emits only the `keep` fields, in that order, as compact JSON.

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_field")]
    field: String,
    #[serde(default)]
    min: f64,
    #[serde(default)]
    keep: Vec<String>,
}

fn default_field() -> String {
    "amount".into()
}

struct KitFilter(Config);

impl Transform for KitFilter {
    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config)
            .map(KitFilter)
            .map_err(|e| format!("kit-filter config: {e}"))
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let doc: Map<String, Value> = serde_json::from_slice(event.payload())
            .map_err(|e| format!("payload is not a JSON object: {e}"))?;
        let Some(x) = doc.get(&self.0.field).and_then(Value::as_f64) else {
            return Ok(());
        };
        if x < self.0.min {
            return Ok(());
        }
        if self.0.keep.is_empty() {
            return out.json(&doc);
        }
        let projected: Map<String, Value> = self
            .0
            .keep
            .iter()
            .filter_map(|k| doc.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        out.json(&projected)
    }
}

weir_sdk::export_transform!(KitFilter);
