//! Firing windows: every window due together (at one watermark, or in one batch) finished with
//! one `finish` call, and when that call fails, the failing window found (named by the
//! aggregator, or by splitting after a trap) and reported while every other window fires.

use super::panes::FiringAcc;
use super::{Aggregator, Emission, Firing, WindowOperator};
use crate::operator::isolate::{CallFailure, Stopped, call_isolating};
use crate::window::Window;

/// A due window and its accumulator, or why it has none.
type DueAcc = (Due, Result<FiringAcc, String>);

/// A window to fire: the slot at `at` — the window's own slot, or (sliding windows held as
/// panes) one of its panes — and the window's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Due {
    pub at: u32,
    pub window: Window,
}

impl WindowOperator {
    /// Emits the results of the windows `due`, in order. `purge` (count windows): a window
    /// that fired is dropped, and its results carry its serial. A window whose `finish` (or
    /// the merge of its panes) failed is reported as [`Emission::WindowFailed`] and keeps its
    /// state.
    pub(super) fn fire(
        &mut self,
        due: &[Due],
        purge: bool,
        agg: &mut impl Aggregator,
        out: &mut Vec<Emission>,
    ) {
        // Stopped: the pipeline stops without committing; state is restored at the restart.
        let stop = |stopped: Stopped| out.push(Emission::Stopped { reason: stopped.0 });
        let Ok(accs) = self.window_accs(due, agg).map_err(stop) else {
            return;
        };
        let firings: Vec<Firing<'_>> = accs
            .iter()
            .filter_map(|(d, acc)| {
                let acc = match acc.as_ref().ok()? {
                    FiringAcc::Slot(at) => &self.slots.get(*at)?.acc,
                    FiringAcc::Merged(acc) => acc,
                };
                Some(Firing {
                    key: &self.slots.get(d.at)?.key,
                    window: d.window,
                    acc,
                })
            })
            .collect();
        let mut results = Vec::with_capacity(firings.len());
        let mut failed = Vec::new();
        let all: Vec<u32> = (0..firings.len() as u32).collect();
        if !firings.is_empty()
            && let Err(stopped) = finish_isolating(&firings, &all, agg, &mut results, &mut failed)
        {
            // The pipeline stops without committing this: state is restored at the restart.
            out.push(Emission::Stopped { reason: stopped.0 });
        }
        drop(firings);
        failed.sort_unstable_by_key(|&(i, _)| i);
        let (mut results, mut failed) = (
            results.into_iter().peekable(),
            failed.into_iter().peekable(),
        );
        // `i`: the index among the windows given to `finish`.
        let mut i = 0u32;
        for (d, acc) in accs {
            let Some(slot) = self.slots.get(d.at) else {
                continue;
            };
            let key = || slot.key.to_vec();
            let failure = match acc {
                Err(error) => Some(error),
                Ok(_) => {
                    i += 1;
                    failed.next_if(|&(f, _)| f == i - 1).map(|(_, error)| error)
                }
            };
            if let Some(error) = failure {
                out.push(Emission::WindowFailed {
                    key: key(),
                    window: d.window,
                    error,
                });
                continue;
            }
            let serial = purge.then_some(slot.id);
            while let Some((_, payload)) = results.next_if(|&(r, _)| r == i - 1) {
                out.push(Emission::Fired {
                    key: key(),
                    window: d.window,
                    payload,
                    serial,
                });
            }
            if purge {
                self.slots.remove(d.at);
            }
        }
    }
}

impl WindowOperator {
    /// Each due window's accumulator: its slot's, or merged from its panes — every window of
    /// several panes in one `merge` call (a failed merge is reported in place of the window's
    /// results). Windows whose slot is gone are left out. `Err` when the aggregator stopped.
    fn window_accs(&self, due: &[Due], agg: &mut impl Aggregator) -> Result<Vec<DueAcc>, Stopped> {
        let mut accs = Vec::with_capacity(due.len());
        // The windows of several panes: their panes' slots, group after group.
        let (mut panes, mut ends, mut owners) = (Vec::new(), Vec::new(), Vec::new());
        for d in due {
            let Some(slot) = self.slots.get(d.at) else {
                continue;
            };
            if !slot.pane {
                accs.push((*d, Ok(FiringAcc::Slot(d.at))));
                continue;
            }
            match self.window_panes(slot.key_id(), &d.window)[..] {
                [] => {}
                [only] => accs.push((*d, Ok(FiringAcc::Slot(only)))),
                ref several => {
                    panes.extend_from_slice(several);
                    ends.push(panes.len() as u32);
                    owners.push(accs.len());
                    accs.push((*d, Ok(FiringAcc::Merged(Vec::new()))));
                }
            }
        }
        if !owners.is_empty() {
            self.merge_panes(&panes, &ends, &owners, &mut accs, agg)?;
        }
        Ok(accs)
    }

