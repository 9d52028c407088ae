//! Per-key named values and timers (event time and processing time) of a keyed `process`
//! operator.
//!
//! A plugin call is about one key ([`KeyedState::current`]); the host implements the WIT
//! `keyed` interface over this store. Before a call the operator takes a [`KeySnapshot`] of
//! that key, and restores it if the call fails, so a failed call leaves no partial update.
//! Timers are indexed by time (to fire them in order) and by key (so that a key's snapshot
//! does not scan every key's timers).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeDomain {
    #[default]
    Event,
    Processing,
}

/// Timers of all keys, by time and by key.
#[derive(Debug, Default)]
struct Timers {
    by_time: BTreeSet<(i64, Box<[u8]>)>,
    by_key: HashMap<Box<[u8]>, BTreeSet<i64>>,
}

impl Timers {
    fn insert(&mut self, time: i64, key: &[u8]) {
        if self.by_time.insert((time, key.into())) {
            self.by_key.entry(key.into()).or_default().insert(time);
        }
    }

    fn remove(&mut self, time: i64, key: &[u8]) {
        if self.by_time.remove(&(time, key.into())) {
            self.forget(time, key);
        }
    }

    fn forget(&mut self, time: i64, key: &[u8]) {
        if let Some(times) = self.by_key.get_mut(key) {
            times.remove(&time);
            if times.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    fn of_key(&self, key: &[u8]) -> Vec<i64> {
        self.by_key
            .get(key)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Replaces `key`'s timers with `times`.
    fn set_key(&mut self, key: &[u8], times: Vec<i64>) {
        for t in self.of_key(key) {
            self.remove(t, key);
        }
        for t in times {
            self.insert(t, key);
        }
    }

    fn pop_due(&mut self, now: i64) -> Option<(i64, Box<[u8]>)> {
        if self.by_time.first()?.0 > now {
            return None;
        }
        let (time, key) = self.by_time.pop_first()?;
        self.forget(time, &key);
        Some((time, key))
    }

    fn from_pairs(pairs: Vec<(i64, serde_bytes::ByteBuf)>) -> Self {
        let mut t = Timers::default();
        for (time, key) in pairs {
            t.insert(time, &key);
        }
        t
    }
}

/// All keys' values and timers.
#[derive(Debug, Default)]
pub struct KeyedState {
    /// The key the current call is about.
    pub current: Vec<u8>,
    /// The kind of timer the current `on-timer` call is about.
    pub domain: TimeDomain,
    /// Processing time, as plugins read it and processing-time timers fire by it.
    pub clock: crate::window::ProcessingClock,
    values: HashMap<Box<[u8]>, HashMap<String, Vec<u8>>>,
    /// Fire `on-timer` when the watermark reaches the time.
    timers: Timers,
    /// Fire `on-timer` when the wall clock reaches the time.
    processing_timers: Timers,
}

/// One key's values and timers, to undo a failed call.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    key: Box<[u8]>,
    values: Option<HashMap<String, Vec<u8>>>,
    timers: Vec<i64>,
    processing_timers: Vec<i64>,
}

/// All keys' values and timers, as stored in checkpoint blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateSnapshot {
    /// (key, [(name, value)])
    pub values: Vec<(serde_bytes::ByteBuf, Vec<(String, serde_bytes::ByteBuf)>)>,
    /// Event-time timers: (time, key).
    pub timers: Vec<(i64, serde_bytes::ByteBuf)>,
    /// Processing-time timers: (time, key) (format version 2).
    pub processing_timers: Vec<(i64, serde_bytes::ByteBuf)>,
}

/// Every key's values and timers, serialized exactly as [`KeyedStateSnapshot`] straight from
/// the store (no copy of the values during the checkpoint pause).
pub struct KeyedStateRef<'a>(&'a KeyedState);

impl serde::Serialize for KeyedStateRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        use serde_bytes::Bytes;
        struct Values<'a>(&'a HashMap<Box<[u8]>, HashMap<String, Vec<u8>>>);
        impl serde::Serialize for Values<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|(k, m)| {
                    let mut named: Vec<(&String, &Bytes)> =
                        m.iter().map(|(n, v)| (n, Bytes::new(v))).collect();
                    named.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    (Bytes::new(k), named)
                }))
            }
        }
        struct TimersRef<'a>(&'a Timers);
        impl serde::Serialize for TimersRef<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.by_time.iter().map(|(t, k)| (*t, Bytes::new(k))))
            }
        }
        let mut st = s.serialize_struct("KeyedStateSnapshot", 3)?;
        st.serialize_field("values", &Values(&self.0.values))?;
        st.serialize_field("timers", &TimersRef(&self.0.timers))?;
        st.serialize_field("processing_timers", &TimersRef(&self.0.processing_timers))?;
        st.end()
    }
}

