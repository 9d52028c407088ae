//! The window operator's state in a checkpoint: every key's live windows and panes with their
//! accumulators, the watermark and counters. Timers are not stored: they follow from the
//! windows, panes and watermark and are rebuilt on restore.
//!
//! Sliding windows are held as panes since checkpoint format version 3; a checkpoint written
//! before holds their windows whole. Those are restored as windows held whole beside the
//! panes (`operator/panes.rs`): their events so far are in no pane, so they keep their own
//! accumulators, updated by later events too, until they are late. Windows that were not in
//! the checkpoint had no events then and are held as panes.
//!
//! Checkpoints serialize the operator through [`WindowStateRef`], which writes the same data
//! as [`WindowState`] straight from the operator's maps: the checkpoint pause is one pass
//! writing bytes, without copying every accumulator first.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::slots::{Held, Slot, Slots};
use super::{Timers, WindowOperator};
use crate::window::Window;

/// [`WindowOperator`] state, as stored in checkpoint blobs (format version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    pub watermark: i64,
    pub next_id: u64,
    pub late_events: u64,
    pub keys: Vec<KeyWindows>,
}

/// One key's live windows and panes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindows {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Windows held whole.
    pub windows: Vec<WindowAcc>,
    /// Panes of sliding windows, `start`/`end` being the pane's bounds (format version 3;
    /// none before).
    pub panes: Vec<WindowAcc>,
}

/// One live window (or pane) of a key and its accumulator (the aggregate plugin's bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowAcc {
    pub id: u64,
    pub start: i64,
    pub end: i64,
    #[serde(with = "serde_bytes")]
    pub acc: Vec<u8>,
    /// Events assigned to the window, including any the aggregate refused (format version 2).
    pub count: u64,
}

/// The operator's state, serialized exactly as [`WindowState`] (blobs decode into it).
pub struct WindowStateRef<'a>(pub &'a WindowOperator);

impl Serialize for WindowStateRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let op = self.0;
        let mut st = s.serialize_struct("WindowState", 4)?;
        st.serialize_field("watermark", &op.watermark)?;
        st.serialize_field("next_id", &op.next_id)?;
        st.serialize_field("late_events", &op.late_events)?;
        st.serialize_field("keys", &KeysRef(op))?;
        st.end()
    }
}

struct KeysRef<'a>(&'a WindowOperator);

impl Serialize for KeysRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let slots = &self.0.slots;
        s.collect_seq(slots.keys().map(|(k, at)| KeyWindowsRef(k, at, slots)))
    }
}

/// Serialized as [`KeyWindows`].
struct KeyWindowsRef<'a>(&'a [u8], &'a [Held], &'a Slots);

impl Serialize for KeyWindowsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("KeyWindows", 3)?;
        st.serialize_field("key", serde_bytes::Bytes::new(self.0))?;
        st.serialize_field("windows", &SlotsRef(self.1, self.2, false))?;
        st.serialize_field("panes", &SlotsRef(self.1, self.2, true))?;
        st.end()
    }
}

/// The window slots (`false`) or pane slots (`true`) among a key's slots.
struct SlotsRef<'a>(&'a [Held], &'a Slots, bool);

impl Serialize for SlotsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let SlotsRef(held, slots, panes) = *self;
        let mut live = Vec::with_capacity(held.len());
        for at in held.iter().map(Held::at) {
            let slot = slots
                .get(at)
                .ok_or_else(|| S::Error::custom(format!("slot {at} of a key is not live")))?;
            if slot.pane == panes {
                live.push(slot);
            }
        }
        let mut seq = s.serialize_seq(Some(live.len()))?;
        for slot in live {
            seq.serialize_element(&SlotRef(slot))?;
        }
        seq.end()
    }
}

/// Serialized as [`WindowAcc`].
struct SlotRef<'a>(&'a Slot);

impl Serialize for SlotRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let slot = self.0;
        let mut st = s.serialize_struct("WindowAcc", 5)?;
        st.serialize_field("id", &slot.id)?;
        st.serialize_field("start", &slot.window.start)?;
        st.serialize_field("end", &slot.window.end)?;
        st.serialize_field("acc", serde_bytes::Bytes::new(&slot.acc))?;
        st.serialize_field("count", &slot.count)?;
        st.end()
    }
}

