//! The window join (Flink's `join(..).where(..).equalTo(..).window(..)`, and the outer kinds
//! of Flink SQL's window join): per key, the elements of both sides that fall into one window
//! (tumbling, sliding or session) pair up when the watermark reaches the window's last
//! millisecond. An inner join emits every left × right pair; a left (right, full) outer join
//! also emits each left (right, either) element that has no partner in the window, paired
//! with nothing. Pairs carry the window's last millisecond as their time.
//!
//! Within the allowed lateness a fired window is kept, and an element arriving for it is
//! joined at once with what the window holds: only its new pairs are emitted (Flink's
//! DataStream join would fire the whole window again, repeating earlier pairs; an outer join's
//! unmatched element already emitted is not taken back). An element all of whose windows are
//! past the lateness is late. Session windows of one key merge as elements bridge them.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::{Element, Emit, Side};
use crate::window::{Window, WindowSpec};

/// Which unmatched elements a window join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl JoinKind {
    /// Whether an unmatched element of `side` is emitted.
    fn keeps(self, side: Side) -> bool {
        matches!(
            (self, side),
            (JoinKind::Full, _) | (JoinKind::Left, Side::Left) | (JoinKind::Right, Side::Right)
        )
    }
}

/// An element held in a window. Pairs of two elements with the same non-zero `group` were
/// emitted already: a window's elements all get a fresh group when it fires, and merging two
/// fired session windows keeps their groups apart, so their cross pairs are still due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    group: u64,
    /// An outer join emitted it unmatched.
    alone: bool,
    element: Element,
}

/// One key's elements in one window.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cell {
    left: Vec<Held>,
    right: Vec<Held>,
}

/// The state of a window join, as checkpoints hold it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowJoinState {
    pub watermark: Option<i64>,
    next_group: u64,
    /// (key, window start, window end, elements).
    cells: Vec<(Vec<u8>, i64, i64, Cell)>,
}

/// A window join over keyed elements.
pub struct WindowJoin {
    spec: WindowSpec,
    kind: JoinKind,
    lateness: i64,
    /// Per key, its windows by (start, end).
    keys: FxHashMap<Vec<u8>, BTreeMap<(i64, i64), Cell>>,
    /// (window last millisecond, key, start, end) of windows not fired yet; entries of
    /// session windows merged away are skipped when due.
    due: BTreeSet<(i64, Vec<u8>, i64, i64)>,
    /// (last millisecond + lateness, key, start, end): when a window's state goes.
    expiry: BTreeSet<(i64, Vec<u8>, i64, i64)>,
    watermark: Option<i64>,
    next_group: u64,
    scratch: Vec<Window>,
}

impl WindowJoin {
    /// A join over windows of `spec` (tumbling, sliding or session), keeping windows
    /// `lateness` ms past their end.
    pub fn new(spec: WindowSpec, kind: JoinKind, lateness: i64) -> Self {
        WindowJoin {
            spec,
            kind,
            lateness: lateness.max(0),
            keys: FxHashMap::default(),
            due: BTreeSet::new(),
            expiry: BTreeSet::new(),
            watermark: None,
            next_group: 1,
            scratch: Vec::new(),
        }
    }

    fn is_late(&self, window: &Window) -> bool {
        self.watermark
            .is_some_and(|w| window.max_timestamp().saturating_add(self.lateness) <= w)
    }

    fn has_fired(&self, window: &Window) -> bool {
        self.watermark.is_some_and(|w| window.max_timestamp() <= w)
    }

