//! Panes of sliding windows: the geometry behind holding sliding windows as panes.
//!
//! A sliding window of `size` S every `slide` L cuts time into panes of width
//! `P = gcd(S, L)` (aligned like the windows, to `offset`). Window boundaries fall on pane
//! boundaries, so every pane lies wholly inside or wholly outside each window, and a window
//! is the union of its `S / P` panes. The window operator keeps one accumulator per (key,
//! pane) — one `add` target per event instead of `S / L` — and builds a window's accumulator
//! when it fires by merging its panes with the aggregate's `merge`.
//!
//! This module only answers questions of time: which pane an event is in, which windows a pane
//! belongs to, whether a window can be held as panes at all (windows cut at the ends of the
//! `i64` range cannot), and whether panes pay for a given window. Keeping and firing panes is
//! the operator's (`operator/panes.rs`).

use super::assigner::{Window, WindowSpec};

/// How the time of a sliding window is cut into panes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneLayout {
    size: i64,
    slide: i64,
    offset: i64,
    /// The pane width, `gcd(size, slide)`.
    width: i64,
}

/// Where an event's pane lies and which windows hold it: the windows starting at `first`,
/// `first + slide`, …, `last` (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PanePlace {
    /// The pane's start (its end is `start + width`).
    pub start: i64,
    /// The start of the earliest window holding the pane.
    pub first: i64,
    /// The start of the latest window holding the pane.
    pub last: i64,
}

impl PaneLayout {
    /// The pane layout of `spec`, when panes pay: sliding windows that overlap (`size >
    /// slide`), whose windows hold at most twice as many panes as an event has windows (a
    /// window's result then costs at most that many merges, against `size / slide` updates
    /// per event saved). Pipelines' sliding windows always qualify (their `slide` divides
    /// their `size`: the panes are the slides).
    pub fn of(spec: &WindowSpec) -> Option<PaneLayout> {
        let WindowSpec::Sliding {
            size,
            slide,
            offset,
        } = *spec
        else {
            return None;
        };
        if slide <= 0 || size <= slide {
            return None;
        }
        let width = gcd(size, slide);
        let windows_per_event = size / slide + i64::from(size % slide != 0);
        (size / width <= 2 * windows_per_event).then_some(PaneLayout {
            size,
            slide,
            offset,
            width,
        })
    }

    /// The window size.
    pub fn size(&self) -> i64 {
        self.size
    }

    /// The pane width.
    pub fn width(&self) -> i64 {
        self.width
    }

    /// The pane of `ts` and the windows that hold it, when all of them lie within the `i64`
    /// range (none is cut at its ends); `None` otherwise, or when no window holds `ts`.
    /// Computed in `i64`: this is the path of every event.
    #[inline]
    pub fn place(&self, ts: i64) -> Option<PanePlace> {
        let start = ts.checked_sub(ts.checked_sub(self.offset)?.rem_euclid(self.width))?;
        let last = start.checked_sub(start.checked_sub(self.offset)?.rem_euclid(self.slide))?;
        last.checked_add(self.size)?;
        // Windows holding the pane start at or after `lowest` (they reach its end).
        let lowest = start.checked_add(self.width)?.checked_sub(self.size)?;
        if last < lowest {
            return None; // between windows that do not touch (slide > size)
        }
        let first = last - (last - lowest) / self.slide * self.slide;
        Some(PanePlace { start, first, last })
    }

    /// The start of the pane of `ts`, computed without overflow; `None` when it lies before
    /// `i64::MIN` (then no window holding it can be held as panes either).
    pub fn pane_start(&self, ts: i64) -> Option<i64> {
        let t = i128::from(ts);
        let start = t - (t - i128::from(self.offset)).rem_euclid(i128::from(self.width));
        i64::try_from(start).ok()
    }

    /// The pane starting at `start`.
    pub fn pane(&self, start: i64) -> Window {
        Window {
            start,
            end: start.saturating_add(self.width),
        }
    }

