//! The conformance vectors of `tests/conformance/` (from Flink's `WindowOperatorTest` and
//! Beam's `SessionsTest`), run against [`WindowOperator`] with events fed directly.

use serde::Deserialize;
use weir_packed::{BatchBuilder, BatchView};

use super::*;
use crate::operator::isolate::CallFailure;
use crate::window::merge_pairwise;

/// `count` or `sum` of the integer field `v`, accumulator = i64 little-endian.
pub(crate) struct TestAggregate {
    pub sum: bool,
}

fn read(acc: &[u8]) -> i64 {
    i64::from_le_bytes(acc.try_into().expect("8-byte accumulator"))
}

impl Aggregator for TestAggregate {
    fn create(&mut self) -> Result<Vec<u8>, String> {
        Ok(0i64.to_le_bytes().to_vec())
    }
    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &BatchView<'_>,
    ) -> Result<(), CallFailure> {
        let mut updated = accs.to_vec();
        for (index, &t) in targets.iter().enumerate() {
            let inc =
                if self.sum {
                    let v: serde_json::Value = serde_json::from_slice(events.payload(index))
                        .map_err(|e| CallFailure::Item {
                            index,
                            message: e.to_string(),
                        })?;
                    v["v"].as_i64().ok_or(CallFailure::Item {
                        index,
                        message: "no integer `v`".into(),
                    })?
                } else {
                    1
                };
            let acc = &mut updated[t as usize];
            *acc = (read(acc) + inc).to_le_bytes().to_vec();
        }
        accs.clone_from_slice(&updated);
        Ok(())
    }
    fn merge(
        &mut self,
        accs: &[&[u8]],
        ends: &[u32],
        merged: &mut Vec<Vec<u8>>,
    ) -> Result<(), CallFailure> {
        merge_pairwise(accs, ends, merged, |a, b| {
            Ok((read(a) + read(b)).to_le_bytes().to_vec())
        })
    }
    fn merges_cheaply(&self) -> bool {
        true
    }
    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), CallFailure> {
        results.extend(
            windows
                .iter()
                .enumerate()
                .map(|(i, w)| (i as u32, read(w.acc).to_string().into_bytes())),
        );
        Ok(())
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    window: WindowDef,
    allowed_lateness_ms: i64,
    aggregate: String,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WindowDef {
    Tumbling { size_ms: i64 },
    Sliding { size_ms: i64, slide_ms: i64 },
    Session { gap_ms: i64 },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Step {
    Event { event: StepEvent },
    Watermark { watermark: i64 },
    Expect { expect: Vec<Expected> },
}

#[derive(Deserialize)]
struct StepEvent {
    key: String,
    ts: i64,
    #[serde(default)]
    v: i64,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(untagged)]
enum Expected {
    Late {
        late: LateRef,
    },
    Result {
        key: String,
        start: i64,
        end: i64,
        value: i64,
    },
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LateRef {
    key: String,
    ts: i64,
}

fn spec(w: &WindowDef) -> WindowSpec {
    match *w {
        WindowDef::Tumbling { size_ms } => WindowSpec::Tumbling {
            size: size_ms,
            offset: 0,
        },
        WindowDef::Sliding { size_ms, slide_ms } => WindowSpec::Sliding {
            size: size_ms,
            slide: slide_ms,
            offset: 0,
        },
        WindowDef::Session { gap_ms } => WindowSpec::Session { gap: gap_ms },
    }
}

/// The expected-form of an emission; `times[i]`/`keys[i]` describe event `i` of the batch.
fn to_expected(e: Emission, key: &str, time: i64) -> Expected {
    match e {
        Emission::Fired {
            key,
            window,
            payload,
            ..
        } => Expected::Result {
            key: String::from_utf8(key).unwrap(),
            start: window.start,
            end: window.end,
            value: String::from_utf8(payload).unwrap().parse().unwrap(),
        },
        Emission::Late { .. } => Expected::Late {
            late: LateRef {
                key: key.to_owned(),
                ts: time,
            },
        },
        other => panic!("unexpected emission {other:?}"),
    }
}

#[test]
fn window_vectors_pass_against_the_window_operator() {
    let cases: Vec<Case> =
        serde_json::from_str(include_str!("../../../tests/conformance/windows.json")).unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let mut op = WindowOperator::new(spec(&case.window), case.allowed_lateness_ms);
        let mut agg = TestAggregate {
            sum: case.aggregate == "sum",
        };
        let mut out = Vec::new();
        for (i, step) in case.steps.iter().enumerate() {
            match step {
                Step::Event { event } => {
                    let payload = format!("{{\"v\":{}}}", event.v);
                    let mut b = BatchBuilder::new();
                    b.push(event.key.as_bytes(), event.ts, &[], payload.as_bytes(), 0);
                    let mut emitted = Vec::new();
                    op.process_batch(&b.view(), &mut agg, &mut emitted);
                    out.extend(
                        emitted
                            .into_iter()
                            .map(|e| to_expected(e, &event.key, event.ts)),
                    );
                }
                Step::Watermark { watermark } => {
                    let mut emitted = Vec::new();
                    op.advance_watermark(*watermark, &mut agg, &mut emitted);
                    out.extend(emitted.into_iter().map(|e| to_expected(e, "", 0)));
                }
                Step::Expect { expect } => {
                    let mut got: Vec<Expected> = std::mem::take(&mut out);
                    let mut want = expect.clone();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "case {} step {i}", case.name);
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct WatermarkCase {
    name: String,
    steps: Vec<WatermarkStep>,
}

#[derive(Deserialize)]
struct WatermarkStep {
    input: String,
    #[serde(default)]
    watermark: Option<i64>,
    #[serde(default)]
    idle: bool,
    combined: Option<i64>,
}

#[test]
fn watermark_vectors_pass_against_the_multiplexer() {
    let cases: Vec<WatermarkCase> =
        serde_json::from_str(include_str!("../../../tests/conformance/watermarks.json")).unwrap();
    for case in cases {
        let mut inputs: Vec<&str> = case.steps.iter().map(|s| s.input.as_str()).collect();
        inputs.sort();
        inputs.dedup();
        let mut m = WatermarkMultiplexer::new(inputs.len());
        for (i, step) in case.steps.iter().enumerate() {
            let idx = inputs.binary_search(&step.input.as_str()).unwrap();
            let combined = match (step.idle, step.watermark) {
                (true, _) => m.mark_idle(idx),
                (false, Some(w)) => m.update(idx, w),
                (false, None) => panic!("case {} step {i}: neither idle nor watermark", case.name),
            };
            assert_eq!(combined, step.combined, "case {} step {i}", case.name);
        }
    }
}
