//! The window operator's state layout: every live (key, window) slot in one slab, and every key
//! interned once with the slab positions of its live slots (and, for panes, their starts: a
//! key's panes are found without reading the slab). An event costs one hash lookup of its key;
//! slots reach their key by id and timers name slots by position and id, so nothing else hashes
//! or compares key bytes, and nothing holds a copy of a key.
//!
//! Positions freed during a batch are only reused after it ([`Slots::release`]): pending
//! entries of the batch may still name them. Keys left without slots are kept for a while (a
//! tumbling window's keys come back in the next window) and swept in bulk once they outnumber
//! the keys with slots.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::window::Window;

/// Keys are shared between the key table and the slots (one allocation per key).
pub(super) type Key = Arc<[u8]>;

/// One live window of a key.
#[derive(Debug)]
pub(super) struct Slot {
    /// Unique per operator, in creation order (checkpointed; count windows' serial).
    pub id: u64,
    pub key: Key,
    /// The key's entry in the key table.
    key_id: u32,
    /// The `apply` round that last touched the slot, and its accumulator position then.
    pub pos: u32,
    pub mark: u64,
    pub window: Window,
    /// The aggregate's accumulator.
    pub acc: Vec<u8>,
    /// Events assigned to the window (including any the aggregate refused).
    pub count: u64,
    /// Whether the slot is a pane of sliding windows ([`super::panes`]) rather than a
    /// window: `window` is then the pane's bounds.
    pub pane: bool,
}

impl Slot {
    /// The slot's entry in the key table (the same for every slot of the key).
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

/// Keys up to this length are also kept inline in their entry, so that finding one reads no
/// memory beyond the entry (the lookup is the operator's main cost: cache misses).
const INLINE: usize = 24;

/// A live slot as its key lists it: enough to find a pane without reading the slot (each slot
/// read is a read of the slab, often a cache miss; a key of sliding windows has several panes).
/// Twelve bytes, so that a key's first two fit in its entry as two positions did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
pub(super) struct Held {
    /// A pane's start (its bounds never change; a window's may, so it is read from the slot).
    start: i64,
    /// The slot's position in the slab, with [`PANE`] set for a pane.
    tagged: u32,
}

/// The bit of [`Held::tagged`] saying the slot is a pane (positions stay below it: a slab of
/// 2^31 slots would hold hundreds of GB).
const PANE: u32 = 1 << 31;

impl Held {
    fn new(at: u32, pane: bool, start: i64) -> Self {
        assert!(at < PANE, "window slot position {at} out of range");
        Held {
            start,
            tagged: at | if pane { PANE } else { 0 },
        }
    }

    /// The slot's position in the slab.
    #[inline]
    pub fn at(&self) -> u32 {
        self.tagged & !PANE
    }

    /// Whether the slot is a pane.
    #[inline]
    pub fn pane(&self) -> bool {
        self.tagged & PANE != 0
    }

    /// The pane's start, if the slot is a pane.
    #[inline]
    pub fn pane_start(&self) -> Option<i64> {
        self.pane().then_some(self.start)
    }
}

/// A key and its live slots, oldest first.
#[derive(Debug)]
struct KeyEntry {
    hash: u64,
    key: Key,
    /// The key's bytes when it is at most [`INLINE`] long.
    inline: [u8; INLINE],
    /// Usually one or two windows per key: inline too.
    slots: SmallVec<[Held; 2]>,
}

impl KeyEntry {
    #[inline]
    fn is(&self, hash: u64, key: &[u8]) -> bool {
        self.hash == hash
            && self.key.len() == key.len()
            && match self.inline.get(..key.len()) {
                Some(inline) => inline == key,
                None => *self.key == *key,
            }
    }
}

#[derive(Debug, Default)]
pub(super) struct Slots {
    slab: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Freed during the current batch; reusable after [`Slots::release`].
    retired: Vec<u32>,
    /// Interned keys, by id; `index` finds a key's id by its bytes.
    keys: Vec<Option<KeyEntry>>,
    free_keys: Vec<u32>,
    index: HashTable<u32>,
    /// Keys with at least one live slot.
    live_keys: usize,
    live: usize,
    /// Live slots that are panes.
    panes: usize,
}

impl Slots {
    pub fn live(&self) -> usize {
        self.live
    }

    /// Live slots that are panes.
    pub fn panes(&self) -> usize {
        self.panes
    }

    /// Live slots that are windows, not panes.
    pub fn windows(&self) -> usize {
        self.live - self.panes
    }

