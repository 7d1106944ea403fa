//! The peer table: who is connected, who has sent a Status and may be asked, how fast each
//! one answers (geth's `msgrate`, spec §3.5), and what each has done wrong.
//!
//! What a peer has in flight is not kept here: it follows from the request table.

use std::collections::{BTreeMap, VecDeque};

use crate::hash::H256;
use crate::progress::PeerProgress;
use crate::rate::{PeerRate, Pipe, RateConfig, RoundTrip};

use super::PeerId;

/// Timed-out requests remembered per peer (id, sent at), so a late answer is used, not
/// penalised, and measures the peer's round trip.
const EXPIRED_MEMORY: usize = 64;

#[derive(Debug)]
struct Peer {
    /// The head it announced; `None` until its Status arrives, and only then is it asked.
    head_root: Option<H256>,
    joined_at: u64,
    rate: PeerRate,
    /// Its delivery rate and shortest round trip: how many items may be out to it.
    pipe: Pipe,
    served: u64,
    failures: u64,
    timeouts_in_row: u32,
    /// When the last timeout counted in `timeouts_in_row` was seen: requests sent before it
    /// were out together with the one that timed out, so theirs are the same silence.
    counted_timeout_at: Option<u64>,
    penalty: u32,
    expired: VecDeque<(u64, u64)>,
}

/// Connected peers and the round-trip target their answers tune.
#[derive(Debug)]
pub(super) struct Peers {
    table: BTreeMap<PeerId, Peer>,
    round_trip: RoundTrip,
    rate_config: RateConfig,
}