impl KeyedState {
    /// Every key's values and timers for a checkpoint, serialized in place.
    pub fn checkpoint_ref(&self) -> KeyedStateRef<'_> {
        KeyedStateRef(self)
    }

    /// A copy of every key's values and timers.
    #[cfg(test)]
    pub fn checkpoint(&self) -> KeyedStateSnapshot {
        use serde_bytes::ByteBuf;
        let pairs = |t: &Timers| {
            t.by_time
                .iter()
                .map(|(t, k)| (*t, ByteBuf::from(k.to_vec())))
                .collect()
        };
        KeyedStateSnapshot {
            values: self
                .values
                .iter()
                .map(|(k, m)| {
                    let mut named: Vec<_> = m
                        .iter()
                        .map(|(n, v)| (n.clone(), ByteBuf::from(v.clone())))
                        .collect();
                    named.sort();
                    (ByteBuf::from(k.to_vec()), named)
                })
                .collect(),
            timers: pairs(&self.timers),
            processing_timers: pairs(&self.processing_timers),
        }
    }

    /// Replaces every key's values and timers with those of `snap`.
    pub fn restore_all(&mut self, snap: KeyedStateSnapshot) {
        self.values = snap
            .values
            .into_iter()
            .map(|(k, named)| {
                let m = named.into_iter().map(|(n, v)| (n, v.into_vec())).collect();
                (k.into_vec().into_boxed_slice(), m)
            })
            .collect();
        self.timers = Timers::from_pairs(snap.timers);
        self.processing_timers = Timers::from_pairs(snap.processing_timers);
    }

    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.values.get(self.current.as_slice())?.get(name).cloned()
    }

    pub fn set(&mut self, name: String, value: Vec<u8>) {
        match self.values.get_mut(self.current.as_slice()) {
            Some(m) => {
                m.insert(name, value);
            }
            None => {
                self.values.insert(
                    self.current.as_slice().into(),
                    HashMap::from([(name, value)]),
                );
            }
        }
    }

    pub fn delete(&mut self, name: &str) {
        if let Some(m) = self.values.get_mut(self.current.as_slice()) {
            m.remove(name);
            if m.is_empty() {
                self.values.remove(self.current.as_slice());
            }
        }
    }

    fn timers_of(&mut self, domain: TimeDomain) -> &mut Timers {
        match domain {
            TimeDomain::Event => &mut self.timers,
            TimeDomain::Processing => &mut self.processing_timers,
        }
    }

    /// Registers a timer of the current key.
    pub fn register_timer(&mut self, domain: TimeDomain, time: i64) {
        let key = std::mem::take(&mut self.current);
        self.timers_of(domain).insert(time, &key);
        self.current = key;
    }

    /// Cancels a timer of the current key.
    pub fn delete_timer(&mut self, domain: TimeDomain, time: i64) {
        let key = std::mem::take(&mut self.current);
        self.timers_of(domain).remove(time, &key);
        self.current = key;
    }

    /// Keys with values.
    pub fn keys(&self) -> usize {
        self.values.len()
    }

    /// Pending timers (both kinds).
    pub fn timers(&self) -> usize {
        self.timers.by_time.len() + self.processing_timers.by_time.len()
    }

    /// Removes and returns the earliest timer of `domain` at or before `now` (the watermark,
    /// or the wall clock).
    pub fn pop_due_timer(&mut self, domain: TimeDomain, now: i64) -> Option<(i64, Box<[u8]>)> {
        self.timers_of(domain).pop_due(now)
    }

    /// A copy of `key`'s values and timers.
    pub fn snapshot(&self, key: &[u8]) -> KeySnapshot {
        KeySnapshot {
            key: key.into(),
            values: self.values.get(key).cloned(),
            timers: self.timers.of_key(key),
            processing_timers: self.processing_timers.of_key(key),
        }
    }

    /// Puts `key`'s values and timers back as they were in `snap`.
    pub fn restore(&mut self, snap: KeySnapshot) {
        match snap.values {
            Some(v) => {
                self.values.insert(snap.key.clone(), v);
            }
            None => {
                self.values.remove(&snap.key);
            }
        }
        self.timers.set_key(&snap.key, snap.timers);
        self.processing_timers
            .set_key(&snap.key, snap.processing_timers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_timers_are_scoped_to_the_current_key_and_restorable() {
        let mut s = KeyedState {
            current: b"a".to_vec(),
            ..Default::default()
        };
        s.set("n".into(), b"1".to_vec());
        s.register_timer(TimeDomain::Event, 10);
        let snap = s.snapshot(b"a");
        s.set("n".into(), b"2".to_vec());
        s.register_timer(TimeDomain::Event, 20);
        s.register_timer(TimeDomain::Processing, 30);
        s.current = b"b".to_vec();
        assert_eq!(s.get("n"), None);
        s.restore(snap);
        s.current = b"a".to_vec();
        assert_eq!(s.get("n"), Some(b"1".to_vec()));
        assert_eq!(
            s.pop_due_timer(TimeDomain::Event, 15),
            Some((10, b"a"[..].into()))
        );
        assert_eq!(s.pop_due_timer(TimeDomain::Event, 100), None);
        assert_eq!(s.pop_due_timer(TimeDomain::Processing, 100), None);
        s.delete("n");
        assert_eq!(s.keys(), 0);
    }

    #[test]
    fn the_in_place_checkpoint_decodes_as_the_snapshot_and_restores() {
        let mut s = KeyedState::default();
        for key in [&b"a"[..], b"b", b"c"] {
            s.current = key.to_vec();
            s.set("z".into(), key.to_vec());
            s.set("a".into(), b"1".to_vec());
            s.register_timer(TimeDomain::Event, key[0] as i64);
            s.register_timer(TimeDomain::Processing, 1000 + key[0] as i64);
        }
        let bytes = postcard::to_stdvec(&s.checkpoint_ref()).unwrap();
        let decoded: KeyedStateSnapshot = postcard::from_bytes(&bytes).unwrap();
        let mut expected = s.checkpoint();
        let mut got = decoded.clone();
        expected.values.sort();
        got.values.sort();
        assert_eq!(got, expected);
        let mut back = KeyedState::default();
        back.restore_all(decoded);
        back.current = b"b".to_vec();
        assert_eq!(back.get("z"), Some(b"b".to_vec()));
        assert_eq!(back.keys(), 3);
        assert_eq!(back.timers(), 6);
        assert_eq!(
            back.pop_due_timer(TimeDomain::Processing, i64::MAX),
            Some((1000 + b'a' as i64, b"a"[..].into()))
        );
    }
}
