//! `kit-filter`: the behavioural kit's filter + projection, in Rust (see `plugins/kit/README.md`).
//!
//! Config: `{"field": "amount", "min": 10, "keep": ["user", "amount"]}`. Keeps the events whose
//! numeric `field` is `>= min` and emits only the `keep` fields, in that order, as compact JSON.
//!
//! Built on the SDK's borrowed JSON (`weir_sdk::json`): the payload's object is parsed into a
//! reused member list without decoding its values, the tested field is read from its raw text,
//! and the kept values are copied into the output batch as they are.

use serde::Deserialize;
use weir_sdk::json::{ObjectParser, Projection};
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

struct KitFilter {
    field: String,
    min: f64,
    /// Empty: keep every field.
    keep: Projection,
    parser: ObjectParser,
}

impl Transform for KitFilter {
    fn configure(config: &str) -> Result<Self, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("kit-filter config: {e}"))?;
        Ok(KitFilter {
            field: c.field,
            min: c.min,
            keep: Projection::new(&c.keep),
            parser: ObjectParser::new(),
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let doc = event.json_object(&mut self.parser)?;
        let Some(x) = doc.get(&self.field).and_then(|v| v.as_f64()) else {
            return Ok(());
        };
        if x < self.min {
            return Ok(());
        }
        if self.keep.is_empty() {
            out.write(|buf| doc.write_compact(buf))
        } else {
            out.write(|buf| doc.write_projection(&self.keep, buf))
        }
    }
}

weir_sdk::export_transform!(KitFilter);

#[cfg(test)]
mod tests {
    use weir_sdk::testing::{TestEvent, TransformHarness};

    use super::KitFilter;

    fn run(config: &str, payloads: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut op = TransformHarness::<KitFilter>::configure(config).expect("a valid config");
        let events: Vec<TestEvent> = payloads.iter().map(TestEvent::new).collect();
        let run = op.process(&events);
        let outputs = run
            .outputs
            .iter()
            .map(|o| String::from_utf8_lossy(o.payload()).into_owned())
            .collect();
        (
            outputs,
            run.failures.into_iter().map(|f| f.message).collect(),
        )
    }

    #[test]
    fn keeps_events_at_or_above_min_with_the_keep_fields_in_keep_order() {
        let config = r#"{"field":"amount","min":10,"keep":["country","user","amount"]}"#;
        let (out, failed) = run(
            config,
            &[
                r#"{"user":"bo","amount":25,"country":"PT","note":"a \"q\""}"#,
                r#"{"user":"eve","amount":6}"#,
                r#"{"user":"ana","amount":10}"#,
            ],
        );
        assert_eq!(
            out,
            [
                r#"{"country":"PT","user":"bo","amount":25}"#,
                r#"{"user":"ana","amount":10}"#
            ]
        );
        assert!(failed.is_empty());
    }

    #[test]
    fn drops_events_whose_field_is_missing_or_not_a_number() {
        let (out, failed) = run(
            r#"{"min":0}"#,
            &[
                r#"{"user":"bo"}"#,
                r#"{"amount":"25"}"#,
                r#"{"amount":null}"#,
            ],
        );
        assert!(out.is_empty() && failed.is_empty(), "{out:?} {failed:?}");
    }

    #[test]
    fn an_empty_keep_rewrites_every_field_compactly() {
        let (out, _) = run(
            r#"{"min":1}"#,
            &[" { \"b\" : [1, 2],\n \"amount\" : 2.0 } "],
        );
        assert_eq!(out, [r#"{"b":[1,2],"amount":2.0}"#]);
    }

    #[test]
    fn a_payload_that_is_not_an_object_fails_the_event() {
        let (out, failed) = run("{}", &["[1]", "nope", r#"{"amount":1}"#]);
        assert_eq!(out, [r#"{"amount":1}"#]);
        assert_eq!(failed.len(), 2);
        for message in failed {
            assert!(
                message.starts_with("payload is not a JSON object"),
                "{message}"
            );
        }
    }
}
