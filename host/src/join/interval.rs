//! The interval join (Flink's `IntervalJoinOperator`): per key, a left element `a` and a right
//! element `b` pair up when `b.time ∈ [a.time + lower, a.time + upper]` (each bound inclusive
//! or exclusive). Each element is buffered by its time; when one arrives it pairs with the
//! other side's buffered elements in its range at once, the pair carrying the later of the two
//! times. An element older than the watermark is late (it is not buffered: the other side's
//! partners may be gone). A buffered element is dropped once the watermark passes the last
//! time a partner could still arrive at, as Flink's cleanup timers do.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{Element, Emit, Side};

/// The bounds of an interval join, relative to the left element's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub lower: i64,
    pub upper: i64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

/// Why a join's bounds are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the interval join's bounds leave no time to join at: lower {lower} ms ({}) is after \
     upper {upper} ms ({})",
    if *lower_inclusive { "inclusive" } else { "exclusive" },
    if *upper_inclusive { "inclusive" } else { "exclusive" }
)]
pub struct EmptyInterval {
    pub lower: i64,
    pub upper: i64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
}

/// One key's buffered elements, by side and time.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Buffers {
    left: BTreeMap<i64, Vec<Element>>,
    right: BTreeMap<i64, Vec<Element>>,
}

impl Buffers {
    fn side(&mut self, side: Side) -> &mut BTreeMap<i64, Vec<Element>> {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }

    fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }
}

/// The state of an interval join, as checkpoints hold it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalState {
    pub watermark: Option<i64>,
    keys: Vec<(Vec<u8>, Buffers)>,
}

/// When an element at `time` can no longer pair with a later element (Flink's cleanup timer):
/// its time plus the upper bound of its partners' times relative to it, when positive.
fn cleanup_at(rel_upper: i64, time: i64) -> i64 {
    if rel_upper > 0 {
        time.saturating_add(rel_upper)
    } else {
        time
    }
}

/// An interval join over keyed elements.
pub struct IntervalJoin {
    /// Inclusive bounds (exclusive ones moved in by a millisecond).
    lower: i64,
    upper: i64,
    keys: FxHashMap<Vec<u8>, Buffers>,
    /// Cleanup times → the (side, key, element time) buckets to drop then.
    cleanup: BTreeMap<i64, Vec<(Side, Vec<u8>, i64)>>,
    watermark: Option<i64>,
}

impl IntervalJoin {
    pub fn new(bounds: Bounds) -> Result<Self, EmptyInterval> {
        let lower = if bounds.lower_inclusive {
            bounds.lower
        } else {
            bounds.lower.saturating_add(1)
        };
        let upper = if bounds.upper_inclusive {
            bounds.upper
        } else {
            bounds.upper.saturating_sub(1)
        };
        if lower > upper {
            return Err(EmptyInterval {
                lower: bounds.lower,
                upper: bounds.upper,
                lower_inclusive: bounds.lower_inclusive,
                upper_inclusive: bounds.upper_inclusive,
            });
        }
        Ok(IntervalJoin {
            lower,
            upper,
            keys: FxHashMap::default(),
            cleanup: BTreeMap::new(),
            watermark: None,
        })
    }

    /// The bounds of partners' times relative to an element of `side`.
    fn relative(&self, side: Side) -> (i64, i64) {
        match side {
            Side::Left => (self.lower, self.upper),
            Side::Right => (self.upper.saturating_neg(), self.lower.saturating_neg()),
        }
    }

