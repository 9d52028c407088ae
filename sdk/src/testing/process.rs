//! [`ProcessHarness`]: a [`Process`] driven through the `process` world's glue over an
//! in-memory keyed state, with the host's order of calls and its undoing of failed ones.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use crate::bindings_process::weir::operator::types::Batch;
use crate::event::batch_from;
use crate::packed::BatchView;
use crate::process::{configure, on_events_with, on_timer_with};
use crate::{Keyed, Process, TimeDomain};

use super::{CallFailure, Emitted, Outcome, TestEvent, builder_of, run_isolating};

/// One key's state values and timers, kept in memory by a [`ProcessHarness`].
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryKey {
    pub(crate) values: BTreeMap<String, Vec<u8>>,
    pub(crate) event_timers: BTreeSet<i64>,
    pub(crate) processing_timers: BTreeSet<i64>,
}

impl MemoryKey {
    fn timers(&mut self, domain: TimeDomain) -> &mut BTreeSet<i64> {
        match domain {
            TimeDomain::Event => &mut self.event_timers,
            TimeDomain::Processing => &mut self.processing_timers,
        }
    }
}

/// A configured keyed [`Process`] with its keys' state and timers in memory.
///
/// [`ProcessHarness::process`] hands events over key by key as the host does; the watermark
/// ([`ProcessHarness::advance_watermark`]) and the processing-time clock
/// ([`ProcessHarness::advance_processing_time`], 0 at first) fire the timers that fall due.
///
/// ```
/// use weir_sdk::testing::{ProcessHarness, TestEvent};
/// use weir_sdk::{Event, Keyed, Output, Process, TimerOutput};
///
/// /// Counts each key's events and reports the count a minute (event time) after the first.
/// struct PerMinute;
/// impl Process for PerMinute {
///     fn configure(_config: &str) -> Result<Self, String> { Ok(PerMinute) }
///     fn on_event(&mut self, keyed: &mut Keyed<'_>, event: &Event<'_>, _out: &mut Output<'_>)
///         -> Result<(), String> {
///         let n: u64 = keyed.get("n")?.unwrap_or(0);
///         if n == 0 {
///             keyed.register_event_timer(event.time() + 60_000);
///         }
///         keyed.set("n", &(n + 1))
///     }
///     fn on_timer(&mut self, keyed: &mut Keyed<'_>, _time: i64, out: &mut TimerOutput<'_>)
///         -> Result<(), String> {
///         let n: u64 = keyed.get("n")?.unwrap_or(0);
///         keyed.delete("n");
///         out.json(&n)
///     }
/// }
///
/// let mut h = ProcessHarness::<PerMinute>::configure("{}").unwrap();
/// let run = h.process(&[
///     TestEvent::new("").key("a").time(1_000),
///     TestEvent::new("").key("b").time(2_000),
///     TestEvent::new("").key("a").time(3_000),
/// ]);
/// assert!(run.outputs.is_empty() && run.failures.is_empty());
/// assert_eq!(h.state::<u64>("a", "n").unwrap(), Some(2));
/// assert_eq!(h.event_timers("a"), [61_000]);
///
/// let fired = h.advance_watermark(61_000);
/// assert_eq!(fired.outputs.len(), 1);
/// assert_eq!(fired.outputs[0].key(), Some("a"));
/// assert_eq!(fired.outputs[0].time(), 61_000);
/// assert_eq!(fired.outputs[0].json::<u64>().unwrap(), 2);
/// assert_eq!(h.state::<u64>("a", "n").unwrap(), None);
/// ```
pub struct ProcessHarness<T: Process> {
    op: Option<T>,
    keys: BTreeMap<Vec<u8>, MemoryKey>,
    watermark: i64,
    processing_time: i64,
}

/// A timer call that failed: the host logs it, undoes its state changes and drops the timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerFailure {
    /// The timer's key bytes (empty: no key).
    pub key: Vec<u8>,
    pub time: i64,
    /// The operator's message.
    pub message: String,
}

/// What firing timers produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimersFired {
    /// The events the timers emitted, in firing order (by time, then key).
    pub outputs: Vec<Emitted>,
    pub failures: Vec<TimerFailure>,
}

impl<T: Process> ProcessHarness<T> {
    /// Configures the operator with `config` (JSON text; the host passes `{}` when the
    /// pipeline gives none). No key has state, the watermark is at its start and the
    /// processing-time clock at 0.
    pub fn configure(config: &str) -> Result<Self, String> {
        let mut op = None;
        configure(&mut op, config)?;
        Ok(ProcessHarness {
            op,
            keys: BTreeMap::new(),
            watermark: i64::MIN,
            processing_time: 0,
        })
    }

