//! Count windows (`WindowSpec::Global`): per key, every `count` events form a window that
//! fires — and is dropped — as soon as it is full, whatever the watermark (Flink's
//! `countWindow`, a global window with a purging count trigger). The window's bounds are the
//! event-time extent of its events. Events the aggregate refuses are dead-lettered and still
//! count, so that a replay closes every window at the same event.

use super::{Aggregator, Pending, Window, WindowOperator};

impl WindowOperator {
    /// Assigns an event to its key's open count window (the oldest one not yet holding
    /// `count` events), creating one if there is none.
    pub(super) fn assign_count(
        &mut self,
        key_id: u32,
        time: i64,
        count: u64,
        event: u32,
        pending: &mut Pending,
        agg: &mut impl Aggregator,
    ) -> Result<bool, String> {
        let event_window = Window {
            start: time,
            end: time.saturating_add(1),
        };
        let open = self
            .slots
            .of(key_id)
            .iter()
            .map(|h| h.at())
            .find(|&at| self.slots.get(at).is_some_and(|s| s.count < count));
        let at = match open.and_then(|at| Some((at, self.slots.get_mut(at)?))) {
            Some((at, slot)) => {
                slot.window = slot.window.cover(&event_window);
                slot.count += 1;
                at
            }
            None => {
                let acc = agg
                    .create()
                    .map_err(|e| format!("creating an accumulator: {e}"))?;
                self.new_slot(key_id, event_window, acc, 1)
            }
        };
        pending.entries.push((event, at));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use weir_packed::BatchBuilder;

    use super::*;
    use crate::window::conformance::TestAggregate;
    use crate::window::{Emission, WindowSpec};

    fn batch(events: &[(&str, i64, &str)]) -> BatchBuilder {
        let mut b = BatchBuilder::new();
        for (i, (k, t, v)) in events.iter().enumerate() {
            b.push(k.as_bytes(), *t, &[], v.as_bytes(), i as u32);
        }
        b
    }

    /// (key, start, end, payload, serial) of each result; failures as ("!", index, ..).
    fn fired(out: Vec<Emission>) -> Vec<(String, i64, i64, String, bool)> {
        out.into_iter()
            .map(|e| match e {
                Emission::Fired {
                    key,
                    window,
                    payload,
                    serial,
                } => (
                    String::from_utf8(key).unwrap(),
                    window.start,
                    window.end,
                    String::from_utf8(payload).unwrap(),
                    serial.is_some(),
                ),
                Emission::Failed { index, .. } => {
                    ("!".into(), index as i64, 0, String::new(), false)
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn count_windows_fire_when_full_several_per_batch_count_failures_and_are_never_late() {
        let spec = WindowSpec::Global { count: 3 };
        let mut op = WindowOperator::new(spec, 0);
        let mut agg = TestAggregate { sum: true };
        let v = |n: i64| format!("{{\"v\":{n}}}");
        let (v1, v2, v3, v4, v5, v6, v7) = (v(1), v(2), v(3), v(4), v(5), v(6), v(7));
        let b = batch(&[
            ("a", 10, &v1),
            ("b", 5, &v1),
            ("a", 30, &v2),
            ("a", 1, "not json"),
            ("a", 20, &v3),
            ("a", 100, &v4),
            ("a", 0, &v5),
            ("a", 50, &v6),
            ("a", 60, &v7),
            ("b", 6, &v2),
        ]);
        let mut out = Vec::new();
        op.process_batch(&b.view(), &mut agg, &mut out);
        // The failing event is dead-lettered and counts: a's first window holds events 0, 2
        // and 3 (sum 3), the second 4, 5, 6 (sum 12); b's holds two.
        assert_eq!(
            fired(out),
            [
                ("!".into(), 3, 0, String::new(), false),
                ("a".into(), 1, 31, "3".into(), true),
                ("a".into(), 0, 101, "12".into(), true),
            ]
        );
        // The watermark fires nothing and makes nothing late.
        let mut out = Vec::new();
        op.advance_watermark(i64::MAX - 1, &mut agg, &mut out);
        assert!(out.is_empty());
        assert_eq!(op.live_windows(), 2);
        // Open windows and their counts survive a checkpoint.
        let bytes = postcard::to_stdvec(&op.state_ref()).unwrap();
        let mut back = WindowOperator::new(spec, 0);
        back.restore(postcard::from_bytes(&bytes).unwrap(), Ok)
            .unwrap();
        let mut out = Vec::new();
        let b = batch(&[("b", -7, &v3), ("a", 70, &v1)]);
        back.process_batch(&b.view(), &mut agg, &mut out);
        assert_eq!(
            fired(out),
            [
                ("b".into(), -7, 7, "6".into(), true),
                ("a".into(), 50, 71, "14".into(), true),
            ]
        );
        assert_eq!(back.live_windows(), 0);
    }

    #[test]
    fn count_windows_of_one_key_get_distinct_serials() {
        let mut op = WindowOperator::new(WindowSpec::Global { count: 1 }, 0);
        let mut agg = TestAggregate { sum: false };
        let mut out = Vec::new();
        let b = batch(&[("k", 5, "x"), ("k", 5, "x")]);
        op.process_batch(&b.view(), &mut agg, &mut out);
        let serials: Vec<Option<u64>> = out
            .iter()
            .map(|e| match e {
                Emission::Fired { serial, .. } => *serial,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(serials.len(), 2);
        assert_ne!(serials[0], serials[1]);
        assert_eq!(op.live_windows(), 0);
    }
}