    pub fn get(&self, at: u32) -> Option<&Slot> {
        self.slab.get(at as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, at: u32) -> Option<&mut Slot> {
        self.slab.get_mut(at as usize)?.as_mut()
    }

    /// The slot at `at` if it is still the one with `id` (timers may outlive their slot).
    pub fn get_live(&self, at: u32, id: u64) -> Option<&Slot> {
        self.get(at).filter(|s| s.id == id)
    }

    /// The id of `key` in the key table, entering it if it is new.
    pub fn key_id(&mut self, key: &[u8]) -> u32 {
        let hash = FxBuildHasher.hash_one(key);
        let keys = &self.keys;
        let found = self.index.find(hash, |&id| {
            keys[id as usize].as_ref().is_some_and(|e| e.is(hash, key))
        });
        if let Some(&id) = found {
            return id;
        }
        let mut inline = [0; INLINE];
        if let Some(to) = inline.get_mut(..key.len()) {
            to.copy_from_slice(key);
        }
        let entry = KeyEntry {
            hash,
            key: key.into(),
            inline,
            slots: SmallVec::new(),
        };
        let id = match self.free_keys.pop() {
            Some(id) => {
                self.keys[id as usize] = Some(entry);
                id
            }
            None => {
                self.keys.push(Some(entry));
                (self.keys.len() - 1) as u32
            }
        };
        let keys = &self.keys;
        self.index.insert_unique(hash, id, |&id| {
            keys[id as usize].as_ref().map_or(0, |e| e.hash)
        });
        id
    }

    /// The live slots of key `key_id`, oldest first.
    pub fn of(&self, key_id: u32) -> &[Held] {
        match self.keys.get(key_id as usize) {
            Some(Some(e)) => &e.slots,
            _ => &[],
        }
    }

    /// Adds a slot (a window, or a pane when `pane`) for key `key_id` (from [`Slots::key_id`]
    /// during this batch); returns its position.
    pub fn insert(
        &mut self,
        key_id: u32,
        id: u64,
        window: Window,
        acc: Vec<u8>,
        count: u64,
        pane: bool,
    ) -> u32 {
        let Some(Some(entry)) = self.keys.get_mut(key_id as usize) else {
            unreachable!("slots are inserted for keys entered in the same batch")
        };
        let slot = Slot {
            id,
            key: entry.key.clone(),
            key_id,
            pos: 0,
            mark: 0,
            window,
            acc,
            count,
            pane,
        };
        self.panes += usize::from(pane);
        let at = match self.free.pop() {
            Some(at) => {
                self.slab[at as usize] = Some(slot);
                at
            }
            None => {
                self.slab.push(Some(slot));
                (self.slab.len() - 1) as u32
            }
        };
        if entry.slots.is_empty() {
            self.live_keys += 1;
        }
        entry.slots.push(Held::new(at, pane, window.start));
        self.live += 1;
        at
    }

    /// Removes the slot at `at` (its position is reused after [`Slots::release`]).
    pub fn remove(&mut self, at: u32) -> Option<Slot> {
        let slot = self.slab.get_mut(at as usize)?.take()?;
        if let Some(Some(entry)) = self.keys.get_mut(slot.key_id as usize) {
            entry.slots.retain(|h| h.at() != at);
            if entry.slots.is_empty() {
                self.live_keys -= 1;
            }
        }
        self.retired.push(at);
        self.live -= 1;
        self.panes -= usize::from(slot.pane);
        Some(slot)
    }

    /// Makes the positions freed since the last call reusable, and sweeps keys without slots
    /// once they outnumber the keys with slots.
    pub fn release(&mut self) {
        self.free.append(&mut self.retired);
        let idle = self.index.len() - self.live_keys;
        if idle > self.live_keys.max(1024) {
            self.sweep_keys();
        }
    }

    /// Forgets every key without slots.
    fn sweep_keys(&mut self) {
        for id in 0..self.keys.len() as u32 {
            let Some(entry) = &self.keys[id as usize] else {
                continue;
            };
            if !entry.slots.is_empty() {
                continue;
            }
            if let Ok(found) = self.index.find_entry(entry.hash, |&other| other == id) {
                found.remove();
            }
            self.keys[id as usize] = None;
            self.free_keys.push(id);
        }
    }

    pub fn clear(&mut self) {
        *self = Slots::default();
    }

    /// Every key with the positions of its live slots.
    pub fn keys(&self) -> LiveKeys<'_> {
        LiveKeys {
            entries: self.keys.iter(),
            left: self.live_keys,
        }
    }
}

/// The keys with live slots (an exact-size iterator: checkpoints write the count first).
pub(super) struct LiveKeys<'a> {
    entries: std::slice::Iter<'a, Option<KeyEntry>>,
    left: usize,
}

