//! `rekey`: sets each event's key from a field of its JSON payload.
//!
//! Config: `{"field": "user.id", "on_missing": "error" | "drop" | "keep"}` (default `error`).
//! Strings become the key as they are, numbers and booleans in their JSON text.

use serde::Deserialize;
use serde_json::Value;
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OnMissing {
    Error,
    Drop,
    Keep,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    field: String,
    #[serde(default = "default_missing")]
    on_missing: OnMissing,
}

fn default_missing() -> OnMissing {
    OnMissing::Error
}

struct Rekey {
    path: Vec<String>,
    field: String,
    on_missing: OnMissing,
}

impl Transform for Rekey {
    fn configure(config: &str) -> Result<Self, String> {
        let c: Config = serde_json::from_str(config).map_err(|e| format!("rekey config: {e}"))?;
        Ok(Rekey {
            path: c.field.split('.').map(str::to_owned).collect(),
            field: c.field,
            on_missing: c.on_missing,
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let doc: Value = event.json()?;
        let mut v = Some(&doc);
        for p in &self.path {
            v = v.and_then(|v| v.get(p.as_str()));
        }
        let key = match v {
            Some(Value::String(s)) => s.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => {
                return match self.on_missing {
                    OnMissing::Error => Err(format!(
                        "key field `{}` is missing or not a scalar",
                        self.field
                    )),
                    OnMissing::Drop => Ok(()),
                    OnMissing::Keep => {
                        out.forward();
                        Ok(())
                    }
                };
            }
        };
        out.event().key(key.as_bytes()).bytes(event.payload());
        Ok(())
    }
}

weir_sdk::export_transform!(Rekey);