    /// Takes `element` of `side` and `key`: emits it as late, or holds it in its windows
    /// (and, in windows that fired already, emits its pairs at once).
    pub fn on_element(
        &mut self,
        side: Side,
        key: &[u8],
        element: Element,
        emit: &mut impl FnMut(Emit<'_>),
    ) {
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.spec.assign(element.time, &mut windows);
        // A session is late after merging (as Flink checks it): a late element's session may
        // still touch a live one of its key.
        let touches_live = |w: &Window| {
            self.keys.get(key).is_some_and(|cells| {
                cells
                    .keys()
                    .any(|&(start, end)| Window { start, end }.intersects(w))
            })
        };
        let merging = self.spec.is_merging();
        windows.retain(|w| !self.is_late(w) || (merging && touches_live(w)));
        if windows.is_empty() {
            emit(Emit::Late {
                side,
                key,
                element: &element,
            });
            self.scratch = windows;
            return;
        }
        if self.spec.is_merging() {
            let merged = self.merge_session(key, windows[0]);
            windows[0] = merged;
        }
        for window in &windows {
            let cells = self.keys.entry(key.to_vec()).or_default();
            let fired = self.watermark.is_some_and(|w| window.max_timestamp() <= w);
            let cell = cells.entry((window.start, window.end)).or_insert_with(|| {
                let at = window.max_timestamp();
                if !fired {
                    self.due
                        .insert((at, key.to_vec(), window.start, window.end));
                }
                self.expiry.insert((
                    at.saturating_add(self.lateness),
                    key.to_vec(),
                    window.start,
                    window.end,
                ));
                Cell::default()
            });
            let held = Held {
                group: 0,
                alone: false,
                element: element.clone(),
            };
            match side {
                Side::Left => cell.left.push(held),
                Side::Right => cell.right.push(held),
            }
        }
        for window in &windows {
            if self.has_fired(window) {
                self.fire(key, window, emit);
            }
        }
        self.scratch = windows;
    }

    /// Merges the session window `new` of `key` with the key's windows it touches into one
    /// cell, and returns the merged window.
    fn merge_session(&mut self, key: &[u8], new: Window) -> Window {
        let Some(cells) = self.keys.get_mut(key) else {
            return new;
        };
        let touching: Vec<(i64, i64)> = cells
            .keys()
            .filter(|&&(start, end)| Window { start, end }.intersects(&new))
            .copied()
            .collect();
        let mut merged = new;
        let mut cell = Cell::default();
        for bounds in touching {
            let Some(old) = cells.remove(&bounds) else {
                continue;
            };
            merged = merged.cover(&Window {
                start: bounds.0,
                end: bounds.1,
            });
            cell.left.extend(old.left);
            cell.right.extend(old.right);
        }
        if !cell.left.is_empty() || !cell.right.is_empty() {
            let at = merged.max_timestamp();
            if self.watermark.is_none_or(|w| at > w) {
                self.due
                    .insert((at, key.to_vec(), merged.start, merged.end));
            }
            self.expiry.insert((
                at.saturating_add(self.lateness),
                key.to_vec(),
                merged.start,
                merged.end,
            ));
            cells.insert((merged.start, merged.end), cell);
        }
        merged
    }

    /// Emits the pairs of `key`'s `window` not emitted yet (and the unmatched elements an outer
    /// join keeps), then marks them all emitted.
    fn fire(&mut self, key: &[u8], window: &Window, emit: &mut impl FnMut(Emit<'_>)) {
        let group = self.next_group;
        let Some(cell) = self
            .keys
            .get_mut(key)
            .and_then(|cells| cells.get_mut(&(window.start, window.end)))
        else {
            return;
        };
        self.next_group += 1;
        let time = window.max_timestamp();
        for l in &cell.left {
            for r in &cell.right {
                if l.group != 0 && l.group == r.group {
                    continue;
                }
                emit(Emit::Pair {
                    key,
                    time,
                    window: Some(*window),
                    left: Some(&l.element),
                    right: Some(&r.element),
                });
            }
        }
        let keep_left = self.kind.keeps(Side::Left) && cell.right.is_empty();
        let keep_right = self.kind.keeps(Side::Right) && cell.left.is_empty();
        for (side, keep, mine) in [
            (Side::Left, keep_left, &mut cell.left),
            (Side::Right, keep_right, &mut cell.right),
        ] {
            for held in mine.iter_mut().filter(|h| keep && !h.alone) {
                held.alone = true;
                let (left, right) = match side {
                    Side::Left => (Some(&held.element), None),
                    Side::Right => (None, Some(&held.element)),
                };
                emit(Emit::Pair {
                    key,
                    time,
                    window: Some(*window),
                    left,
                    right,
                });
            }
        }
        for held in cell.left.iter_mut().chain(cell.right.iter_mut()) {
            held.group = group;
        }
    }

    /// Advances the watermark to `watermark` (never back): fires the windows it reaches, in
    /// order of their end (then key), and drops those past the lateness.
    pub fn advance_watermark(&mut self, watermark: i64, emit: &mut impl FnMut(Emit<'_>)) {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return;
        }
        self.watermark = Some(watermark);
        while let Some(first) = self.due.first() {
            if first.0 > watermark {
                break;
            }
            let Some((_, key, start, end)) = self.due.pop_first() else {
                break;
            };
            self.fire(&key, &Window { start, end }, emit);
        }
        while let Some(first) = self.expiry.first() {
            if first.0 > watermark {
                break;
            }
            let Some((_, key, start, end)) = self.expiry.pop_first() else {
                break;
            };
            if let Some(cells) = self.keys.get_mut(&key) {
                cells.remove(&(start, end));
                if cells.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }

    /// The watermark the join has seen.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Elements held (counted once per window they are in), for manifests and metrics.
    pub fn buffered(&self) -> u64 {
        self.keys
            .values()
            .flat_map(|cells| cells.values())
            .map(|c| (c.left.len() + c.right.len()) as u64)
            .sum()
    }

    /// The state to checkpoint, in key and window order (the same state gives the same bytes).
    pub fn state(&self) -> WindowJoinState {
        let mut cells: Vec<(Vec<u8>, i64, i64, Cell)> = self
            .keys
            .iter()
            .flat_map(|(key, cells)| {
                cells
                    .iter()
                    .map(|(&(s, e), c)| (key.clone(), s, e, c.clone()))
            })
            .collect();
        cells.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        WindowJoinState {
            watermark: self.watermark,
            next_group: self.next_group,
            cells,
        }
    }

    /// Puts checkpointed state back, rebuilding the firing and expiry times.
    pub fn restore(&mut self, state: WindowJoinState) {
        self.keys.clear();
        self.due.clear();
        self.expiry.clear();
        self.watermark = state.watermark;
        self.next_group = state.next_group.max(1);
        for (key, start, end, cell) in state.cells {
            let window = Window { start, end };
            let at = window.max_timestamp();
            if !self.has_fired(&window) {
                self.due.insert((at, key.clone(), start, end));
            }
            self.expiry
                .insert((at.saturating_add(self.lateness), key.clone(), start, end));
            self.keys.entry(key).or_default().insert((start, end), cell);
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

    /// (left id, right id, time, window start) of pairs (0: none), and ids of late elements.
    #[derive(Default)]
    struct Seen {
        pairs: Vec<(u64, u64, i64, i64)>,
        late: Vec<u64>,
    }

    impl Seen {
        fn sink(&mut self) -> impl FnMut(Emit<'_>) + '_ {
            |emit| match emit {
                Emit::Pair {
                    left,
                    right,
                    time,
                    window,
                    ..
                } => self.pairs.push((
                    left.map_or(0, |e| e.id),
                    right.map_or(0, |e| e.id),
                    time,
                    window.unwrap().start,
                )),
                Emit::Late { element, .. } => self.late.push(element.id),
            }
        }
    }

    fn tumbling(size: i64) -> WindowSpec {
        WindowSpec::Tumbling { size, offset: 0 }
    }

    #[test]
    fn an_inner_join_pairs_a_keys_elements_of_one_window_when_it_fires() {
        let mut j = WindowJoin::new(tumbling(10), JoinKind::Inner, 0);
        let mut seen = Seen::default();
        j.on_element(Side::Left, b"k", el(1, 1), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(5, 11), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(9, 12), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(10, 13), &mut seen.sink()); // next window
        j.on_element(Side::Right, b"x", el(2, 14), &mut seen.sink()); // other key
        j.advance_watermark(8, &mut seen.sink());
        assert!(seen.pairs.is_empty());
        j.advance_watermark(9, &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 11, 9, 0), (1, 12, 9, 0)]);
        assert_eq!(
            j.buffered(),
            1,
            "the fired windows are dropped (no lateness)"
        );
        j.on_element(Side::Left, b"k", el(3, 2), &mut seen.sink());
        assert_eq!(seen.late, [2]);
    }

    #[test]
    fn outer_joins_emit_unmatched_elements_of_the_kept_sides() {
        for (kind, expected) in [
            (JoinKind::Inner, vec![]),
            (JoinKind::Left, vec![(1, 0, 9, 0)]),
            (JoinKind::Right, vec![(0, 11, 19, 10)]),
            (JoinKind::Full, vec![(1, 0, 9, 0), (0, 11, 19, 10)]),
        ] {
            let mut j = WindowJoin::new(tumbling(10), kind, 0);
            let mut seen = Seen::default();
            j.on_element(Side::Left, b"k", el(1, 1), &mut seen.sink());
            j.on_element(Side::Right, b"k", el(15, 11), &mut seen.sink());
            j.advance_watermark(100, &mut seen.sink());
            assert_eq!(seen.pairs, expected, "{kind:?}");
        }
    }

    #[test]
    fn a_sliding_window_join_pairs_in_every_window_both_share() {
        let spec = WindowSpec::Sliding {
            size: 10,
            slide: 5,
            offset: 0,
        };
        let mut j = WindowJoin::new(spec, JoinKind::Inner, 0);
        let mut seen = Seen::default();
        j.on_element(Side::Left, b"k", el(6, 1), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(8, 11), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(11, 12), &mut seen.sink());
        j.advance_watermark(20, &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 11, 9, 0), (1, 11, 14, 5), (1, 12, 14, 5)]);
    }

    #[test]
    fn within_the_lateness_a_late_element_emits_only_its_new_pairs() {
        let mut j = WindowJoin::new(tumbling(10), JoinKind::Left, 5);
        let mut seen = Seen::default();
        j.on_element(Side::Left, b"k", el(1, 1), &mut seen.sink());
        j.advance_watermark(9, &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 0, 9, 0)]);
        j.on_element(Side::Right, b"k", el(2, 11), &mut seen.sink());
        j.on_element(Side::Left, b"k", el(3, 2), &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 0, 9, 0), (1, 11, 9, 0), (2, 11, 9, 0)]);
        j.advance_watermark(14, &mut seen.sink());
        assert_eq!(j.buffered(), 0);
        j.on_element(Side::Right, b"k", el(4, 12), &mut seen.sink());
        assert_eq!(seen.late, [12]);
    }

    #[test]
    fn session_windows_merge_and_their_earlier_pairs_are_not_repeated() {
        let mut j = WindowJoin::new(WindowSpec::Session { gap: 5 }, JoinKind::Inner, 100);
        let mut seen = Seen::default();
        j.on_element(Side::Left, b"k", el(0, 1), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(2, 11), &mut seen.sink());
        j.on_element(Side::Left, b"k", el(20, 2), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(21, 12), &mut seen.sink());
        j.advance_watermark(30, &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 11, 6, 0), (2, 12, 25, 20)]);
        // Bridges [0, 7) and [20, 26) within the lateness: only the cross pairs are new.
        j.on_element(Side::Left, b"k", el(7, 3), &mut seen.sink());
        j.on_element(Side::Right, b"k", el(12, 13), &mut seen.sink());
        j.on_element(Side::Left, b"k", el(16, 4), &mut seen.sink());
        let mut new: Vec<_> = seen.pairs[2..].to_vec();
        new.sort();
        assert_eq!(
            new,
            [
                (1, 12, 25, 0),
                (1, 13, 16, 0),
                (2, 11, 25, 0),
                (2, 13, 25, 0),
                (3, 11, 11, 0),
                (3, 12, 25, 0),
                (3, 13, 16, 0),
                (4, 11, 25, 0),
                (4, 12, 25, 0),
                (4, 13, 25, 0),
            ]
        );
    }

    #[test]
    fn state_round_trips() {
        let mut j = WindowJoin::new(tumbling(10), JoinKind::Full, 0);
        let mut seen = Seen::default();
        j.on_element(Side::Left, b"a", el(1, 1), &mut seen.sink());
        j.on_element(Side::Right, b"b", el(12, 2), &mut seen.sink());
        let bytes = postcard::to_allocvec(&j.state()).unwrap();
        let mut back = WindowJoin::new(tumbling(10), JoinKind::Full, 0);
        back.restore(postcard::from_bytes(&bytes).unwrap());
        assert_eq!(back.state(), j.state());
        back.advance_watermark(19, &mut seen.sink());
        assert_eq!(seen.pairs, [(1, 0, 9, 0), (0, 2, 19, 10)]);
    }
}
