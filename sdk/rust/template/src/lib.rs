//! `{{name}}`: a weir transform operator. It tags every JSON event with `"seen_by": "{{name}}"`;
//! events that are not JSON objects are dead-lettered with the reason.
//!
//! Build: `weir plugin build .`; try it: `weir plugin test <component> --input events.jsonl`.

use serde_json::{Map, Value};
use weir_sdk::{Event, Output, Transform};

struct Op;

impl Transform for Op {
    fn configure(_config: &str) -> Result<Self, String> {
        Ok(Op)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let mut doc: Map<String, Value> = event
            .json()
            .map_err(|e| format!("payload is not a JSON object: {e}"))?;
        doc.insert("seen_by".into(), "{{name}}".into());
        out.json(&doc)
    }
}

weir_sdk::export_transform!(Op);
