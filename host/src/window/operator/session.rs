//! Session windows: an event opens `[t, t + gap)` and joins every session of its key it
//! intersects or touches; the sessions it bridges are merged into one with the aggregate's
//! `merge` (a failing merge changes nothing: the event is reported).

use smallvec::SmallVec;

use super::{Aggregator, Pending, WindowOperator, merge_one};
use crate::window::{Window, WindowSpec};

impl WindowOperator {
    /// Assigns an event to its session, merging sessions; `false` when it is late.
    pub(super) fn assign_session(
        &mut self,
        key_id: u32,
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
        // Live sessions of a key never intersect, so one pass finds all the new one touches.
        let hits: Vec<u32> = self
            .slots
            .of(key_id)
            .iter()
            .map(|h| h.at())
            .filter(|&at| {
                self.slots
                    .get(at)
                    .is_some_and(|s| s.window.intersects(&new))
            })
            .collect();
        let slot = |at: u32| self.slots.get(at).expect("a key's slots are live");
        let at = match hits.as_slice() {
            [] => {
                let acc = agg
                    .create()
                    .map_err(|e| format!("creating an accumulator: {e}"))?;
                self.new_slot(key_id, new, acc, 1)
            }
            [only] if slot(*only).window.cover(&new) == slot(*only).window => {
                let only = *only;
                if let Some(s) = self.slots.get_mut(only) {
                    s.count += 1;
                }
                only
            }
            _ => {
                // Merge every touched session (and the new window) into one new slot, in time
                // order, with one call. The merged accumulator is built aside, so a failing
                // merge changes nothing.
                let mut hits = hits;
                hits.sort_unstable_by_key(|&h| slot(h).window.start);
                let mut window = new;
                for &h in &hits {
                    window = window.cover(&slot(h).window);
                }
                let acc = {
                    let accs: SmallVec<[&[u8]; 4]> =
                        hits.iter().map(|&h| &slot(h).acc[..]).collect();
                    if let [only] = accs[..] {
                        only.to_vec()
                    } else {
                        merge_one(agg, &accs).map_err(|e| format!("merging sessions: {e}"))?
                    }
                };
                let count = hits.iter().map(|&h| slot(h).count).sum::<u64>() + 1;
                for &h in &hits {
                    self.slots.remove(h);
                }
                let at = self.new_slot(key_id, window, acc, count);
                for old in hits {
                    pending.merged_into.insert(old, at);
                }
                at
            }
        };
        pending.entries.push((event, at));
        Ok(true)
    }
}
