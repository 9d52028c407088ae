//! The window operator's state layout: every live (key, window) slot in one slab, and per key
//! the slab positions of its live slots. A batch touches a slot through its position — one
//! hash lookup of the key per event, none afterwards — and timers name slots by position and
//! id, so neither holds a copy of the key.
//!
//! Positions freed during a batch are only reused after it ([`Slots::release`]): pending
//! entries of the batch may still name them.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::window::Window;

/// Keys are shared between the key index and the slots (one allocation per key).
pub(super) type Key = Arc<[u8]>;

/// One live window of a key.
#[derive(Debug)]
pub(super) struct Slot {
    /// Unique per operator, in creation order (checkpointed; count windows' serial).
    pub id: u64,
    pub key: Key,
    pub window: Window,
    /// The aggregate's accumulator.
    pub acc: Vec<u8>,
    /// Events assigned to the window (including any the aggregate refused).
    pub count: u64,
    /// The `apply` round that last touched the slot, and its accumulator position then.
    pub mark: u64,
    pub pos: u32,
}

#[derive(Debug, Default)]
pub(super) struct Slots {
    slab: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Freed during the current batch; reusable after [`Slots::release`].
    retired: Vec<u32>,
    by_key: FxHashMap<Key, Vec<u32>>,
    live: usize,
}

impl Slots {
    pub fn live(&self) -> usize {
        self.live
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

    /// Positions of `key`'s live slots, oldest first.
    pub fn of_key(&self, key: &[u8]) -> &[u32] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// Adds a slot for `key` (the key is shared with its other slots); returns its position.
    pub fn insert(&mut self, key: &[u8], id: u64, window: Window, acc: Vec<u8>, count: u64) -> u32 {
        let shared: Key = match self.by_key.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        let slot = Slot {
            id,
            key: shared.clone(),
            window,
            acc,
            count,
            mark: 0,
            pos: 0,
        };
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
        self.by_key.entry(shared).or_default().push(at);
        self.live += 1;
        at
    }

    /// Removes the slot at `at` (its position is reused after [`Slots::release`]).
    pub fn remove(&mut self, at: u32) -> Option<Slot> {
        let slot = self.slab.get_mut(at as usize)?.take()?;
        if let Some(list) = self.by_key.get_mut(&slot.key) {
            list.retain(|&p| p != at);
            if list.is_empty() {
                self.by_key.remove(&slot.key);
            }
        }
        self.retired.push(at);
        self.live -= 1;
        Some(slot)
    }

    /// Makes the positions freed since the last call reusable.
    pub fn release(&mut self) {
        self.free.append(&mut self.retired);
    }

    pub fn clear(&mut self) {
        *self = Slots::default();
    }

    /// Every key with the positions of its live slots.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = (&Key, &[u32])> {
        self.by_key.iter().map(|(k, list)| (k, list.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_reused_only_after_release_and_keys_are_shared() {
        let mut s = Slots::default();
        let w = Window { start: 0, end: 10 };
        let a = s.insert(b"k", 1, w, vec![1], 1);
        let b = s.insert(b"k", 2, w, vec![2], 1);
        assert!(Arc::ptr_eq(&s.get(a).unwrap().key, &s.get(b).unwrap().key));
        assert_eq!(s.of_key(b"k"), [a, b]);
        assert_eq!(s.remove(a).unwrap().id, 1);
        assert!(s.get(a).is_none());
        let c = s.insert(b"j", 3, w, vec![3], 1);
        assert_ne!(c, a, "not reused within the batch");
        s.release();
        let d = s.insert(b"j", 4, w, vec![4], 1);
        assert_eq!(d, a);
        assert!(s.get_live(d, 1).is_none());
        assert_eq!(s.get_live(d, 4).unwrap().acc, [4]);
        assert_eq!(s.live(), 3);
        assert_eq!(s.keys().len(), 2);
    }
}
