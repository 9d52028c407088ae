//! Watermarks: how far event time has progressed.
//!
//! A watermark `W` asserts that every event with time `<= W` has arrived. Each input
//! (partition) has a [`BoundedOutOfOrderness`] generator; a [`WatermarkMultiplexer`] combines
//! the inputs' watermarks into the operator's; [`SourceWatermarks`] ties them to a source's
//! subject filters and detects idle partitions.

use std::time::{Duration, Instant};

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

/// Whether NATS subject `subject` matches `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for f in filter.split('.') {
        match (f, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

/// Per-partition watermarks of a pipeline's inputs: each input's partition `i` is the events
/// whose subject matches its subject filter `i` (one partition when it has no filters), and
/// each input has its own bound of out-of-orderness and idle timeout. The pipeline's watermark
/// is the minimum over the partitions not idle.
#[derive(Debug)]
pub struct SourceWatermarks {
    /// Per input: its subject filters and its first partition's index.
    inputs: Vec<(Vec<String>, usize)>,
    generators: Vec<BoundedOutOfOrderness>,
    idle_timeouts: Vec<Option<Duration>>,
    last_event: Vec<Option<Instant>>,
    mux: WatermarkMultiplexer,
}

/// How one input's events fall into watermark partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputPartitions {
    /// Subject filters (none: one partition).
    pub subjects: Vec<String>,
    /// The watermark trails the newest event time by this much, ms.
    pub bound_ms: i64,
    /// A partition without events for this long stops holding the watermark back.
    pub idle_timeout: Option<Duration>,
}

/// [`SourceWatermarks`] in a checkpoint: each partition's newest event time and the combined
/// watermark.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatermarksState {
    pub max_ts: Vec<Option<i64>>,
    pub combined: Option<i64>,
}

impl SourceWatermarks {
    /// The state to checkpoint.
    pub fn snapshot(&self) -> WatermarksState {
        WatermarksState {
            max_ts: self.generators.iter().map(|g| g.max_ts).collect(),
            combined: self.mux.combined,
        }
    }