impl Peers {
    pub fn new(rate: RateConfig, now: u64) -> Peers {
        Peers {
            table: BTreeMap::new(),
            round_trip: RoundTrip::new(rate, now),
            rate_config: rate,
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
                pipe: Pipe::default(),
                served: 0,
                failures: 0,
                timeouts_in_row: 0,
                counted_timeout_at: None,
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
    /// (ties by fewest failures, then id: at start-up every peer can take one item, and the
    /// one that just let a request time out should not be asked again first). Tunes the
    /// round-trip target first, at most once per round trip.
    pub fn capacity_order(&mut self, now: u64, max_items: usize) -> Vec<(usize, PeerId)> {
        let rates: Vec<PeerRate> = self.table.values().map(|p| p.rate).collect();
        self.round_trip.tune(now, &rates);
        let target_rtt = self.round_trip.target_rtt_ms();
        let mut order: Vec<(usize, u64, PeerId)> = self
            .table
            .iter()
            .filter(|(_, p)| p.head_root.is_some())
            .map(|(id, p)| (p.rate.capacity(target_rtt, max_items), p.failures, *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        order
            .into_iter()
            .map(|(capacity, _, id)| (capacity, id))
            .collect()
    }

    /// How long a request to `peer` may go unanswered: the start-up bound until it has
    /// answered, then a few of its own recent round trips (`RateConfig::timeout_ms`).
    pub fn timeout_ms(&self, peer: PeerId) -> u64 {
        self.rate_config
            .timeout_ms(self.table.get(&peer).and_then(|p| p.rate.recent_rtt_ms))
    }

    /// The peer's recent round trip, once measured.
    pub fn recent_rtt_ms(&self, peer: PeerId) -> Option<f64> {
        self.table.get(&peer).and_then(|p| p.rate.recent_rtt_ms)
    }

    /// Items `peer` may have outstanding: its pipe's window (`Pipe::window`), `initial`
    /// before its first answer, within `[floor, cap]`.
    pub fn window(&self, peer: PeerId, initial: usize, floor: usize, cap: usize) -> usize {
        self.table
            .get(&peer)
            .map_or(0, |p| p.pipe.window(initial, floor, cap))
    }

    /// Items `peer` has served so far (0 if unknown): a request remembers it when sent.
    pub fn delivered(&self, peer: PeerId) -> u64 {
        self.table.get(&peer).map_or(0, |p| p.pipe.delivered())
    }

    /// The peer answered a request after `elapsed_ms` with `served` useful items, at `now`;
    /// it had served `delivered_at_send` items when the request was sent.
    pub fn answered(
        &mut self,
        peer: PeerId,
        (elapsed_ms, now): (u64, u64),
        served: usize,
        (delivered_at_send, app_limited): (u64, bool),
    ) {
        if let Some(p) = self.table.get_mut(&peer) {
            p.rate.update(elapsed_ms as f64, served);
            p.pipe
                .answered(served, delivered_at_send, (elapsed_ms, now), app_limited);
            p.served += served as u64;
            p.timeouts_in_row = 0;
            p.counted_timeout_at = None;
            if served == 0 {
                p.failures += 1;
            }
        }
    }

    /// The peer let request `id`, sent at `sent_at`, time out at `now`. A late answer to it
    /// is still welcome. True when `stall_timeouts` timeouts in a row on `minimal` requests
    /// (two items at most) show it cannot serve. "In a row" means one after the other:
    /// requests that were out together time out together, and count once, so a peer slower
    /// than its timeout is not dropped before its first late answer can stretch it.
    pub fn timed_out(
        &mut self,
        peer: PeerId,
        (id, sent_at): (u64, u64),
        now: u64,
        minimal: bool,
        stall_timeouts: u32,
    ) -> bool {
        let Some(p) = self.table.get_mut(&peer) else {
            return false;
        };
        p.failures += 1;
        p.rate.update(0.0, 0);
        p.expired.push_back((id, sent_at));
        if p.expired.len() > EXPIRED_MEMORY {
            p.expired.pop_front();
        }
        let same_silence = p.counted_timeout_at.is_some_and(|at| sent_at < at);
        if minimal && !same_silence {
            p.counted_timeout_at = Some(now);
            p.timeouts_in_row += 1;
            p.timeouts_in_row >= stall_timeouts
        } else {
            false
        }
    }

    /// An answer to request `id` arrived at `now` after the request timed out. If it was the
    /// peer's, it is forgotten (one answer per request) and the round trip it took is folded
    /// into the peer's estimates, so that its next requests wait long enough; returns true.
    /// False if `id` is not a request of the peer's that timed out recently.
    pub fn answered_late(&mut self, peer: PeerId, id: u64, now: u64) -> bool {
        let Some(p) = self.table.get_mut(&peer) else {
            return false;
        };
        let Some(index) = p.expired.iter().position(|(expired, _)| *expired == id) else {
            return false;
        };
        let (_, sent_at) = p.expired.remove(index).unwrap_or((id, now));
        p.rate.sample_rtt(now.saturating_sub(sent_at) as f64);
        // It answers, slowly: its silences so far were not a stall.
        p.timeouts_in_row = 0;
        p.counted_timeout_at = None;
        true
    }

    /// Adds `amount` to the peer's penalty. Returns the total once it reaches `limit`.
    pub fn penalise(&mut self, peer: PeerId, amount: u32, limit: u32) -> Option<u32> {
        let p = self.table.get_mut(&peer)?;
        p.penalty = p.penalty.saturating_add(amount);
        (p.penalty >= limit).then_some(p.penalty)
    }

    /// Each peer's figures for a progress report; `load` says what is asked of it.
    pub fn report(&self, max_items: usize, load: impl Fn(PeerId) -> PeerLoad) -> Vec<PeerProgress> {
        let target_rtt = self.round_trip.target_rtt_ms();
        self.table
            .iter()
            .map(|(id, p)| {
                let load = load(*id);
                PeerProgress {
                    peer: *id,
                    rtt_ms: p.rate.rtt_ms,
                    capacity: p.rate.capacity(target_rtt, max_items),
                    in_flight: load.in_flight,
                    outstanding: load.outstanding,
                    window: load.window,
                    served: p.served,
                    failures: p.failures,
                    penalty: p.penalty,
                    head_root: p.head_root,
                }
            })
            .collect()
    }
}

/// What is asked of a peer now ([`Engine::peer_load`](super::Engine::peer_load)): its progress
/// figures, and what the simulator checks against the caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLoad {
    /// Requests outstanding.
    pub in_flight: usize,
    /// Items those requests ask for.
    pub outstanding: usize,
    /// Items it may have outstanding (its pipe's window).
    pub window: usize,
}
