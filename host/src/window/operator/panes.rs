//! Sliding windows held as panes ([`crate::window::panes`]): an event goes into its key's
//! pane — one accumulator per (key, pane), one `add` target per event — and a window's
//! accumulator is built when it fires, by merging its panes in time order with the aggregate's
//! `merge`. Results, firing times and lateness are those of per-window accumulators:
//!
//! - a window *exists* for a key once one of its panes does (an event reached it while it was
//!   not late), and fires when the watermark reaches its end, as a window slot would; its fire
//!   timer names the pane whose creation made it exist;
//! - an event for a window whose end the watermark already passed, but that is not late,
//!   updates its pane and fires each such window again, with every pane it holds;
//! - a pane is dropped when the last window holding it is late.
//!
//! Some windows are still held whole, as window slots beside the panes: windows cut at the
//! ends of the `i64` range (they have no panes), windows restored from a checkpoint written
//! when sliding windows were held whole (their past events are in no pane), and windows
//! created while the operator's [`super::PanePolicy`] held new windows whole. How a (key,
//! window) is held is decided when it gets its first event and kept: an event of a window
//! held whole updates its slot directly, besides its pane.

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use super::fire::Due;
use super::{Aggregator, Pending, WindowOperator};
use crate::window::Window;
use crate::window::panes::PaneLayout;

/// A window's accumulator for firing: a slot's own (a window slot, or its only pane), or
/// merged from its panes.
pub(super) enum FiringAcc {
    Slot(u32),
    Merged(Vec<u8>),
}