impl<'a> Iterator for LiveKeys<'a> {
    type Item = (&'a Key, &'a [Held]);

    fn next(&mut self) -> Option<Self::Item> {
        let e = self
            .entries
            .by_ref()
            .flatten()
            .find(|e| !e.slots.is_empty())?;
        self.left -= 1;
        Some((&e.key, e.slots.as_slice()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for LiveKeys<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_reused_only_after_release_and_keys_are_shared() {
        let mut s = Slots::default();
        let w = Window { start: 0, end: 10 };
        let k = s.key_id(b"k");
        let a = s.insert(k, 1, w, vec![1], 1, false);
        let k2 = s.key_id(b"k");
        assert_eq!(k2, k);
        let b = s.insert(k2, 2, w, vec![2], 1, false);
        assert!(Arc::ptr_eq(&s.get(a).unwrap().key, &s.get(b).unwrap().key));
        let at: Vec<u32> = s.of(k).iter().map(Held::at).collect();
        assert_eq!(at, [a, b]);
        assert_eq!(s.remove(a).unwrap().id, 1);
        assert!(s.get(a).is_none());
        let j = s.key_id(b"j");
        let c = s.insert(j, 3, w, vec![3], 1, false);
        assert_ne!(c, a, "not reused within the batch");
        s.release();
        let j2 = s.key_id(b"j");
        let d = s.insert(j2, 4, w, vec![4], 1, false);
        assert_eq!(d, a);
        assert!(s.get_live(d, 1).is_none());
        assert_eq!(s.get_live(d, 4).unwrap().acc, [4]);
        assert_eq!(s.live(), 3);
        assert_eq!(s.keys().count(), 2);
    }

    #[test]
    fn a_key_entry_holds_two_slots_inline_in_twelve_bytes_each() {
        assert_eq!(std::mem::size_of::<Held>(), 12);
        let h = Held::new(PANE - 1, true, i64::MIN);
        assert_eq!(
            (h.at(), h.pane(), h.pane_start()),
            (PANE - 1, true, Some(i64::MIN))
        );
        let w = Held::new(7, false, 3);
        assert_eq!((w.at(), w.pane(), w.pane_start()), (7, false, None));
        assert_eq!(
            std::mem::size_of::<SmallVec<[Held; 2]>>(),
            std::mem::size_of::<SmallVec<[u32; 2]>>() + 8
        );
    }

    #[test]
    fn long_and_short_keys_are_told_apart() {
        let mut s = Slots::default();
        let long = [b'x'; 40];
        let mut other = long;
        other[39] = b'y';
        let keys: [&[u8]; 5] = [&long, &other, &long[..24], &long[..25], b""];
        let ids: Vec<u32> = keys.iter().map(|k| s.key_id(k)).collect();
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(s.key_id(k), *id, "{}", k.escape_ascii());
        }
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), keys.len());
    }

    #[test]
    fn keys_without_slots_are_swept_once_they_outnumber_the_others() {
        let mut s = Slots::default();
        let w = Window { start: 0, end: 10 };
        let kept = s.key_id(b"kept");
        s.insert(kept, 0, w, Vec::new(), 1, false);
        let mut gone = Vec::new();
        for i in 0..2000u32 {
            let k = s.key_id(format!("k{i}").as_bytes());
            gone.push(s.insert(k, u64::from(i) + 1, w, Vec::new(), 1, false));
        }
        s.release();
        for at in gone.iter().take(1000) {
            s.remove(*at);
        }
        s.release();
        assert_eq!(s.index.len(), 2001, "1000 idle keys are kept for now");
        assert_eq!(s.key_id(b"k0"), s.key_id(b"k0"), "and found again");
        for at in gone.iter().skip(1000) {
            s.remove(*at);
        }
        s.release();
        assert_eq!((s.index.len(), s.live_keys), (1, 1), "swept");
        assert_eq!(s.keys().map(|(k, _)| &k[..]).collect::<Vec<_>>(), [b"kept"]);
        assert_eq!(s.of(kept).len(), 1);
        // Ids of swept keys are reused, and lookups still find the right key.
        let again = s.key_id(b"k5");
        assert!(again < 2001);
        assert_eq!(s.key_id(b"k5"), again);
        assert_ne!(s.key_id(b"kept"), again);
    }
}
