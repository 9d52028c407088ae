//! `ctr`: click-through rate per key and window, for ad-impression/click streams.
//!
//! Config: `{"field": "type", "impression": "impression", "click": "click"}` (these defaults):
//! the JSON field naming the event kind and its two values. Other kinds are ignored; a payload
//! that is not JSON, or lacks the field, is an error (dead-lettered). Result payload:
//! `{"key", "start", "end", "impressions", "clicks", "ctr"}` (`ctr` is null without impressions).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ctr {
    #[serde(default = "default_field")]
    field: String,
    #[serde(default = "default_impression")]
    impression: String,
    #[serde(default = "default_click")]
    click: String,
}

fn default_field() -> String {
    "type".into()
}
fn default_impression() -> String {
    "impression".into()
}
fn default_click() -> String {
    "click".into()
}

#[derive(Serialize, Deserialize, Default)]
struct Counts {
    impressions: u64,
    clicks: u64,
}

impl Aggregate for Ctr {
    type Acc = Counts;
    type Out = Value;

    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config).map_err(|e| format!("ctr config: {e}"))
    }

    fn add(&mut self, acc: &mut Counts, event: &Event<'_>) -> Result<(), String> {
        let doc: Value = event.json()?;
        match doc.get(&self.field).and_then(Value::as_str) {
            Some(k) if k == self.impression => acc.impressions += 1,
            Some(k) if k == self.click => acc.clicks += 1,
            Some(_) => {}
            None => return Err(format!("field `{}` is missing or not a string", self.field)),
        }
        Ok(())
    }

    fn merge(&mut self, a: Counts, b: Counts) -> Result<Counts, String> {
        Ok(Counts {
            impressions: a.impressions + b.impressions,
            clicks: a.clicks + b.clicks,
        })
    }

    fn finish(
        &mut self,
        key: Option<&str>,
        window: Window,
        acc: Counts,
    ) -> Result<Option<Value>, String> {
        let ctr = (acc.impressions > 0).then(|| acc.clicks as f64 / acc.impressions as f64);
        Ok(Some(json!({
            "key": key,
            "start": window.start,
            "end": window.end,
            "impressions": acc.impressions,
            "clicks": acc.clicks,
            "ctr": ctr,
        })))
    }
}

weir_sdk::export_aggregate!(Ctr);
