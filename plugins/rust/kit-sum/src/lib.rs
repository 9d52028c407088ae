//! `kit-sum`: the behavioural kit's per-key count and sum, in Rust (see `plugins/kit/README.md`).
//!
//! Config: `{"field": "amount"}`. Each event's `field` must be an integer; the result is
//! `{"key","start","end","count","sum"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_field")]
    field: String,
}

fn default_field() -> String {
    "amount".into()
}

struct KitSum(Config);

#[derive(Serialize, Deserialize, Default)]
struct Acc {
    count: u64,
    sum: i64,
}

#[derive(Serialize)]
struct Out {
    key: String,
    start: i64,
    end: i64,
    count: u64,
    sum: i64,
}

impl Aggregate for KitSum {
    type Acc = Acc;
    type Out = Out;

    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config)
            .map(KitSum)
            .map_err(|e| format!("kit-sum config: {e}"))
    }

    fn add(&mut self, acc: &mut Acc, event: &Event<'_>) -> Result<(), String> {
        let doc: serde_json::Map<String, Value> = event
            .json()
            .map_err(|e| format!("payload is not a JSON object: {e}"))?;
        let field = &self.0.field;
        let x = match doc.get(field) {
            Some(v) => v
                .as_i64()
                .ok_or_else(|| format!("field `{field}` is {v}, not an integer"))?,
            None => return Err(format!("field `{field}` is missing")),
        };
        acc.count += 1;
        acc.sum = acc.sum.wrapping_add(x);
        Ok(())
    }

    fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc, String> {
        Ok(Acc {
            count: a.count + b.count,
            sum: a.sum.wrapping_add(b.sum),
        })
    }

    fn finish(
        &mut self,
        key: Option<&str>,
        window: Window,
        acc: Acc,
    ) -> Result<Option<Out>, String> {
        Ok(Some(Out {
            key: key.unwrap_or("").to_owned(),
            start: window.start,
            end: window.end,
            count: acc.count,
            sum: acc.sum,
        }))
    }
}

weir_sdk::export_aggregate!(KitSum);
