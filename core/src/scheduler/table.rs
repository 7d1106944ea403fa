//! The scheduler's one request table: an entry for every item known and not complete,
//! nodes and code alike, found by [`StoreKey`].
//!
//! Entries live in a slab and are found by key through a small index. They refer to each
//! other by slot (a child to its parents, a queue slot to its request), which costs no
//! hashing, and a freed slot is reused first, so the children of one node, made together, sit
//! together: the items of one answer, which are siblings, are read from a few pages instead
//! of from all over a large hash table.

use std::collections::hash_map::Entry;

use crate::store::{KeyMap, StoreKey};

use super::request::Request;

/// Where an entry lives in the slab.
pub(super) type Slot = u32;

#[derive(Debug, Default)]
pub(super) struct Table {
    index: KeyMap<Slot>,
    slots: Vec<Option<Request>>,
    /// Slots freed, the most recent last: reused first, while they are still in cache.
    free: Vec<Slot>,
}

/// What [`Table::lookup`] found.
pub(super) enum Lookup<'t> {
    Found(Slot),
    Absent(Vacant<'t>),
}

/// Room for a key the table does not hold.
pub(super) struct Vacant<'t> {
    target: Target<'t>,
    slots: &'t mut Vec<Option<Request>>,
    free: &'t mut Vec<Slot>,
}

/// Where the slot of a new entry is recorded.
enum Target<'t> {
    New(std::collections::hash_map::VacantEntry<'t, StoreKey, Slot>),
    /// An index entry naming an empty slot (which the table never leaves behind).
    Stale(&'t mut Slot),
}

impl Vacant<'_> {
    /// Adds `req` under the key looked up; returns its slot.
    pub fn insert(self, req: Request) -> Slot {
        let slot = place(self.slots, self.free, req);
        match self.target {
            Target::New(entry) => {
                entry.insert(slot);
            }
            Target::Stale(entry) => *entry = slot,
        }
        slot
    }
}

/// Puts `req` in a free slot, or a new one.
fn place(slots: &mut Vec<Option<Request>>, free: &mut Vec<Slot>, req: Request) -> Slot {
    match free.pop() {
        Some(slot) => {
            slots[slot as usize] = Some(req);
            slot
        }
        None => {
            slots.push(Some(req));
            (slots.len() - 1) as Slot
        }
    }
}

impl Table {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Makes room for `additional` more entries without growing.
    pub fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        let spare = self.slots.capacity() - self.slots.len() + self.free.len();
        self.slots.reserve_exact(additional.saturating_sub(spare));
    }

    pub fn slot(&self, key: &StoreKey) -> Option<Slot> {
        self.index.get(key).copied()
    }

    pub fn get(&self, key: &StoreKey) -> Option<&Request> {
        self.slot(key).and_then(|slot| self.at(slot))
    }

    pub fn get_mut(&mut self, key: &StoreKey) -> Option<&mut Request> {
        let slot = self.slot(key)?;
        self.at_mut(slot)
    }

    pub fn at(&self, slot: Slot) -> Option<&Request> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub fn at_mut(&mut self, slot: Slot) -> Option<&mut Request> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The entry of `key`, or room for it: one probe of the index either way.
    pub fn lookup(&mut self, key: StoreKey) -> Lookup<'_> {
        let Table { index, slots, free } = self;
        let target = match index.entry(key) {
            Entry::Occupied(held) => {
                let slot = *held.get();
                if slots.get(slot as usize).is_some_and(Option::is_some) {
                    return Lookup::Found(slot);
                }
                Target::Stale(held.into_mut())
            }
            Entry::Vacant(entry) => Target::New(entry),
        };
        Lookup::Absent(Vacant {
            target,
            slots,
            free,
        })
    }

    /// Drops the entry in `slot` where it lies.
    pub fn free(&mut self, slot: Slot) {
        let Some(held) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if let Some(req) = held {
            self.index.remove(&req.key);
            *held = None;
            self.free.push(slot);
        }
    }

    /// Takes every entry out, in slot order.
    pub fn drain(&mut self) -> impl Iterator<Item = Request> + '_ {
        self.index.clear();
        self.free.clear();
        self.slots.drain(..).flatten()
    }
}
