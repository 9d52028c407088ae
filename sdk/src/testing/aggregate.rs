//! [`AggregateHarness`]: an [`Aggregate`] driven through the `aggregate` world's glue, with the
//! accumulators kept as bytes per (key, window) as the host keeps them.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::aggregate::{add, configure, create, decode, finish, merge, migrate};
use crate::bindings_aggregate::weir::operator::types::{Accumulators, Batch, Windows};
use crate::event::batch_from;
use crate::packed::{PackedList, close_item, push_item};
use crate::{Aggregate, Window};

use super::{EventFailure, TestEvent, pack};

/// A configured [`Aggregate`] and the windows it holds, fired as the host fires them.
///
/// The host assigns events to windows; a test says which window its events go to
/// ([`AggregateHarness::add`]), merges windows as session windows merge
/// ([`AggregateHarness::merge`]) and fires the windows a watermark closes
/// ([`AggregateHarness::fire`]).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use weir_sdk::testing::{AggregateHarness, TestEvent};
/// use weir_sdk::{Aggregate, Event, Window};
///
/// struct Count;
/// #[derive(Serialize, Deserialize, Default)]
/// struct Acc { n: u64 }
///
/// impl Aggregate for Count {
///     type Acc = Acc;
///     type Out = serde_json::Value;
///     fn configure(_config: &str) -> Result<Self, String> { Ok(Count) }
///     fn add(&mut self, acc: &mut Acc, _event: &Event<'_>) -> Result<(), String> {
///         acc.n += 1;
///         Ok(())
///     }
///     fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc, String> { Ok(Acc { n: a.n + b.n }) }
///     fn finish(&mut self, key: Option<&str>, w: Window, acc: Acc)
///         -> Result<Option<serde_json::Value>, String> {
///         Ok(Some(serde_json::json!({"key": key, "start": w.start, "n": acc.n})))
///     }
/// }
///
/// let mut count = AggregateHarness::<Count>::configure("{}").unwrap();
/// let minute = Window { start: 0, end: 60_000 };
/// let failures = count.add(minute, &[
///     TestEvent::new("x").key("a"),
///     TestEvent::new("y").key("a"),
///     TestEvent::new("z").key("b"),
/// ]);
/// assert!(failures.is_empty());
/// assert_eq!(count.accumulator("a", minute).unwrap().unwrap().n, 2);
///
/// let fired = count.fire(59_999);           // the watermark reached the window's last ms
/// let results: Vec<serde_json::Value> = fired.json().unwrap();
/// assert_eq!(results, [
///     serde_json::json!({"key": "a", "start": 0, "n": 2}),
///     serde_json::json!({"key": "b", "start": 0, "n": 1}),
/// ]);
/// assert!(count.accumulator("a", minute).unwrap().is_none(), "fired windows are dropped");
/// ```
pub struct AggregateHarness<T: Aggregate> {
    op: Option<T>,
    /// What `create` returned: every new window starts with a copy.
    empty: Vec<u8>,
    /// The accumulator of each (key, window).
    windows: BTreeMap<(Vec<u8>, Window), Vec<u8>>,
}

/// The result of a window: the host emits it as an event with the window's key, the time
/// `end - 1` and the headers `Weir-Window-Start` and `Weir-Window-End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowResult {
    key: Vec<u8>,
    window: Window,
    payload: Vec<u8>,
}

impl WindowResult {
    /// The window's key as UTF-8 text; `None` for no key (or a key that is not UTF-8).
    pub fn key(&self) -> Option<&str> {
        (!self.key.is_empty())
            .then(|| std::str::from_utf8(&self.key).ok())
            .flatten()
    }

    /// The window's key bytes (empty: no key).
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The result payload (JSON, as the SDK writes `Aggregate::Out`).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| format!("result is not the expected JSON: {e}"))
    }
}

/// A window `finish` failed on: the host reports it and keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFailure {
    /// The window's key bytes (empty: no key).
    pub key: Vec<u8>,
    pub window: Window,
    /// The operator's message.
    pub message: String,
}

