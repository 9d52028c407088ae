//! `[join]`: a join of two of the pipeline's `[[sources]]` inputs, with its state in the
//! host — an interval join (`lower`/`upper` bounds around each left event) or a window join
//! (tumbling, sliding or session windows; inner or outer) — and the checks of its fields.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::check::{FieldProblem, problem};
use crate::join::interval::Bounds;
use crate::join::window::JoinKind;
use crate::window::WindowSpec;

/// `[join]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The stage's name in logs, dead letters and `/plugins` (default `join`).
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: JoinType,
    /// The input (a `[[sources]]` name) of the left side.
    pub left: String,
    /// The input of the right side.
    pub right: String,
    /// Interval join: right events pair with a left event `l` when their time is in
    /// `[l.time + lower, l.time + upper]` (signed durations, e.g. `"-5s"`).
    #[serde(default, deserialize_with = "signed_ms")]
    pub lower: Option<i64>,
    #[serde(default, deserialize_with = "signed_ms")]
    pub upper: Option<i64>,
    #[serde(default = "yes")]
    pub lower_inclusive: bool,
    #[serde(default = "yes")]
    pub upper_inclusive: bool,
    /// Window join: the windows.
    #[serde(default)]
    pub window: Option<JoinWindow>,
    /// Window join: `inner`, or which unmatched events are emitted too (`left`, `right`,
    /// `full`).
    #[serde(default = "inner", rename = "kind")]
    pub join_kind: JoinKind,
    /// Window join: how long after a window's end late events still join in it.
    #[serde(default, with = "humantime_serde")]
    pub allowed_lateness: Duration,
}

fn default_name() -> String {
    "join".into()
}
fn yes() -> bool {
    true
}
fn inner() -> JoinKind {
    JoinKind::Inner
}

/// The kind of join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinType {
    Interval,
    Window,
}

/// The windows of a window join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JoinWindow {
    Tumbling {
        #[serde(with = "humantime_serde")]
        size: Duration,
    },
    Sliding {
        #[serde(with = "humantime_serde")]
        size: Duration,
        #[serde(with = "humantime_serde")]
        slide: Duration,
    },
    Session {
        #[serde(with = "humantime_serde")]
        gap: Duration,
    },
}

/// A duration with an optional leading `-` (`"-5s"`), in ms.
fn signed_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let text = String::deserialize(d)?;
    let (negative, rest) = match text.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.trim()),
    };
    let ms = humantime::parse_duration(rest)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration: {e}")))?
        .as_millis()
        .min(i64::MAX as u128) as i64;
    Ok(Some(if negative { -ms } else { ms }))
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl JoinConfig {
    /// The interval join's bounds (checked by [`JoinConfig::check`]).
    pub fn bounds(&self) -> Bounds {
        Bounds {
            lower: self.lower.unwrap_or(0),
            upper: self.upper.unwrap_or(0),
            lower_inclusive: self.lower_inclusive,
            upper_inclusive: self.upper_inclusive,
        }
    }

    /// The window join's windows (checked by [`JoinConfig::check`]).
    pub fn spec(&self) -> WindowSpec {
        match self.window {
            Some(JoinWindow::Tumbling { size }) => WindowSpec::Tumbling {
                size: ms(size),
                offset: 0,
            },
            Some(JoinWindow::Sliding { size, slide }) => WindowSpec::Sliding {
                size: ms(size),
                slide: ms(slide),
                offset: 0,
            },
            Some(JoinWindow::Session { gap }) => WindowSpec::Session { gap: ms(gap) },
            None => WindowSpec::Tumbling { size: 1, offset: 0 },
        }
    }

    /// What the join's state belongs to, as checkpoints record it: a restore refuses state
    /// of another join.
    pub fn description(&self) -> String {
        match self.kind {
            JoinType::Interval => {
                let b = self.bounds();
                format!(
                    "interval join of {} and {}: {}{}, {}{}",
                    self.left,
                    self.right,
                    if b.lower_inclusive { "[" } else { "(" },
                    b.lower,
                    b.upper,
                    if b.upper_inclusive { "]" } else { ")" },
                )
            }
            JoinType::Window => format!(
                "{:?} window join of {} and {}: {:?}, lateness {} ms",
                self.join_kind,
                self.left,
                self.right,
                self.spec(),
                ms(self.allowed_lateness)
            ),
        }
    }

    /// Checks the fields against each other and `inputs` (the `[[sources]]` names).
    pub fn check(&self, inputs: &[&str]) -> Result<(), FieldProblem> {
        for (field, input) in [("join.left", &self.left), ("join.right", &self.right)] {
            if !inputs.contains(&input.as_str()) {
                return problem(
                    field,
                    format!(
                        "field `{field}`: {input:?} is not one of the pipeline's inputs \
                         {inputs:?} (`[[sources]]` names)"
                    ),
                );
            }
        }
        if self.left == self.right {
            return problem(
                "join.right",
                "field `join.right`: a join's two sides are two different inputs",
            );
        }
        if inputs.len() != 2 {
            return problem(
                "join",
                format!(
                    "a join reads exactly its two inputs; the pipeline has {} (`[[sources]]`)",
                    inputs.len()
                ),
            );
        }
        match self.kind {
            JoinType::Interval => self.check_interval(),
            JoinType::Window => self.check_window(),
        }
    }

    fn check_interval(&self) -> Result<(), FieldProblem> {
        if self.window.is_some() || !self.allowed_lateness.is_zero() {
            return problem(
                "join.window",
                "fields `join.window` and `join.allowed_lateness` are for window joins; an \
                 interval join is bounded by `lower` and `upper`",
            );
        }
        if self.join_kind != JoinKind::Inner {
            return problem(
                "join.kind",
                "field `join.kind`: an interval join is an inner join",
            );
        }
        let (Some(_), Some(_)) = (self.lower, self.upper) else {
            return problem(
                "join",
                "an interval join needs `lower` and `upper` (e.g. lower = \"-5s\", upper = \"10s\")",
            );
        };
        crate::join::interval::IntervalJoin::new(self.bounds())
            .map(|_| ())
            .or_else(|e| problem("join.lower", format!("field `join.lower`: {e}")))
    }

    fn check_window(&self) -> Result<(), FieldProblem> {
        if self.lower.is_some() || self.upper.is_some() {
            return problem(
                "join.lower",
                "fields `join.lower` and `join.upper` are for interval joins; a window join is \
                 bounded by its `window`",
            );
        }
        let Some(window) = self.window else {
            return problem(
                "join",
                "a window join needs `window` (e.g. window = { type = \"tumbling\", size = \"10s\" })",
            );
        };
        let positive = |d: Duration, what: &str| {
            if ms(d) <= 0 {
                problem(
                    "join.window",
                    format!("field `join.window`: {what} must be at least 1 ms"),
                )
            } else {
                Ok(())
            }
        };
        match window {
            JoinWindow::Tumbling { size } => positive(size, "size"),
            JoinWindow::Sliding { size, slide } => {
                positive(size, "size")?;
                positive(slide, "slide")?;
                let (size, slide) = (ms(size), ms(slide));
                if size % slide != 0 || i128::from(size / slide) > 1000 {
                    return problem(
                        "join.window",
                        format!(
                            "field `join.window`: slide {slide} ms must divide size {size} ms, \
                             and put an event in at most 1000 windows"
                        ),
                    );
                }
                Ok(())
            }
            JoinWindow::Session { gap } => positive(gap, "gap"),
        }
    }
}
