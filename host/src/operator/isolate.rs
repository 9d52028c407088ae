//! Failure isolation, written once for every plugin call over many items: the transform chain
//! (events), the keyed process stage (a key's events), the window aggregate's `add` (events
//! feeding accumulators) and `finish` (windows).
//!
//! A call over many items either succeeds, names the item that failed (an error value from the
//! plugin), or fails as a whole (a trap, a malformed reply). A named item is reported and the
//! call repeated without it; a whole failure splits the items in halves until the failing item
//! is alone. Every other item ends up in exactly one successful call, in order. Items may be
//! grouped into *units* that fail together (an event feeding several windows is one unit):
//! splits happen at unit boundaries and a failure reports the unit.
//!
//! What a call does with its items and how its effects are undone on failure (restoring a
//! key's state, discarding a failed call's output) is the caller's: this module only decides
//! which items go into which call.
//!
//! A [`Breaker`] per operator stops this when a plugin fails on everything: after `limit`
//! consecutive failing items (no successful call in between) — or at once when the plugin
//! cannot be run at all (its instance trapped and could not be restarted) — isolation stops
//! with [`Stopped`], and the pipeline stops taking input instead of dead-lettering every
//! event, each at the cost of a deadline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a call over several items failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The plugin named the item (its index among the call's items) that failed.
    Item { index: usize, message: String },
    /// The call failed as a whole (a trap, malformed output): the failing item is found by
    /// splitting.
    Whole(String),
    /// The plugin cannot be called any more (its instance could not be restarted).
    Fatal(String),
}

/// Isolation stopped: the operator failed for good (the reason says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped(pub String);

/// Counts an operator's consecutive failing items — failures with no successful call in
/// between — and trips after `limit` of them (0: never).
/// Shared by the calls of one operator; safe to reach from the operator thread only, but
/// `Sync` so that stages holding it stay `Send`.
#[derive(Debug, Default)]
pub struct Breaker {
    limit: u32,
    consecutive: AtomicU32,
    tripped: Mutex<Option<String>>,
}

impl Breaker {
    /// A breaker tripping after `limit` consecutive failures (0: never).
    pub fn new(limit: u32) -> Self {
        Breaker {
            limit,
            ..Default::default()
        }
    }

    /// A breaker that never trips on failures.
    pub const fn never() -> Self {
        Breaker {
            limit: 0,
            consecutive: AtomicU32::new(0),
            tripped: Mutex::new(None),
        }
    }

    fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }

    /// Notes a failing item; trips (returning the reason) at the limit.
    fn failure(&self, message: &str) -> Option<Stopped> {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        (self.limit > 0 && n >= self.limit).then(|| {
            self.trip(format!(
                "{n} consecutive events failed (the limit is {}); the last error: {message}",
                self.limit
            ))
        })
    }

    /// Trips the breaker for `reason`.
    pub fn trip(&self, reason: String) -> Stopped {
        let mut t = self.tripped.lock().unwrap_or_else(|e| e.into_inner());
        Stopped(t.get_or_insert(reason).clone())
    }

    /// Why the breaker tripped, if it did.
    pub fn tripped(&self) -> Option<String> {
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl CallFailure {
    /// What went wrong, whichever way the call failed.
    pub fn message(self) -> String {
        match self {
            CallFailure::Item { message, .. }
            | CallFailure::Whole(message)
            | CallFailure::Fatal(message) => message,
        }
    }
}

/// Calls `call` over `items` with as few calls as possible, isolating failures (see the module
/// doc). `unit(item)` names the unit an item belongs to; a unit's items must be adjacent.
/// `failed(unit, message)` is told of every unit that failed. Returns the number of calls made,
/// or [`Stopped`] when `breaker` tripped (items not yet handled are left alone).
pub fn call_isolating<I: Copy>(
    items: &[I],
    unit: &impl Fn(I) -> usize,
    call: &mut impl FnMut(&[I]) -> Result<(), CallFailure>,
    failed: &mut impl FnMut(usize, String),
    breaker: &Breaker,
) -> Result<usize, Stopped> {
    if items.is_empty() {
        return Ok(0);
    }
    match call(items) {
        Ok(()) => {
            breaker.success();
            Ok(1)
        }
        Err(failure) => Ok(1 + isolate(items, failure, unit, call, failed, breaker)?),
    }
}

/// Continues after `failure`, the result of calling `call` over all of `items` (for callers
/// that make the first call themselves, keeping their fast path free of this module).
/// Returns the number of further calls made.
pub fn isolate<I: Copy>(
    items: &[I],
    failure: CallFailure,
    unit: &impl Fn(I) -> usize,
    call: &mut impl FnMut(&[I]) -> Result<(), CallFailure>,
    failed: &mut impl FnMut(usize, String),
    breaker: &Breaker,
) -> Result<usize, Stopped> {
    let mut items = items.to_vec();
    let mut failure = failure;
    let mut calls = 0;
    loop {
        match failure {
            CallFailure::Fatal(message) => return Err(breaker.trip(message)),
            CallFailure::Item { index, message } if index < items.len() => {
                let bad = unit(items[index]);
                let stop = breaker.failure(&message);
                failed(bad, message);
                if let Some(stopped) = stop {
                    return Err(stopped);
                }
                items.retain(|&i| unit(i) != bad);
            }
            whole => {
                let first = unit(items[0]);
                if items.iter().all(|&i| unit(i) == first) {
                    let message = whole.message();
                    let stop = breaker.failure(&message);
                    failed(first, message);
                    return stop.map_or(Ok(calls), Err);
                }
                let mid = split_point(&items, unit);
                calls += call_isolating(&items[..mid], unit, call, failed, breaker)?;
                calls += call_isolating(&items[mid..], unit, call, failed, breaker)?;
                return Ok(calls);
            }
        }
        if items.is_empty() {
            return Ok(calls);
        }
        calls += 1;
        match call(&items) {
            Ok(()) => {
                breaker.success();
                return Ok(calls);
            }
            Err(f) => failure = f,
        }
    }
}

/// The unit boundary nearest the middle of `items`, never 0 or `len` (there are at least two
/// units).
fn split_point<I: Copy>(items: &[I], unit: &impl Fn(I) -> usize) -> usize {
    let boundary = |m: usize| unit(items[m]) != unit(items[m - 1]);
    let half = items.len() / 2;
    (0..items.len())
        .flat_map(|d| [half.saturating_sub(d), half + d])
        .find(|&m| m > 0 && m < items.len() && boundary(m))
        .expect("two units have a boundary")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that fails on "bad" by name and traps (fails whole) on "trap" unless alone.
    fn run(items: &[&str]) -> (Vec<String>, Vec<(usize, String)>, usize) {
        let idx: Vec<usize> = (0..items.len()).collect();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let calls = call_isolating(
            &idx,
            &|i| i,
            &mut |part: &[usize]| {
                if part.len() > 1 && part.iter().any(|&i| items[i] == "trap") {
                    return Err(CallFailure::Whole("trapped".into()));
                }
                if let Some(p) = part
                    .iter()
                    .position(|&i| items[i] == "bad" || items[i] == "trap")
                {
                    return Err(CallFailure::Item {
                        index: p,
                        message: format!("refused {}", items[part[p]]),
                    });
                }
                done.extend(part.iter().map(|&i| items[i].to_string()));
                Ok(())
            },
            &mut |u, m| failed.push((u, m)),
            &Breaker::new(0),
        )
        .unwrap();
        (done, failed, calls)
    }

    #[test]
    fn a_named_item_is_reported_and_the_rest_run_in_one_more_call() {
        let (done, failed, calls) = run(&["a", "bad", "b", "c"]);
        assert_eq!(done, ["a", "b", "c"]);
        assert_eq!(failed, [(1, "refused bad".to_string())]);
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_trap_splits_until_the_item_is_alone_and_order_is_kept() {
        let items = ["a", "b", "c", "trap", "d", "e", "f", "g"];
        let (done, failed, calls) = run(&items);
        assert_eq!(done, ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(failed, [(3, "refused trap".to_string())]);
        assert!(calls <= 2 * 3 + 2, "{calls} calls");
    }

    #[test]
    fn units_fail_together_and_splits_respect_their_boundaries() {
        // (event, window): event 1 feeds three windows; it traps whenever it is in a call.
        let entries = [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (3, 1)];
        let mut calls_seen = Vec::new();
        let mut failed = Vec::new();
        call_isolating(
            &entries,
            &|(e, _)| e,
            &mut |part: &[(usize, usize)]| {
                calls_seen.push(part.to_vec());
                if part.iter().any(|&(e, _)| e == 1) {
                    Err(CallFailure::Whole("trap".into()))
                } else {
                    Ok(())
                }
            },
            &mut |u, m| failed.push((u, m)),
            &Breaker::new(0),
        )
        .unwrap();
        assert_eq!(failed, [(1, "trap".to_string())]);
        for call in &calls_seen {
            let with_one = call.iter().filter(|&&(e, _)| e == 1).count();
            assert!(
                with_one == 0 || with_one == 3,
                "split inside a unit: {call:?}"
            );
        }
    }

    #[test]
    fn a_named_index_out_of_range_counts_as_a_whole_failure() {
        let idx = [0usize, 1];
        let mut failed = Vec::new();
        call_isolating(
            &idx,
            &|i| i,
            &mut |part: &[usize]| {
                if part.len() == 2 {
                    Err(CallFailure::Item {
                        index: 7,
                        message: "no such event".into(),
                    })
                } else if part == [1] {
                    Err(CallFailure::Whole("bad".into()))
                } else {
                    Ok(())
                }
            },
            &mut |u, m| failed.push((u, m)),
            &Breaker::new(0),
        )
        .unwrap();
        assert_eq!(failed, [(1, "bad".to_string())]);
    }

    #[test]
    fn every_item_failing_costs_at_most_two_calls_per_item() {
        let idx: Vec<usize> = (0..16).collect();
        let mut failed = 0;
        let calls = call_isolating(
            &idx,
            &|i| i,
            &mut |_: &[usize]| Err(CallFailure::Whole("always".into())),
            &mut |_, _| failed += 1,
            &Breaker::new(0),
        )
        .unwrap();
        assert_eq!(failed, 16);
        assert_eq!(calls, 31);
    }

    #[test]
    fn a_breaker_stops_isolation_after_its_limit_of_consecutive_failures() {
        let idx: Vec<usize> = (0..1000).collect();
        let (mut failed, mut calls) = (0, 0);
        let breaker = Breaker::new(10);
        let stopped = call_isolating(
            &idx,
            &|i| i,
            &mut |_: &[usize]| {
                calls += 1;
                Err(CallFailure::Whole("always".into()))
            },
            &mut |_, _| failed += 1,
            &breaker,
        )
        .unwrap_err();
        assert_eq!(failed, 10);
        assert!(calls < 40, "{calls} calls");
        assert!(
            stopped.0.contains("10 consecutive events failed"),
            "{stopped:?}"
        );
        assert_eq!(breaker.tripped(), Some(stopped.0));
    }

    #[test]
    fn successes_reset_the_count_and_a_fatal_failure_stops_at_once() {
        // Failures count until a call succeeds: two per call here, never three.
        let breaker = Breaker::new(3);
        let idx = [0usize, 1, 2, 3];
        let ok = call_isolating(
            &idx,
            &|i| i,
            &mut |part: &[usize]| match part.iter().position(|i| i % 2 == 1) {
                Some(index) => Err(CallFailure::Item {
                    index,
                    message: "odd".into(),
                }),
                None => Ok(()),
            },
            &mut |_, _| {},
            &breaker,
        );
        assert!(ok.is_ok(), "{ok:?}");
        assert!(
            call_isolating(
                &idx,
                &|i| i,
                &mut |_: &[usize]| Ok(()),
                &mut |_, _| {},
                &breaker
            )
            .is_ok()
        );
        let fatal = call_isolating(
            &idx,
            &|i| i,
            &mut |_: &[usize]| Err(CallFailure::Fatal("cannot restart".into())),
            &mut |_, _| panic!("nothing is dead-lettered"),
            &breaker,
        );
        assert_eq!(fatal, Err(Stopped("cannot restart".into())));
    }
}