    /// Merges the panes of windows `owners` (indices in `accs`) with as few `merge` calls as
    /// possible, isolating failures: window `owners[g]`'s panes are the slots
    /// `panes[ends[g - 1]..ends[g]]`.
    fn merge_panes(
        &self,
        panes: &[u32],
        ends: &[u32],
        owners: &[usize],
        accs: &mut [DueAcc],
        agg: &mut impl Aggregator,
    ) -> Result<(), Stopped> {
        let slot_acc = |at: u32| self.slots.get(at).map_or(&[][..], |s| &s.acc[..]);
        let panes: Vec<&[u8]> = panes.iter().copied().map(slot_acc).collect();
        let groups: Vec<u32> = (0..owners.len() as u32).collect();
        let (mut call_accs, mut call_ends, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        let mut failed = Vec::new();
        let owned = agg.breaker();
        let breaker = owned.as_deref().unwrap_or(&super::NEVER);
        let group = |g: u32| {
            let start = g.checked_sub(1).map_or(0, |p| ends[p as usize]) as usize;
            &panes[start..ends[g as usize] as usize]
        };
        call_isolating(
            &groups,
            &|g| g as usize,
            &mut |part: &[u32]| {
                call_accs.clear();
                call_ends.clear();
                for &g in part {
                    call_accs.extend_from_slice(group(g));
                    call_ends.push(call_accs.len() as u32);
                }
                merged.clear();
                agg.merge(&call_accs, &call_ends, &mut merged)?;
                if merged.len() != part.len() {
                    return Err(CallFailure::Whole(format!(
                        "merge gave {} accumulators for {} groups",
                        merged.len(),
                        part.len()
                    )));
                }
                for (&g, acc) in part.iter().zip(merged.drain(..)) {
                    accs[owners[g as usize]].1 = Ok(FiringAcc::Merged(acc));
                }
                Ok(())
            },
            &mut |g, error| failed.push((g, error)),
            breaker,
        )?;
        for (g, error) in failed {
            accs[owners[g]].1 = Err(format!("merging the panes of the window: {error}"));
        }
        Ok(())
    }
}

/// Finishes `windows[i]` for every `i` in `todo` with as few calls as possible, isolating
/// failures ([`crate::operator::isolate`]): a failing window is reported in `failed`, every
/// other one finishes. Results are appended to `results` as (index in `windows`, payload), in
/// order.
fn finish_isolating(
    windows: &[Firing<'_>],
    todo: &[u32],
    agg: &mut impl Aggregator,
    results: &mut Vec<(u32, Vec<u8>)>,
    failed: &mut Vec<(u32, String)>,
) -> Result<(), Stopped> {
    let mut call: Vec<Firing<'_>> = Vec::with_capacity(todo.len());
    let mut got = Vec::new();
    let owned = agg.breaker();
    let breaker = owned.as_deref().unwrap_or(&super::NEVER);
    call_isolating(
        todo,
        &|i| i as usize,
        &mut |part: &[u32]| {
            call.clear();
            call.extend(part.iter().map(|&i| windows[i as usize]));
            got.clear();
            agg.finish(&call, &mut got)?;
            results.extend(got.drain(..).map(|(j, p)| (part[j as usize], p)));
            Ok(())
        },
        &mut |i, message| failed.push((i as u32, message)),
        breaker,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use weir_packed::{BatchBuilder, BatchView};

    use super::*;
    use crate::operator::isolate::CallFailure;
    use crate::window::conformance::TestAggregate;
    use crate::window::{PanePolicy, Window, WindowSpec};

    /// Counts; `finish` refuses the key "bad" by name, and traps (fails the whole call) on a
    /// window of key "trap" — unless that window is alone in the call, then names it. `merge`
    /// counts its calls and traps when a group holds a pane of `poison` events.
    struct Picky {
        inner: TestAggregate,
        calls: usize,
        merges: usize,
        poison: u64,
    }

    impl Picky {
        fn new(poison: u64) -> Self {
            Picky {
                inner: TestAggregate { sum: false },
                calls: 0,
                merges: 0,
                poison,
            }
        }
    }

    impl Aggregator for Picky {
        fn create(&mut self) -> Result<Vec<u8>, String> {
            self.inner.create()
        }
        fn add(
            &mut self,
            accs: &mut [Vec<u8>],
            targets: &[u32],
            events: &BatchView<'_>,
        ) -> Result<(), CallFailure> {
            self.inner.add(accs, targets, events)
        }
        fn merge(
            &mut self,
            accs: &[&[u8]],
            ends: &[u32],
            merged: &mut Vec<Vec<u8>>,
        ) -> Result<(), CallFailure> {
            self.merges += 1;
            let count = |a: &[u8]| u64::from_le_bytes(a.try_into().unwrap());
            if accs.iter().any(|a| count(a) == self.poison) {
                return Err(CallFailure::Whole("trapped".into()));
            }
            self.inner.merge(accs, ends, merged)
        }
        fn finish(
            &mut self,
            windows: &[Firing<'_>],
            results: &mut Vec<(u32, Vec<u8>)>,
        ) -> Result<(), CallFailure> {
            self.calls += 1;
            if windows.len() > 1 && windows.iter().any(|w| w.key == b"trap") {
                return Err(CallFailure::Whole("trapped".into()));
            }
            if let Some(index) = windows
                .iter()
                .position(|w| w.key == b"bad" || w.key == b"trap")
            {
                return Err(CallFailure::Item {
                    index,
                    message: format!("cannot finish {}", windows[index].key.escape_ascii()),
                });
            }
            self.inner.finish(windows, results)
        }
    }

    #[test]
    fn windows_fire_in_one_call_and_failures_are_isolated() {
        let mut op = WindowOperator::new(
            WindowSpec::Tumbling {
                size: 10,
                offset: 0,
            },
            0,
        );
        let mut agg = Picky::new(u64::MAX);
        let mut b = BatchBuilder::new();
        for (i, k) in ["a", "bad", "b", "trap", "c", "c", "d"].iter().enumerate() {
            b.push(k.as_bytes(), i as i64, &[], b"{}", i as u32);
        }
        let mut out = Vec::new();
        op.process_batch(&b.view(), &mut agg, &mut out);
        assert!(out.is_empty());
        op.advance_watermark(9, &mut agg, &mut out);
        let got: Vec<(String, String)> = out
            .iter()
            .map(|e| match e {
                Emission::Fired {
                    key,
                    window,
                    payload,
                    serial,
                } => {
                    assert_eq!((*window, *serial), (Window { start: 0, end: 10 }, None));
                    (
                        String::from_utf8(key.clone()).unwrap(),
                        String::from_utf8(payload.clone()).unwrap(),
                    )
                }
                Emission::WindowFailed { key, error, .. } => {
                    (String::from_utf8(key.clone()).unwrap(), error.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let want = [
            ("a", "1"),
            ("bad", "cannot finish bad"),
            ("b", "1"),
            ("trap", "cannot finish trap"),
            ("c", "2"),
            ("d", "1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        // One call for all six windows traps; the halves find "bad" and "trap" by name.
        assert!(agg.calls <= 6, "{} calls", agg.calls);
    }

    #[test]
    fn panes_of_every_window_firing_together_merge_in_one_call_and_a_trap_is_isolated() {
        let spec = WindowSpec::Sliding {
            size: 10,
            slide: 2,
            offset: 0,
        };
        let mut b = BatchBuilder::new();
        // 50 keys, one event per key every ms of [0, 20); key 7 has a second event at ms 4,
        // which makes 3 in its pane [4, 6): the poison count.
        for t in 0..20i64 {
            for k in 0..50 {
                let n = if k == 7 && (4..6).contains(&t) {
                    1 + (t == 4) as usize
                } else {
                    1
                };
                for _ in 0..n {
                    b.push(format!("k{k}").as_bytes(), t, &[], b"{}", b.len() as u32);
                }
            }
        }
        let run = |policy: PanePolicy, poison: u64| {
            let mut op = WindowOperator::new(spec, 0).with_pane_policy(policy);
            let mut agg = Picky::new(poison);
            let mut out = Vec::new();
            op.process_batch(&b.view(), &mut agg, &mut out);
            op.advance_watermark(13, &mut agg, &mut out);
            let mut fired = Vec::new();
            for e in out {
                match e {
                    Emission::Fired {
                        key,
                        window,
                        payload,
                        ..
                    } => fired.push((key, window, Ok(payload))),
                    Emission::WindowFailed { key, window, error } => {
                        fired.push((key, window, Err(error)))
                    }
                    other => panic!("{other:?}"),
                }
            }
            fired.sort();
            (fired, agg.merges)
        };
        let (whole, _) = run(PanePolicy::Never, u64::MAX);
        let (panes, merges) = run(PanePolicy::Always, u64::MAX);
        assert_eq!(panes, whole);
        // The windows ending at 2 .. 14, of 1 to 5 panes, fire at one watermark: one call.
        assert_eq!(merges, 1);
        assert_eq!(whole.len(), 50 * 7);
        let (poisoned, merges) = run(PanePolicy::Always, 3);
        // Key 7's five windows over its pane [4, 6), each of several panes, fail; the trap is
        // isolated by splitting the call, and every other window fires as before.
        let holds_poison = |k: &[u8], w: &Window| k == b"k7" && w.start <= 4 && 4 < w.end;
        for ((k, w, got), (_, _, want)) in poisoned.iter().zip(&whole) {
            if holds_poison(k, w) {
                let error = got.as_ref().unwrap_err();
                assert!(
                    error.contains("merging the panes of the window: trapped"),
                    "{error}"
                );
            } else {
                assert_eq!(got, want, "{w:?}");
            }
        }
        assert_eq!(
            whole.iter().filter(|(k, w, _)| holds_poison(k, w)).count(),
            5
        );
        // ~300 windows of several panes: splitting finds the five in far fewer calls.
        assert!(merges > 1 && merges < 100, "{merges} calls");
    }
}
