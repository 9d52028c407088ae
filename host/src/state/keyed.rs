//! Per-key named values and event-time timers of a keyed `process` operator.
//!
//! A plugin call is about one key ([`KeyedState::current`]); the host implements the WIT
//! `keyed` interface over this store. Before a call the operator takes a [`KeySnapshot`] of
//! that key, and restores it if the call fails, so a failed call leaves no partial update.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// All keys' values and timers.
#[derive(Debug, Default)]
pub struct KeyedState {
    /// The key the current call is about.
    pub current: Vec<u8>,
    values: HashMap<Box<[u8]>, HashMap<String, Vec<u8>>>,
    /// (time, key): fire `on-timer` when the watermark reaches `time`.
    timers: BTreeSet<(i64, Box<[u8]>)>,
}

/// One key's values and timers, to undo a failed call.
#[derive(Debug, Clone)]
pub struct KeySnapshot {
    key: Box<[u8]>,
    values: Option<HashMap<String, Vec<u8>>>,
    timers: Vec<i64>,
}

/// All keys' values and timers, as stored in checkpoint blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateSnapshot {
    /// (key, [(name, value)])
    pub values: Vec<(serde_bytes::ByteBuf, Vec<(String, serde_bytes::ByteBuf)>)>,
    /// (time, key)
    pub timers: Vec<(i64, serde_bytes::ByteBuf)>,
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
        struct Timers<'a>(&'a BTreeSet<(i64, Box<[u8]>)>);
        impl serde::Serialize for Timers<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|(t, k)| (*t, Bytes::new(k))))
            }
        }
        let mut st = s.serialize_struct("KeyedStateSnapshot", 2)?;
        st.serialize_field("values", &Values(&self.0.values))?;
        st.serialize_field("timers", &Timers(&self.0.timers))?;
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
            timers: self
                .timers
                .iter()
                .map(|(t, k)| (*t, ByteBuf::from(k.to_vec())))
                .collect(),
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
        self.timers = snap
            .timers
            .into_iter()
            .map(|(t, k)| (t, k.into_vec().into_boxed_slice()))
            .collect();
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

    pub fn register_timer(&mut self, time: i64) {
        self.timers.insert((time, self.current.as_slice().into()));
    }

    pub fn delete_timer(&mut self, time: i64) {
        self.timers.remove(&(time, self.current.as_slice().into()));
    }

    /// Keys with values.
    pub fn keys(&self) -> usize {
        self.values.len()
    }

    /// Pending timers.
    pub fn timers(&self) -> usize {
        self.timers.len()
    }

    /// Removes and returns the earliest timer at or before `watermark`.
    pub fn pop_due_timer(&mut self, watermark: i64) -> Option<(i64, Box<[u8]>)> {
        if self.timers.first()?.0 <= watermark {
            self.timers.pop_first()
        } else {
            None
        }
    }

    /// A copy of `key`'s values and timers.
    pub fn snapshot(&self, key: &[u8]) -> KeySnapshot {
        KeySnapshot {
            key: key.into(),
            values: self.values.get(key).cloned(),
            timers: self
                .timers
                .iter()
                .filter(|(_, k)| **k == *key)
                .map(|(t, _)| *t)
                .collect(),
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
        self.timers.retain(|(_, k)| *k != snap.key);
        for t in snap.timers {
            self.timers.insert((t, snap.key.clone()));
        }
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
        s.register_timer(10);
        let snap = s.snapshot(b"a");
        s.set("n".into(), b"2".to_vec());
        s.register_timer(20);
        s.current = b"b".to_vec();
        assert_eq!(s.get("n"), None);
        s.restore(snap);
        s.current = b"a".to_vec();
        assert_eq!(s.get("n"), Some(b"1".to_vec()));
        assert_eq!(s.pop_due_timer(15), Some((10, b"a"[..].into())));
        assert_eq!(s.pop_due_timer(100), None);
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
            s.register_timer(key[0] as i64);
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
    }
}
