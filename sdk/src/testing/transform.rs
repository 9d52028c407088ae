//! [`TransformHarness`]: a [`Transform`] driven through the `transform` world's glue.

use crate::Transform;
use crate::bindings::weir::operator::types::Batch;
use crate::event::batch_from;
use crate::transform::{configure, process};

use super::{CallFailure, Outcome, TestEvent, builder_of, run_isolating};

/// A configured [`Transform`] run over events as the host runs it.
///
/// ```
/// use weir_sdk::testing::{TestEvent, TransformHarness};
/// use weir_sdk::{Event, Output, Transform};
///
/// struct Double;
/// impl Transform for Double {
///     fn configure(_config: &str) -> Result<Self, String> {
///         Ok(Double)
///     }
///     fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
///         let n: i64 = event.json()?;
///         out.json(&(2 * n))
///     }
/// }
///
/// let mut double = TransformHarness::<Double>::configure("{}").unwrap();
/// let run = double.process(&[
///     TestEvent::new("1").key("a"),
///     TestEvent::new("oops"),
///     TestEvent::new("21").time(5),
/// ]);
/// assert_eq!(run.json::<i64>().unwrap(), [2, 42]);
/// assert_eq!(run.outputs[0].key(), Some("a"));
/// assert_eq!((run.outputs[1].time(), run.outputs[1].origin()), (5, Some(2)));
/// assert_eq!(run.failures[0].index, 1);
/// assert!(run.failures[0].message.contains("expected JSON"));
/// ```
pub struct TransformHarness<T: Transform> {
    op: Option<T>,
}

impl<T: Transform> TransformHarness<T> {
    /// Configures the operator with `config` (JSON text; the host passes `{}` when the
    /// pipeline gives none). An error is the operator's: the host would refuse the pipeline.
    pub fn configure(config: &str) -> Result<Self, String> {
        let mut op = None;
        configure(&mut op, config)?;
        Ok(TransformHarness { op })
    }

    /// Runs `events` as one micro-batch; failed events are set aside and the others handed to
    /// the operator again, as the host does (so the operator may see an event more than once).
    pub fn process(&mut self, events: &[TestEvent]) -> Outcome {
        let mut outcome = Outcome::default();
        let all: Vec<usize> = (0..events.len()).collect();
        let op = &mut self.op;
        run_isolating(
            events,
            &all,
            &mut |batch| {
                process(op, batch_from!(Batch, batch))
                    .map(|out| builder_of!(out))
                    .map_err(|e| CallFailure::Event(e.index, e.message))
            },
            &mut outcome,
        );
        outcome
    }

    /// The configured operator.
    pub fn operator(&mut self) -> &mut T {
        self.op
            .as_mut()
            .expect("a harness holds a configured operator")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Output};

    /// Forwards, re-keys, fans out or fails, by payload.
    struct Router {
        label: String,
        seen: usize,
    }

    impl Transform for Router {
        fn configure(config: &str) -> Result<Self, String> {
            let c: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
            let label = c["label"].as_str().ok_or("`label` is required")?.to_owned();
            Ok(Router { label, seen: 0 })
        }

        fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
            self.seen += 1;
            match event.payload() {
                b"fail" => Err("asked to fail".into()),
                b"drop" => Ok(()),
                b"twice" => {
                    out.bytes(b"one");
                    out.bytes(b"two");
                    Ok(())
                }
                b"rekey" => {
                    out.event()
                        .key(b"new")
                        .time(99)
                        .header("label", self.label.as_bytes())
                        .bytes(b"moved");
                    Ok(())
                }
                _ => {
                    out.forward();
                    Ok(())
                }
            }
        }
    }

    fn router() -> TransformHarness<Router> {
        TransformHarness::configure(r#"{"label": "x"}"#).unwrap()
    }

    #[test]
    fn a_refused_config_is_the_operators_error() {
        let err = TransformHarness::<Router>::configure("{}").err().unwrap();
        assert_eq!(err, "`label` is required");
    }

    #[test]
    fn forwarded_events_keep_key_time_and_headers() {
        let event = TestEvent::new("same").key("k").time(3).header("h", "v");
        let run = router().process(std::slice::from_ref(&event));
        assert!(run.failures.is_empty());
        let out = &run.outputs[0];
        assert_eq!(
            (out.key(), out.time(), out.payload(), out.header("h")),
            (Some("k"), 3, &b"same"[..], Some(&b"v"[..]))
        );
        assert_eq!(out.origin(), Some(0));
    }

    #[test]
    fn fan_out_rekey_and_drop_come_back_in_input_order_with_origins() {
        let events = [
            TestEvent::new("twice").key("k"),
            TestEvent::new("drop"),
            TestEvent::new("rekey").key("old").header("kept", "yes"),
            TestEvent::new("last"),
        ];
        let run = router().process(&events);
        let got: Vec<_> = run
            .outputs
            .iter()
            .map(|e| (e.payload().to_vec(), e.key(), e.origin()))
            .collect();
        assert_eq!(
            got,
            [
                (b"one".to_vec(), Some("k"), Some(0)),
                (b"two".to_vec(), Some("k"), Some(0)),
                (b"moved".to_vec(), Some("new"), Some(2)),
                (b"last".to_vec(), None, Some(3)),
            ]
        );
        let moved = &run.outputs[2];
        assert_eq!(moved.time(), 99);
        assert_eq!(moved.header("kept"), Some(&b"yes"[..]));
        assert_eq!(moved.header("label"), Some(&b"x"[..]));
    }

    #[test]
    fn a_failing_event_is_set_aside_and_the_rest_handed_over_again() {
        let events = [
            TestEvent::new("a"),
            TestEvent::new("fail"),
            TestEvent::new("b"),
            TestEvent::new("fail"),
        ];
        let mut h = router();
        let run = h.process(&events);
        let payloads: Vec<_> = run.outputs.iter().map(|e| e.payload().to_vec()).collect();
        assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
        let failed: Vec<_> = run.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, [1, 3]);
        assert_eq!(run.failures[0].message, "asked to fail");
        // "a" and the first failure; "a" again; "b" and the second failure; "b" again.
        assert_eq!(h.operator().seen, 2 + 1 + 2 + 1);
    }
}
