//! The window operator's state in a checkpoint: every key's live windows and accumulators,
//! the watermark and counters. Timers are not stored: they follow from the windows and the
//! watermark and are rebuilt on restore.
//!
//! Checkpoints serialize the operator through [`WindowStateRef`], which writes the same data
//! as [`WindowState`] straight from the operator's maps: the checkpoint pause is one pass
//! writing bytes, without copying every accumulator first.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::slots::{Slot, Slots};
use super::{Timers, WindowOperator};
use crate::window::Window;

/// [`WindowOperator`] state, as stored in checkpoint blobs (format version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    pub watermark: i64,
    pub next_id: u64,
    pub late_events: u64,
    pub keys: Vec<KeyWindows>,
}

/// One key's live windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWindows {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    pub windows: Vec<WindowAcc>,
}

/// One live window of a key and its accumulator (the aggregate plugin's bytes).
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
struct KeyWindowsRef<'a>(&'a [u8], &'a [u32], &'a Slots);

impl Serialize for KeyWindowsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("KeyWindows", 2)?;
        st.serialize_field("key", serde_bytes::Bytes::new(self.0))?;
        st.serialize_field("windows", &SlotsRef(self.1, self.2))?;
        st.end()
    }
}

struct SlotsRef<'a>(&'a [u32], &'a Slots);

impl Serialize for SlotsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &at in self.0 {
            let slot = self
                .1
                .get(at)
                .ok_or_else(|| S::Error::custom(format!("slot {at} of a key is not live")))?;
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
                .map(|(k, at)| KeyWindows {
                    key: k.to_vec(),
                    windows: at
                        .iter()
                        .filter_map(|&at| self.slots.get(at))
                        .map(|s| WindowAcc {
                            id: s.id,
                            start: s.window.start,
                            end: s.window.end,
                            acc: s.acc.clone(),
                            count: s.count,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Replaces the operator's state with `state`, passing every accumulator through
    /// `convert` (a plugin's migration of an older state version; identity otherwise).
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
                    .insert(key_id, w.id, window, convert(w.acc)?, w.count);
                if !self.spec.is_global() {
                    self.register_timers(at, w.id, window);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowSpec;
    use crate::window::conformance::TestAggregate;
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
    }
}