    /// Restores checkpointed state taken with the same subject filters. Partitions that had
    /// seen events count as active from `now` (idleness restarts with the host).
    pub fn restore(&mut self, state: &WatermarksState, now: Instant) -> Result<(), String> {
        if state.max_ts.len() != self.generators.len() {
            return Err(format!(
                "the checkpoint has watermarks of {} source partitions, the pipeline has {} \
                 (source.subjects changed)",
                state.max_ts.len(),
                self.generators.len()
            ));
        }
        for (p, ts) in state.max_ts.iter().enumerate() {
            self.generators[p].max_ts = *ts;
            self.last_event[p] = ts.map(|_| now);
            if let Some(w) = self.generators[p].watermark() {
                self.mux.update(p, w);
            }
        }
        self.mux.combined = match (self.mux.combined, state.combined) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    /// The watermarks of one input.
    pub fn new(filters: &[String], bound_ms: i64, idle_timeout: Option<Duration>) -> Self {
        Self::for_inputs(&[InputPartitions {
            subjects: filters.to_vec(),
            bound_ms,
            idle_timeout,
        }])
    }

    /// The watermarks of several inputs, partitioned each as said.
    pub fn for_inputs(inputs: &[InputPartitions]) -> Self {
        let mut first = Vec::with_capacity(inputs.len());
        let (mut generators, mut idle_timeouts) = (Vec::new(), Vec::new());
        for input in inputs {
            first.push((input.subjects.clone(), generators.len()));
            for _ in 0..input.subjects.len().max(1) {
                generators.push(BoundedOutOfOrderness::new(input.bound_ms));
                idle_timeouts.push(input.idle_timeout);
            }
        }
        let n = generators.len();
        SourceWatermarks {
            inputs: first,
            generators,
            idle_timeouts,
            last_event: vec![None; n],
            mux: WatermarkMultiplexer::new(n),
        }
    }

    /// The partition of an event of input `input` from `subject`.
    pub fn partition(&self, input: usize, subject: &str) -> usize {
        let Some((filters, first)) = self.inputs.get(input) else {
            return 0;
        };
        first
            + filters
                .iter()
                .position(|f| subject_matches(f, subject))
                .unwrap_or(0)
    }

    /// Notes an event of `partition` at event time `ts`, seen at `now`.
    pub fn observe(&mut self, partition: usize, ts: i64, now: Instant) {
        self.generators[partition].observe(ts);
        self.last_event[partition] = Some(now);
    }

    /// Updates the combined watermark (marking partitions idle past the timeout) and returns it.
    pub fn update(&mut self, now: Instant) -> Option<i64> {
        for p in 0..self.generators.len() {
            let idle = match (self.idle_timeouts[p], self.last_event[p]) {
                (Some(t), Some(seen)) => now.duration_since(seen) >= t,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if idle {
                self.mux.mark_idle(p);
            } else if let Some(w) = self.generators[p].watermark() {
                self.mux.update(p, w);
            }
        }
        self.mux.combined()
    }
}

/// Watermark markers (punctuated watermarks) of a pipeline's inputs: each input's newest
/// marker; event time is the minimum over the inputs once every input has sent one (an input
/// that sends none holds it back). A marker of [`ALL_INPUTS`] speaks for every input (a local
/// file is one ordered stream).
#[derive(Debug, Clone)]
pub struct MarkerWatermarks {
    newest: Vec<Option<i64>>,
}

/// The input of a marker that speaks for every input.
pub const ALL_INPUTS: u16 = u16::MAX;

impl MarkerWatermarks {
    pub fn new(inputs: usize) -> Self {
        MarkerWatermarks {
            newest: vec![None; inputs.max(1)],
        }
    }

    /// Notes marker `watermark` of `input`; returns the event time it makes, if every input
    /// has sent a marker.
    pub fn update(&mut self, input: u16, watermark: i64) -> Option<i64> {
        let raise =
            |slot: &mut Option<i64>| *slot = Some(slot.map_or(watermark, |w| w.max(watermark)));
        match self.newest.get_mut(usize::from(input)) {
            Some(slot) => raise(slot),
            None => self.newest.iter_mut().for_each(raise),
        }
        self.newest
            .iter()
            .try_fold(i64::MAX, |min, w| w.map(|w| min.min(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_several_inputs_make_event_time_their_minimum() {
        let mut m = MarkerWatermarks::new(2);
        assert_eq!(m.update(0, 10), None, "input 1 sent none yet");
        assert_eq!(m.update(1, 4), Some(4));
        assert_eq!(m.update(1, 20), Some(10));
        assert_eq!(m.update(0, 5), Some(10), "a marker never moves back");
        assert_eq!(m.update(ALL_INPUTS, 30), Some(30));
        let mut one = MarkerWatermarks::new(1);
        assert_eq!(one.update(0, 7), Some(7));
    }

    #[test]
    fn bounded_out_of_orderness_trails_the_newest_event() {
        let mut g = BoundedOutOfOrderness::new(1000);
        assert_eq!(g.watermark(), None);
        g.observe(5000);
        g.observe(3000);
        assert_eq!(g.watermark(), Some(3999));
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn subjects_match_filters_with_wildcards() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
    }

    #[test]
    fn a_slow_partition_holds_the_watermark_until_it_goes_idle() {
        let filters = vec!["in.fast".to_string(), "in.slow".to_string()];
        let mut w = SourceWatermarks::new(&filters, 0, Some(Duration::from_secs(10)));
        let t0 = Instant::now();
        w.observe(w.partition(0, "in.fast"), 5_000, t0);
        w.observe(w.partition(0, "in.slow"), 1_000, t0);
        assert_eq!(w.update(t0), Some(999));
        w.observe(0, 9_000, t0 + Duration::from_secs(11));
        assert_eq!(w.update(t0 + Duration::from_secs(5)), Some(999));
        // The slow partition has been silent for 11 s: idle, no longer holding back.
        assert_eq!(w.update(t0 + Duration::from_secs(11)), Some(8_999));
    }
}