/// What firing windows produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fired {
    /// The results, window by window in firing order (by end, start, then key).
    pub results: Vec<WindowResult>,
    /// The windows that failed (kept, as the host keeps them).
    pub failures: Vec<WindowFailure>,
}

impl Fired {
    /// The result payloads parsed as JSON; an error names the first that is not.
    pub fn json<T: DeserializeOwned>(&self) -> Result<Vec<T>, String> {
        self.results
            .iter()
            .enumerate()
            .map(|(i, r)| r.json().map_err(|m| format!("result {i}: {m}")))
            .collect()
    }
}

impl<T: Aggregate> AggregateHarness<T> {
    /// Configures the operator with `config` (JSON text; the host passes `{}` when the
    /// pipeline gives none) and asks it for its empty accumulator, as the host does once per
    /// instance.
    pub fn configure(config: &str) -> Result<Self, String> {
        let mut op = None;
        configure(&mut op, config)?;
        let empty = create::<T>()?;
        Ok(AggregateHarness {
            op,
            empty,
            windows: BTreeMap::new(),
        })
    }

    /// Adds `events` to `window`, each to the accumulator of its own key (a window starts with
    /// the empty accumulator), in one `add` call. An event the operator fails on is returned
    /// and the call made again without it, from the accumulators as they were, as the host
    /// does.
    pub fn add(&mut self, window: Window, events: &[TestEvent]) -> Vec<EventFailure> {
        // The windows touched, in first-touch order, and (event, accumulator position).
        let mut touched: Vec<Vec<u8>> = Vec::new();
        let mut entries: Vec<(usize, u32)> = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let pos = match touched.iter().position(|k| *k == e.key) {
                Some(p) => p,
                None => {
                    touched.push(e.key.clone());
                    touched.len() - 1
                }
            };
            entries.push((i, pos as u32));
        }
        let mut accs: Vec<Vec<u8>> = touched
            .iter()
            .map(|k| {
                self.windows
                    .get(&(k.clone(), window))
                    .unwrap_or(&self.empty)
                    .clone()
            })
            .collect();
        let mut failures = Vec::new();
        self.add_isolating(events, &entries, &mut accs, &mut failures);
        for (key, acc) in touched.into_iter().zip(accs) {
            self.windows.insert((key, window), acc);
        }
        failures
    }

    /// One `add` call over `entries`, isolating failures as the host does.
    fn add_isolating(
        &mut self,
        events: &[TestEvent],
        entries: &[(usize, u32)],
        accs: &mut [Vec<u8>],
        failures: &mut Vec<EventFailure>,
    ) {
        let mut entries = entries.to_vec();
        while !entries.is_empty() {
            let indices: Vec<usize> = entries.iter().map(|&(e, _)| e).collect();
            let targets: Vec<u8> = entries
                .iter()
                .flat_map(|&(_, pos)| pos.to_le_bytes())
                .collect();
            let mut given = Accumulators {
                data: Vec::new(),
                ends: Vec::new(),
            };
            for acc in accs.iter() {
                push_item(&mut given.data, &mut given.ends, acc);
            }
            let batch = batch_from!(Batch, pack(events, &indices));
            let message = match add(&mut self.op, given, targets, batch) {
                Ok(new) => match unpack(&new, accs) {
                    Ok(()) => return,
                    Err(message) => message,
                },
                Err(e) if (e.index as usize) < entries.len() => {
                    failures.push(EventFailure {
                        index: entries[e.index as usize].0,
                        message: e.message,
                    });
                    entries.remove(e.index as usize);
                    continue;
                }
                Err(e) => e.message,
            };
            // A failure of the call as a whole: split until the failing event is alone.
            if let [(only, _)] = entries[..] {
                failures.push(EventFailure {
                    index: only,
                    message,
                });
                return;
            }
            let (left, right) = entries.split_at(entries.len() / 2);
            self.add_isolating(events, left, accs, failures);
            self.add_isolating(events, right, accs, failures);
            return;
        }
    }

    /// Merges windows `a` and `b` of `key` (empty: no key) into the window spanning both, as
    /// session windows merge; returns that window. Fails when either window is not held, or
    /// with the operator's error (the windows are then left as they were).
    pub fn merge(&mut self, key: impl AsRef<[u8]>, a: Window, b: Window) -> Result<Window, String> {
        let key = key.as_ref().to_vec();
        let held = |w: Window| {
            self.windows.get(&(key.clone(), w)).cloned().ok_or_else(|| {
                format!(
                    "no window [{}, {}) of key {:?} to merge",
                    w.start,
                    w.end,
                    String::from_utf8_lossy(&key)
                )
            })
        };
        let (acc_a, acc_b) = (held(a)?, held(b)?);
        // One group of two, earlier window first, as the host sends it.
        let (first, second) = if (a.start, a.end) <= (b.start, b.end) {
            (acc_a, acc_b)
        } else {
            (acc_b, acc_a)
        };
        let mut given = Accumulators {
            data: Vec::new(),
            ends: Vec::new(),
        };
        push_item(&mut given.data, &mut given.ends, &first);
        push_item(&mut given.data, &mut given.ends, &second);
        let got = merge(&mut self.op, given, 2u32.to_le_bytes().to_vec()).map_err(|e| e.message)?;
        let mut merged = [Vec::new()];
        unpack(&got, &mut merged)?;
        let [merged] = merged;
        self.windows.remove(&(key.clone(), a));
        self.windows.remove(&(key.clone(), b));
        let into = Window {
            start: a.start.min(b.start),
            end: a.end.max(b.end),
        };
        self.windows.insert((key, into), merged);
        Ok(into)
    }

    /// Advances the watermark to `watermark`: every held window whose last millisecond
    /// (`end - 1`) it reached is finished, all in one `finish` call, in order of end, start,
    /// then key. Finished windows are dropped; a window the operator fails on is reported and
    /// kept, and `finish` called again with the others, as the host does.
    pub fn fire(&mut self, watermark: i64) -> Fired {
        let mut due: Vec<(Vec<u8>, Window)> = self
            .windows
            .keys()
            .filter(|(_, w)| w.end - 1 <= watermark)
            .cloned()
            .collect();
        due.sort_by(|(ka, a), (kb, b)| (a.end, a.start, ka).cmp(&(b.end, b.start, kb)));
        let mut fired = Fired::default();
        let all: Vec<usize> = (0..due.len()).collect();
        self.finish_isolating(&due, &all, &mut fired);
        let failed: Vec<(&[u8], Window)> = fired
            .failures
            .iter()
            .map(|f| (&f.key[..], f.window))
            .collect();
        for (key, window) in &due {
            if !failed.contains(&(&key[..], *window)) {
                self.windows.remove(&(key.clone(), *window));
            }
        }
        fired
    }

    /// One `finish` call over the windows `todo` of `due`, isolating failures as the host does.
    fn finish_isolating(&mut self, due: &[(Vec<u8>, Window)], todo: &[usize], fired: &mut Fired) {
        let mut todo = todo.to_vec();
        while !todo.is_empty() {
            let mut windows = Windows {
                keys: Vec::new(),
                key_ends: Vec::new(),
                bounds: Vec::new(),
            };
            let mut accs = Accumulators {
                data: Vec::new(),
                ends: Vec::new(),
            };
            for &i in &todo {
                let (key, window) = &due[i];
                push_item(&mut windows.keys, &mut windows.key_ends, key);
                windows
                    .bounds
                    .extend_from_slice(&window.start.to_le_bytes());
                windows.bounds.extend_from_slice(&window.end.to_le_bytes());
                let acc = &self.windows[&(key.clone(), *window)];
                accs.data.extend_from_slice(acc);
                close_item(&accs.data, &mut accs.ends);
            }
            let message = match finish(&mut self.op, windows, accs) {
                Ok(results) => match read_results(&results, todo.len()) {
                    Ok(got) => {
                        fired.results.extend(got.into_iter().map(|(j, payload)| {
                            let (key, window) = &due[todo[j]];
                            WindowResult {
                                key: key.clone(),
                                window: *window,
                                payload,
                            }
                        }));
                        return;
                    }
                    Err(message) => message,
                },
                Err(e) if (e.index as usize) < todo.len() => {
                    let (key, window) = &due[todo.remove(e.index as usize)];
                    fired.failures.push(WindowFailure {
                        key: key.clone(),
                        window: *window,
                        message: e.message,
                    });
                    continue;
                }
                Err(e) => e.message,
            };
            // A failure of the call as a whole: split until the failing window is alone.
            if let [only] = todo[..] {
                let (key, window) = &due[only];
                fired.failures.push(WindowFailure {
                    key: key.clone(),
                    window: *window,
                    message,
                });
                return;
            }
            let (left, right) = todo.split_at(todo.len() / 2);
            self.finish_isolating(due, left, fired);
            self.finish_isolating(due, right, fired);
            return;
        }
    }

    /// The accumulator of `window` of `key` (empty: no key), decoded; `None` when the harness
    /// holds no such window (never added to, or fired).
    pub fn accumulator(
        &self,
        key: impl AsRef<[u8]>,
        window: Window,
    ) -> Result<Option<T::Acc>, String> {
        self.windows
            .get(&(key.as_ref().to_vec(), window))
            .map(|bytes| decode(bytes))
            .transpose()
    }

    /// Restores an accumulator written by state version `from` (what the host does with a
    /// checkpoint of an older plugin): the operator's `migrate` when `from` is not its
    /// current state version.
    pub fn migrate(&mut self, from: u32, old: &[u8]) -> Result<T::Acc, String> {
        decode(&migrate(&mut self.op, from, old.to_vec())?)
    }

    /// The configured operator.
    pub fn operator(&mut self) -> &mut T {
        self.op
            .as_mut()
            .expect("a harness holds a configured operator")
    }
}