    /// Runs `events` as one micro-batch: one `on-events` call per key, keys in order of first
    /// appearance, each key's events in order. When an event fails, the key's state changes
    /// of the call are undone, the event is set aside, and the key's other events are handed
    /// over again, as the host does.
    pub fn process(&mut self, events: &[TestEvent]) -> Outcome {
        let mut groups: Vec<(&[u8], Vec<usize>)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match groups.iter_mut().find(|(k, _)| *k == &e.key[..]) {
                Some((_, indices)) => indices.push(i),
                None => groups.push((&e.key, vec![i])),
            }
        }
        let mut outcome = Outcome::default();
        let now = self.processing_time;
        for (key, indices) in groups {
            let (op, keys) = (&mut self.op, &mut self.keys);
            run_isolating(
                events,
                &indices,
                &mut |batch| {
                    let state = keys.entry(key.to_vec()).or_default();
                    let snapshot = state.clone();
                    let keyed = Keyed::memory(key, state, now, TimeDomain::Event);
                    match on_events_with(op, keyed, batch_from!(Batch, batch)) {
                        Ok(out) => Ok(builder_of!(out)),
                        Err(e) => {
                            keys.insert(key.to_vec(), snapshot);
                            Err(CallFailure::Event(e.index, e.message))
                        }
                    }
                },
                &mut outcome,
            );
        }
        self.keys.retain(|_, k| {
            !(k.values.is_empty() && k.event_timers.is_empty() && k.processing_timers.is_empty())
        });
        outcome
    }

    /// Advances the watermark to `watermark` (ignored unless it is later) and fires the
    /// event-time timers at or before it, earliest first (then by key), including timers
    /// registered at or before it by the timers firing.
    pub fn advance_watermark(&mut self, watermark: i64) -> TimersFired {
        if watermark <= self.watermark {
            return TimersFired::default();
        }
        self.watermark = watermark;
        self.fire(TimeDomain::Event, watermark)
    }

    /// Advances the processing-time clock to `now` (it never moves back) and fires the
    /// processing-time timers at or before it, earliest first (then by key).
    pub fn advance_processing_time(&mut self, now: i64) -> TimersFired {
        self.processing_time = self.processing_time.max(now);
        self.fire(TimeDomain::Processing, self.processing_time)
    }

    fn fire(&mut self, domain: TimeDomain, due: i64) -> TimersFired {
        let mut fired = TimersFired::default();
        loop {
            let next = self
                .keys
                .iter_mut()
                .filter_map(|(key, k)| Some((*k.timers(domain).first()?, key)))
                .min();
            let Some((time, key)) = next.filter(|&(t, _)| t <= due) else {
                break;
            };
            let key = key.clone();
            let state = self.keys.get_mut(&key).expect("the key has the timer");
            state.timers(domain).remove(&time);
            let snapshot = state.clone();
            let keyed = Keyed::memory(&key, state, self.processing_time, domain);
            let failure = match on_timer_with(&mut self.op, keyed, time) {
                Ok(batch) => {
                    let out = builder_of!(batch);
                    match BatchView::new(out.columns(), None) {
                        Ok(view) => {
                            fired.outputs.extend(view.iter().map(|e| Emitted {
                                key: if e.key.is_empty() {
                                    key.clone()
                                } else {
                                    e.key.to_vec()
                                },
                                time: e.time,
                                headers: e.headers.to_vec(),
                                payload: e.payload.to_vec(),
                                origin: None,
                            }));
                            None
                        }
                        Err(e) => Some(format!("plugin returned a {e}")),
                    }
                }
                Err(message) => Some(message),
            };
            if let Some(message) = failure {
                self.keys.insert(key.clone(), snapshot);
                fired.failures.push(TimerFailure { key, time, message });
            }
        }
        fired
    }

    /// State `name` of `key` (empty: no key), decoded from JSON; `None` when not set.
    pub fn state<V: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        name: &str,
    ) -> Result<Option<V>, String> {
        let Some(bytes) = self.keys.get(key.as_ref()).and_then(|k| k.values.get(name)) else {
            return Ok(None);
        };
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| format!("state {name:?} cannot be decoded: {e}"))
    }

    /// The pending event-time timers of `key`, earliest first.
    pub fn event_timers(&self, key: impl AsRef<[u8]>) -> Vec<i64> {
        self.keys
            .get(key.as_ref())
            .map(|k| k.event_timers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The pending processing-time timers of `key`, earliest first.
    pub fn processing_timers(&self, key: impl AsRef<[u8]>) -> Vec<i64> {
        self.keys
            .get(key.as_ref())
            .map(|k| k.processing_timers.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The configured operator.
    pub fn operator(&mut self) -> &mut T {
        self.op
            .as_mut()
            .expect("a harness holds a configured operator")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Output, TimerOutput};

    /// Per key: appends each payload to state `seen` and forwards it; a payload "fail" fails
    /// after changing state; "later" sets a processing-time timer 100 ms from now; every event
    /// sets an event-time timer at its time + 10, whose firing emits `seen` and clears it.
    struct Recorder;

    impl Process for Recorder {
        fn configure(_config: &str) -> Result<Self, String> {
            Ok(Recorder)
        }

        fn on_event(
            &mut self,
            keyed: &mut Keyed<'_>,
            event: &Event<'_>,
            out: &mut Output<'_>,
        ) -> Result<(), String> {
            let payload = String::from_utf8_lossy(event.payload()).into_owned();
            let mut seen: Vec<String> = keyed.get("seen")?.unwrap_or_default();
            seen.push(payload.clone());
            keyed.set("seen", &seen)?;
            keyed.register_event_timer(event.time() + 10);
            match payload.as_str() {
                "fail" => Err("asked to fail".into()),
                "later" => {
                    keyed.register_processing_timer(keyed.processing_time() + 100);
                    Ok(())
                }
                _ => {
                    out.forward();
                    Ok(())
                }
            }
        }

        fn on_timer(
            &mut self,
            keyed: &mut Keyed<'_>,
            time: i64,
            out: &mut TimerOutput<'_>,
        ) -> Result<(), String> {
            if keyed.timer_domain() == TimeDomain::Processing {
                return out.json(&format!("woke at {}", keyed.processing_time()));
            }
            let seen: Vec<String> = keyed.get("seen")?.unwrap_or_default();
            keyed.delete("seen");
            if seen.iter().any(|s| s == "boom") {
                return Err(format!("timer at {time} exploded"));
            }
            out.json(&seen)
        }
    }

    fn recorder() -> ProcessHarness<Recorder> {
        ProcessHarness::configure("{}").unwrap()
    }

    fn ev(key: &str, payload: &str, time: i64) -> TestEvent {
        TestEvent::new(payload).key(key).time(time)
    }

    #[test]
    fn events_are_handed_over_key_by_key_in_order_of_first_appearance() {
        let mut h = recorder();
        let run = h.process(&[ev("b", "1", 0), ev("a", "2", 0), ev("b", "3", 0)]);
        let order: Vec<_> = run.outputs.iter().map(|e| e.origin()).collect();
        assert_eq!(order, [Some(0), Some(2), Some(1)]);
        assert_eq!(
            h.state::<Vec<String>>("b", "seen").unwrap(),
            Some(vec!["1".into(), "3".into()])
        );
    }

    #[test]
    fn a_failing_event_undoes_its_calls_state_and_the_rest_is_handed_over_again() {
        let mut h = recorder();
        let run = h.process(&[ev("k", "a", 0), ev("k", "fail", 5), ev("k", "b", 7)]);
        assert_eq!(run.failures.len(), 1);
        assert_eq!(
            (run.failures[0].index, run.failures[0].message.as_str()),
            (1, "asked to fail")
        );
        assert_eq!(run.outputs.len(), 2);
        // The failed call's changes were undone: "a" once, the failure's timer gone.
        assert_eq!(
            h.state::<Vec<String>>("k", "seen").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(h.event_timers("k"), [10, 17]);
    }

    #[test]
    fn the_watermark_fires_event_timers_in_time_then_key_order() {
        let mut h = recorder();
        h.process(&[ev("b", "x", 0), ev("a", "y", 0), ev("a", "z", 5)]);
        let fired = h.advance_watermark(10);
        let got: Vec<_> = fired
            .outputs
            .iter()
            .map(|e| (e.key().unwrap().to_owned(), e.time(), e.origin()))
            .collect();
        assert_eq!(got, [("a".into(), 10, None), ("b".into(), 10, None)]);
        assert_eq!(fired.outputs[0].json::<Vec<String>>().unwrap(), ["y", "z"]);
        assert_eq!(h.event_timers("a"), [15]);
        assert_eq!(h.advance_watermark(10), TimersFired::default(), "not later");
        let fired = h.advance_watermark(15);
        assert_eq!(
            fired.outputs[0].json::<Vec<String>>().unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_failing_timer_is_dropped_and_its_changes_undone() {
        let mut h = recorder();
        h.process(&[ev("k", "boom", 0)]);
        let fired = h.advance_watermark(100);
        assert!(fired.outputs.is_empty());
        assert_eq!(
            fired.failures,
            [TimerFailure {
                key: b"k".to_vec(),
                time: 10,
                message: "timer at 10 exploded".into()
            }]
        );
        assert_eq!(
            h.state::<Vec<String>>("k", "seen").unwrap(),
            Some(vec!["boom".into()])
        );
        assert!(h.event_timers("k").is_empty());
    }

    #[test]
    fn processing_timers_follow_the_clock_and_know_their_domain() {
        let mut h = recorder();
        h.advance_processing_time(1_000);
        h.process(&[ev("k", "later", 0)]);
        assert_eq!(h.processing_timers("k"), [1_100]);
        assert!(h.advance_processing_time(1_099).outputs.is_empty());
        assert!(
            h.advance_processing_time(5).outputs.is_empty(),
            "never back"
        );
        let fired = h.advance_processing_time(1_100);
        assert_eq!(fired.outputs[0].json::<String>().unwrap(), "woke at 1100");
        assert_eq!(fired.outputs[0].time(), 1_100);
        assert!(h.processing_timers("k").is_empty());
    }
}
