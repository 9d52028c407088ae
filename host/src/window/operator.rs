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
//!   at once with the full contents;
//! - session windows merge when they intersect or touch; a late-but-allowed event that bridges
//!   two sessions merges them and fires the merged window.

use std::collections::{BTreeSet, HashMap};

use weir_sdk::packed::EventRef;

use super::assigner::{Window, WindowSpec};

/// Builds, updates and finishes accumulators. The operator stores them as bytes.
pub trait Aggregator {
    /// A new, empty accumulator.
    fn create(&mut self) -> Result<Vec<u8>, String>;
    /// Adds `event` to `acc`.
    fn add(&mut self, acc: &mut Vec<u8>, event: &EventRef<'_>) -> Result<(), String>;
    /// Merges `other` into `into` (session merges).
    fn merge(&mut self, into: &mut Vec<u8>, other: &[u8]) -> Result<(), String>;
    /// The result payload of a window.
    fn finish(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Result<Vec<u8>, String>;
}

/// What the operator emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emission {
    /// A window's result (time `window.max_timestamp()`).
    Fired {
        key: Vec<u8>,
        window: Window,
        payload: Vec<u8>,
    },
    /// An event that arrived after all its windows were late (the late side output).
    Late { key: Vec<u8>, time: i64 },
    /// `finish` failed for a window; its state is kept.
    Failed {
        key: Vec<u8>,
        window: Window,
        error: String,
    },
}

#[derive(Debug, Clone)]
struct Slot {
    window: Window,
    acc: Vec<u8>,
}

type Timer = (i64, Box<[u8]>, Window);

/// Keyed window state and timers.
#[derive(Debug)]
pub struct WindowOperator {
    spec: WindowSpec,
    lateness: i64,
    keys: HashMap<Box<[u8]>, Vec<Slot>>,
    /// (time, key, window): fire when the watermark reaches `time`.
    fire_timers: BTreeSet<Timer>,
    /// (time, key, window): drop the window's state when the watermark reaches `time`.
    cleanup_timers: BTreeSet<Timer>,
    watermark: i64,
    scratch: Vec<Window>,
    /// Events sent to the late side output so far.
    pub late_events: u64,
}

impl WindowOperator {
    pub fn new(spec: WindowSpec, allowed_lateness_ms: i64) -> Self {
        WindowOperator {
            spec,
            lateness: allowed_lateness_ms.max(0),
            keys: HashMap::new(),
            fire_timers: BTreeSet::new(),
            cleanup_timers: BTreeSet::new(),
            watermark: i64::MIN,
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
        w.max_timestamp().saturating_add(self.lateness) <= self.watermark
    }

    /// Processes one event of `key`. An aggregator error is returned for the caller to
    /// dead-letter the event (windows already updated by it keep the update).
    pub fn process_event(
        &mut self,
        key: &[u8],
        event: &EventRef<'_>,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) -> Result<(), String> {
        if self.spec.is_merging() {
            return self.process_session_event(key, event, agg, out);
        }
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.spec.assign(event.time, &mut windows);
        let mut result = Ok(());
        let mut all_late = true;
        for w in &windows {
            if self.is_late(w) {
                continue;
            }
            all_late = false;
            if let Err(e) = self.add_to_window(key, *w, event, agg, out) {
                result = Err(e);
                break;
            }
        }
        self.scratch = windows;
        if all_late {
            self.late(key, event.time, out);
        }
        result
    }

    fn late(&mut self, key: &[u8], time: i64, out: &mut Vec<Emission>) {
        self.late_events += 1;
        out.push(Emission::Late {
            key: key.to_vec(),
            time,
        });
    }

    fn register_timers(&mut self, key: &[u8], w: Window) {
        let fire_at = w.max_timestamp();
        if fire_at > self.watermark {
            self.fire_timers.insert((fire_at, key.into(), w));
        }
        self.cleanup_timers
            .insert((fire_at.saturating_add(self.lateness), key.into(), w));
    }

    fn add_to_window(
        &mut self,
        key: &[u8],
        w: Window,
        event: &EventRef<'_>,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) -> Result<(), String> {
        let slots = match self.keys.get_mut(key) {
            Some(s) => s,
            None => self.keys.entry(key.into()).or_default(),
        };
        let i = match slots.iter().position(|s| s.window == w) {
            Some(i) => i,
            None => {
                let acc = agg.create()?;
                slots.push(Slot { window: w, acc });
                let i = slots.len() - 1;
                self.register_timers(key, w);
                i
            }
        };
        let slots = self.keys.get_mut(key).expect("slot was just ensured");
        agg.add(&mut slots[i].acc, event)?;
        if w.max_timestamp() <= self.watermark {
            // Late but within allowed lateness: fire again with the full contents.
            self.fire(key, w, agg, out);
        }
        Ok(())
    }

    fn process_session_event(
        &mut self,
        key: &[u8],
        event: &EventRef<'_>,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) -> Result<(), String> {
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.spec.assign(event.time, &mut windows);
        let new = windows[0];
        self.scratch = windows;
        if self.is_late(&new) {
            self.late(key, event.time, out);
            return Ok(());
        }
        let slots = match self.keys.get_mut(key) {
            Some(s) => s,
            None => self.keys.entry(key.into()).or_default(),
        };
        // Live sessions of a key never intersect, so one pass finds every session the new
        // window merges with. The merged accumulator is built aside, so that an aggregator
        // error leaves the state as it was.
        let hits: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].window.intersects(&new))
            .collect();
        let mut merged = new;
        let mut acc = match hits.first() {
            Some(&i) => slots[i].acc.clone(),
            None => agg.create()?,
        };
        for &i in hits.iter().skip(1) {
            agg.merge(&mut acc, &slots[i].acc)?;
        }
        agg.add(&mut acc, event)?;
        for &i in hits.iter().rev() {
            merged = merged.cover(&slots.swap_remove(i).window);
        }
        slots.push(Slot {
            window: merged,
            acc,
        });
        self.register_timers(key, merged);
        if merged.max_timestamp() <= self.watermark {
            self.fire(key, merged, agg, out);
        }
        Ok(())
    }

    fn fire(&mut self, key: &[u8], w: Window, agg: &mut impl Aggregator, out: &mut Vec<Emission>) {
        let Some(slot) = self
            .keys
            .get(key)
            .and_then(|s| s.iter().find(|s| s.window == w))
        else {
            return; // a stale timer of a window merged away
        };
        out.push(match agg.finish(key, w, &slot.acc) {
            Ok(payload) => Emission::Fired {
                key: key.to_vec(),
                window: w,
                payload,
            },
            Err(error) => Emission::Failed {
                key: key.to_vec(),
                window: w,
                error,
            },
        });
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
        while let Some(first) = self.fire_timers.first() {
            if first.0 > wm {
                break;
            }
            let (_, key, w) = self.fire_timers.pop_first().expect("first exists");
            self.fire(&key, w, agg, out);
        }
        while let Some(first) = self.cleanup_timers.first() {
            if first.0 > wm {
                break;
            }
            let (_, key, w) = self.cleanup_timers.pop_first().expect("first exists");
            if let Some(slots) = self.keys.get_mut(&key) {
                slots.retain(|s| s.window != w);
                if slots.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }
    }
}