impl WindowOperator {
    /// The operator's state for a checkpoint, serialized in place.
    pub fn state_ref(&self) -> WindowStateRef<'_> {
        WindowStateRef(self)
    }

    /// A copy of the operator's state (tests; a hot swap migrating accumulators).
    pub fn snapshot(&self) -> WindowState {
        WindowState {
            watermark: self.watermark,
            next_id: self.next_id,
            late_events: self.late_events,
            keys: self
                .slots
                .keys()
                .map(|(k, at)| {
                    let of = |panes: bool| {
                        at.iter()
                            .filter_map(|h| self.slots.get(h.at()))
                            .filter(|s| s.pane == panes)
                            .map(|s| WindowAcc {
                                id: s.id,
                                start: s.window.start,
                                end: s.window.end,
                                acc: s.acc.clone(),
                                count: s.count,
                            })
                            .collect()
                    };
                    KeyWindows {
                        key: k.to_vec(),
                        windows: of(false),
                        panes: of(true),
                    }
                })
                .collect(),
        }
    }

    /// Replaces the operator's state with `state`, passing every accumulator through
    /// `convert` (a plugin's migration of an older state version; identity otherwise).
    /// Panes are refused for windows not held as panes, and panes of another width.
    pub fn restore(
        &mut self,
        state: WindowState,
        mut convert: impl FnMut(Vec<u8>) -> Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        self.slots.clear();
        self.fire_timers = Timers::new();
        self.cleanup_timers = Timers::new();
        self.watermark = state.watermark;
        self.next_id = state.next_id;
        self.late_events = state.late_events;
        for k in state.keys {
            let key_id = self.slots.key_id(&k.key);
            for w in k.windows {
                let window = Window {
                    start: w.start,
                    end: w.end,
                };
                let at = self
                    .slots
                    .insert(key_id, w.id, window, convert(w.acc)?, w.count, false);
                if !self.spec.is_global() {
                    self.register_timers(at, w.id, window);
                }
            }
            self.restore_panes(key_id, k.panes, &mut convert)?;
        }
        Ok(())
    }

    /// Restores a key's panes, in time order (after its windows held whole: the windows
    /// of those are not fired from the panes).
    fn restore_panes(
        &mut self,
        key_id: u32,
        mut panes: Vec<WindowAcc>,
        convert: &mut impl FnMut(Vec<u8>) -> Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        let Some(first) = panes.first() else {
            return Ok(());
        };
        let Some(layout) = self.panes else {
            return Err(format!(
                "the state holds panes (the first [{}, {})), but {:?} windows are not held \
                 as panes",
                first.start, first.end, self.spec
            ));
        };
        panes.sort_by_key(|p| p.start);
        for p in panes {
            if layout.pane(p.start).end != p.end {
                return Err(format!(
                    "the state holds pane [{}, {}), but the panes of {:?} are {} ms wide",
                    p.start,
                    p.end,
                    self.spec,
                    layout.width()
                ));
            }
            let acc = convert(p.acc)?;
            self.insert_pane(layout, key_id, p.id, p.start, acc, p.count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::conformance::TestAggregate;
    use crate::window::{Emission, WindowSpec};
    use weir_packed::BatchBuilder;

    #[test]
    fn the_in_place_state_decodes_as_the_snapshot_and_restores() {
        let spec = WindowSpec::Sliding {
            size: 20,
            slide: 10,
            offset: 0,
        };
        let mut op = WindowOperator::new(spec, 5);
        let mut agg = TestAggregate { sum: false };
        let mut b = BatchBuilder::new();
        for i in 0..50u32 {
            b.push(format!("k{}", i % 7).as_bytes(), i as i64, &[], b"x", i);
        }
        let mut out = Vec::new();
        op.process_batch(&b.view(), &mut agg, &mut out);
        op.advance_watermark(25, &mut agg, &mut out);
        let bytes = postcard::to_stdvec(&op.state_ref()).unwrap();
        let decoded: WindowState = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, op.snapshot());
        let mut back = WindowOperator::new(spec, 5);
        back.restore(decoded, Ok).unwrap();
        let sorted = |mut s: WindowState| {
            s.keys.sort_by(|a, b| a.key.cmp(&b.key));
            s
        };
        assert_eq!(sorted(back.snapshot()), sorted(op.snapshot()));
        assert_eq!(back.live_windows(), op.live_windows());
        assert!(back.snapshot().keys.iter().all(|k| k.windows.is_empty()));
        assert!(back.snapshot().keys.iter().any(|k| !k.panes.is_empty()));
    }

    fn batch(events: &[(&str, i64)]) -> BatchBuilder {
        let mut b = BatchBuilder::new();
        for (i, (k, t)) in events.iter().enumerate() {
            b.push(k.as_bytes(), *t, &[], b"{}", i as u32);
        }
        b
    }

    /// (key, start, count) of the results, sorted.
    fn results(out: &[Emission]) -> Vec<(String, i64, String)> {
        let mut r: Vec<_> = out
            .iter()
            .map(|e| match e {
                Emission::Fired {
                    key,
                    window,
                    payload,
                    ..
                } => (
                    String::from_utf8_lossy(key).into_owned(),
                    window.start,
                    String::from_utf8_lossy(payload).into_owned(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        r.sort();
        r
    }

    /// A checkpoint blob of format version 2 (sliding windows held whole) restores into the
    /// pane operator: the old windows keep their events and take new ones, later windows are
    /// held as panes, and the results are those of the operator that wrote it.
    #[test]
    fn a_version_2_checkpoint_of_whole_sliding_windows_restores_with_the_same_results() {
        use crate::checkpoint::StateBlob;
        use crate::checkpoint::format::MAGIC;
        let spec = WindowSpec::Sliding {
            size: 30,
            slide: 10,
            offset: 0,
        };
        let mut agg = TestAggregate { sum: false };
        let mut old = WindowOperator::per_window(spec, 10);
        let mut out = Vec::new();
        old.process_batch(
            &batch(&[("a", 5), ("b", 12), ("a", 25)]).view(),
            &mut agg,
            &mut out,
        );
        old.advance_watermark(19, &mut agg, &mut out);
        let fired = [("a", -20), ("a", -10), ("b", -10)];
        let fired: Vec<_> = fired
            .map(|(k, s)| (k.to_string(), s, "1".to_string()))
            .into();
        assert_eq!(results(&out), fired);
        // The blob as version 2 wrote it: per key, its windows, no panes.
        let state = old.snapshot();
        let keys: Vec<(serde_bytes::ByteBuf, Vec<WindowAcc>)> = state
            .keys
            .iter()
            .map(|k| (serde_bytes::ByteBuf::from(k.key.clone()), k.windows.clone()))
            .collect();
        let none: Option<()> = None;
        let window = Some((state.watermark, state.next_id, state.late_events, keys));
        let body = (none, window, none, Vec::<()>::new());
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&2u32.to_le_bytes());
        blob.extend(postcard::to_stdvec(&body).unwrap());
        let decoded = StateBlob::decode("v2", &blob).unwrap().window.unwrap();
        assert_eq!(decoded, state);
        let mut new = WindowOperator::new(spec, 10);
        new.restore(decoded, Ok).unwrap();
        // The same input after the restore, to both: on time, late but allowed (into a
        // fired old window), and a new key.
        let mut want = Vec::new();
        let mut got = Vec::new();
        for (op, out) in [(&mut old, &mut want), (&mut new, &mut got)] {
            let b = batch(&[("a", 18), ("a", 31), ("c", 33), ("b", 9), ("a", 1)]);
            op.process_batch(&b.view(), &mut agg, out);
            op.advance_watermark(45, &mut agg, out);
            op.advance_watermark(i64::MAX, &mut agg, out);
        }
        assert_eq!(results(&got), results(&want));
        assert!(want.len() > 8, "{want:?}");
    }
}
