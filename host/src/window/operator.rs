//! The keyed event-time window operator.
//!
//! State: per key, the live windows and their accumulators (opaque bytes owned by the host,
//! produced and consumed by an [`Aggregator`] — a plugin in a pipeline; laid out in
//! [`slots`]), plus event-time timers.
//! Semantics (Flink's `WindowOperator` with `EventTimeTrigger`, accumulating):
//!
//! - a window `[S, E)` fires when the watermark reaches `E - 1`; results carry time `E - 1`;
//! - a window is *late* when `E - 1 + allowed_lateness <= watermark`; its state is then dropped;
//! - an event is sent to the late side output only when every window it belongs to is late;
//! - an event for a window that already fired but is not late updates it and fires it again
//!   with the full contents (once per batch: late events of one batch fire their window once);
//! - session windows merge when they intersect or touch; a late-but-allowed event that bridges
//!   two sessions merges them and fires the merged window;
//! - count windows (`WindowSpec::Global`) fire and are dropped as soon as they hold `count`
//!   events, whatever the watermark; they are never late;
//! - sliding windows may be held as panes ([`panes`], [`PanePolicy`]): one accumulator per
//!   (key, pane), merged into the window's when it fires — same results, firings and lateness.
//!
//! Events arrive in batches and accumulators are updated with **one `add` call per batch**:
//! every event is first assigned to its windows' slots (creating and merging slots as needed),
//! then all touched accumulators go to the aggregator together. This relies on the aggregate
//! being consistent (`add(merge(a, b), e) == merge(add(a, e), b)`), as Flink and Beam require
//! of merging aggregates.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use weir_packed::BatchView;

use super::assigner::{Window, WindowSpec};
use super::panes::PaneLayout;

mod add;
mod count;
mod fire;
mod panes;
mod session;
mod slots;
mod snapshot;
use add::add_isolating;
use fire::Due;
use panes::DueInBatch;
use slots::Slots;
pub use snapshot::{KeyWindows, WindowAcc, WindowState, WindowStateRef};

use std::sync::Arc;

use crate::operator::isolate::{Breaker, CallFailure};

/// A window to finish: its key, bounds and accumulator.
#[derive(Debug, Clone, Copy)]
pub struct Firing<'a> {
    pub key: &'a [u8],
    pub window: Window,
    pub acc: &'a [u8],
}

/// Builds, updates, merges and finishes accumulators. The operator stores them as bytes.
pub trait Aggregator {
    /// A new, empty accumulator (always the same bytes: implementations may cache it).
    fn create(&mut self) -> Result<Vec<u8>, String>;
    /// Adds event `i` of `events` to `accs[targets[i]]` for every `i`. On an error no
    /// accumulator may have changed.
    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &BatchView<'_>,
    ) -> Result<(), CallFailure>;
    /// Merges accumulators group by group: group `g` is `accs[ends[g - 1]..ends[g]]` (the
    /// first from 0), folded in that order, which is time order; appends one accumulator per
    /// group to `merged`. A group that fails is named by [`CallFailure::Item`]. On an error
    /// nothing may have been appended.
    fn merge(
        &mut self,
        accs: &[&[u8]],
        ends: &[u32],
        merged: &mut Vec<Vec<u8>>,
    ) -> Result<(), CallFailure>;
    /// Whether `merge` is cheap next to `add` — under [`PanePolicy::Auto`], new sliding
    /// windows are then held as panes: one `add` target per event instead of `size / slide`,
    /// but up to `size / slide - 1` merges per window fired. Not by default: then `Auto`
    /// holds sliding windows whole.
    fn merges_cheaply(&self) -> bool {
        false
    }
    /// The result payloads of `windows` (usually one each), appended to `results` as (index in
    /// `windows`, payload) in window order. On an error nothing may have been appended.
    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), CallFailure>;
    /// The breaker that stops isolating failures when the aggregator fails on everything
    /// (none: never).
    fn breaker(&self) -> Option<Arc<Breaker>> {
        None
    }
}

/// [`Aggregator::merge`] for aggregators that merge a pair at a time: each group folded with
/// `pair`, a failing group named by its index.
pub fn merge_pairwise(
    accs: &[&[u8]],
    ends: &[u32],
    merged: &mut Vec<Vec<u8>>,
    mut pair: impl FnMut(&[u8], &[u8]) -> Result<Vec<u8>, String>,
) -> Result<(), CallFailure> {
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (g, &end) in ends.iter().enumerate() {
        let group = accs.get(start..end as usize).filter(|g| !g.is_empty());
        let Some([first, rest @ ..]) = group else {
            return Err(CallFailure::Whole(format!(
                "merge group {g} ends at {end}, after {start}, of {} accumulators",
                accs.len()
            )));
        };
        let mut acc = first.to_vec();
        for next in rest {
            acc = pair(&acc, next).map_err(|message| CallFailure::Item { index: g, message })?;
        }
        out.push(acc);
        start = end as usize;
    }
    merged.append(&mut out);
    Ok(())
}

