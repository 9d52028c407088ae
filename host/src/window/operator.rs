//! The keyed event-time window operator.
//!
//! State: per key, the live windows and their accumulators (opaque bytes owned by the host,
//! produced and consumed by an [`Aggregator`] — a plugin in a pipeline), plus event-time timers.
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
//!   events, whatever the watermark; they are never late.
//!
//! Events arrive in batches and accumulators are updated with **one `add` call per batch**:
//! every event is first assigned to its windows' slots (creating and merging slots as needed),
//! then all touched accumulators go to the aggregator together. This relies on the aggregate
//! being consistent (`add(merge(a, b), e) == merge(add(a, e), b)`), as Flink and Beam require
//! of merging aggregates.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use rustc_hash::FxHashMap;

use weir_sdk::packed::{BatchBuilder, BatchView};

use super::assigner::{Window, WindowSpec};

mod add;
mod count;
mod snapshot;
use add::add_isolating;
pub use snapshot::{KeyWindows, WindowAcc, WindowState};

/// An aggregator's report that event `index` of an `add` batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddError {
    pub index: usize,
    pub message: String,
}

/// Builds, updates, merges and finishes accumulators. The operator stores them as bytes.
pub trait Aggregator {
    /// A new, empty accumulator.
    fn create(&mut self) -> Result<Vec<u8>, String>;
    /// Adds event `i` of `events` to `accs[targets[i]]` for every `i`. On an error no
    /// accumulator may have changed. (`events` is lent mutably so that its buffers can be
    /// handed to a plugin without copying; it must be left as it was.)
    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &mut BatchBuilder,
    ) -> Result<(), AddError>;
    /// Merges two accumulators into one.
    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, String>;
    /// The result payloads of a window (usually one).
    fn finish(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Result<Vec<Vec<u8>>, String>;
}

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
}

#[derive(Debug, Clone)]
struct Slot {
    id: u64,
    window: Window,
    acc: Vec<u8>,
    /// Events assigned to the window (including any the aggregate refused).
    count: u64,
}

/// Keys are shared between the state map and the timers (one allocation per key).
type Key = Arc<[u8]>;

/// Timers by time: the (key, window) pairs due then. Grouping by time keeps registration an
/// append (no ordering of keys) — all keys' tumbling windows share their end.
type Timers = BTreeMap<i64, Vec<(Key, Window)>>;

/// Keyed window state and timers.
#[derive(Debug)]
pub struct WindowOperator {
    spec: WindowSpec,
    lateness: i64,
    keys: FxHashMap<Key, Vec<Slot>>,
    /// Fire these windows when the watermark reaches the time.
    fire_timers: Timers,
    /// Drop these windows' state when the watermark reaches the time.
    cleanup_timers: Timers,
    watermark: i64,
    next_id: u64,
    scratch: Vec<Window>,
    /// Events sent to the late side output so far.
    pub late_events: u64,
}

/// Events of a batch assigned to slots, waiting for the batch's `add` call.
#[derive(Default)]
struct Pending {
    /// (event index, slot id)
    entries: Vec<(u32, u64)>,
    /// Slots merged away during the batch: old id → the id that absorbed it.
    merged_into: HashMap<u64, u64>,
}

impl Pending {
    fn resolve(&self, mut id: u64) -> u64 {
        while let Some(&next) = self.merged_into.get(&id) {
            id = next;
        }
        id
    }
}

impl WindowOperator {
    pub fn new(spec: WindowSpec, allowed_lateness_ms: i64) -> Self {
        WindowOperator {
            spec,
            lateness: allowed_lateness_ms.max(0),
            keys: FxHashMap::default(),
            fire_timers: Timers::new(),
            cleanup_timers: Timers::new(),
            watermark: i64::MIN,
            next_id: 0,
            scratch: Vec::with_capacity(8),
            late_events: 0,
        }
    }

