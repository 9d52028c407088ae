//! `{{name}}`: a weir transform operator. It tags every JSON event with `"seen_by": "{{name}}"`;
//! events that are not JSON objects are dead-lettered with the reason.
//!
//! Build: `weir plugin build .`; try it: `weir plugin test <component> --input events.jsonl`;
//! unit-test it natively: `cargo test`.

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

// Unit tests run natively with `cargo test`: no wasm target and no host needed.
#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weir_sdk::testing::{TestEvent, TransformHarness};

    use super::Op;

    #[test]
    fn json_objects_are_tagged_and_other_payloads_dead_lettered() {
        let mut op = TransformHarness::<Op>::configure("{}").unwrap();
        let run = op.process(&[
            TestEvent::json(&json!({"user": "a"})).key("a").time(1_000),
            TestEvent::new("not json"),
        ]);
        let outputs: Vec<Value> = run.json().unwrap();
        assert_eq!(outputs, [json!({"user": "a", "seen_by": "{{name}}"})]);
        assert_eq!(run.outputs[0].key(), Some("a"));
        assert_eq!(run.failures.len(), 1);
        assert_eq!(run.failures[0].index, 1);
    }
}