/// Merges one group of accumulators (in time order) into one, with one `merge` call.
fn merge_one(agg: &mut impl Aggregator, accs: &[&[u8]]) -> Result<Vec<u8>, String> {
    let mut merged = Vec::with_capacity(1);
    agg.merge(accs, &[accs.len() as u32], &mut merged)
        .map_err(CallFailure::message)?;
    match <[Vec<u8>; 1]>::try_from(merged) {
        Ok([acc]) => Ok(acc),
        Err(got) => Err(format!(
            "merge gave {} accumulators for one group",
            got.len()
        )),
    }
}

/// Whether new sliding windows are held as panes or whole (existing windows stay as they are
/// held: the two mix, see [`panes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanePolicy {
    /// As panes when the aggregator merges cheaply ([`Aggregator::merges_cheaply`]), whole
    /// otherwise.
    Auto,
    /// As panes.
    Always,
    /// Whole: one accumulator per (key, window).
    Never,
}

/// The breaker of aggregators without one.
pub(crate) static NEVER: Breaker = Breaker::never();

/// What the operator emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emission {
    /// A window's result (time `window.max_timestamp()`).
    Fired {
        key: Vec<u8>,
        window: Window,
        payload: Vec<u8>,
        /// Count windows: the window's serial number (windows of a key may share bounds).
        serial: Option<u64>,
    },
    /// Event `index` of the batch arrived after all its windows were late (the late side
    /// output).
    Late { index: usize },
    /// Event `index` of the batch could not be aggregated (to be dead-lettered).
    Failed { index: usize, error: String },
    /// `finish` (or `create`/`merge`) failed for a window; its state is kept.
    WindowFailed {
        key: Vec<u8>,
        window: Window,
        error: String,
    },
    /// The aggregator failed for good (its breaker tripped): events or windows not yet
    /// handled were left as they were.
    Stopped { reason: String },
}

/// Timers by time: the slots (position, id) due then. Grouping by time keeps registration an
/// append — all keys' tumbling windows share their end. A timer whose slot is gone (merged,
/// fired, dropped) is skipped by its id.
type Timers = BTreeMap<i64, Vec<(u32, u64)>>;

/// Keyed window state and timers.
#[derive(Debug)]
pub struct WindowOperator {
    spec: WindowSpec,
    /// Sliding windows: the panes they can be held as (`None`: held whole).
    panes: Option<PaneLayout>,
    policy: PanePolicy,
    /// Whether new windows are held as panes (the policy, for the current batch).
    new_as_panes: bool,
    lateness: i64,
    slots: Slots,
    /// Fire these windows when the watermark reaches the time.
    fire_timers: Timers,
    /// Drop these windows' state when the watermark reaches the time.
    cleanup_timers: Timers,
    watermark: i64,
    next_id: u64,
    /// `apply` calls so far (marks the slots a call touched).
    round: u64,
    scratch: Vec<Window>,
    pending: Pending,
    add_scratch: Scratch,
    /// The key ids of the current batch's events.
    key_ids: Vec<u32>,
    /// Events sent to the late side output so far.
    pub late_events: u64,
}

/// Events of a batch assigned to slots, waiting for the batch's `add` call.
#[derive(Debug, Default)]
struct Pending {
    /// (event index, slot position)
    entries: Vec<(u32, u32)>,
    /// Slots merged away during the batch: old position → the position that absorbed it.
    merged_into: FxHashMap<u32, u32>,
    /// Whether the batch was assigned by the pane path (some windows held as panes).
    paned: bool,
    /// Windows that the batch's events reached after their end, found by the pane path
    /// (fired again after the `add` call).
    due: DueInBatch,
}

/// The vectors of a batch's `add` round: touched slots in first-touch order, (event,
/// accumulator position) pairs, and the accumulators taken out of their slots for the call.
#[derive(Debug, Default)]
struct Scratch {
    order: Vec<u32>,
    entries: Vec<(u32, u32)>,
    accs: Vec<Vec<u8>>,
}

impl Pending {
    fn resolve(&self, mut at: u32) -> u32 {
        while let Some(&next) = self.merged_into.get(&at) {
            at = next;
        }
        at
    }
}

