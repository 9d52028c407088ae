// The body of `stamp`, `stamp-v2` and `stamp-broken`, which differ in `VERSION` and `BROKEN`
// only (included by each).

use weir_sdk::{Event, Output, Transform};

struct Stamp;

impl Transform for Stamp {
    fn configure(config: &str) -> Result<Self, String> {
        match config {
            "" | "null" | "{}" => Ok(Stamp),
            other => Err(format!("stamp takes no config, got {other}")),
        }
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        if BROKEN {
            panic!("stamp version {VERSION} is broken");
        }
        let mut obj: serde_json::Map<String, serde_json::Value> = event.json()?;
        obj.insert("v".into(), VERSION.into());
        out.json(&obj)
    }
}

weir_sdk::export_transform!(Stamp);