impl WindowOperator {
    /// Assigns an event to its pane (and to any window of it held whole); `false` when all
    /// its windows are late.
    pub(super) fn assign_paned(
        &mut self,
        layout: PaneLayout,
        key_id: u32,
        time: i64,
        event: u32,
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<bool, String> {
        // The common case: far from the ends of the time range, no window held whole, and
        // every window of the event still ahead of the watermark (none due, none late).
        if let Some(place) = layout.place(time)
            && self.new_as_panes
            && self.slots.windows() == 0
            && place.first.saturating_add(layout.size() - 1) > self.watermark
        {
            let at = self.pane_slot(layout, key_id, place.start, agg)?;
            pending.entries.push((event, at));
            return Ok(true);
        }
        self.assign_paned_slow(layout, key_id, time, event, pending, agg)
    }

    /// [`Self::assign_paned`] for events near the ends of the time range, of windows held
    /// whole, or of windows the watermark reached: late windows are skipped, windows already
    /// due are fired again after the batch's `add` call.
    fn assign_paned_slow(
        &mut self,
        layout: PaneLayout,
        key_id: u32,
        time: i64,
        event: u32,
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<bool, String> {
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.spec.assign(time, &mut windows);
        windows.retain(|w| !self.is_late(w));
        let result = self.assign_to_live(layout, key_id, time, event, &windows, pending, agg);
        self.scratch = windows;
        result.map(|()| !self.scratch.is_empty())
    }

    /// Adds event `event` to the not-late `windows` of its time: the pane (when a window is
    /// held as panes), and the slots of windows held whole.
    #[allow(clippy::too_many_arguments)]
    fn assign_to_live(
        &mut self,
        layout: PaneLayout,
        key_id: u32,
        time: i64,
        event: u32,
        windows: &[Window],
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<(), String> {
        // How each window is held is decided before the event changes anything: windows
        // held whole get their slots first, so that the pane's timers skip them.
        let whole: SmallVec<[bool; 8]> = windows
            .iter()
            .map(|w| self.holds_whole(layout, key_id, w))
            .collect();
        let mut at: SmallVec<[Option<u32>; 8]> = SmallVec::with_capacity(windows.len());
        for (w, &whole) in windows.iter().zip(&whole) {
            at.push(if whole {
                let slot = self.window_slot(key_id, w, agg)?;
                pending.entries.push((event, slot));
                Some(slot)
            } else {
                None
            });
        }
        // A window held as panes lies within the time range, and so does its pane.
        let pane = match (whole.contains(&false), layout.pane_start(time)) {
            (true, Some(start)) => Some(self.pane_slot(layout, key_id, start, agg)?),
            _ => None,
        };
        if let Some(pane) = pane {
            pending.entries.push((event, pane));
        }
        for (w, at) in windows.iter().zip(at) {
            if let Some(at) = at.or(pane)
                && w.max_timestamp() <= self.watermark
            {
                pending.due.push(key_id, Due { at, window: *w });
            }
        }
        Ok(())
    }

    /// Whether window `w` of key `key_id` is held whole (in a window slot) rather than as
    /// panes: as it is held already (a window slot, or panes in it), or else as new windows
    /// are held.
    fn holds_whole(&self, layout: PaneLayout, key_id: u32, w: &Window) -> bool {
        layout.holds_whole(w)
            || (self.slots.windows() > 0 && self.find_window(key_id, w).is_some())
            || (!self.new_as_panes && !self.has_other_pane(key_id, u32::MAX, w))
    }

    /// The window slot of `w` for key `key_id`, if there is one.
    fn find_window(&self, key_id: u32, w: &Window) -> Option<u32> {
        self.slots
            .of(key_id)
            .iter()
            .filter(|h| !h.pane())
            .map(|h| h.at())
            .find(|&at| self.slots.get(at).is_some_and(|s| s.window == *w))
    }

    /// The window slot of `w` for key `key_id`, counting one more event; created if missing.
    fn window_slot(
        &mut self,
        key_id: u32,
        w: &Window,
        agg: &mut impl Aggregator,
    ) -> Result<u32, String> {
        if let Some(at) = self.find_window(key_id, w) {
            if let Some(slot) = self.slots.get_mut(at) {
                slot.count += 1;
            }
            return Ok(at);
        }
        let acc = agg
            .create()
            .map_err(|e| format!("creating an accumulator: {e}"))?;
        Ok(self.new_slot(key_id, *w, acc, 1))
    }

    /// The pane at `start` of key `key_id`, counting one more event; created (with the fire
    /// timers of the windows it makes exist) if missing.
    fn pane_slot(
        &mut self,
        layout: PaneLayout,
        key_id: u32,
        start: i64,
        agg: &mut impl Aggregator,
    ) -> Result<u32, String> {
        // Newest first: events come roughly in time order, so mostly into the key's last pane.
        let found = self
            .slots
            .of(key_id)
            .iter()
            .rev()
            .find(|h| h.pane_start() == Some(start))
            .map(|h| h.at());
        if let Some(at) = found {
            if let Some(slot) = self.slots.get_mut(at) {
                slot.count += 1;
            }
            return Ok(at);
        }
        let acc = agg
            .create()
            .map_err(|e| format!("creating an accumulator: {e}"))?;
        let id = self.next_id;
        self.next_id += 1;
        Ok(self.insert_pane(layout, key_id, id, start, acc, 1))
    }

    /// Adds a pane slot and its timers: a fire timer for each window held as panes that it
    /// makes exist (the key had no pane in it) and whose end is ahead of the watermark,
    /// latest window first (the order in which window slots would have been created), and a
    /// cleanup timer for when its last window is late.
    pub(super) fn insert_pane(
        &mut self,
        layout: PaneLayout,
        key_id: u32,
        id: u64,
        start: i64,
        acc: Vec<u8>,
        count: u64,
    ) -> u32 {
        let at = self
            .slots
            .insert(key_id, id, layout.pane(start), acc, count, true);
        // The pane's windows, latest first: those of any time in it.
        let mut windows: SmallVec<[Window; 8]> = match layout.place(start) {
            Some(place) => layout.windows_of(&place).collect(),
            None => SmallVec::new(),
        };
        if windows.is_empty() {
            let mut cut = Vec::new();
            self.spec.assign(start, &mut cut);
            windows.extend(cut);
        }
        let mut last = i64::MIN;
        for w in &windows {
            let fire_at = w.max_timestamp();
            last = last.max(fire_at);
            if fire_at > self.watermark
                && !self.holds_whole(layout, key_id, w)
                && !self.has_other_pane(key_id, at, w)
            {
                self.fire_timers.entry(fire_at).or_default().push((at, id));
            }
        }
        self.cleanup_timers
            .entry(last.saturating_add(self.lateness))
            .or_default()
            .push((at, id));
        at
    }

    /// Whether key `key_id` has a pane in `w` besides the one at `at`.
    fn has_other_pane(&self, key_id: u32, at: u32, w: &Window) -> bool {
        self.slots.of(key_id).iter().any(|h| {
            h.at() != at
                && h.pane_start()
                    .is_some_and(|start| w.start <= start && start < w.end)
        })
    }

    /// The panes of window `w` of key `key_id` (held as panes), in time order.
    pub(super) fn window_panes(&self, key_id: u32, w: &Window) -> SmallVec<[u32; 8]> {
        let mut panes: SmallVec<[(i64, u32); 8]> = self
            .slots
            .of(key_id)
            .iter()
            .filter_map(|h| {
                let start = h.pane_start()?;
                (w.start <= start && start < w.end).then_some((start, h.at()))
            })
            .collect();
        // Panes are mostly created in time order.
        if !panes.is_sorted() {
            panes.sort_unstable();
        }
        panes.into_iter().map(|(_, at)| at).collect()
    }
}

/// Windows of a batch already due, fired after its `add` call: each (key, window) once, in
/// the order events reached them.
#[derive(Debug, Default)]
pub(super) struct DueInBatch {
    pub due: Vec<Due>,
    seen: FxHashSet<(u32, i64, i64)>,
}

impl DueInBatch {
    pub fn clear(&mut self) {
        self.due.clear();
        self.seen.clear();
    }

    /// Adds window `due` of key `key_id`, unless it is already due in this batch.
    pub fn push(&mut self, key_id: u32, due: Due) {
        if self.seen.insert((key_id, due.window.start, due.window.end)) {
            self.due.push(due);
        }
    }
}