impl WindowOperator {
    /// An operator for windows of `spec`; sliding windows are held as panes when they pay
    /// ([`PaneLayout::of`]) and the aggregator merges cheaply ([`PanePolicy::Auto`]).
    pub fn new(spec: WindowSpec, allowed_lateness_ms: i64) -> Self {
        WindowOperator {
            spec,
            panes: PaneLayout::of(&spec),
            policy: PanePolicy::Auto,
            new_as_panes: false,
            lateness: allowed_lateness_ms.max(0),
            slots: Slots::default(),
            fire_timers: Timers::new(),
            cleanup_timers: Timers::new(),
            watermark: i64::MIN,
            next_id: 0,
            round: 0,
            scratch: Vec::with_capacity(8),
            pending: Pending::default(),
            add_scratch: Scratch::default(),
            key_ids: Vec::new(),
            late_events: 0,
        }
    }

    /// An operator holding sliding windows whole, one accumulator per (key, window), as
    /// before panes (no `merge` calls, `size / slide` updates per event): the oracle of the
    /// pane tests, the writer of old checkpoints, and the comparison in the windows bench.
    pub fn per_window(spec: WindowSpec, allowed_lateness_ms: i64) -> Self {
        Self::new(spec, allowed_lateness_ms).with_pane_policy(PanePolicy::Never)
    }

    /// The operator with pane policy `policy`.
    pub fn with_pane_policy(mut self, policy: PanePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Holds new sliding windows by `policy` from the next batch on.
    pub fn set_pane_policy(&mut self, policy: PanePolicy) {
        self.policy = policy;
    }

    /// The operator's current watermark (`i64::MIN` before the first).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Number of live accumulators: (key, window), or (key, pane) for sliding windows.
    pub fn live_windows(&self) -> usize {
        self.slots.live()
    }

    fn is_late(&self, w: &Window) -> bool {
        !self.spec.is_global() && w.max_timestamp().saturating_add(self.lateness) <= self.watermark
    }

    fn register_timers(&mut self, at: u32, id: u64, w: Window) {
        let fire_at = w.max_timestamp();
        if fire_at > self.watermark {
            self.fire_timers.entry(fire_at).or_default().push((at, id));
        }
        self.cleanup_timers
            .entry(fire_at.saturating_add(self.lateness))
            .or_default()
            .push((at, id));
    }

    fn new_slot(&mut self, key_id: u32, window: Window, acc: Vec<u8>, count: u64) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let at = self.slots.insert(key_id, id, window, acc, count, false);
        if !self.spec.is_global() {
            self.register_timers(at, id, window);
        }
        at
    }

    /// Processes a batch of events (key and time read from the batch): assigns them to
    /// windows, updates accumulators with one `add` call, and fires windows that are already
    /// complete (late but allowed).
    pub fn process_batch(
        &mut self,
        batch: &BatchView<'_>,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) {
        // The pending entries and the `add` call's vectors are reused from batch to batch.
        let mut pending = std::mem::take(&mut self.pending);
        pending.entries.clear();
        pending.merged_into.clear();
        pending.due.clear();
        self.new_as_panes = match self.policy {
            PanePolicy::Auto => agg.merges_cheaply(),
            PanePolicy::Always => true,
            PanePolicy::Never => false,
        };
        pending.paned = self.panes.is_some() && (self.new_as_panes || self.slots.panes() > 0);
        // Every event's key first, in a loop of independent lookups: their cache misses (the
        // operator's main cost with many keys) overlap instead of adding up.
        let mut key_ids = std::mem::take(&mut self.key_ids);
        key_ids.clear();
        key_ids.extend((0..batch.len()).map(|i| self.slots.key_id(batch.key(i))));
        for (i, &key) in key_ids.iter().enumerate() {
            let time = batch.time(i);
            let assigned = match self.spec {
                WindowSpec::Session { .. } => {
                    self.assign_session(key, time, i as u32, &mut pending, agg)
                }
                WindowSpec::Global { count } => {
                    self.assign_count(key, time, count, i as u32, &mut pending, agg)
                }
                _ => match self.panes {
                    Some(layout) if pending.paned => {
                        self.assign_paned(layout, key, time, i as u32, &mut pending, agg)
                    }
                    _ => self.assign_fixed(key, time, i as u32, &mut pending, agg),
                },
            };
            match assigned {
                Ok(true) => {}
                Ok(false) => {
                    self.late_events += 1;
                    out.push(Emission::Late { index: i });
                }
                Err(error) => out.push(Emission::Failed { index: i, error }),
            }
        }
        self.apply(batch, &pending, agg, out);
        self.pending = pending;
        self.key_ids = key_ids;
        self.slots.release();
    }