    /// The operator's current watermark (`i64::MIN` before the first).
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Number of live (key, window) accumulators.
    pub fn live_windows(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    fn is_late(&self, w: &Window) -> bool {
        !self.spec.is_global() && w.max_timestamp().saturating_add(self.lateness) <= self.watermark
    }

    fn register_timers(&mut self, key: &Key, w: Window) {
        let fire_at = w.max_timestamp();
        if fire_at > self.watermark {
            self.fire_timers
                .entry(fire_at)
                .or_default()
                .push((key.clone(), w));
        }
        self.cleanup_timers
            .entry(fire_at.saturating_add(self.lateness))
            .or_default()
            .push((key.clone(), w));
    }

    fn new_slot(&mut self, key: &[u8], window: Window, acc: Vec<u8>, count: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let key: Key = match self.keys.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        if !self.spec.is_global() {
            self.register_timers(&key, window);
        }
        self.keys.entry(key).or_default().push(Slot {
            id,
            window,
            acc,
            count,
        });
        id
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
        let mut pending = Pending::default();
        for i in 0..batch.len() {
            let (key, time) = (batch.key(i), batch.time(i));
            let assigned = match self.spec {
                WindowSpec::Session { .. } => {
                    self.assign_session(key, time, i as u32, &mut pending, agg)
                }
                WindowSpec::Global { count } => {
                    self.assign_count(key, time, count, i as u32, &mut pending, agg)
                }
                _ => self.assign_fixed(key, time, i as u32, &mut pending, agg),
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
        self.apply(batch, pending, agg, out);
    }

    /// Assigns an event to its (tumbling or sliding) windows; `false` when all are late.
    fn assign_fixed(
        &mut self,
        key: &[u8],
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
                .keys
                .get_mut(key)
                .and_then(|s| s.iter_mut().find(|s| s.window == *w))
                .map(|s| {
                    s.count += 1;
                    s.id
                });
            let id = match existing {
                Some(id) => id,
                None => match agg.create() {
                    Ok(acc) => self.new_slot(key, *w, acc, 1),
                    Err(e) => {
                        result = Err(format!("creating an accumulator: {e}"));
                        break;
                    }
                },
            };
            pending.entries.push((event, id));
        }
        self.scratch = windows;
        result.map(|()| any)
    }

    /// Assigns an event to its session, merging sessions; `false` when it is late.
    fn assign_session(
        &mut self,
        key: &[u8],
        time: i64,
        event: u32,
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<bool, String> {
        // A session assigner gives exactly one window: `[time, time + gap)`.
        let WindowSpec::Session { gap } = self.spec else {
            unreachable!("assign_session is only called for session windows")
        };
        let new = Window {
            start: time,
            end: time.saturating_add(gap),
        };
        if self.is_late(&new) {
            return Ok(false);
        }
        let slots = self.keys.get(key).map(Vec::as_slice).unwrap_or(&[]);
        // Live sessions of a key never intersect, so one pass finds all the new one touches.
        let hits: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].window.intersects(&new))
            .collect();
        let id = match hits.as_slice() {
            [] => {
                let acc = agg
                    .create()
                    .map_err(|e| format!("creating an accumulator: {e}"))?;
                self.new_slot(key, new, acc, 1)
            }
            [only] if slots[*only].window.cover(&new) == slots[*only].window => {
                let only = *only;
                let slot = &mut self.keys.get_mut(key).expect("key has slots")[only];
                slot.count += 1;
                slot.id
            }
            _ => {
                // Merge every touched session (and the new window) into one new slot. The
                // merged accumulator is built aside, so a failing merge changes nothing.
                let mut acc = slots[hits[0]].acc.clone();
                let mut window = new;
                for &h in &hits {
                    window = window.cover(&slots[h].window);
                }
                for &h in &hits[1..] {
                    acc = agg
                        .merge(&acc, &slots[h].acc)
                        .map_err(|e| format!("merging sessions: {e}"))?;
                }
                let old_ids: Vec<u64> = hits.iter().map(|&h| slots[h].id).collect();
                let count = hits.iter().map(|&h| slots[h].count).sum::<u64>() + 1;
                let slots = self.keys.get_mut(key).expect("key has slots");
                slots.retain(|s| !old_ids.contains(&s.id));
                let id = self.new_slot(key, window, acc, count);
                for old in old_ids {
                    pending.merged_into.insert(old, id);
                }
                id
            }
        };
        pending.entries.push((event, id));
        Ok(true)
    }

    /// Runs the batch's `add` call over every touched accumulator and fires touched windows
    /// that are already complete (or full, for count windows). A failing event is reported
    /// and the call repeated without it (it still counts towards a count window: windows
    /// close after `count` events reached them, so replays close them at the same events).
    fn apply(
        &mut self,
        batch: &BatchView<'_>,
        pending: Pending,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) {
        if pending.entries.is_empty() {
            return;
        }
        // Touched slots, in first-touch order: (an event of the slot's key, slot id).
        let mut order: Vec<(u32, u64)> = Vec::new();
        let mut position: FxHashMap<u64, u32> = FxHashMap::default();
        // (event index in `batch`, accumulator position)
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(pending.entries.len());
        for &(event, id) in &pending.entries {
            let id = pending.resolve(id);
            let pos = *position.entry(id).or_insert_with(|| {
                order.push((event, id));
                (order.len() - 1) as u32
            });
            entries.push((event, pos));
        }
        let mut accs: Vec<Vec<u8>> = order
            .iter()
            .map(|&(event, id)| {
                self.slot_mut(batch.key(event as usize), id)
                    .map(|s| std::mem::take(&mut s.acc))
                    .unwrap_or_default()
            })
            .collect();
        add_isolating(batch, &entries, &mut accs, agg, out);
        let mut due = Vec::new();
        let mut full = Vec::new();
        let watermark = self.watermark;
        let limit = match self.spec {
            WindowSpec::Global { count } => Some(count),
            _ => None,
        };
        for (&(event, id), acc) in order.iter().zip(accs) {
            let key = batch.key(event as usize);
            if let Some(slot) = self.slot_mut(key, id) {
                slot.acc = acc;
                match limit {
                    Some(n) if slot.count >= n => full.push((key, id)),
                    Some(_) => {}
                    // Late but allowed: the window's end already passed; fire it again.
                    None if slot.window.max_timestamp() <= watermark => {
                        due.push((key, slot.window))
                    }
                    None => {}
                }
            }
        }
        for (key, w) in due {
            self.fire(key, w, agg, out);
        }
        for (key, id) in full {
            self.fire_full(key, id, agg, out);
        }
    }

    fn slot_mut(&mut self, key: &[u8], id: u64) -> Option<&mut Slot> {
        self.keys.get_mut(key)?.iter_mut().find(|s| s.id == id)
    }

    fn fire(&mut self, key: &[u8], w: Window, agg: &mut impl Aggregator, out: &mut Vec<Emission>) {
        let Some(slot) = self
            .keys
            .get(key)
            .and_then(|s| s.iter().find(|s| s.window == w))
        else {
            return; // a stale timer of a window merged away
        };
        match agg.finish(key, w, &slot.acc) {
            Ok(payloads) => out.extend(payloads.into_iter().map(|payload| Emission::Fired {
                key: key.to_vec(),
                window: w,
                payload,
                serial: None,
            })),
            Err(error) => out.push(Emission::WindowFailed {
                key: key.to_vec(),
                window: w,
                error,
            }),
        }
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
        while let Some(due) = self.fire_timers.first_entry() {
            if *due.key() > wm {
                break;
            }
            for (key, w) in due.remove() {
                self.fire(&key, w, agg, out);
            }
        }
        while let Some(due) = self.cleanup_timers.first_entry() {
            if *due.key() > wm {
                break;
            }
            for (key, w) in due.remove() {
                if let Some(slots) = self.keys.get_mut(&key) {
                    slots.retain(|s| s.window != w);
                    if slots.is_empty() {
                        self.keys.remove(&key);
                    }
                }
            }
        }
    }
}
