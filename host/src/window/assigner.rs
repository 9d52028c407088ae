//! Window assignment: the windows `[start, end)` an event time belongs to.

/// A time window `[start, end)`, milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The largest timestamp inside the window; the window fires when the watermark reaches it
    /// and its results carry it as their event time.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether two session windows merge. Like Flink, windows that only touch
    /// (`a.end == b.start`) merge too.
    pub fn intersects(&self, other: &Window) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// How events are grouped in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows of `size` ms, aligned to `offset`.
    Tumbling { size: i64, offset: i64 },
    /// Windows of `size` ms starting every `slide` ms (an event belongs to `size / slide`).
    Sliding { size: i64, slide: i64, offset: i64 },
    /// Per key, events closer than `gap` ms form one window `[first, last + gap)`.
    Session { gap: i64 },
    /// Per key, every `count` events form one window, which fires when it is full (Flink's
    /// `countWindow`: a global window with a purging count trigger). The window's bounds are
    /// the event-time extent of its events, `[earliest, latest + 1)`.
    Global { count: u64 },
}

impl WindowSpec {
    /// Whether windows of this kind merge (sessions).
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowSpec::Session { .. })
    }

    /// Whether windows of this kind fire by count rather than by the watermark.
    pub fn is_global(&self) -> bool {
        matches!(self, WindowSpec::Global { .. })
    }

    /// Appends the windows `ts` belongs to, most recent start first (as Flink does). A
    /// session or count window is the event's own extent, to be merged into its key's window.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        match *self {
            WindowSpec::Tumbling { size, offset } => {
                out.push(clamped(window_start(ts, offset, size), size));
            }
            WindowSpec::Sliding {
                size,
                slide,
                offset,
            } => {
                let (ts, size, slide) = (i128::from(ts), i128::from(size), i128::from(slide));
                let mut start = window_start(ts as i64, offset, slide as i64);
                while start > ts - size {
                    out.push(clamped(start, size as i64));
                    start -= slide;
                }
            }
            WindowSpec::Session { gap } => out.push(Window {
                start: ts,
                end: ts.saturating_add(gap),
            }),
            WindowSpec::Global { .. } => out.push(Window {
                start: ts,
                end: ts.saturating_add(1),
            }),
        }
    }
}

/// Start of the window of length `size` aligned to `offset` that contains `ts`, computed
/// without overflow (it may lie before `i64::MIN`).
fn window_start(ts: i64, offset: i64, size: i64) -> i128 {
    let ts = i128::from(ts);
    ts - (ts - i128::from(offset)).rem_euclid(i128::from(size.max(1)))
}

/// The window `[start, start + size)` within the `i64` range: a window reaching before
/// `i64::MIN` or past `i64::MAX` is cut there, so times at the ends of the range stay in
/// the far past or far future instead of wrapping around.
fn clamped(start: i128, size: i64) -> Window {
    let clamp = |t: i128| t.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Window {
        start: clamp(start),
        end: clamp(start + i128::from(size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(spec: WindowSpec, ts: i64) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        spec.assign(ts, &mut v);
        v.into_iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn tumbling_windows_align_to_size_and_offset_also_before_the_epoch() {
        let t = WindowSpec::Tumbling {
            size: 3000,
            offset: 0,
        };
        assert_eq!(assign(t, 2999), [(0, 3000)]);
        assert_eq!(assign(t, 3000), [(3000, 6000)]);
        assert_eq!(assign(t, -1), [(-3000, 0)]);
        let o = WindowSpec::Tumbling {
            size: 1000,
            offset: 250,
        };
        assert_eq!(assign(o, 100), [(-750, 250)]);
    }

    #[test]
    fn sliding_assigns_size_over_slide_windows() {
        let s = WindowSpec::Sliding {
            size: 3000,
            slide: 1000,
            offset: 0,
        };
        assert_eq!(assign(s, 500), [(0, 3000), (-1000, 2000), (-2000, 1000)]);
        assert_eq!(assign(s, 1000), [(1000, 4000), (0, 3000), (-1000, 2000)]);
    }

    #[test]
    fn times_at_the_ends_of_the_range_stay_there_instead_of_wrapping() {
        let t = WindowSpec::Tumbling {
            size: 3000,
            offset: 250,
        };
        let [(start, end)] = assign(t, i64::MIN)[..] else {
            panic!("one window")
        };
        assert_eq!(start, i64::MIN);
        assert!(end > i64::MIN && end < i64::MIN + 3000, "{end}");
        assert_eq!(assign(t, i64::MAX)[0].1, i64::MAX);
        let s = WindowSpec::Sliding {
            size: 3000,
            slide: 1000,
            offset: 0,
        };
        let windows = assign(s, i64::MIN + 10);
        assert_eq!(windows.len(), 3, "{windows:?}");
        assert!(
            windows
                .iter()
                .all(|&(start, end)| start == i64::MIN && end < 0)
        );
        assert!(assign(s, i64::MAX).iter().all(|&(start, _)| start > 0));
    }

    #[test]
    fn touching_session_windows_merge() {
        let a = Window { start: 0, end: 10 };
        assert!(a.intersects(&Window { start: 10, end: 20 }));
        assert!(!a.intersects(&Window { start: 11, end: 20 }));
        assert_eq!(
            a.cover(&Window { start: 5, end: 30 }),
            Window { start: 0, end: 30 }
        );
    }
}
