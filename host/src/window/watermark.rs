//! Watermarks: how far event time has progressed.
//!
//! A watermark `W` asserts that every event with time `<= W` has arrived. Each input
//! (partition) has a [`BoundedOutOfOrderness`] generator; a [`WatermarkMultiplexer`] combines
//! the inputs' watermarks into the operator's.

/// Watermark generation for events at most `bound` ms out of order: `max_ts - bound - 1`
/// (Flink's `BoundedOutOfOrdernessWatermarks`; an event exactly `bound` ms behind the newest is
/// still on time).
#[derive(Debug, Clone, Copy)]
pub struct BoundedOutOfOrderness {
    bound: i64,
    max_ts: Option<i64>,
}

impl BoundedOutOfOrderness {
    pub fn new(bound_ms: i64) -> Self {
        BoundedOutOfOrderness {
            bound: bound_ms.max(0),
            max_ts: None,
        }
    }

    /// Notes an event's time.
    pub fn observe(&mut self, ts: i64) {
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
    }

    /// The current watermark (`None` before the first event).
    pub fn watermark(&self) -> Option<i64> {
        self.max_ts
            .map(|m| m.saturating_sub(self.bound).saturating_sub(1))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Input {
    watermark: Option<i64>,
    idle: bool,
}

/// Combines the watermarks of a fixed set of inputs: the minimum over inputs that are not
/// idle, once each of them has reported one; never moving backwards; held while every input
/// is idle. An idle input becomes active again when it reports a watermark.
#[derive(Debug, Clone)]
pub struct WatermarkMultiplexer {
    inputs: Vec<Input>,
    combined: Option<i64>,
}

impl WatermarkMultiplexer {
    pub fn new(inputs: usize) -> Self {
        WatermarkMultiplexer {
            inputs: vec![Input::default(); inputs],
            combined: None,
        }
    }

    /// The combined watermark.
    pub fn combined(&self) -> Option<i64> {
        self.combined
    }

    /// Input `i` reports watermark `w` (an input's watermark never moves back either).
    pub fn update(&mut self, i: usize, w: i64) -> Option<i64> {
        let input = &mut self.inputs[i];
        input.idle = false;
        input.watermark = Some(input.watermark.map_or(w, |old| old.max(w)));
        self.recompute()
    }

    /// Input `i` is idle (no events for the idleness timeout): it stops holding others back.
    pub fn mark_idle(&mut self, i: usize) -> Option<i64> {
        self.inputs[i].idle = true;
        self.recompute()
    }

    fn recompute(&mut self) -> Option<i64> {
        let mut min: Option<i64> = None;
        for input in self.inputs.iter().filter(|i| !i.idle) {
            match input.watermark {
                None => return self.combined,
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        if let Some(m) = min {
            self.combined = Some(self.combined.map_or(m, |c| c.max(m)));
        }
        self.combined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_newest_event() {
        let mut g = BoundedOutOfOrderness::new(1000);
        assert_eq!(g.watermark(), None);
        g.observe(5000);
        g.observe(3000);
        assert_eq!(g.watermark(), Some(3999));
    }
}
