//! Requests in flight: what each asked of which peer, when, and for which root generation.
//! A peer's load (requests out, items out) is read from here, never kept beside it.
//!
//! Deadlines live in the timer table (`Timer::Request`).

use std::collections::BTreeMap;

use crate::hash::DigestSet;
use crate::wire::Message;

use super::retry::Retry;
use super::PeerId;

/// A fetch handed to a peer and not yet answered.
#[derive(Debug)]
pub(super) struct Request {
    pub peer: PeerId,
    /// What was asked, each with the peers already known to lack it, which a failure keeps.
    pub tasks: Vec<Retry>,
    pub sent_at: u64,
    /// The root generation it was made for.
    pub generation: u64,
    /// Whether its items were also asked of another peer, or it is such a copy: either way
    /// it is not copied again.
    pub hedged: bool,
    /// Items the peer had served when this was sent: its answer measures the peer's
    /// delivery rate over its round trip (`rate::Pipe`).
    pub delivered_at_send: u64,
    /// It carried less than the peer's window and the request size allowed: there was no
    /// more to ask (see `rate::Pipe::answered`).
    pub app_limited: bool,
}

/// The requests in flight, by id.
#[derive(Debug)]
pub(super) struct Requests {
    table: BTreeMap<u64, Request>,
    next_id: u64,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            table: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl Requests {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Records `request` under a fresh id and returns the id and the GetNodeData frame.
    pub fn send(&mut self, request: Request) -> (u64, Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        let hashes = request.tasks.iter().map(Retry::hash).collect();
        let frame = Message::GetNodeData { id, hashes }.encode();
        self.table.insert(id, request);
        (id, frame)
    }

    /// Takes request `id` if it was asked of `peer`: an answer to it arrived.
    pub fn take_answered(&mut self, peer: PeerId, id: u64) -> Option<Request> {
        match self.table.get(&id) {
            Some(r) if r.peer == peer => self.table.remove(&id),
            _ => None,
        }
    }

    pub fn remove(&mut self, id: u64) -> Option<Request> {
        self.table.remove(&id)
    }

    /// Ids of the requests asked of `peer`, in order.
    pub fn ids_of(&self, peer: PeerId) -> Vec<u64> {
        self.table
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Requests `peer` has out.
    pub fn in_flight(&self, peer: PeerId) -> usize {
        self.table.values().filter(|r| r.peer == peer).count()
    }

    /// Items `peer` has been asked for and not answered yet.
    pub fn outstanding_of(&self, peer: PeerId) -> usize {
        self.table
            .values()
            .filter(|r| r.peer == peer)
            .map(|r| r.tasks.len())
            .sum()
    }

    /// Items asked of peers and not answered yet.
    pub fn outstanding_items(&self) -> u64 {
        self.table.values().map(|r| r.tasks.len() as u64).sum()
    }

    /// The oldest request of `generation` asked of a peer other than `peer`, not hedged yet,
    /// that has waited at least `overdue_after(its peer)` milliseconds by `now`.
    pub fn oldest_overdue(
        &self,
        peer: PeerId,
        generation: u64,
        now: u64,
        overdue_after: impl Fn(PeerId) -> f64,
    ) -> Option<u64> {
        self.table
            .iter()
            .filter(|(_, r)| r.peer != peer && !r.hedged && r.generation == generation)
            .filter(|(_, r)| now.saturating_sub(r.sent_at) as f64 >= overdue_after(r.peer))
            .min_by_key(|(_, r)| r.sent_at)
            .map(|(id, _)| *id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Request> {
        self.table.get_mut(&id)
    }

    /// Hashes still asked for by hedged requests of `generation`.
    pub fn hedged_hashes(&self, generation: u64) -> DigestSet {
        self.table
            .values()
            .filter(|r| r.hedged && r.generation == generation)
            .flat_map(|r| r.tasks.iter().map(Retry::hash))
            .collect()
    }

    /// Every task asked and not answered.
    pub fn tasks_mut(&mut self) -> impl Iterator<Item = &mut Retry> {
        self.table.values_mut().flat_map(|r| r.tasks.iter_mut())
    }
}
