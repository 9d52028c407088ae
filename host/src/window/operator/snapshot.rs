//! The window operator's state in a checkpoint: every key's live windows and accumulators,
//! the watermark and counters. Timers are not stored: they follow from the windows and the
//! watermark and are rebuilt on restore.

use serde::{Deserialize, Serialize};

use super::{Key, Slot, Timers, WindowOperator};
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
}

impl WindowOperator {
    /// A copy of the operator's state.
    pub fn snapshot(&self) -> WindowState {
        WindowState {
            watermark: self.watermark,
            next_id: self.next_id,
            late_events: self.late_events,
            keys: self
                .keys
                .iter()
                .map(|(k, slots)| KeyWindows {
                    key: k.to_vec(),
                    windows: slots
                        .iter()
                        .map(|s| WindowAcc {
                            id: s.id,
                            start: s.window.start,
                            end: s.window.end,
                            acc: s.acc.clone(),
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
        self.keys.clear();
        self.fire_timers = Timers::new();
        self.cleanup_timers = Timers::new();
        self.watermark = state.watermark;
        self.next_id = state.next_id;
        self.late_events = state.late_events;
        for k in state.keys {
            let key: Key = k.key.into();
            let mut slots = Vec::with_capacity(k.windows.len());
            for w in k.windows {
                let window = Window {
                    start: w.start,
                    end: w.end,
                };
                self.register_timers(&key, window);
                slots.push(Slot {
                    id: w.id,
                    window,
                    acc: convert(w.acc)?,
                });
            }
            self.keys.insert(key, slots);
        }
        Ok(())
    }
}
