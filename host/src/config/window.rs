//! `[window]`: the kind of window, its sizes, its clock and its aggregate plugin, and the
//! checks of their combinations.

use std::time::Duration;

use serde::Deserialize;

use super::OperatorConfig;
use super::check::{FieldProblem, problem};

/// The most windows a sliding window puts one event in (`size / slide`): each is state to
/// update and a result to publish, so a 1 h window sliding by 1 ms (3.6 million) would stall
/// the pipeline on the first event.
pub const MAX_WINDOWS_PER_EVENT: u128 = 1000;

/// The kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed windows of `size`.
    Tumbling,
    /// Windows of `size` every `slide` (`slide` divides `size`).
    Sliding,
    /// Per key, events closer than `gap` form one window.
    Session,
    /// Per key, every `count` events form one window (fires when full).
    Global,
}

/// Which clock assigns events to windows and fires them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowTime {
    /// The event's time (`[source] time`), fired by the watermark.
    #[default]
    Event,
    /// The host's wall clock when the event reaches the window, fired by the wall clock.
    Processing,
}

/// `[window]`: events are keyed by their key, assigned to event-time windows and aggregated by
/// an `aggregate` plugin; results are events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// Window length (tumbling, sliding).
    #[serde(default, with = "humantime_serde")]
    pub size: Option<Duration>,
    /// Distance between window starts (sliding).
    #[serde(default, with = "humantime_serde")]
    pub slide: Option<Duration>,
    /// Inactivity that closes a session (session).
    #[serde(default, with = "humantime_serde")]
    pub gap: Option<Duration>,
    /// Events per window (global).
    #[serde(default)]
    pub count: Option<u64>,
    /// Event time (default) or processing time.
    #[serde(default)]
    pub time: WindowTime,
    /// How long after a window's end late events still update (and re-fire) it.
    #[serde(default, with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// The aggregate plugin, as an operator.
    pub aggregate: OperatorConfig,
}

impl WindowConfig {
    /// The assigner of this window (sizes checked by [`load`]).
    pub fn spec(&self) -> crate::window::WindowSpec {
        let ms =
            |d: Option<Duration>| d.unwrap_or_default().as_millis().min(i64::MAX as u128) as i64;
        match self.kind {
            WindowKind::Tumbling => crate::window::WindowSpec::Tumbling {
                size: ms(self.size),
                offset: 0,
            },
            WindowKind::Sliding => crate::window::WindowSpec::Sliding {
                size: ms(self.size),
                slide: ms(self.slide),
                offset: 0,
            },
            WindowKind::Session => crate::window::WindowSpec::Session { gap: ms(self.gap) },
            WindowKind::Global => crate::window::WindowSpec::Global {
                count: self.count.unwrap_or(1),
            },
        }
    }

    /// How checkpoints name this window: state restores only into the same definition.
    pub fn description(&self) -> String {
        match self.time {
            WindowTime::Event => format!("{:?}", self.spec()),
            WindowTime::Processing => format!("{:?} in processing time", self.spec()),
        }
    }

    /// What is wrong with `count` and the clock for this kind of window: `count` only for
    /// global windows; processing time only for time windows, without lateness.
    fn check_count_and_clock(&self) -> Result<(), FieldProblem> {
        let kind = format!("{:?}", self.kind).to_lowercase();
        if self.kind != WindowKind::Global && self.count.is_some() {
            return problem(
                "window.count",
                format!("field `window.count` does not apply to {kind} windows (only to global)"),
            );
        }
        if self.time == WindowTime::Processing {
            if self.kind == WindowKind::Global {
                return problem(
                    "window.time",
                    "field `window.time`: global windows fire by count, not by a clock",
                );
            }
            if !self.allowed_lateness.is_zero() {
                return problem(
                    "window.allowed_lateness",
                    "field `window.allowed_lateness` does not apply to processing-time \
                     windows (no event is late on the host's clock)",
                );
            }
        }
        Ok(())
    }

    /// What is wrong with the window's fields, naming the field.
    pub(super) fn check(&self) -> Result<(), FieldProblem> {
        self.check_count_and_clock()?;
        let kind = format!("{:?}", self.kind).to_lowercase();
        let positive = |name: &str, d: Option<Duration>| match d {
            None => problem(
                &format!("window.{name}"),
                format!("field `window.{name}` is required for {kind} windows"),
            ),
            Some(d) if d.as_millis() == 0 => problem(
                &format!("window.{name}"),
                format!("field `window.{name}` must be at least 1ms"),
            ),
            Some(_) => Ok(()),
        };
        let unused = |name: &str, d: Option<Duration>| match d {
            Some(_) => problem(
                &format!("window.{name}"),
                format!("field `window.{name}` does not apply to {kind} windows"),
            ),
            None => Ok(()),
        };
        match self.kind {
            WindowKind::Global => {
                match self.count {
                    None => {
                        return problem(
                            "window",
                            "field `window.count` is required for global windows",
                        );
                    }
                    Some(0) => {
                        return problem("window.count", "field `window.count` must be at least 1");
                    }
                    Some(_) => {}
                }
                if !self.allowed_lateness.is_zero() {
                    return problem(
                        "window.allowed_lateness",
                        "field `window.allowed_lateness` does not apply to global windows \
                         (they are never late)",
                    );
                }
                unused("size", self.size)?;
                unused("slide", self.slide)?;
                unused("gap", self.gap)
            }
            WindowKind::Tumbling => {
                positive("size", self.size)?;
                unused("slide", self.slide)?;
                unused("gap", self.gap)
            }
            WindowKind::Sliding => {
                positive("size", self.size)?;
                positive("slide", self.slide)?;
                unused("gap", self.gap)?;
                self.check_slide()
            }
            WindowKind::Session => {
                positive("gap", self.gap)?;
                unused("size", self.size)?;
                unused("slide", self.slide)
            }
        }
    }

    /// A sliding window's `slide` divides its `size`, and an event falls into at most
    /// [`MAX_WINDOWS_PER_EVENT`] windows (`size / slide`): each is state and a result.
    fn check_slide(&self) -> Result<(), FieldProblem> {
        let (size, slide) = (
            self.size.unwrap_or_default().as_millis(),
            self.slide.unwrap_or_default().as_millis().max(1),
        );
        if size % slide != 0 {
            return problem(
                "window.slide",
                "field `window.slide` must divide `window.size`",
            );
        }
        if size / slide > MAX_WINDOWS_PER_EVENT {
            return problem(
                "window.slide",
                format!(
                    "field `window.slide`: {slide}ms puts every event in {} windows of \
                     {size}ms (size / slide); at most {MAX_WINDOWS_PER_EVENT} are allowed \
                     — use a larger slide or a smaller size",
                    size / slide
                ),
            );
        }
        Ok(())
    }
}
