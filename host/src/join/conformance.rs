//! The join vectors of `tests/conformance/joins.json` (from Flink's `IntervalJoinOperatorTest`,
//! `CoGroupJoinITCase` and the SQL `WindowJoinOperatorTest`), run against [`IntervalJoin`]
//! and [`WindowJoin`] with elements fed directly.

use serde::Deserialize;

use super::interval::{Bounds, IntervalJoin};
use super::window::{JoinKind, WindowJoin};
use super::{Element, Emit, Side};
use crate::window::WindowSpec;

#[derive(Deserialize)]
struct Case {
    name: String,
    join: JoinDef,
    #[serde(default)]
    allowed_lateness_ms: i64,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum JoinDef {
    Interval {
        lower_ms: i64,
        upper_ms: i64,
        lower_inclusive: bool,
        upper_inclusive: bool,
    },
    Window {
        window: WindowDef,
        kind: JoinKind,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WindowDef {
    Tumbling { size_ms: i64 },
    Sliding { size_ms: i64, slide_ms: i64 },
    Session { gap_ms: i64 },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Step {
    Event(Input),
    Watermark(i64),
    Expect(Vec<Expected>),
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Input {
    side: Side,
    key: String,
    ts: i64,
    v: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    key: String,
    ts: i64,
    v: String,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Bounds2 {
    start: i64,
    end: i64,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(untagged)]
enum Expected {
    Late {
        late: Input,
    },
    Pair {
        left: Option<Row>,
        right: Option<Row>,
        ts: i64,
        #[serde(default)]
        window: Option<Bounds2>,
    },
}

enum Join {
    Interval(IntervalJoin),
    Window(WindowJoin),
}

fn row(key: &[u8], e: &Element) -> Row {
    Row {
        key: String::from_utf8_lossy(key).into_owned(),
        ts: e.time,
        v: String::from_utf8_lossy(&e.payload).into_owned(),
    }
}

fn record(out: &mut Vec<Expected>) -> impl FnMut(Emit<'_>) + '_ {
    |emit| {
        out.push(match emit {
            Emit::Pair {
                key,
                time,
                window,
                left,
                right,
            } => Expected::Pair {
                left: left.map(|e| row(key, e)),
                right: right.map(|e| row(key, e)),
                ts: time,
                window: window.map(|w| Bounds2 {
                    start: w.start,
                    end: w.end,
                }),
            },
            Emit::Late { side, key, element } => Expected::Late {
                late: Input {
                    side,
                    key: String::from_utf8_lossy(key).into_owned(),
                    ts: element.time,
                    v: String::from_utf8_lossy(&element.payload).into_owned(),
                },
            },
        })
    }
}

fn run(case: &Case) {
    let mut join = match case.join {
        JoinDef::Interval {
            lower_ms,
            upper_ms,
            lower_inclusive,
            upper_inclusive,
        } => Join::Interval(
            IntervalJoin::new(Bounds {
                lower: lower_ms,
                upper: upper_ms,
                lower_inclusive,
                upper_inclusive,
            })
            .expect("bounds of the case"),
        ),
        JoinDef::Window { ref window, kind } => {
            let spec = match *window {
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
            };
            Join::Window(WindowJoin::new(spec, kind, case.allowed_lateness_ms))
        }
    };
    let mut got = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        match step {
            Step::Event(input) => {
                let element = Element {
                    time: input.ts,
                    id: index as u64,
                    payload: input.v.as_bytes().to_vec(),
                };
                let key = input.key.as_bytes();
                match &mut join {
                    Join::Interval(j) => {
                        j.on_element(input.side, key, element, &mut record(&mut got))
                    }
                    Join::Window(j) => {
                        j.on_element(input.side, key, element, &mut record(&mut got))
                    }
                }
            }
            Step::Watermark(w) => match &mut join {
                Join::Interval(j) => j.advance_watermark(*w),
                Join::Window(j) => j.advance_watermark(*w, &mut record(&mut got)),
            },
            Step::Expect(expected) => {
                let mut expected = expected.clone();
                expected.sort();
                got.sort();
                assert_eq!(got, expected, "case {}, step {index}", case.name);
                got.clear();
            }
        }
    }
    assert!(
        got.is_empty(),
        "case {}: unexpected at the end: {got:?}",
        case.name
    );
}

#[test]
fn join_vectors_pass_against_the_join_operators() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/conformance/joins.json"
    );
    let text = std::fs::read_to_string(path).expect("reading joins.json");
    let cases: Vec<Case> = serde_json::from_str(&text).expect("parsing joins.json");
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in &cases {
        run(case);
    }
}