    /// Takes element `element` of `side` and `key`: emits it as late, or buffers it and emits
    /// its pairs with the other side's buffered elements.
    pub fn on_element(
        &mut self,
        side: Side,
        key: &[u8],
        element: Element,
        emit: &mut impl FnMut(Emit<'_>),
    ) {
        if self.watermark.is_some_and(|w| element.time < w) {
            emit(Emit::Late {
                side,
                key,
                element: &element,
            });
            return;
        }
        let (rel_lower, rel_upper) = self.relative(side);
        let time = element.time;
        let buffers = self.keys.entry(key.to_vec()).or_default();
        let other = match side {
            Side::Left => &buffers.right,
            Side::Right => &buffers.left,
        };
        let from = time.saturating_add(rel_lower);
        let to = time.saturating_add(rel_upper);
        for (&other_time, partners) in other.range(from..=to) {
            for partner in partners {
                let (left, right) = match side {
                    Side::Left => (&element, partner),
                    Side::Right => (partner, &element),
                };
                emit(Emit::Pair {
                    key,
                    time: time.max(other_time),
                    window: None,
                    left: Some(left),
                    right: Some(right),
                });
            }
        }
        let bucket = buffers.side(side).entry(time).or_default();
        if bucket.is_empty() {
            // One cleanup entry per bucket: the bucket goes as a whole.
            let at = cleanup_at(rel_upper, time);
            self.cleanup
                .entry(at)
                .or_default()
                .push((side, key.to_vec(), time));
        }
        bucket.push(element);
    }

    /// Advances the watermark to `watermark` (never back), dropping the elements no later
    /// element can pair with any more.
    pub fn advance_watermark(&mut self, watermark: i64) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        let keep = match watermark.checked_add(1) {
            Some(next) => self.cleanup.split_off(&next),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.cleanup, keep);
        for (side, key, time) in due.into_values().flatten() {
            if let Some(buffers) = self.keys.get_mut(&key) {
                buffers.side(side).remove(&time);
                if buffers.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// The watermark the join has seen.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Buffered elements (both sides), for checkpoint manifests and metrics.
    pub fn buffered(&self) -> u64 {
        self.keys
            .values()
            .map(|b| {
                b.left
                    .values()
                    .chain(b.right.values())
                    .map(Vec::len)
                    .sum::<usize>() as u64
            })
            .sum()
    }

    /// The state to checkpoint, keys in order (the same state gives the same bytes).
    pub fn state(&self) -> IntervalState {
        let mut keys: Vec<(Vec<u8>, Buffers)> = self
            .keys
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        IntervalState {
            watermark: self.watermark,
            keys,
        }
    }

    /// Puts checkpointed state back, rebuilding the cleanup times from the buffers.
    pub fn restore(&mut self, state: IntervalState) {
        self.keys.clear();
        self.cleanup.clear();
        self.watermark = state.watermark;
        for (key, buffers) in state.keys {
            for side in [Side::Left, Side::Right] {
                let (_, rel_upper) = self.relative(side);
                let times = match side {
                    Side::Left => buffers.left.keys(),
                    Side::Right => buffers.right.keys(),
                };
                for &time in times {
                    let at = cleanup_at(rel_upper, time);
                    self.cleanup
                        .entry(at)
                        .or_default()
                        .push((side, key.clone(), time));
                }
            }
            self.keys.insert(key, buffers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(time: i64, id: u64) -> Element {
        Element {
            time,
            id,
            payload: Vec::new(),
        }
    }

    /// (left id, right id, time) of the pairs, and (side, id) of the late elements.
    type Seen = (Vec<(u64, u64, i64)>, Vec<(Side, u64)>);

    fn feed(join: &mut IntervalJoin, seen: &mut Seen, side: Side, key: &str, e: Element) {
        join.on_element(side, key.as_bytes(), e, &mut |emit| match emit {
            Emit::Pair {
                left, right, time, ..
            } => seen.0.push((left.unwrap().id, right.unwrap().id, time)),
            Emit::Late { side, element, .. } => seen.1.push((side, element.id)),
        });
    }

    fn bounds(lower: i64, upper: i64) -> Bounds {
        Bounds {
            lower,
            upper,
            lower_inclusive: true,
            upper_inclusive: true,
        }
    }

    #[test]
    fn pairs_within_the_bounds_of_the_left_element_carry_the_later_time() {
        let mut j = IntervalJoin::new(bounds(-1, 2)).unwrap();
        let mut seen = Seen::default();
        feed(&mut j, &mut seen, Side::Left, "k", el(10, 1));
        feed(&mut j, &mut seen, Side::Right, "k", el(8, 100)); // 8 < 10 - 1
        feed(&mut j, &mut seen, Side::Right, "k", el(9, 101));
        feed(&mut j, &mut seen, Side::Right, "k", el(12, 102));
        feed(&mut j, &mut seen, Side::Right, "k", el(13, 103)); // 13 > 10 + 2
        feed(&mut j, &mut seen, Side::Right, "other", el(10, 104));
        feed(&mut j, &mut seen, Side::Left, "k", el(11, 2)); // pairs with 101? 9 < 10: no
        assert_eq!(
            seen.0,
            [(1, 101, 10), (1, 102, 12), (2, 102, 12), (2, 103, 13)]
        );
    }

    #[test]
    fn exclusive_bounds_and_an_empty_interval() {
        let mut j = IntervalJoin::new(Bounds {
            lower: 0,
            upper: 2,
            lower_inclusive: false,
            upper_inclusive: false,
        })
        .unwrap();
        let mut seen = Seen::default();
        feed(&mut j, &mut seen, Side::Left, "k", el(10, 1));
        for (t, id) in [(10, 100), (11, 101), (12, 102)] {
            feed(&mut j, &mut seen, Side::Right, "k", el(t, id));
        }
        assert_eq!(seen.0, [(1, 101, 11)]);
        let err = IntervalJoin::new(Bounds {
            lower: 1,
            upper: 1,
            lower_inclusive: true,
            upper_inclusive: false,
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("lower 1 ms (inclusive)"), "{err}");
    }

    #[test]
    fn the_watermark_makes_old_elements_late_and_drops_buffers_no_one_can_join() {
        let mut j = IntervalJoin::new(bounds(-5, 5)).unwrap();
        let mut seen = Seen::default();
        feed(&mut j, &mut seen, Side::Left, "k", el(10, 1));
        feed(&mut j, &mut seen, Side::Right, "k", el(20, 100));
        assert_eq!(j.buffered(), 2);
        j.advance_watermark(15); // left 10 may pair up to 15: cleanup at 15
        assert_eq!(j.buffered(), 1);
        feed(&mut j, &mut seen, Side::Left, "k", el(14, 2)); // late: 14 < 15
        feed(&mut j, &mut seen, Side::Left, "k", el(15, 3)); // pairs with right 20
        assert_eq!(seen.0, [(3, 100, 20)]);
        assert_eq!(seen.1, [(Side::Left, 2)]);
        j.advance_watermark(25); // right 20: partners' times ≤ 20 + 5
        assert_eq!(j.buffered(), 0);
        assert!(j.keys.is_empty());
    }

    #[test]
    fn state_round_trips_with_its_cleanup_times() {
        let mut j = IntervalJoin::new(bounds(0, 3)).unwrap();
        let mut seen = Seen::default();
        feed(&mut j, &mut seen, Side::Left, "a", el(1, 1));
        feed(&mut j, &mut seen, Side::Right, "b", el(2, 2));
        j.advance_watermark(0);
        let bytes = postcard::to_allocvec(&j.state()).unwrap();
        let mut back = IntervalJoin::new(bounds(0, 3)).unwrap();
        back.restore(postcard::from_bytes(&bytes).unwrap());
        assert_eq!(back.state(), j.state());
        feed(&mut back, &mut seen, Side::Right, "a", el(4, 3));
        assert_eq!(seen.0, [(1, 3, 4)]);
        back.advance_watermark(4);
        // left a@1 is kept until 1 + 3; right elements pair with lefts at or before them.
        assert_eq!(back.buffered(), 0);
    }
}
