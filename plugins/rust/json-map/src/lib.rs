//! `json-map`: projects and enriches JSON object payloads.
//!
//! Config (all optional):
//! - `fields`: keep only these top-level fields (in this order); absent ones are skipped;
//! - `rename`: `{"old": "new"}` applied after the projection;
//! - `set`: constant fields to add (`{"source": "weir"}`);
//! - `time_field` / `key_field`: add the event time (ms) / key (string or null) under this name.
//!
//! A payload that is not a JSON object is an error (dead-lettered).

use serde::Deserialize;
use serde_json::{Map, Value};
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Map_ {
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    rename: Map<String, Value>,
    #[serde(default)]
    set: Map<String, Value>,
    #[serde(default)]
    time_field: Option<String>,
    #[serde(default)]
    key_field: Option<String>,
}

struct JsonMap {
    cfg: Map_,
    rename: Vec<(String, String)>,
}

impl Transform for JsonMap {
    fn configure(config: &str) -> Result<Self, String> {
        let cfg: Map_ =
            serde_json::from_str(config).map_err(|e| format!("json-map config: {e}"))?;
        let mut rename = Vec::new();
        for (from, to) in &cfg.rename {
            let to = to
                .as_str()
                .ok_or_else(|| format!("json-map config: rename of `{from}` must be a string"))?;
            rename.push((from.clone(), to.to_owned()));
        }
        Ok(JsonMap { cfg, rename })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let mut obj: Map<String, Value> = event.json()?;
        if let Some(fields) = &self.cfg.fields {
            let mut kept = Map::with_capacity(fields.len());
            for f in fields {
                if let Some(v) = obj.remove(f) {
                    kept.insert(f.clone(), v);
                }
            }
            obj = kept;
        }
        for (from, to) in &self.rename {
            if let Some(v) = obj.remove(from) {
                obj.insert(to.clone(), v);
            }
        }
        for (k, v) in &self.cfg.set {
            obj.insert(k.clone(), v.clone());
        }
        if let Some(f) = &self.cfg.time_field {
            obj.insert(f.clone(), Value::from(event.time()));
        }
        if let Some(f) = &self.cfg.key_field {
            obj.insert(f.clone(), event.key().map_or(Value::Null, Value::from));
        }
        out.json(&obj)
    }
}

weir_sdk::export_transform!(JsonMap);