    /// Assigns an event to its (tumbling or sliding) windows; `false` when all are late.
    fn assign_fixed(
        &mut self,
        key_id: u32,
        time: i64,
        event: u32,
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<bool, String> {
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.spec.assign(time, &mut windows);
        let mut any = false;
        let mut result = Ok(());
        for w in &windows {
            if self.is_late(w) {
                continue;
            }
            any = true;
            let existing = self
                .slots
                .of(key_id)
                .iter()
                .map(|h| h.at())
                .find(|&at| self.slots.get(at).is_some_and(|s| s.window == *w));
            let at = match existing {
                Some(at) => {
                    if let Some(slot) = self.slots.get_mut(at) {
                        slot.count += 1;
                    }
                    at
                }
                None => match agg.create() {
                    Ok(acc) => self.new_slot(key_id, *w, acc, 1),
                    Err(e) => {
                        result = Err(format!("creating an accumulator: {e}"));
                        break;
                    }
                },
            };
            pending.entries.push((event, at));
        }
        self.scratch = windows;
        result.map(|()| any)
    }

    /// Runs the batch's `add` call over every touched accumulator and fires touched windows
    /// that are already complete (or full, for count windows). A failing event is reported
    /// and the call repeated without it (it still counts towards a count window: windows
    /// close after `count` events reached them, so replays close them at the same events).
    fn apply(
        &mut self,
        batch: &BatchView<'_>,
        pending: &Pending,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) {
        if pending.entries.is_empty() {
            return;
        }
        self.round += 1;
        let round = self.round;
        // Touched slots in first-touch order, and (event index in `batch`, accumulator
        // position) for the `add` call.
        let Scratch {
            mut order,
            mut entries,
            mut accs,
        } = std::mem::take(&mut self.add_scratch);
        order.clear();
        entries.clear();
        accs.clear();
        for &(event, at) in &pending.entries {
            let at = pending.resolve(at);
            let Some(slot) = self.slots.get_mut(at) else {
                continue; // not reachable: pending slots are live or merged into live ones
            };
            if slot.mark != round {
                slot.mark = round;
                slot.pos = order.len() as u32;
                order.push(at);
            }
            entries.push((event, slot.pos));
        }
        accs.extend(order.iter().map(|&at| {
            self.slots
                .get_mut(at)
                .map(|s| std::mem::take(&mut s.acc))
                .unwrap_or_default()
        }));
        add_isolating(batch, &entries, &mut accs, agg, out);
        let mut due = Vec::new();
        let mut full = Vec::new();
        let watermark = self.watermark;
        let limit = match self.spec {
            WindowSpec::Global { count } => Some(count),
            _ => None,
        };
        for (&at, acc) in order.iter().zip(accs.drain(..)) {
            if let Some(slot) = self.slots.get_mut(at) {
                slot.acc = acc;
                match limit {
                    Some(n) if slot.count >= n => full.push(Due {
                        at,
                        window: slot.window,
                    }),
                    Some(_) => {}
                    // Late but allowed: the window's end already passed; fire it again.
                    None if !pending.paned && slot.window.max_timestamp() <= watermark => {
                        due.push(Due {
                            at,
                            window: slot.window,
                        })
                    }
                    None => {}
                }
            }
        }
        self.add_scratch = Scratch {
            order,
            entries,
            accs,
        };
        // Windows held as panes (and, beside them, whole) were found due by their events.
        if pending.paned {
            due.clone_from(&pending.due.due);
        }
        self.fire(&due, false, agg, out);
        self.fire(&full, true, agg, out);
    }

    /// Advances the watermark to `wm` (ignored if not newer): fires windows whose end it
    /// reached and drops windows that became late.
    pub fn advance_watermark(
        &mut self,
        wm: i64,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) {
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        // Every window due at this watermark, in timer order, finished with one call.
        let mut due = Vec::new();
        while let Some(timers) = self.fire_timers.first_entry() {
            if *timers.key() > wm {
                break;
            }
            let time = *timers.key();
            for (at, id) in timers.remove() {
                let Some(slot) = self.slots.get_live(at, id) else {
                    continue;
                };
                // A pane's timer fires the window (held as panes) that ends then.
                let window = match self.panes {
                    Some(layout) if slot.pane => layout.window_at(time),
                    _ => slot.window,
                };
                due.push(Due { at, window });
            }
        }
        self.fire(&due, false, agg, out);
        while let Some(due) = self.cleanup_timers.first_entry() {
            if *due.key() > wm {
                break;
            }
            for (at, id) in due.remove() {
                if self.slots.get_live(at, id).is_some() {
                    self.slots.remove(at);
                }
            }
        }
        self.slots.release();
    }
}
