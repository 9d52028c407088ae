//! Joins of two inputs, with their state held in the host (checkpointed, unaffected by plugin
//! upgrades):
//!
//! - [`interval`]: Flink's interval join — a left element `a` and a right element `b` of one
//!   key pair up when `b.time ∈ [a.time + lower, a.time + upper]`; a pair is emitted as soon as
//!   its second element arrives;
//! - [`window`]: Flink's window join — elements of one key in one window (tumbling, sliding or
//!   session) pair up when the window fires; inner, left, right or full outer.
//!
//! Both are pure state machines over [`Element`]s: the engine feeds them events and
//! watermarks and turns their [`Emit`]s into output events. Semantics, with the rules taken
//! from Flink, are written in `docs/semantics.md`; the conformance vectors of
//! `tests/conformance/joins.json` run against them.

pub mod interval;
pub mod window;

#[cfg(test)]
mod conformance;

use serde::{Deserialize, Serialize};

use crate::window::Window;

/// Which input of a join an element came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    /// `left` or `right`, as configs, headers and dead letters say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// One buffered input event of a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Element {
    /// Event time, ms.
    pub time: i64,
    /// An id unique among the side's elements (its source position): joined results are
    /// named by the ids of their elements, so that a replay names them alike.
    pub id: u64,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A join's state in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinState {
    Interval(interval::IntervalState),
    Window(window::WindowJoinState),
}

/// What a join emits.
#[derive(Debug, PartialEq, Eq)]
pub enum Emit<'a> {
    /// A joined pair (an outer join's unmatched element has `None` on the other side).
    Pair {
        key: &'a [u8],
        /// The result's event time: the later element's time (interval join), or the
        /// window's last millisecond (window join).
        time: i64,
        /// The window the pair was joined in (window joins).
        window: Option<Window>,
        left: Option<&'a Element>,
        right: Option<&'a Element>,
    },
    /// An element that came after the watermark had passed every time it could join at.
    Late {
        side: Side,
        key: &'a [u8],
        element: &'a Element,
    },
}
