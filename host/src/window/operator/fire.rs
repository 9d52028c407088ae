//! Firing windows: every window due together (at one watermark, or in one batch) finished with
//! one `finish` call, and when that call fails, the failing window found (named by the
//! aggregator, or by splitting after a trap) and reported while every other window fires.

use super::panes::FiringAcc;
use super::{Aggregator, Emission, Firing, WindowOperator};
use crate::operator::isolate::{Stopped, call_isolating};
use crate::window::Window;

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
        let accs = self.window_accs(due, agg);
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
            } else {
                self.record_fired(&d);
            }
        }
    }
}

impl WindowOperator {
    /// Each due window's accumulator: its slot's, or merged from its panes (a failed merge
    /// is reported in place of the window's results). Windows whose slot is gone are left out.
    fn window_accs(
        &self,
        due: &[Due],
        agg: &mut impl Aggregator,
    ) -> Vec<(Due, Result<FiringAcc, String>)> {
        due.iter()
            .filter_map(|d| {
                let slot = self.slots.get(d.at)?;
                let acc = if slot.pane {
                    self.pane_window_acc(slot.key_id(), &d.window, agg)
                        .transpose()?
                } else {
                    Ok(FiringAcc::Slot(d.at))
                };
                Some((*d, acc))
            })
            .collect()
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
    use crate::window::{Window, WindowSpec};

    /// Counts; `finish` refuses the key "bad" by name, and traps (fails the whole call) on a
    /// window of key "trap" — unless that window is alone in the call, then names it.
    struct Picky {
        inner: TestAggregate,
        calls: usize,
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
        fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, String> {
            self.inner.merge(a, b)
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
        let mut agg = Picky {
            inner: TestAggregate { sum: false },
            calls: 0,
        };
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
}
