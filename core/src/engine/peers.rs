//! The peer table: who is connected, who has sent a Status and may be asked, how fast each
//! one answers (geth's `msgrate`, spec §3.5), and what each has done wrong.
//!
//! What a peer has in flight is not kept here: it follows from the request table.

use std::collections::{BTreeMap, VecDeque};

use crate::hash::H256;
use crate::progress::PeerProgress;
use crate::rate::{PeerRate, RateConfig, RoundTrip};

use super::PeerId;

/// Timed-out request ids remembered per peer, so a late answer is used, not penalised.
const EXPIRED_MEMORY: usize = 64;

#[derive(Debug)]
struct Peer {
    /// The head it announced; `None` until its Status arrives, and only then is it asked.
    head_root: Option<H256>,
    joined_at: u64,
    rate: PeerRate,
    served: u64,
    failures: u64,
    timeouts_in_row: u32,
    penalty: u32,
    expired: VecDeque<u64>,
}

/// Connected peers and the round-trip target their answers tune.
#[derive(Debug)]
pub(super) struct Peers {
    table: BTreeMap<PeerId, Peer>,
    round_trip: RoundTrip,
}

impl Peers {
    pub fn new(rate: RateConfig, now: u64) -> Peers {
        Peers {
            table: BTreeMap::new(),
            round_trip: RoundTrip::new(rate, now),
        }
    }

    pub fn contains(&self, peer: PeerId) -> bool {
        self.table.contains_key(&peer)
    }

    /// A peer connected; its estimates start from the others'. False if it was known.
    pub fn join(&mut self, peer: PeerId, now: u64) -> bool {
        if self.contains(peer) {
            return false;
        }
        let others: Vec<PeerRate> = self.table.values().map(|p| p.rate).collect();
        let rate = self.round_trip.new_peer(&others);
        self.table.insert(
            peer,
            Peer {
                head_root: None,
                joined_at: now,
                rate,
                served: 0,
                failures: 0,
                timeouts_in_row: 0,
                penalty: 0,
                expired: VecDeque::new(),
            },
        );
        true
    }

    /// Forgets a peer. False if it was not known.
    pub fn remove(&mut self, peer: PeerId) -> bool {
        self.table.remove(&peer).is_some()
    }

    /// When the peer connected.
    pub fn joined_at(&self, peer: PeerId) -> Option<u64> {
        self.table.get(&peer).map(|p| p.joined_at)
    }

    /// The peer's valid Status: its head. True if this makes it usable.
    pub fn status(&mut self, peer: PeerId, head_root: H256) -> bool {
        let Some(p) = self.table.get_mut(&peer) else {
            return false;
        };
        let newly_usable = p.head_root.is_none();
        p.head_root = Some(head_root);
        newly_usable
    }

    /// Peers that may be asked: their Status arrived.
    pub fn usable(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.table
            .iter()
            .filter(|(_, p)| p.head_root.is_some())
            .map(|(id, _)| *id)
    }

    /// Usable peers with the items the next request to each should carry, most capable first
    /// (ties by id). Tunes the round-trip target first, at most once per round trip.
    pub fn capacity_order(&mut self, now: u64, max_items: usize) -> Vec<(usize, PeerId)> {
        let rates: Vec<PeerRate> = self.table.values().map(|p| p.rate).collect();
        self.round_trip.tune(now, &rates);
        let target_rtt = self.round_trip.target_rtt_ms();
        let mut order: Vec<(usize, PeerId)> = self
            .table
            .iter()
            .filter(|(_, p)| p.head_root.is_some())
            .map(|(id, p)| (p.rate.capacity(target_rtt, max_items), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        order
    }

    /// How long a request may go unanswered.
    pub fn timeout_ms(&self) -> u64 {
        self.round_trip.timeout_ms().max(1)
    }

    /// The peer's recent round trip, once measured.
    pub fn recent_rtt_ms(&self, peer: PeerId) -> Option<f64> {
        self.table.get(&peer).and_then(|p| p.rate.recent_rtt_ms)
    }

    /// The peer answered a request after `elapsed_ms` with `served` useful items.
    pub fn answered(&mut self, peer: PeerId, elapsed_ms: u64, served: usize) {
        if let Some(p) = self.table.get_mut(&peer) {
            p.rate.update(elapsed_ms as f64, served);
            p.served += served as u64;
            p.timeouts_in_row = 0;
            if served == 0 {
                p.failures += 1;
            }
        }
    }

    /// The peer let request `id` time out. A late answer to it is still welcome. True when
    /// `stall_timeouts` timeouts in a row on `minimal` requests (two items at most) show it
    /// cannot serve.
    pub fn timed_out(&mut self, peer: PeerId, id: u64, minimal: bool, stall_timeouts: u32) -> bool {
        let Some(p) = self.table.get_mut(&peer) else {
            return false;
        };
        p.failures += 1;
        p.rate.update(0.0, 0);
        p.expired.push_back(id);
        if p.expired.len() > EXPIRED_MEMORY {
            p.expired.pop_front();
        }
        if minimal {
            p.timeouts_in_row += 1;
            p.timeouts_in_row >= stall_timeouts
        } else {
            false
        }
    }

    /// Whether `id` is a request of the peer's that timed out recently.
    pub fn expired(&self, peer: PeerId, id: u64) -> bool {
        self.table
            .get(&peer)
            .is_some_and(|p| p.expired.contains(&id))
    }

    /// Adds `amount` to the peer's penalty. Returns the total once it reaches `limit`.
    pub fn penalise(&mut self, peer: PeerId, amount: u32, limit: u32) -> Option<u32> {
        let p = self.table.get_mut(&peer)?;
        p.penalty = p.penalty.saturating_add(amount);
        (p.penalty >= limit).then_some(p.penalty)
    }

    /// Each peer's figures for a progress report; `in_flight` counts its requests.
    pub fn report(
        &self,
        max_items: usize,
        in_flight: impl Fn(PeerId) -> usize,
    ) -> Vec<PeerProgress> {
        let target_rtt = self.round_trip.target_rtt_ms();
        self.table
            .iter()
            .map(|(id, p)| PeerProgress {
                peer: *id,
                rtt_ms: p.rate.rtt_ms,
                capacity: p.rate.capacity(target_rtt, max_items),
                in_flight: in_flight(*id),
                served: p.served,
                failures: p.failures,
                penalty: p.penalty,
                head_root: p.head_root,
            })
            .collect()
    }
}
