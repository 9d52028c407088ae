//! The batch `add` call with failure isolation: one call for all touched accumulators, and
//! when it fails, the failing event found (named by the plugin, or by splitting after a trap)
//! and reported while every other event is added.

use weir_packed::{BatchBuilder, BatchView};

use super::{Aggregator, Emission};
use crate::operator::isolate::call_isolating;

/// Adds `entries` (event, accumulator position) of `batch` to `accs` with as few calls as
/// possible, isolating failures ([`crate::operator::isolate`]; an event is the unit that
/// fails, whichever of its windows the aggregator names). Every other event is added; each
/// failing one is reported as [`Emission::Failed`].
pub(super) fn add_isolating(
    batch: &BatchView<'_>,
    entries: &[(u32, u32)],
    accs: &mut [Vec<u8>],
    agg: &mut impl Aggregator,
    out: &mut Vec<Emission>,
) {
    let mut events = BatchBuilder::new();
    let mut targets = Vec::with_capacity(entries.len());
    let owned = agg.breaker();
    let breaker = owned.as_deref().unwrap_or(&super::NEVER);
    let result = call_isolating(
        entries,
        &|(event, _)| event as usize,
        &mut |part: &[(u32, u32)]| {
            targets.clear();
            targets.extend(part.iter().map(|&(_, pos)| pos));
            // Each event of the batch once, in order (e.g. tumbling windows): the batch
            // itself is the call's input. Otherwise the entries' events are gathered.
            let whole = part.len() == batch.len()
                && part.iter().enumerate().all(|(j, &(e, _))| e as usize == j);
            let view = if whole {
                *batch
            } else {
                events.clear();
                for (j, &(event, _)) in part.iter().enumerate() {
                    let e = batch.get(event as usize);
                    events.push(e.key, e.time, e.headers, e.payload, j as u32);
                }
                events.view()
            };
            agg.add(accs, &targets, &view)
        },
        &mut |index, error| out.push(Emission::Failed { index, error }),
        breaker,
    );
    if let Err(stopped) = result {
        out.push(Emission::Stopped { reason: stopped.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::isolate::CallFailure;
    use crate::window::WindowSpec;
    use crate::window::conformance::TestAggregate;
    use crate::window::operator::Firing;
    use crate::window::operator::{Emission, WindowOperator};

    /// Counts, but fails the whole call (like a trap) when the batch holds a payload "boom".
    struct Trapping(TestAggregate, u32);

    impl Aggregator for Trapping {
        fn create(&mut self) -> Result<Vec<u8>, String> {
            self.0.create()
        }
        fn add(
            &mut self,
            accs: &mut [Vec<u8>],
            targets: &[u32],
            events: &BatchView<'_>,
        ) -> Result<(), CallFailure> {
            self.1 += 1;
            if events.iter().any(|e| e.payload == b"boom") {
                return Err(CallFailure::Whole("trapped".into()));
            }
            self.0.add(accs, targets, events)
        }
        fn merge(
            &mut self,
            accs: &[&[u8]],
            ends: &[u32],
            merged: &mut Vec<Vec<u8>>,
        ) -> Result<(), CallFailure> {
            self.0.merge(accs, ends, merged)
        }
        fn finish(
            &mut self,
            windows: &[Firing<'_>],
            results: &mut Vec<(u32, Vec<u8>)>,
        ) -> Result<(), CallFailure> {
            self.0.finish(windows, results)
        }
    }

    #[test]
    fn a_trapping_add_isolates_the_event_and_keeps_the_others() {
        let mut op = WindowOperator::new(
            WindowSpec::Sliding {
                size: 20,
                slide: 10,
                offset: 0,
            },
            0,
        );
        let mut agg = Trapping(TestAggregate { sum: false }, 0);
        let mut b = BatchBuilder::new();
        for (i, p) in ["a", "b", "boom", "c", "d", "e", "f"].iter().enumerate() {
            b.push(b"k", i as i64, &[], p.as_bytes(), i as u32);
        }
        let mut out = Vec::new();
        op.process_batch(&b.view(), &mut agg, &mut out);
        assert_eq!(
            out,
            [Emission::Failed {
                index: 2,
                error: "trapped".into()
            }]
        );
        out.clear();
        op.advance_watermark(i64::MAX, &mut agg, &mut out);
        let counts: Vec<(i64, String)> = out
            .iter()
            .map(|e| match e {
                Emission::Fired {
                    window, payload, ..
                } => (window.start, String::from_utf8(payload.clone()).unwrap()),
                other => panic!("{other:?}"),
            })
            .collect();
        // Six good events, each in the windows [-10, 10) and [0, 20).
        assert_eq!(counts, [(-10, "6".to_string()), (0, "6".to_string())]);
    }
}
