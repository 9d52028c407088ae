//! `split-array`: a flat-map emitting one event per element of an array field.
//!
//! Config: `{"field": "items", "with": ["order_id"], "index_field": "i"}`. Each element becomes
//! the payload of one output event; when the element is an object, the fields named in `with`
//! are copied into it from the parent, and `index_field` (optional) records its position.
//! A missing or empty array emits nothing; a field that is not an array is an error.

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Split {
    field: String,
    #[serde(default)]
    with: Vec<String>,
    #[serde(default)]
    index_field: Option<String>,
}

impl Transform for Split {
    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config).map_err(|e| format!("split-array config: {e}"))
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let mut parent: Map<String, Value> = event.json()?;
        let items = match parent.remove(&self.field) {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(format!(
                    "field `{}` is {}, not an array",
                    self.field,
                    kind(&other)
                ));
            }
        };
        for (i, mut item) in items.into_iter().enumerate() {
            if let Value::Object(obj) = &mut item {
                for f in &self.with {
                    if let Some(v) = parent.get(f) {
                        obj.insert(f.clone(), v.clone());
                    }
                }
                if let Some(f) = &self.index_field {
                    obj.insert(f.clone(), Value::from(i));
                }
            }
            out.json(&item)?;
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

weir_sdk::export_transform!(Split);
