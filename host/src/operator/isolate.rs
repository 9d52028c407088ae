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

/// Why a call over several items failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The plugin named the item (its index among the call's items) that failed.
    Item { index: usize, message: String },
    /// The call failed as a whole (a trap, malformed output): the failing item is found by
    /// splitting.
    Whole(String),
}

impl CallFailure {
    fn message(self) -> String {
        match self {
            CallFailure::Item { message, .. } | CallFailure::Whole(message) => message,
        }
    }
}

/// Calls `call` over `items` with as few calls as possible, isolating failures (see the module
/// doc). `unit(item)` names the unit an item belongs to; a unit's items must be adjacent.
/// `failed(unit, message)` is told of every unit that failed. Returns the number of calls made.
pub fn call_isolating<I: Copy>(
    items: &[I],
    unit: &impl Fn(I) -> usize,
    call: &mut impl FnMut(&[I]) -> Result<(), CallFailure>,
    failed: &mut impl FnMut(usize, String),
) -> usize {
    if items.is_empty() {
        return 0;
    }
    match call(items) {
        Ok(()) => 1,
        Err(failure) => 1 + isolate(items, failure, unit, call, failed),
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
) -> usize {
    let mut items = items.to_vec();
    let mut failure = failure;
    let mut calls = 0;
    loop {
        match failure {
            CallFailure::Item { index, message } if index < items.len() => {
                let bad = unit(items[index]);
                failed(bad, message);
                items.retain(|&i| unit(i) != bad);
            }
            whole => {
                let first = unit(items[0]);
                if items.iter().all(|&i| unit(i) == first) {
                    failed(first, whole.message());
                    return calls;
                }
                let mid = split_point(&items, unit);
                calls += call_isolating(&items[..mid], unit, call, failed);
                calls += call_isolating(&items[mid..], unit, call, failed);
                return calls;
            }
        }
        if items.is_empty() {
            return calls;
        }
        calls += 1;
        match call(&items) {
            Ok(()) => return calls,
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
        );
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
        );
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
        );
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
        );
        assert_eq!(failed, 16);
        assert_eq!(calls, 31);
    }
}