    /// Whether window `w` (as assigned) must be held whole: a window cut at an end of the
    /// `i64` range has no panes.
    pub fn holds_whole(&self, w: &Window) -> bool {
        i128::from(w.end) - i128::from(w.start) != i128::from(self.size)
    }

    /// The windows holding the pane at `start`, latest first (empty between windows that do
    /// not touch).
    pub fn windows_of(&self, place: &PanePlace) -> impl Iterator<Item = Window> + use<> {
        let (size, slide, first) = (self.size, self.slide, place.first);
        std::iter::successors(Some(place.last), move |&s| (s > first).then(|| s - slide)).map(
            move |start| Window {
                start,
                end: start + size,
            },
        )
    }

    /// The window held as panes whose largest timestamp is `max_timestamp` (a fire timer's
    /// time).
    pub fn window_at(&self, max_timestamp: i64) -> Window {
        let end = max_timestamp.saturating_add(1);
        Window {
            start: end.saturating_sub(self.size),
            end,
        }
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sliding(size: i64, slide: i64, offset: i64) -> WindowSpec {
        WindowSpec::Sliding {
            size,
            slide,
            offset,
        }
    }

    #[test]
    fn panes_are_the_gcd_of_size_and_slide_and_only_used_when_they_pay() {
        let l = PaneLayout::of(&sliding(10_000, 2_000, 0)).unwrap();
        assert_eq!((l.width(), l.size()), (2_000, 10_000));
        assert_eq!(
            PaneLayout::of(&sliding(3_000, 2_000, 0)).unwrap().width(),
            1_000
        );
        // 10,007 panes of 1 ms per window against one window per event: not worth it.
        assert_eq!(PaneLayout::of(&sliding(10_007, 10_000, 0)), None);
        assert_eq!(PaneLayout::of(&sliding(1_000, 1_000, 0)), None);
        assert_eq!(PaneLayout::of(&sliding(1_000, 2_000, 0)), None);
        let tumbling = WindowSpec::Tumbling {
            size: 10,
            offset: 0,
        };
        assert_eq!(PaneLayout::of(&tumbling), None);
    }

    /// For every time, the pane's windows are exactly the windows the assigner gives, and the
    /// pane lies inside each.
    #[test]
    fn a_panes_windows_are_the_assigners_windows_of_its_events() {
        for (size, slide, offset) in [(3000, 1000, 0), (3000, 2000, 250), (10, 4, -3), (6, 4, 0)] {
            let spec = sliding(size, slide, offset);
            let layout = PaneLayout::of(&spec).unwrap();
            for ts in -5_000..5_000 {
                let place = layout.place(ts).unwrap();
                let pane = layout.pane(place.start);
                assert!(pane.start <= ts && ts < pane.end, "{ts} in {pane:?}");
                let mut want = Vec::new();
                spec.assign(ts, &mut want);
                let got: Vec<Window> = layout.windows_of(&place).collect();
                assert_eq!(got, want, "{spec:?} at {ts}");
                for w in got {
                    assert!(w.start <= pane.start && pane.end <= w.end);
                    assert!(!layout.holds_whole(&w));
                    assert_eq!(layout.window_at(w.max_timestamp()), w);
                }
            }
        }
    }

    #[test]
    fn windows_cut_at_the_ends_of_the_range_are_held_whole() {
        let spec = sliding(3000, 1000, 0);
        let layout = PaneLayout::of(&spec).unwrap();
        for ts in [i64::MIN, i64::MIN + 10, i64::MAX - 10, i64::MAX] {
            assert_eq!(layout.place(ts), None, "{ts}");
            let mut ws = Vec::new();
            spec.assign(ts, &mut ws);
            assert!(ws.iter().any(|w| layout.holds_whole(w)), "{ts}: {ws:?}");
        }
    }
}