/// Writes the accumulators `add` returned back into `accs`, checking them as the host does.
fn unpack(packed: &Accumulators, accs: &mut [Vec<u8>]) -> Result<(), String> {
    let list = PackedList::new("accumulators", &packed.data, &packed.ends)
        .map_err(|e| format!("plugin returned malformed accumulators: {e}"))?;
    if list.len() != accs.len() {
        return Err(format!(
            "plugin returned {} accumulators for {} given",
            list.len(),
            accs.len()
        ));
    }
    for (acc, new) in accs.iter_mut().zip(list.iter()) {
        acc.clear();
        acc.extend_from_slice(new);
    }
    Ok(())
}

/// The (window index, payload) pairs of `finish`'s results, checked as the host checks them.
fn read_results(
    got: &crate::bindings_aggregate::weir::operator::types::Results,
    windows: usize,
) -> Result<Vec<(usize, Vec<u8>)>, String> {
    let payloads = PackedList::new("results", &got.payloads, &got.payload_ends)
        .map_err(|e| format!("plugin returned malformed results: {e}"))?;
    if got.origins.len() != payloads.len() * 4 {
        return Err(format!(
            "plugin returned {} payloads with {} origins",
            payloads.len(),
            got.origins.len() / 4
        ));
    }
    let mut prev = 0;
    let mut out = Vec::with_capacity(payloads.len());
    for (o, p) in got.origins.chunks_exact(4).zip(payloads.iter()) {
        let o = u32::from_le_bytes([o[0], o[1], o[2], o[3]]);
        if o < prev || o as usize >= windows {
            return Err(format!(
                "plugin returned results with origin {o} (after {prev}) for {windows} windows"
            ));
        }
        prev = o;
        out.push((o as usize, p.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::Event;
    use crate::bindings_aggregate::weir::operator::types::WindowError;

    /// Sums the integer payloads; fails on other payloads, and `finish` fails on key "bad".
    struct Sum {
        /// State version chosen by the config (for the migrate test).
        version: u32,
    }

    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    struct Acc {
        n: u64,
        sum: i64,
    }

    impl Aggregate for Sum {
        type Acc = Acc;
        type Out = serde_json::Value;

        fn configure(config: &str) -> Result<Self, String> {
            let c: serde_json::Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
            Ok(Sum {
                version: c["version"].as_u64().unwrap_or(0) as u32,
            })
        }

        fn add(&mut self, acc: &mut Acc, event: &Event<'_>) -> Result<(), String> {
            let x: i64 = event.json()?;
            acc.n += 1;
            acc.sum += x;
            Ok(())
        }

        fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc, String> {
            Ok(Acc {
                n: a.n + b.n,
                sum: a.sum + b.sum,
            })
        }

        fn finish(
            &mut self,
            key: Option<&str>,
            window: Window,
            acc: Acc,
        ) -> Result<Option<serde_json::Value>, String> {
            match key {
                Some("bad") => Err("bad key".into()),
                Some("quiet") => Ok(None),
                _ => Ok(Some(serde_json::json!({
                    "key": key, "start": window.start, "sum": acc.sum
                }))),
            }
        }

        fn state_version(&self) -> u32 {
            self.version
        }

        fn migrate(&mut self, from: u32, old: &[u8]) -> Result<Acc, String> {
            let n: u64 = postcard::from_bytes(old).map_err(|e| e.to_string())?;
            Ok(Acc {
                n,
                sum: -(from as i64),
            })
        }
    }

    const W0: Window = Window { start: 0, end: 10 };
    const W1: Window = Window { start: 10, end: 20 };

    fn sum() -> AggregateHarness<Sum> {
        AggregateHarness::configure("{}").unwrap()
    }

    fn n(x: i64) -> TestEvent {
        TestEvent::json(&x)
    }

    #[test]
    fn events_accumulate_per_key_and_window_across_calls() {
        let mut h = sum();
        assert!(
            h.add(W0, &[n(1).key("a"), n(2).key("b"), n(3).key("a")])
                .is_empty()
        );
        assert!(h.add(W0, &[n(10).key("a")]).is_empty());
        assert!(h.add(W1, &[n(100).key("a")]).is_empty());
        assert_eq!(h.accumulator("a", W0).unwrap(), Some(Acc { n: 3, sum: 14 }));
        assert_eq!(h.accumulator("b", W0).unwrap(), Some(Acc { n: 1, sum: 2 }));
        assert_eq!(
            h.accumulator("a", W1).unwrap(),
            Some(Acc { n: 1, sum: 100 })
        );
        assert_eq!(h.accumulator("b", W1).unwrap(), None);
    }

    #[test]
    fn a_failing_event_leaves_the_accumulators_to_the_others() {
        let mut h = sum();
        let failures = h.add(W0, &[n(1).key("a"), TestEvent::new("x").key("a"), n(2)]);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert!(
            failures[0].message.contains("expected JSON"),
            "{failures:?}"
        );
        assert_eq!(h.accumulator("a", W0).unwrap(), Some(Acc { n: 1, sum: 1 }));
        assert_eq!(h.accumulator("", W0).unwrap(), Some(Acc { n: 1, sum: 2 }));
    }

    #[test]
    fn fire_finishes_due_windows_in_end_order_and_keeps_failed_ones() {
        let mut h = sum();
        h.add(W1, &[n(5).key("a")]);
        h.add(
            W0,
            &[n(1).key("b"), n(2).key("bad"), n(3).key("quiet"), n(4)],
        );
        assert_eq!(h.fire(8), Fired::default(), "no window ends by 8");
        let fired = h.fire(9);
        let results: Vec<serde_json::Value> = fired.json().unwrap();
        assert_eq!(
            results,
            [
                serde_json::json!({"key": null, "start": 0, "sum": 4}),
                serde_json::json!({"key": "b", "start": 0, "sum": 1}),
            ]
        );
        assert_eq!(
            (fired.results[1].key(), fired.results[1].window()),
            (Some("b"), W0)
        );
        assert_eq!(
            fired.failures,
            [WindowFailure {
                key: b"bad".to_vec(),
                window: W0,
                message: "bad key".into()
            }]
        );
        assert!(h.accumulator("b", W0).unwrap().is_none());
        assert!(h.accumulator("quiet", W0).unwrap().is_none());
        assert!(h.accumulator("bad", W0).unwrap().is_some());
        assert!(h.accumulator("a", W1).unwrap().is_some());
    }

    #[test]
    fn merging_sessions_combines_their_accumulators() {
        let mut h = sum();
        let (s1, s2) = (Window { start: 0, end: 5 }, Window { start: 3, end: 9 });
        h.add(s1, &[n(1).key("a")]);
        h.add(s2, &[n(2).key("a"), n(3).key("a")]);
        let into = h.merge("a", s1, s2).unwrap();
        assert_eq!(into, Window { start: 0, end: 9 });
        assert_eq!(
            h.accumulator("a", into).unwrap(),
            Some(Acc { n: 3, sum: 6 })
        );
        assert!(h.accumulator("a", s1).unwrap().is_none());
        let err = h.merge("a", s1, into).unwrap_err();
        assert!(err.contains("no window [0, 5)"), "{err}");
    }

    #[test]
    fn migrate_converts_older_accumulators_only() {
        let mut h = AggregateHarness::<Sum>::configure(r#"{"version": 2}"#).unwrap();
        let old = postcard::to_allocvec(&7u64).unwrap();
        assert_eq!(h.migrate(1, &old).unwrap(), Acc { n: 7, sum: -1 });
        let current = postcard::to_allocvec(&Acc { n: 1, sum: 2 }).unwrap();
        assert_eq!(h.migrate(2, &current).unwrap(), Acc { n: 1, sum: 2 });
    }

    /// The glue of `merge` as the host calls it: groups of accumulators, one result each.
    fn merge_groups(accs: &[Vec<u8>], ends: &[u32]) -> Result<Vec<Acc>, WindowError> {
        let mut op = Some(Sum { version: 0 });
        let mut given = Accumulators {
            data: Vec::new(),
            ends: Vec::new(),
        };
        for acc in accs {
            push_item(&mut given.data, &mut given.ends, acc);
        }
        let groups = ends.iter().flat_map(|e| e.to_le_bytes()).collect();
        let got = merge(&mut op, given, groups)?;
        let list = PackedList::new("merged", &got.data, &got.ends).unwrap();
        Ok(list.iter().map(|a| decode(a).unwrap()).collect())
    }

    #[test]
    fn merge_folds_each_group_in_order_and_names_the_group_that_fails() {
        let acc = |n: u64, sum: i64| postcard::to_allocvec(&Acc { n, sum }).unwrap();
        let accs = [
            acc(1, 1),
            acc(2, 5),
            acc(1, -3),
            acc(4, 10),
            acc(1, 7),
            acc(3, 0),
        ];
        assert_eq!(
            merge_groups(&accs, &[1, 3, 6]).unwrap(),
            [
                Acc { n: 1, sum: 1 },
                Acc { n: 3, sum: 2 },
                Acc { n: 8, sum: 17 }
            ]
        );
        assert_eq!(merge_groups(&accs, &[]).unwrap(), []);
        // An accumulator that does not decode fails its group, named by index.
        let mut broken = accs.to_vec();
        broken[4] = vec![0xff; 3];
        let err = merge_groups(&broken, &[1, 3, 6]).unwrap_err();
        assert_eq!(err.index, 2, "{}", err.message);
        // Malformed groups: empty, decreasing, past the accumulators, a partial u32.
        for ends in [&[1, 1, 6][..], &[3, 2], &[7]] {
            let err = merge_groups(&accs, ends).unwrap_err();
            assert!(
                err.message.contains("at least one"),
                "{ends:?}: {}",
                err.message
            );
        }
        let mut op = Some(Sum { version: 0 });
        let empty = Accumulators {
            data: Vec::new(),
            ends: Vec::new(),
        };
        let err = merge(&mut op, empty, vec![1, 0]).unwrap_err();
        assert!(err.message.contains("2 bytes"), "{}", err.message);
    }
}
