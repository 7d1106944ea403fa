//! The sync engine: the scheduler driven by many peers, with request sizing, timeouts,
//! retries, penalties, atomic commits, root switches and progress (spec §3), sans-IO.
//!
//! ```text
//!  host                                   Engine
//!  ────                                   ──────
//!  peer connected / closed     ──▶ handle_peer_joined / handle_peer_left
//!  frame from a peer           ──▶ handle_frame(peer, bytes, now)
//!  store op finished           ──▶ handle_store_result(op id, result, now)
//!  a deadline passed           ──▶ handle_timeout(now)
//!  user: switch root, pause,   ──▶ switch_root / pause / resume / cancel
//!        resume, cancel
//!  send frame / disconnect    ◀──  poll_transmit()
//!  run store op (one at once) ◀──  poll_store_op()
//!  show progress              ◀──  poll_event()
//!  arm a timer                ◀──  poll_timeout()
//! ```
//!
//! At most one store operation is outstanding: `poll_store_op` returns `None` until the host
//! has handed back the result of the last one. Poll every output after every input.
//!
//! Verified is durable at the store's pace (DESIGN.md I7): every verified item is written
//! within one batch, complete items to the main keyspace and the rest to the staging area; a
//! batch is capped in operations and bytes and also cut by time; and requests are only sent
//! while the verified-but-unwritten items plus the items asked for stay within one batch, so
//! a slow store slows the requests down instead of letting verified data pile up in memory.
//!
//! Differences from geth, on purpose: several requests may be in flight per peer; an item no
//! peer can serve parks the sync as *stalled* instead of failing it (geth #21943) and is
//! retried when a peer joins; a timeout is not an instant drop (no drop storms, geth #15576);
//! answers to requests made for an old root are still used after a switch (geth #21260).

mod store_ops;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use thiserror::Error;

use crate::filter::KeyFilter;
use crate::hash::{DigestSet, H256};
use crate::progress::{EtaEstimator, PeerProgress, Phase, Progress, ProgressRecord, RateMeter};
use crate::rate::{PeerRate, RateConfig, RoundTrip};
use crate::scheduler::{HashedBlob, ProcessError, Scheduler, SchedulerConfig, SyncMode, Task};
use crate::store::{CommitBatch, StoreKey};
use crate::wire::{Message, WireError, MAX_HASHES_PER_REQUEST, PROTOCOL_VERSION};

use store_ops::{CommitState, Outcome, StoreOps};

/// A peer, named by the host.
pub type PeerId = u64;

/// Tunables. The defaults suit a browser syncing from a handful of WebSocket peers.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub mode: SyncMode,
    pub max_fetches_per_depth: usize,
    /// Items per request at most (geth's `MaxStateFetch`).
    pub max_items_per_request: usize,
    /// Requests one peer may have outstanding. geth allows one; with high-latency peers a
    /// few keep the pipe full (see the simulator's latency scenarios).
    pub max_in_flight_per_peer: usize,
    /// A commit batch holds at most this many payload bytes. It is also the most verified
    /// data held unwritten at once (the batch being written, the one being filled and the
    /// answers asked for, by an estimate of their size): what a crash can lose.
    pub batch_bytes: usize,
    /// The same in items (puts and deletes). This bound is exact: verified items not yet
    /// durable never exceed it.
    pub batch_items: usize,
    /// Verified items are written within this long even when no batch fills up (an idle or
    /// stalled sync flushes what it holds).
    pub batch_interval_ms: u64,
    /// Keys per store lookup operation.
    pub max_lookups_per_op: usize,
    pub rate: RateConfig,
    /// Penalty at which a peer is disconnected.
    pub disconnect_penalty: u32,
    /// Timeouts in a row, each on a request of at most two items, that make a peer useless
    /// (geth's stall rule, which drops on the first).
    pub stall_timeouts: u32,
    /// How often items that no peer could serve are tried again on every peer.
    pub unservable_retry_ms: u64,
    /// How long a connected peer has to send its Status before it is dropped, and how long
    /// after the start a sync with nothing to do is not yet called stalled (peers connect).
    pub peer_grace_ms: u64,
    /// Give up after this long stalled without progress: everything verified is written,
    /// then the sync fails with [`EngineError::Stalled`]. `None` waits for peers forever.
    pub stall_timeout_ms: Option<u64>,
    /// How often a progress event is emitted while syncing.
    pub progress_interval_ms: u64,
    /// An idle peer re-requests the items of another peer's request once that request is
    /// this many of its peer's recent round trips old (and at least `min_hedge_ms`), so a
    /// dropped or garbled answer costs a few round trips instead of a timeout.
    pub hedge_after_rtts: f64,
    pub min_hedge_ms: u64,
    /// Size of the filter of keys committed this session, used when the store had no
    /// progress record (a fresh store): lookups it rules out never reach the store. 0 turns
    /// it off. See `filter.rs`.
    pub fresh_store_filter_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: SyncMode::State,
            max_fetches_per_depth: crate::scheduler::DEFAULT_MAX_FETCHES_PER_DEPTH,
            max_items_per_request: 384,
            max_in_flight_per_peer: 4,
            batch_bytes: 1024 * 1024,
            batch_items: 8192,
            batch_interval_ms: 2_000,
            max_lookups_per_op: 4096,
            rate: RateConfig::default(),
            disconnect_penalty: 100,
            stall_timeouts: 3,
            unservable_retry_ms: 30_000,
            peer_grace_ms: 5_000,
            stall_timeout_ms: None,
            progress_interval_ms: 500,
            hedge_after_rtts: 4.0,
            min_hedge_ms: 250,
            // 4 MiB: under 1 % false "maybe" up to about 3.5 million items.
            fresh_store_filter_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Penalty for a frame that does not decode or breaks the protocol.
const PENALTY_MALFORMED: u32 = 25;
/// Penalty for an answer to a request id the peer was never sent.
const PENALTY_UNKNOWN_REQUEST: u32 = 10;
/// Penalty per blob in an answer that matches nothing asked of that peer for the current
/// root: a corrupt blob and an unrequested one look the same.
const PENALTY_FOREIGN_BLOB: u32 = 5;
/// Timed-out request ids remembered per peer, so a late answer is used, not penalised.
const EXPIRED_MEMORY: usize = 64;
/// Item size assumed for answers on their way before anything was measured: a full branch.
const INITIAL_ITEM_BYTES: u64 = 532;

/// Something to do towards a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send this frame.
    Frame { peer: PeerId, frame: Vec<u8> },
    /// Close the connection; the engine has already forgotten the peer.
    Disconnect {
        peer: PeerId,
        reason: DisconnectReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Penalty limit reached (malformed frames, garbage blobs, unknown request ids).
    Misbehaving { penalty: u32, last: String },
    /// Repeated timeouts on minimal requests: it cannot serve.
    Stalling,
    /// It speaks another protocol version.
    IncompatibleVersion { version: u64 },
    /// It sent no valid Status frame within the grace period after connecting.
    NoStatus { waited_ms: u64 },
}

/// A store operation for the host to run. At most one is outstanding at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOp {
    pub id: u64,
    pub action: StoreAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAction {
    /// Answer whether each key is in the main keyspace: `StoreResult::Lookup`, one bool per
    /// key.
    Lookup(Vec<StoreKey>),
    /// Write the batch (main keyspace puts, staging puts and deletes) and the progress record
    /// in one atomic transaction.
    Commit {
        batch: Arc<CommitBatch>,
        progress: ProgressRecord,
    },
    /// Read every entry of the staging area: `StoreResult::Staged`. Asked once, first, when a
    /// sync resumes with staged items.
    LoadStaged,
}

/// The outcome of a store operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreResult {
    Lookup(Vec<bool>),
    Committed,
    /// The staging area's entries: a node hash and the blob stored under it.
    Staged(Vec<(H256, Vec<u8>)>),
    /// Nothing was written. The engine pauses until `resume`, then retries.
    Failed(StoreFailure),
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct StoreFailure {
    pub kind: StoreFailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailureKind {
    QuotaExceeded,
    Closed,
    Blocked,
    Other,
}

/// What happened, for the host to show or act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Progress(Progress),
    /// Every item under the root is stored and the final record is written.
    Finished(Progress),
    /// No connected peer can serve `unservable` items (the first is `first`), or no peer is
    /// usable at all, and nothing else is left to do. Reported once per stall, after the
    /// peers have had time to connect.
    Stalled {
        unservable: usize,
        first: Option<H256>,
        peers: usize,
    },
    PeerDisconnected {
        peer: PeerId,
        reason: DisconnectReason,
    },
    RootSwitched {
        from: H256,
        to: H256,
    },
    /// A store write failed; nothing was half written. `resume` retries it.
    Paused(StoreFailure),
    /// Cancelled, with everything verified flushed.
    Cancelled,
    /// The sync cannot finish, and everything verified is flushed: the root commits to data
    /// that is not a valid state, or it stalled past the configured timeout.
    Failed(EngineError),
}

/// Fatal problems.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("the state under the root is invalid: {0}")]
    InvalidState(ProcessError),
    #[error("store answered op {op} with {got} results for {expected} keys")]
    LookupMismatch {
        op: u64,
        got: usize,
        expected: usize,
    },
    #[error("store answered op {op} with something else than {expected}")]
    UnexpectedResult { op: u64, expected: &'static str },
    #[error("{}", stalled_message(*.stalled_ms, *.unservable, .first, *.peers))]
    Stalled {
        stalled_ms: u64,
        unservable: usize,
        first: Option<H256>,
        peers: usize,
    },
}

fn stalled_message(
    stalled_ms: u64,
    unservable: usize,
    first: &Option<H256>,
    peers: usize,
) -> String {
    let secs = stalled_ms as f64 / 1000.0;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let connected = plural(peers, "peer", "peers");
    match first {
        Some(first) => format!(
            "stalled for {secs:.1} s: {} no connected peer can serve (the first is {first}; {connected} connected)",
            plural(unservable, "item", "items")
        ),
        None => format!("stalled for {secs:.1} s: no usable peer ({connected} connected)"),
    }
}

/// A fetch handed to a peer and not yet answered.
#[derive(Debug)]
struct Request {
    peer: PeerId,
    /// What was asked, each with the peers already known to lack it, which a failure keeps.
    tasks: Vec<Retry>,
    sent_at: u64,
    deadline: u64,
    /// The root generation it was made for.
    generation: u64,
    /// Whether its items were also asked of another peer, or it is such a copy: either way
    /// it is not copied again.
    hedged: bool,
}

/// A task waiting to be asked of (another) peer.
#[derive(Debug)]
struct Retry {
    task: Task,
    /// Peers that answered without it: they do not have it.
    lacking: Vec<PeerId>,
}

#[derive(Debug)]
struct Peer {
    head_root: Option<H256>,
    joined_at: u64,
    rate: PeerRate,
    in_flight: usize,
    served: u64,
    failures: u64,
    timeouts_in_row: u32,
    penalty: u32,
    expired: VecDeque<u64>,
}

/// Why the engine is winding down: it flushes everything verified first.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stop {
    Cancel,
    Fail(EngineError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Syncing,
    Paused {
        by_store: bool,
    },
    Done,
    /// No more requests; answers still coming are taken; ends once everything is written.
    Stopping(Stop),
    Cancelled,
    Failed,
}

/// Session counters.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    processed: u64,
    processed_bytes: u64,
    duplicate: u64,
    unexpected: u64,
    bytes_received: u64,
    /// The most verified items held unwritten at once.
    peak_unwritten: u64,
}

/// How the sync is doing at making progress.
#[derive(Clone, Copy, Debug, Default)]
struct Stall {
    /// Since when nothing could be done (no request out, no store work, items left).
    since: Option<u64>,
    /// The last time an item was verified, restored or found stored.
    last_progress_at: u64,
    /// `(processed, restored, found in store)` at that time.
    mark: (u64, u64, u64),
    /// The `Stalled` event was emitted for this stall.
    reported: bool,
}

/// The engine. See the module documentation for the flow.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    scheduler: Scheduler,
    generation: u64,
    state: State,
    started_at: u64,
    peers: BTreeMap<PeerId, Peer>,
    round_trip: RoundTrip,
    requests: BTreeMap<u64, Request>,
    deadlines: BTreeSet<(u64, u64)>,
    next_request_id: u64,
    retry: VecDeque<Retry>,
    unservable: Vec<Retry>,
    unservable_retry_at: Option<u64>,
    stall: Stall,
    store: StoreOps,
    /// The last durable progress record.
    committed: ProgressRecord,
    /// Write everything verified now (a pause); cleared once nothing is left to write.
    flush_requested: bool,
    /// Since when something has waited to be written (a verified item, or a staged one that
    /// completed and is to move to the main keyspace).
    unwritten_since: Option<u64>,
    /// It has waited `batch_interval_ms`: cut a batch even if it is small.
    time_cut_due: bool,
    /// The last `assign` could not send a request for lack of unwritten budget.
    budget_blocked: bool,
    /// Found in store by earlier schedulers of this session (root switches).
    skipped_before: u64,
    restored_before: u64,
    counters: Counters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_progress_at: u64,
    eta: EtaEstimator,
    meter: RateMeter,
}

impl Engine {
    /// An engine syncing `root`. `resumed` is the progress record found in the store, if any:
    /// its totals carry on, staged items are read back first, and whatever the store already
    /// holds is skipped by lookups.
    pub fn new(
        root: H256,
        config: EngineConfig,
        resumed: Option<ProgressRecord>,
        now: u64,
    ) -> Engine {
        let scheduler = Scheduler::new(root, scheduler_config(&config));
        // No record: the store is taken to be empty, so whatever it will hold, this session
        // wrote. (A store with data but no record only costs refetching that data.)
        let filter = (resumed.is_none() && config.fresh_store_filter_bytes > 0)
            .then(|| KeyFilter::new(config.fresh_store_filter_bytes));
        let load_staged = resumed.is_some_and(|r| r.staged_items > 0);
        let committed = ProgressRecord {
            root,
            complete: false,
            ..resumed.unwrap_or_default()
        };
        Engine {
            round_trip: RoundTrip::new(config.rate, now),
            config,
            scheduler,
            generation: 0,
            state: State::Syncing,
            started_at: now,
            peers: BTreeMap::new(),
            requests: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_request_id: 1,
            retry: VecDeque::new(),
            unservable: Vec::new(),
            unservable_retry_at: None,
            stall: Stall {
                last_progress_at: now,
                ..Stall::default()
            },
            store: StoreOps::new(load_staged, filter),
            committed,
            flush_requested: false,
            unwritten_since: None,
            time_cut_due: false,
            budget_blocked: false,
            skipped_before: 0,
            restored_before: 0,
            counters: Counters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_progress_at: now,
            eta: EtaEstimator::default(),
            meter: RateMeter::default(),
        }
    }

    pub fn root(&self) -> H256 {
        self.scheduler.root()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// True once finished, cancelled or failed: nothing more will happen.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Cancelled | State::Failed)
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Verified items and payload bytes that are not durable yet: in the batch being written
    /// or not written at all. Never more than `batch_items` items (DESIGN.md I7).
    pub fn unwritten(&self) -> (u64, u64) {
        let (items, bytes) = self.scheduler.unwritten();
        match self.store.commit.pending() {
            Some(commit) => (items + commit.new_items, bytes + commit.new_bytes),
            None => (items, bytes),
        }
    }

    // ── inputs ──────────────────────────────────────────────────────────────────────────

    /// A peer connected. Requests go to it once its Status frame arrives, which must come
    /// within `peer_grace_ms`.
    pub fn handle_peer_joined(&mut self, peer: PeerId, now: u64) {
        if self.peers.contains_key(&peer) {
            return;
        }
        let others: Vec<PeerRate> = self.peers.values().map(|p| p.rate).collect();
        let rate = self.round_trip.new_peer(&others);
        self.peers.insert(
            peer,
            Peer {
                head_root: None,
                joined_at: now,
                rate,
                in_flight: 0,
                served: 0,
                failures: 0,
                timeouts_in_row: 0,
                penalty: 0,
                expired: VecDeque::new(),
            },
        );
        self.drive(now);
    }

    /// A peer's connection closed. Its outstanding work goes to the others.
    pub fn handle_peer_left(&mut self, peer: PeerId, now: u64) {
        self.forget_peer(peer);
        self.drive(now);
    }

    /// A frame from a peer.
    pub fn handle_frame(&mut self, peer: PeerId, frame: &[u8], now: u64) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.counters.bytes_received += frame.len() as u64;
        match Message::decode(frame) {
            Ok(Message::Status(status)) => {
                if status.version != PROTOCOL_VERSION {
                    self.disconnect(
                        peer,
                        DisconnectReason::IncompatibleVersion {
                            version: status.version,
                        },
                    );
                } else if let Some(p) = self.peers.get_mut(&peer) {
                    let newly_usable = p.head_root.is_none();
                    p.head_root = Some(status.head_root);
                    if newly_usable {
                        // Only now can it be asked: offer it what nobody else had.
                        self.retry.extend(self.unservable.drain(..));
                    }
                }
            }
            Ok(Message::NodeData { id, blobs }) => self.on_node_data(peer, id, &blobs, now),
            Ok(Message::GetNodeData { .. }) => {
                // This engine only downloads; serving is the host's (the Node.js tool serves).
                self.penalise(
                    peer,
                    PENALTY_MALFORMED,
                    "GetNodeData sent to a syncing client".into(),
                );
            }
            Err(err) => self.penalise(peer, PENALTY_MALFORMED, malformed(&err)),
        }
        self.drive(now);
    }

    /// The result of store op `id`.
    pub fn handle_store_result(&mut self, id: u64, result: StoreResult, now: u64) {
        match self.store.on_result(id, result, self.generation) {
            Outcome::Lookup(keys, answers) => {
                for (key, present) in keys.into_iter().zip(answers) {
                    self.scheduler.handle_lookup(key, present);
                }
            }
            Outcome::Staged(entries) => {
                let (mut items, mut bytes) = (0, 0);
                for (hash, data) in entries {
                    items += 1;
                    bytes += data.len() as u64;
                    self.scheduler.add_loose(hash, data, true);
                }
                // What the staging area holds is the truth; corrupt entries leave it later.
                self.committed.staged_items = items;
                self.committed.staged_bytes = bytes;
            }
            Outcome::Committed(commit) => {
                self.committed = commit.record;
                self.meter.sample(now, self.counters.processed);
                let record = commit.record;
                if record.complete && record.root == self.root() && self.state == State::Syncing {
                    self.state = State::Done;
                    self.eta.sample(now, 1.0);
                    let progress = self.progress();
                    self.events.push_back(Event::Finished(progress));
                }
            }
            Outcome::Failed(failure) => {
                if let State::Stopping(stop) = &self.state {
                    // The store fails while winding down: what is written is whole; stop here.
                    let stop = stop.clone();
                    self.events.push_back(Event::Paused(failure));
                    self.finish_stop(stop);
                } else {
                    if matches!(self.state, State::Syncing | State::Paused { .. }) {
                        self.state = State::Paused { by_store: true };
                    }
                    self.events.push_back(Event::Paused(failure));
                }
            }
            Outcome::Fatal(err) => self.fail(err),
            Outcome::Ignored => {}
        }
        self.drive(now);
    }

    /// Deadlines that passed: request timeouts, Status grace, retries of unservable items,
    /// the time cut, the stall timeout, progress.
    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(request) = self.requests.remove(&id) {
                self.on_timeout(id, request);
            }
        }
        let grace = self.config.peer_grace_ms;
        let silent: Vec<(PeerId, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.head_root.is_none() && p.joined_at + grace <= now)
            .map(|(id, p)| (*id, now - p.joined_at))
            .collect();
        for (peer, waited_ms) in silent {
            self.disconnect(peer, DisconnectReason::NoStatus { waited_ms });
        }
        if self.unservable_retry_at.is_some_and(|at| at <= now) {
            self.unservable_retry_at = None;
            for mut parked in self.unservable.drain(..) {
                parked.lacking.clear();
                self.retry.push_back(parked);
            }
        }
        self.drive(now);
    }

    /// Syncs towards `root` instead. Everything stored stays and is skipped by lookups;
    /// everything verified for the old root is kept for the new one where it is needed, and
    /// answers still coming for the old root are used too.
    pub fn switch_root(&mut self, root: H256, now: u64) {
        let from = self.root();
        if root == from || matches!(self.state, State::Stopping(_) | State::Cancelled) {
            return;
        }
        let next = Scheduler::new(root, scheduler_config(&self.config));
        let old = std::mem::replace(&mut self.scheduler, next);
        self.skipped_before += old.stats().found_in_store;
        self.restored_before += old.stats().restored;
        old.hand_over(&mut self.scheduler);
        self.generation += 1;
        self.store.clear_lookups();
        self.retry.clear();
        self.unservable.clear();
        self.committed.root = root;
        self.committed.complete = false;
        if matches!(self.state, State::Done | State::Failed) {
            self.state = State::Syncing;
        }
        self.eta = EtaEstimator::default();
        self.events
            .push_back(Event::RootSwitched { from, to: root });
        self.drive(now);
    }

    /// Stops asking peers for more and writes everything verified; answers already coming
    /// are still taken.
    pub fn pause(&mut self, now: u64) {
        if self.state == State::Syncing {
            self.state = State::Paused { by_store: false };
            self.flush_requested = true;
        }
        self.drive(now);
    }

    /// Resumes after `pause` or a store failure. A failed write is sent again once; a write
    /// still in flight is left alone.
    pub fn resume(&mut self, now: u64) {
        if let State::Paused { .. } = self.state {
            self.state = State::Syncing;
        }
        self.drive(now);
    }

    /// Stops the sync after writing everything verified. `Event::Cancelled` follows once the
    /// last batch is written.
    pub fn cancel(&mut self, now: u64) {
        if self.is_finished() || matches!(self.state, State::Stopping(_)) {
            return;
        }
        self.state = State::Stopping(Stop::Cancel);
        self.drive(now);
    }

    // ── outputs ─────────────────────────────────────────────────────────────────────────

    /// The next frame to send or peer to disconnect.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.is_finished() {
            return None;
        }
        let mut next = self.deadlines.first().map(|(deadline, _)| *deadline);
        let mut consider = |at: Option<u64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        consider(self.unservable_retry_at);
        let grace = self.config.peer_grace_ms;
        consider(
            self.peers
                .values()
                .filter(|p| p.head_root.is_none())
                .map(|p| p.joined_at + grace)
                .min(),
        );
        if !self.time_cut_due {
            consider(
                self.unwritten_since
                    .map(|t| t + self.config.batch_interval_ms),
            );
        }
        if let Some(since) = self.stall.since {
            if !self.stall.reported {
                consider(Some(self.stall_reportable_at(since)));
            }
            if let Some(timeout) = self.config.stall_timeout_ms {
                consider(Some(self.stall.last_progress_at + timeout));
            }
        }
        if matches!(self.state, State::Syncing | State::Paused { .. }) {
            consider(Some(self.next_progress_at));
        }
        next
    }

    /// A progress report. The fraction is that of the current root: after a root switch it
    /// restarts from what the store already holds of the new root.
    pub fn progress(&self) -> Progress {
        let target_rtt = self.round_trip.target_rtt_ms();
        let stats = self.scheduler.stats();
        let stalled = self.stall.reported && self.state == State::Syncing;
        let phase = match self.state {
            State::Syncing if stalled => Phase::Stalled,
            State::Syncing | State::Stopping(_) => Phase::Syncing,
            State::Paused { .. } => Phase::Paused,
            State::Done => Phase::Done,
            State::Cancelled => Phase::Cancelled,
            State::Failed => Phase::Failed,
        };
        let fraction = if self.state == State::Done {
            1.0
        } else {
            self.scheduler
                .completed_fraction()
                .min(if self.scheduler.is_done() {
                    1.0
                } else {
                    0.999_999
                })
        };
        let eta_ms = match self.state {
            State::Done => Some(0),
            // Nobody can say when a peer that has the rest will come.
            _ if stalled => None,
            _ => self.eta.eta_ms(),
        };
        let (unwritten_items, unwritten_bytes) = self.unwritten();
        Progress {
            root: self.root(),
            phase,
            fraction,
            eta_ms,
            processed: self.counters.processed,
            restored: self.restored_before + stats.restored,
            committed: self.committed.committed_items,
            committed_bytes: self.committed.committed_bytes,
            staged: self.committed.staged_items,
            staged_bytes: self.committed.staged_bytes,
            unwritten_items,
            unwritten_bytes,
            peak_unwritten_items: self.counters.peak_unwritten,
            largest_batch_items: self.store.largest_batch.0,
            largest_batch_bytes: self.store.largest_batch.1,
            pending: self.scheduler.pending() as u64,
            duplicate: self.counters.duplicate,
            unexpected: self.counters.unexpected,
            skipped: self.skipped_before + stats.found_in_store,
            bytes_received: self.counters.bytes_received,
            requests_in_flight: self.requests.len(),
            retrying: self.retry.len(),
            unservable: self.unservable.len(),
            first_unservable: self.unservable.first().map(|r| r.task.hash),
            live_entries: self.scheduler.live_entries() + self.retry.len() + self.unservable.len(),
            items_per_sec: self.meter.per_sec(),
            peers: self
                .peers
                .iter()
                .map(|(id, p)| PeerProgress {
                    peer: *id,
                    rtt_ms: p.rate.rtt_ms,
                    capacity: p
                        .rate
                        .capacity(target_rtt, self.config.max_items_per_request),
                    in_flight: p.in_flight,
                    served: p.served,
                    failures: p.failures,
                    penalty: p.penalty,
                    head_root: p.head_root,
                })
                .collect(),
        }
    }

    // ── internals ───────────────────────────────────────────────────────────────────────

    /// Runs after every input: lookups, requests, stalls, the end of a stop, progress.
    fn drive(&mut self, now: u64) {
        if self.is_finished() {
            return;
        }
        let absent = self.store.queue_lookups(self.scheduler.take_lookups());
        for key in absent {
            self.scheduler.handle_lookup(key, false);
        }
        if self.state == State::Syncing {
            self.assign(now);
        }
        self.track_unwritten(now);
        self.track_stall(now);
        if let State::Stopping(stop) = &self.state {
            let written = !self.scheduler.has_work_to_write()
                && matches!(self.store.commit, CommitState::Idle)
                && !self.store.busy();
            if written {
                let stop = stop.clone();
                self.finish_stop(stop);
            }
        }
        if now >= self.next_progress_at && !self.is_finished() {
            self.next_progress_at = now + self.config.progress_interval_ms;
            self.meter.sample(now, self.counters.processed);
            self.eta.sample(now, self.scheduler.completed_fraction());
            let progress = self.progress();
            self.events.push_back(Event::Progress(progress));
        }
    }

    /// The time cut, the peak lag, and the end of a pause's flush.
    fn track_unwritten(&mut self, now: u64) {
        if !self.scheduler.has_work_to_write() {
            self.unwritten_since = None;
            self.time_cut_due = false;
        } else {
            let since = *self.unwritten_since.get_or_insert(now);
            self.time_cut_due = now >= since + self.config.batch_interval_ms;
        }
        self.counters.peak_unwritten = self.counters.peak_unwritten.max(self.unwritten().0);
        if self.flush_requested && !self.scheduler.has_work_to_write() {
            self.flush_requested = false;
        }
    }

    /// Notices when nothing can move, reports it once the peers have had time to connect, and
    /// gives up after `stall_timeout_ms` without progress.
    ///
    /// Stuck means: after assigning, no request is out, none is held back by the unwritten
    /// budget, no lookup or staged read can bring new work, and items are left. A stall ends
    /// with progress (an item verified, restored or found stored), not with a retry going out.
    fn track_stall(&mut self, now: u64) {
        let stats = self.scheduler.stats();
        let mark = (
            self.counters.processed,
            stats.restored,
            stats.found_in_store,
        );
        if mark != self.stall.mark {
            self.stall = Stall {
                mark,
                last_progress_at: now,
                ..Stall::default()
            };
        }
        if self.state != State::Syncing {
            return;
        }
        let stuck = self.requests.is_empty()
            && !self.budget_blocked
            && !self.store.lookups_pending()
            && !self.store.loading_staged()
            && !self.scheduler.is_done();
        if !stuck {
            if !self.stall.reported {
                self.stall.since = None;
            }
            return;
        }
        let since = *self.stall.since.get_or_insert(now);
        if !self.unservable.is_empty() && self.unservable_retry_at.is_none() {
            self.unservable_retry_at = Some(now + self.config.unservable_retry_ms);
        }
        if !self.stall.reported && now >= self.stall_reportable_at(since) {
            self.stall.reported = true;
            let peers = self.usable_peers().count();
            self.events.push_back(Event::Stalled {
                unservable: self.unservable.len(),
                first: self.unservable.first().map(|r| r.task.hash),
                peers,
            });
        }
        if let Some(timeout) = self.config.stall_timeout_ms {
            let stalled_ms = now.saturating_sub(self.stall.last_progress_at);
            if stalled_ms >= timeout {
                let err = EngineError::Stalled {
                    stalled_ms,
                    unservable: self.unservable.len(),
                    first: self.unservable.first().map(|r| r.task.hash),
                    peers: self.usable_peers().count(),
                };
                self.state = State::Stopping(Stop::Fail(err));
            }
        }
    }

    /// A stall is told only once the peers have had time to connect, and has lasted a moment.
    fn stall_reportable_at(&self, since: u64) -> u64 {
        (self.started_at + self.config.peer_grace_ms).max(since + 1_000)
    }

    fn usable_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.head_root.is_some())
            .map(|(id, _)| *id)
    }

    fn finish_stop(&mut self, stop: Stop) {
        match stop {
            Stop::Cancel => {
                self.state = State::Cancelled;
                self.events.push_back(Event::Cancelled);
            }
            Stop::Fail(err) => {
                self.state = State::Failed;
                self.events.push_back(Event::Failed(err));
            }
        }
    }

    /// Items asked of peers and not answered yet, which the unwritten budget must cover.
    fn outstanding_items(&self) -> u64 {
        self.requests.values().map(|r| r.tasks.len() as u64).sum()
    }

    /// How many more items may be asked for: verified-but-unwritten items plus those on
    /// their way stay within one batch, in items exactly and in bytes by estimate.
    fn request_budget(&self) -> usize {
        let (items, bytes) = self.unwritten();
        let outstanding = self.outstanding_items();
        let by_items = (self.config.batch_items as u64).saturating_sub(items + outstanding);
        let item_bytes = self
            .counters
            .processed_bytes
            .checked_div(self.counters.processed)
            .map_or(INITIAL_ITEM_BYTES, |b| b.max(1));
        let by_bytes = (self.config.batch_bytes as u64)
            .saturating_sub(bytes)
            .saturating_sub(outstanding * item_bytes)
            / item_bytes;
        let budget = by_items.min(by_bytes) as usize;
        if items + outstanding == 0 {
            // Items larger than a whole batch still move, one at a time.
            budget.max(1)
        } else {
            budget
        }
    }

    /// Fills idle request slots, fastest peers first, within the unwritten budget.
    fn assign(&mut self, now: u64) {
        let rates: Vec<PeerRate> = self.peers.values().map(|p| p.rate).collect();
        self.round_trip.tune(now, &rates);
        let target_rtt = self.round_trip.target_rtt_ms();
        let timeout = self.round_trip.timeout_ms().max(1);
        let max_items = self
            .config
            .max_items_per_request
            .min(MAX_HASHES_PER_REQUEST);
        let mut order: Vec<(usize, PeerId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.head_root.is_some())
            .map(|(id, p)| (p.rate.capacity(target_rtt, max_items), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut budget = self.request_budget();
        self.budget_blocked = false;
        for (capacity, peer) in order {
            while self
                .peers
                .get(&peer)
                .is_some_and(|p| p.in_flight < self.config.max_in_flight_per_peer)
            {
                let n = capacity.min(budget);
                if n == 0 {
                    // The store has to catch up before more is asked for.
                    self.budget_blocked = true;
                    return;
                }
                let mut tasks = self.fill(peer, n, now);
                let hedge = tasks.is_empty();
                if hedge {
                    tasks = self.hedge(peer, n, now);
                }
                if tasks.is_empty() {
                    // Nothing for this peer; a retry it lacks may still suit the next one.
                    break;
                }
                budget = budget.saturating_sub(tasks.len());
                self.send_request(peer, tasks, now, timeout, hedge);
            }
        }
    }

    /// Up to `n` tasks for `peer`: retries it has not refused first, then new work.
    fn fill(&mut self, peer: PeerId, n: usize, now: u64) -> Vec<Retry> {
        let mut tasks = Vec::new();
        let usable: Vec<PeerId> = self.usable_peers().collect();
        let mut keep = VecDeque::with_capacity(self.retry.len());
        while let Some(retry) = self.retry.pop_front() {
            if tasks.len() >= n {
                keep.push_back(retry);
                continue;
            }
            if !self.scheduler.is_wanted(retry.task.key()) {
                continue; // someone else delivered it meanwhile
            }
            if usable.iter().all(|p| retry.lacking.contains(p)) {
                self.unservable.push(retry);
                if self.unservable_retry_at.is_none() {
                    self.unservable_retry_at = Some(now + self.config.unservable_retry_ms);
                }
                continue;
            }
            if retry.lacking.contains(&peer) {
                keep.push_back(retry);
            } else {
                tasks.push(retry);
            }
        }
        self.retry = keep;
        if tasks.len() < n {
            let fresh = self.scheduler.missing(n - tasks.len());
            tasks.extend(fresh.into_iter().map(|task| Retry {
                task,
                lacking: Vec::new(),
            }));
        }
        tasks
    }

    /// Items of the oldest overdue request of another peer, for an idle `peer` to fetch too.
    /// Each request is hedged once; whichever answer arrives first is taken.
    fn hedge(&mut self, peer: PeerId, n: usize, now: u64) -> Vec<Retry> {
        let overdue = self
            .requests
            .iter()
            .filter(|(_, r)| r.peer != peer && !r.hedged && r.generation == self.generation)
            .filter(|(_, r)| {
                let recent = self.peers.get(&r.peer).and_then(|p| p.rate.recent_rtt_ms);
                let after = recent.map_or(f64::INFINITY, |rtt| rtt * self.config.hedge_after_rtts);
                now.saturating_sub(r.sent_at) as f64 >= after.max(self.config.min_hedge_ms as f64)
            })
            .min_by_key(|(_, r)| r.sent_at)
            .map(|(id, _)| *id);
        let Some(id) = overdue else {
            return Vec::new();
        };
        let Some(request) = self.requests.get_mut(&id) else {
            return Vec::new();
        };
        request.hedged = true;
        request
            .tasks
            .iter()
            .filter(|r| self.scheduler.is_wanted(r.task.key()))
            .take(n)
            .map(|r| Retry {
                task: r.task.clone(),
                lacking: r.lacking.clone(),
            })
            .collect()
    }

    fn send_request(
        &mut self,
        peer: PeerId,
        tasks: Vec<Retry>,
        now: u64,
        timeout: u64,
        hedged: bool,
    ) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        let hashes = tasks.iter().map(|t| t.task.hash).collect();
        self.transmits.push_back(Transmit::Frame {
            peer,
            frame: Message::GetNodeData { id, hashes }.encode(),
        });
        let deadline = now + timeout;
        self.deadlines.insert((deadline, id));
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight += 1;
        }
        self.requests.insert(
            id,
            Request {
                peer,
                tasks,
                sent_at: now,
                deadline,
                generation: self.generation,
                hedged,
            },
        );
    }

    fn on_node_data(&mut self, peer: PeerId, id: u64, blobs: &[&[u8]], now: u64) {
        let request = match self.requests.get(&id) {
            Some(r) if r.peer == peer => self.requests.remove(&id),
            _ => None,
        };
        let Some(request) = request else {
            let late = self
                .peers
                .get(&peer)
                .is_some_and(|p| p.expired.contains(&id));
            if late {
                // Answer to a request that timed out: take what is still useful, as far as the
                // unwritten budget goes (its items were not counted as on their way).
                for blob in blobs {
                    if self.request_budget() == 0 {
                        break;
                    }
                    if self.deliver(HashedBlob::new(blob.to_vec())).is_none() {
                        return;
                    }
                }
            } else {
                self.penalise(
                    peer,
                    PENALTY_UNKNOWN_REQUEST,
                    format!("answer to unknown request {id}"),
                );
            }
            return;
        };
        self.deadlines.remove(&(request.deadline, id));
        // Answers come in request order, so a cursor finds each item at once; a map is built
        // only for an answer that skips or reorders. Positions also tell a skipped item from
        // a tail cut short by the peer's response limit.
        let mut delivered = vec![false; request.tasks.len()];
        let mut positions: Option<crate::hash::DigestMap<usize>> = None;
        let mut cursor = 0;
        let mut last_served_index = None;
        let mut served = 0usize;
        let mut foreign = 0u32;
        for blob in blobs {
            let blob = HashedBlob::new(blob.to_vec());
            let hash = blob.hash();
            let index = if request
                .tasks
                .get(cursor)
                .is_some_and(|t| t.task.hash == hash)
            {
                Some(cursor)
            } else {
                positions
                    .get_or_insert_with(|| {
                        request
                            .tasks
                            .iter()
                            .enumerate()
                            .map(|(i, t)| (t.task.hash, i))
                            .collect()
                    })
                    .get(&hash)
                    .copied()
            };
            match index {
                Some(i) if !delivered[i] => {
                    if self.deliver(blob).is_none() {
                        return; // fatal: the state is invalid
                    }
                    delivered[i] = true;
                    served += 1;
                    cursor = i + 1;
                    last_served_index = Some(last_served_index.map_or(i, |l: usize| l.max(i)));
                }
                _ => {
                    // Not asked of this request: useful only within the unwritten budget, less
                    // what this answer may still deliver of its own tasks (counted until now).
                    let reserved = request.tasks.len() - served;
                    if self.request_budget() > reserved && self.deliver(blob).is_none() {
                        return;
                    }
                    if request.generation == self.generation {
                        foreign += 1;
                    }
                }
            }
        }
        let empty_answer = blobs.is_empty();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.rate
                .update(now.saturating_sub(request.sent_at) as f64, served);
            p.served += served as u64;
            p.timeouts_in_row = 0;
            if served == 0 {
                p.failures += 1;
            }
        }
        if foreign > 0 {
            self.penalise(
                peer,
                PENALTY_FOREIGN_BLOB.saturating_mul(foreign),
                format!("{foreign} blobs that were not asked for"),
            );
        }
        if request.generation != self.generation {
            return; // the old root's leftovers are not retried
        }
        let mut undelivered = Vec::new();
        for (index, mut retry) in request.tasks.into_iter().enumerate() {
            if delivered[index] {
                continue;
            }
            // An item skipped before a served one, or an empty answer: the peer lacks it.
            // Items after the last served one were likely cut by its size limit.
            let lacking = empty_answer || last_served_index.is_some_and(|last| index < last);
            if lacking && !retry.lacking.contains(&peer) {
                retry.lacking.push(peer);
            }
            undelivered.push(retry);
        }
        self.requeue(undelivered);
    }

    /// Gives a verified blob to the scheduler and counts the outcome. Returns its hash, or
    /// `None` after a fatal error.
    fn deliver(&mut self, blob: HashedBlob) -> Option<H256> {
        let hash = blob.hash();
        let len = blob.data().len() as u64;
        match self.scheduler.process(blob) {
            Ok(()) => {
                self.counters.processed += 1;
                self.counters.processed_bytes += len;
            }
            Err(ProcessError::NotRequested) => self.counters.unexpected += 1,
            Err(ProcessError::AlreadyProcessed) => self.counters.duplicate += 1,
            Err(err) => {
                self.fail(EngineError::InvalidState(err));
                return None;
            }
        }
        self.counters.peak_unwritten = self.counters.peak_unwritten.max(self.unwritten().0);
        Some(hash)
    }

    /// Puts a failed request's undelivered tasks back for another peer, except those a hedged
    /// copy for the current root still asks for: that copy puts them back if it fails too, so
    /// no task is queued twice (and no request names a hash twice). A copy made for an old
    /// root puts nothing back, so it does not count.
    fn requeue(&mut self, tasks: Vec<Retry>) {
        let generation = self.generation;
        let elsewhere: DigestSet = self
            .requests
            .values()
            .filter(|r| r.hedged && r.generation == generation)
            .flat_map(|r| r.tasks.iter().map(|t| t.task.hash))
            .collect();
        self.retry.extend(
            tasks
                .into_iter()
                .filter(|t| !elsewhere.contains(&t.task.hash)),
        );
    }

    fn on_timeout(&mut self, id: u64, request: Request) {
        let mut stalling = false;
        if let Some(p) = self.peers.get_mut(&request.peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
            p.failures += 1;
            p.rate.update(0.0, 0);
            p.expired.push_back(id);
            if p.expired.len() > EXPIRED_MEMORY {
                p.expired.pop_front();
            }
            if request.tasks.len() <= 2 {
                p.timeouts_in_row += 1;
                stalling = p.timeouts_in_row >= self.config.stall_timeouts;
            }
        }
        if request.generation == self.generation {
            self.requeue(request.tasks);
        }
        if stalling {
            self.disconnect(request.peer, DisconnectReason::Stalling);
        }
    }

    fn penalise(&mut self, peer: PeerId, amount: u32, why: String) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.penalty = p.penalty.saturating_add(amount);
        if p.penalty >= self.config.disconnect_penalty {
            let penalty = p.penalty;
            self.disconnect(peer, DisconnectReason::Misbehaving { penalty, last: why });
        }
    }

    fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        self.forget_peer(peer);
        self.transmits.push_back(Transmit::Disconnect {
            peer,
            reason: reason.clone(),
        });
        self.events
            .push_back(Event::PeerDisconnected { peer, reason });
    }

    /// Drops a peer and hands its outstanding tasks back for others.
    fn forget_peer(&mut self, peer: PeerId) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(request) = self.requests.remove(&id) {
                self.deadlines.remove(&(request.deadline, id));
                if request.generation == self.generation {
                    self.requeue(request.tasks);
                }
            }
        }
        let asked = self.requests.values_mut().flat_map(|r| r.tasks.iter_mut());
        for retry in self
            .retry
            .iter_mut()
            .chain(self.unservable.iter_mut())
            .chain(asked)
        {
            retry.lacking.retain(|p| *p != peer);
        }
    }

    /// Fatal: stop asking, write everything verified (complete subtries are valid whatever
    /// the rest holds, and staged items are verified), then report the error.
    fn fail(&mut self, err: EngineError) {
        if matches!(self.state, State::Failed | State::Stopping(Stop::Fail(_))) {
            return;
        }
        self.state = State::Stopping(Stop::Fail(err));
    }
}

fn scheduler_config(config: &EngineConfig) -> SchedulerConfig {
    SchedulerConfig {
        mode: config.mode,
        max_fetches_per_depth: config.max_fetches_per_depth,
        ..SchedulerConfig::default()
    }
}

fn malformed(err: &WireError) -> String {
    format!("malformed frame: {err}")
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::store::MemoryStore;
    use crate::synthetic::{generate, SyntheticConfig};
    use crate::walk::walk;
    use crate::wire::Status;

    /// Runs the engine against peers that answer every request at once from `source`;
    /// `garbage` peers answer with junk instead. Returns the engine and the store.
    fn run(
        source: &MemoryStore,
        root: H256,
        good: u64,
        garbage: u64,
        store: &mut MemoryStore,
    ) -> Vec<Event> {
        // Small requests, one at a time per peer, so that every peer is given work.
        let config = EngineConfig {
            max_items_per_request: 8,
            max_in_flight_per_peer: 1,
            ..EngineConfig::default()
        };
        // A store that holds data comes with its progress record, as after a crash.
        let resumed = (store.node_count() > 0).then(|| ProgressRecord {
            root,
            ..ProgressRecord::default()
        });
        let mut engine = Engine::new(root, config, resumed, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: root,
        })
        .encode();
        for peer in 0..good + garbage {
            engine.handle_peer_joined(peer, 0);
            engine.handle_frame(peer, &status, 0);
        }
        let mut events = Vec::new();
        let mut now = 0;
        for _ in 0..100_000 {
            let mut busy = false;
            while let Some(op) = engine.poll_store_op() {
                busy = true;
                let result = match &op.action {
                    StoreAction::Lookup(keys) => {
                        StoreResult::Lookup(keys.iter().map(|k| store.contains(*k)).collect())
                    }
                    StoreAction::Commit { batch, .. } => {
                        store.apply(batch);
                        StoreResult::Committed
                    }
                    StoreAction::LoadStaged => StoreResult::Staged(store.staged()),
                };
                engine.handle_store_result(op.id, result, now);
            }
            while let Some(transmit) = engine.poll_transmit() {
                busy = true;
                let Transmit::Frame { peer, frame } = transmit else {
                    continue;
                };
                let Ok(Message::GetNodeData { id, hashes }) = Message::decode(&frame) else {
                    panic!("bad request")
                };
                let blobs: Vec<Vec<u8>> = if peer >= good {
                    hashes.iter().map(|_| b"garbage".to_vec()).collect()
                } else {
                    hashes
                        .iter()
                        .filter_map(|h| {
                            source
                                .get(StoreKey::node(*h))
                                .or(source.get(StoreKey::code(*h)))
                                .map(<[u8]>::to_vec)
                        })
                        .collect()
                };
                let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
                engine.handle_frame(peer, &Message::NodeData { id, blobs: refs }.encode(), now);
            }
            while let Some(event) = engine.poll_event() {
                events.push(event);
            }
            if engine.is_finished() {
                return events;
            }
            if !busy {
                now = engine.poll_timeout().unwrap_or(now + 1000).max(now + 1);
                engine.handle_timeout(now);
            }
        }
        panic!("engine did not finish");
    }

    #[test]
    fn syncs_a_state_from_good_peers_despite_a_garbage_peer() {
        let state = generate(&SyntheticConfig::new(400, 3));
        let mut store = MemoryStore::new();
        let events = run(&state.store, state.root, 2, 1, &mut store);
        walk(state.root, SyncMode::State, &store).unwrap();
        assert_eq!(store.keys(), state.store.keys());
        let Some(Event::Finished(progress)) = events
            .iter()
            .rev()
            .find(|e| matches!(e, Event::Finished(_)))
        else {
            panic!("no Finished event");
        };
        assert_eq!(progress.fraction, 1.0);
        assert_eq!(
            progress.committed as usize,
            store.node_count() + store.code_count()
        );
        let garbage = progress.peers.iter().find(|p| p.peer == 2);
        let disconnected = events
            .iter()
            .any(|e| matches!(e, Event::PeerDisconnected { peer: 2, .. }));
        assert!(disconnected, "garbage peer kept: {garbage:?}");
    }

    #[test]
    fn cancel_flushes_items_that_complete_while_the_first_flush_is_written() {
        let state = generate(&SyntheticConfig::new(200, 9));
        let config = EngineConfig {
            // Store ops are scripted by hand here, root lookup included.
            fresh_store_filter_bytes: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(state.root, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        engine.handle_peer_joined(1, 0);
        engine.handle_frame(1, &status, 0);
        let mut store = MemoryStore::new();
        let mut answered = 0;
        let mut cancelled = false;
        let mut pending_answers: Vec<(u64, Vec<u8>)> = Vec::new();
        for step in 0..10_000 {
            // Hold the store's answer to the first commit after cancel while peer answers land.
            while let Some(op) = engine.poll_store_op() {
                let result = match &op.action {
                    StoreAction::Lookup(keys) => {
                        StoreResult::Lookup(keys.iter().map(|k| store.contains(*k)).collect())
                    }
                    StoreAction::Commit { batch, .. } => {
                        store.apply(batch);
                        StoreResult::Committed
                    }
                    StoreAction::LoadStaged => StoreResult::Staged(store.staged()),
                };
                if cancelled {
                    for (peer, frame) in pending_answers.drain(..) {
                        engine.handle_frame(peer, &frame, step);
                    }
                }
                engine.handle_store_result(op.id, result, step);
            }
            while let Some(Transmit::Frame { peer, frame }) = engine.poll_transmit() {
                let Ok(crate::serve::ServeOutcome::Answer(reply)) =
                    crate::serve::answer(&frame, Default::default(), |k| state.store.get(k))
                else {
                    continue;
                };
                pending_answers.push((peer, reply));
            }
            if !cancelled && answered >= 3 {
                cancelled = true;
                engine.cancel(step);
                continue;
            }
            if !cancelled {
                for (peer, frame) in pending_answers.drain(..) {
                    engine.handle_frame(peer, &frame, step);
                    answered += 1;
                }
            }
            if std::iter::from_fn(|| engine.poll_event()).any(|e| e == Event::Cancelled) {
                // Everything complete was written: the stored part is sound.
                for key in store.keys() {
                    assert_eq!(store.get(key), state.store.get(key));
                }
                return;
            }
        }
        panic!("cancel never finished flushing");
    }

    #[test]
    fn a_fresh_store_is_asked_only_about_keys_this_session_may_have_written() {
        let state = generate(&SyntheticConfig::new(2000, 5));
        let mut store = MemoryStore::new();
        let asked = std::cell::Cell::new(0usize);
        let mut engine = Engine::new(state.root, EngineConfig::default(), None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        engine.handle_peer_joined(1, 0);
        engine.handle_frame(1, &status, 0);
        for step in 1..100_000 {
            while let Some(op) = engine.poll_store_op() {
                let result = match &op.action {
                    StoreAction::Lookup(keys) => {
                        asked.set(asked.get() + keys.len());
                        StoreResult::Lookup(keys.iter().map(|k| store.contains(*k)).collect())
                    }
                    StoreAction::Commit { batch, .. } => {
                        store.apply(batch);
                        StoreResult::Committed
                    }
                    StoreAction::LoadStaged => StoreResult::Staged(store.staged()),
                };
                engine.handle_store_result(op.id, result, step);
            }
            while let Some(Transmit::Frame { peer, frame }) = engine.poll_transmit() {
                if let Ok(crate::serve::ServeOutcome::Answer(reply)) =
                    crate::serve::answer(&frame, Default::default(), |k| state.store.get(k))
                {
                    engine.handle_frame(peer, &reply, step);
                }
            }
            while engine.poll_event().is_some() {}
            if engine.is_finished() {
                break;
            }
        }
        assert!(engine.is_done());
        assert_eq!(store.keys(), state.store.keys());
        // Shared code and storage are found in this session's writes; everything else never
        // reaches the store. Without the filter every child would be looked up.
        let items = state.store.node_count() + state.store.code_count();
        assert!(
            asked.get() < items / 20,
            "{} lookups reached the store for {items} items",
            asked.get()
        );
        assert!(engine.store.filtered as usize > items / 2);
    }

    #[test]
    fn a_peer_sending_malformed_frames_is_disconnected_at_the_penalty_limit() {
        let root = crate::hash::keccak256(b"root");
        let mut engine = Engine::new(root, EngineConfig::default(), None, 0);
        engine.handle_peer_joined(7, 0);
        for i in 0..4 {
            assert!(
                !matches!(engine.poll_transmit(), Some(Transmit::Disconnect { .. })),
                "too early at {i}"
            );
            engine.handle_frame(7, &[0x0e, 0xff, 0x00], 0);
        }
        let disconnect = std::iter::from_fn(|| engine.poll_transmit())
            .find(|t| matches!(t, Transmit::Disconnect { .. }));
        assert!(matches!(
            disconnect,
            Some(Transmit::Disconnect {
                peer: 7,
                reason: DisconnectReason::Misbehaving { penalty: 100, .. }
            })
        ));
        // Frames from a forgotten peer change nothing.
        engine.handle_frame(7, &[0x0e], 0);
        assert!(engine.progress().peers.is_empty());
    }

    #[test]
    fn an_item_one_peer_lacks_is_asked_of_the_next_peer() {
        // Found by the simulator (empty_answers seed 0): the first peer in capacity order had
        // nothing it could be given, and the others were never offered the retry.
        let state = generate(&SyntheticConfig::new(20, 9));
        let config = EngineConfig {
            max_in_flight_per_peer: 1,
            // Store ops are scripted by hand here, root lookup included.
            fresh_store_filter_bytes: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(state.root, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        for peer in [0, 1] {
            engine.handle_peer_joined(peer, 0);
            engine.handle_frame(peer, &status, 0);
        }
        let op = engine.poll_store_op().unwrap();
        engine.handle_store_result(op.id, StoreResult::Lookup(vec![false]), 0);
        let requests = |engine: &mut Engine| -> Vec<(PeerId, u64)> {
            std::iter::from_fn(|| engine.poll_transmit())
                .filter_map(|t| match t {
                    Transmit::Frame { peer, frame } => match Message::decode(&frame) {
                        Ok(Message::GetNodeData { id, .. }) => Some((peer, id)),
                        _ => None,
                    },
                    Transmit::Disconnect { .. } => None,
                })
                .collect()
        };
        // Equal capacities: peer 0 comes first and is asked for the root.
        assert_eq!(requests(&mut engine), vec![(0, 1)]);
        // It has none of it.
        let empty = Message::NodeData {
            id: 1,
            blobs: vec![],
        }
        .encode();
        engine.handle_frame(0, &empty, 10);
        let next = requests(&mut engine);
        assert_eq!(next.len(), 1, "the root was not asked of peer 1: {next:?}");
        assert_eq!(next[0].0, 1);
    }

    #[test]
    fn peers_that_lack_an_item_are_remembered_across_requests() {
        // Found by the simulator (peers_lacking_part_of_the_state seed 13): each failure
        // replaced the list of peers lacking an item with the last one, so the item went back
        // and forth between two peers that lack it and never reached the third that has it.
        let state = generate(&SyntheticConfig::new(20, 9));
        let config = EngineConfig {
            max_in_flight_per_peer: 1,
            // Store ops are scripted by hand here, root lookup included.
            fresh_store_filter_bytes: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(state.root, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        for peer in [0, 1, 2] {
            engine.handle_peer_joined(peer, 0);
            engine.handle_frame(peer, &status, 0);
        }
        let op = engine.poll_store_op().unwrap();
        engine.handle_store_result(op.id, StoreResult::Lookup(vec![false]), 0);
        let mut asked = Vec::new();
        for now in 1..=3 {
            let request = std::iter::from_fn(|| engine.poll_transmit()).find_map(|t| match t {
                Transmit::Frame { peer, frame } => match Message::decode(&frame) {
                    Ok(Message::GetNodeData { id, .. }) => Some((peer, id)),
                    _ => None,
                },
                Transmit::Disconnect { .. } => None,
            });
            let Some((peer, id)) = request else { break };
            asked.push(peer);
            if peer == 2 {
                break;
            }
            // Peers 0 and 1 do not have the root.
            let empty = Message::NodeData { id, blobs: vec![] }.encode();
            engine.handle_frame(peer, &empty, now);
        }
        assert_eq!(asked, vec![0, 1, 2]);
    }

    #[test]
    fn unservable_items_go_to_a_new_peer_as_soon_as_its_status_arrives() {
        // Found by the simulator (no_peer_can_serve_until_a_complete_peer_joins): items were
        // offered again when the peer connected, before its Status made it usable, so they
        // were parked again and waited for the unservable retry timer.
        let state = generate(&SyntheticConfig::new(20, 9));
        let config = EngineConfig {
            // Store ops are scripted by hand here, root lookup included.
            fresh_store_filter_bytes: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(state.root, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        let requests = |engine: &mut Engine| -> Vec<(PeerId, u64)> {
            std::iter::from_fn(|| engine.poll_transmit())
                .filter_map(|t| match t {
                    Transmit::Frame { peer, frame } => match Message::decode(&frame) {
                        Ok(Message::GetNodeData { id, .. }) => Some((peer, id)),
                        _ => None,
                    },
                    Transmit::Disconnect { .. } => None,
                })
                .collect()
        };
        engine.handle_peer_joined(0, 0);
        engine.handle_frame(0, &status, 0);
        let op = engine.poll_store_op().unwrap();
        engine.handle_store_result(op.id, StoreResult::Lookup(vec![false]), 0);
        assert_eq!(requests(&mut engine), vec![(0, 1)]);
        let empty = Message::NodeData {
            id: 1,
            blobs: vec![],
        }
        .encode();
        engine.handle_frame(0, &empty, 10);
        assert_eq!(engine.progress().unservable, 1);
        // A peer connects; its Status follows a round trip later.
        engine.handle_peer_joined(1, 20);
        engine.handle_frame(1, &status, 120);
        assert_eq!(requests(&mut engine), vec![(1, 2)]);
    }

    #[test]
    fn a_hedged_item_that_fails_twice_is_asked_for_once_per_request() {
        // Found by the simulator (everything_mixed seed 549): an item in a request and in its
        // hedged copy went back to the retry queue once per copy, the next request carried
        // its hash twice, and the honest peer answering both copies was disconnected for
        // sending blobs that were "not asked for".
        let state = generate(&SyntheticConfig::new(200, 9));
        let config = EngineConfig {
            max_in_flight_per_peer: 1,
            // Store ops are scripted by hand here, root lookup included.
            fresh_store_filter_bytes: 0,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(state.root, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: state.root,
        })
        .encode();
        let mut sent: Vec<(PeerId, u64, Vec<H256>)> = Vec::new();
        let drain = |engine: &mut Engine, sent: &mut Vec<(PeerId, u64, Vec<H256>)>| {
            while let Some(op) = engine.poll_store_op() {
                if let StoreAction::Lookup(keys) = &op.action {
                    let absent = vec![false; keys.len()];
                    engine.handle_store_result(op.id, StoreResult::Lookup(absent), 0);
                }
            }
            for t in std::iter::from_fn(|| engine.poll_transmit()) {
                if let Transmit::Frame { peer, frame } = t {
                    if let Ok(Message::GetNodeData { id, hashes }) = Message::decode(&frame) {
                        sent.push((peer, id, hashes));
                    }
                }
            }
        };
        let blob = |hash: H256| {
            state
                .store
                .get(StoreKey::node(hash))
                .or(state.store.get(StoreKey::code(hash)))
                .unwrap()
        };
        engine.handle_peer_joined(0, 0);
        engine.handle_frame(0, &status, 0);
        drain(&mut engine, &mut sent);
        // Peer 0 serves the root quickly, then is asked for its children.
        let root = Message::NodeData {
            id: 1,
            blobs: vec![blob(state.root)],
        }
        .encode();
        engine.handle_frame(0, &root, 10);
        drain(&mut engine, &mut sent);
        let (_, children_id, children) = sent.last().cloned().unwrap();
        assert!(children.len() > 2);
        // Peer 1 joins; once peer 0's request is overdue, peer 1 gets a hedged copy.
        engine.handle_peer_joined(1, 20);
        engine.handle_frame(1, &status, 20);
        engine.handle_timeout(400);
        drain(&mut engine, &mut sent);
        assert_eq!(
            sent.last().map(|s| (s.0, s.2.clone())),
            Some((1, children.clone()))
        );
        // Both copies fail: peer 1 goes away, peer 0 answers with the first child only.
        engine.handle_peer_left(1, 410);
        let partial = Message::NodeData {
            id: children_id,
            blobs: vec![blob(children[0])],
        }
        .encode();
        engine.handle_frame(0, &partial, 420);
        drain(&mut engine, &mut sent);
        for (peer, id, hashes) in &sent {
            let unique: std::collections::BTreeSet<&H256> = hashes.iter().collect();
            assert_eq!(
                unique.len(),
                hashes.len(),
                "request {id} to {peer} repeats hashes"
            );
        }
        assert_eq!(engine.progress().retrying, 0, "{:?}", engine.progress());
    }

    #[test]
    fn a_hedged_request_for_an_old_root_does_not_hold_back_the_new_roots_items() {
        // Found by the simulator (everything_mixed seed 56): a failed request's items were not
        // queued again because a hedged request still asked for the same hashes, but that
        // request was for the root before a switch, and its failure queues nothing.
        use crate::builder::{KeyMode, TrieBuilder};
        let (mut a, mut store) = (TrieBuilder::new(KeyMode::Plain), MemoryStore::new());
        for slot in 0..15u8 {
            for j in 0..4u8 {
                a.insert(&[slot << 4, j], &[slot; 40]);
            }
        }
        let mut b = a.clone();
        b.insert(&[0xf0, 0], &[0xff; 40]);
        let root_a = a.build(&mut |h, n| store.insert(StoreKey::node(h), n));
        let root_b = b.build(&mut |h, n| store.insert(StoreKey::node(h), n));
        let config = EngineConfig {
            mode: SyncMode::Trie,
            max_in_flight_per_peer: 2,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(root_a, config, None, 0);
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: root_a,
        })
        .encode();
        let mut sent: Vec<(PeerId, u64, Vec<H256>)> = Vec::new();
        let drain = |engine: &mut Engine, sent: &mut Vec<(PeerId, u64, Vec<H256>)>| {
            while let Some(op) = engine.poll_store_op() {
                if let StoreAction::Lookup(keys) = &op.action {
                    let absent = vec![false; keys.len()];
                    engine.handle_store_result(op.id, StoreResult::Lookup(absent), 0);
                }
            }
            for t in std::iter::from_fn(|| engine.poll_transmit()) {
                if let Transmit::Frame { peer, frame } = t {
                    if let Ok(Message::GetNodeData { id, hashes }) = Message::decode(&frame) {
                        sent.push((peer, id, hashes));
                    }
                }
            }
        };
        let answer = |id: u64, hashes: &[H256]| {
            let blobs: Vec<&[u8]> = hashes
                .iter()
                .map(|h| store.get(StoreKey::node(*h)).unwrap())
                .collect();
            Message::NodeData { id, blobs }.encode()
        };
        engine.handle_peer_joined(0, 0);
        engine.handle_frame(0, &status, 0);
        drain(&mut engine, &mut sent);
        engine.handle_frame(0, &answer(1, &[root_a]), 10);
        drain(&mut engine, &mut sent);
        let old_children = sent.last().unwrap().2.clone();
        assert_eq!(old_children.len(), 15);
        // Peer 1 hedges peer 0's overdue request for A's children.
        engine.handle_peer_joined(1, 20);
        engine.handle_frame(1, &status, 20);
        engine.handle_timeout(400);
        drain(&mut engine, &mut sent);
        assert_eq!(sent.last().map(|s| s.0), Some(1));
        // The root moves to B, which shares those children; peer 0 serves B's root.
        engine.switch_root(root_b, 410);
        drain(&mut engine, &mut sent);
        let (peer, id, hashes) = sent.last().cloned().unwrap();
        assert_eq!((peer, hashes.clone()), (0, vec![root_b]));
        engine.handle_frame(0, &answer(id, &hashes), 420);
        drain(&mut engine, &mut sent);
        let (first, id, new_children) = sent.last().cloned().unwrap();
        assert_eq!(new_children.len(), 16);
        // That peer has none of them: every one must go to the other, shared or not.
        let empty = Message::NodeData { id, blobs: vec![] }.encode();
        engine.handle_frame(first, &empty, 430);
        drain(&mut engine, &mut sent);
        let (peer, _, asked) = sent.last().cloned().unwrap();
        assert_eq!(peer, 1 - first);
        assert_eq!(asked.len(), 16, "{:?}", engine.progress());
    }

    #[test]
    fn a_store_that_holds_the_root_finishes_without_fetching() {
        let state = generate(&SyntheticConfig::new(50, 4));
        let mut store = state.store.clone();
        let events = run(&state.store, state.root, 1, 0, &mut store);
        let finished = events
            .iter()
            .find_map(|e| match e {
                Event::Finished(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(finished.processed, 0);
        assert_eq!(finished.skipped, 1);
    }
}

/// Durability, backpressure, the commit state machine and stalls (DESIGN.md I7).
#[cfg(test)]
mod durability_tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::store::{ItemKind, MemoryStore};
    use crate::synthetic::{generate, SyntheticConfig};
    use crate::wire::Status;

    /// The engine between peers that answer from `source` and a memory store, driven by hand.
    struct Net {
        engine: Engine,
        source: MemoryStore,
        store: MemoryStore,
        /// Items peers leave out of every answer.
        withheld: Vec<StoreKey>,
        now: u64,
        events: Vec<Event>,
        /// Commit batches the store wrote, in order.
        written: Vec<Arc<CommitBatch>>,
    }

    impl Net {
        fn new(source: MemoryStore, root: H256, config: EngineConfig) -> Net {
            Net {
                engine: Engine::new(root, config, None, 0),
                source,
                store: MemoryStore::new(),
                withheld: Vec::new(),
                now: 0,
                events: Vec::new(),
                written: Vec::new(),
            }
        }

        fn status(&self) -> Vec<u8> {
            Message::Status(Status {
                version: PROTOCOL_VERSION,
                network_id: 1,
                head_root: self.engine.root(),
            })
            .encode()
        }

        fn join(&mut self, peer: PeerId) {
            let status = self.status();
            self.engine.handle_peer_joined(peer, self.now);
            self.engine.handle_frame(peer, &status, self.now);
        }

        /// Runs store op `op` against the store and hands the result back.
        fn run(&mut self, op: StoreOp) {
            let result = match &op.action {
                StoreAction::Lookup(keys) => {
                    StoreResult::Lookup(keys.iter().map(|k| self.store.contains(*k)).collect())
                }
                StoreAction::Commit { batch, .. } => {
                    self.store.apply(batch);
                    self.written.push(Arc::clone(batch));
                    StoreResult::Committed
                }
                StoreAction::LoadStaged => StoreResult::Staged(self.store.staged()),
            };
            self.engine.handle_store_result(op.id, result, self.now);
        }

        /// Answers every request sent so far from the source, less the withheld items.
        fn answer_all(&mut self) -> bool {
            let mut any = false;
            while let Some(transmit) = self.engine.poll_transmit() {
                let Transmit::Frame { peer, frame } = transmit else {
                    continue;
                };
                any = true;
                let Ok(Message::GetNodeData { id, hashes }) = Message::decode(&frame) else {
                    panic!("not a request");
                };
                let blobs: Vec<&[u8]> = hashes
                    .iter()
                    .filter(|h| !self.withheld.iter().any(|k| k.hash == **h))
                    .filter_map(|h| {
                        self.source
                            .get(StoreKey::node(*h))
                            .or(self.source.get(StoreKey::code(*h)))
                    })
                    .collect();
                let reply = Message::NodeData { id, blobs }.encode();
                self.engine.handle_frame(peer, &reply, self.now);
            }
            any
        }

        fn collect_events(&mut self) {
            while let Some(event) = self.engine.poll_event() {
                self.events.push(event);
            }
        }

        /// Store ops, answers and timers until the engine is finished or `until` (virtual ms)
        /// has passed; `hold` decides which store ops to hand back instead of running.
        fn drive_until(
            &mut self,
            until: u64,
            hold: &mut dyn FnMut(&StoreOp) -> bool,
        ) -> Option<StoreOp> {
            for _ in 0..1_000_000 {
                if let Some(op) = self.engine.poll_store_op() {
                    if hold(&op) {
                        return Some(op);
                    }
                    self.run(op);
                    continue;
                }
                let answered = self.answer_all();
                self.collect_events();
                if self.engine.is_finished() || self.now > until {
                    return None;
                }
                if !answered {
                    let next = self
                        .engine
                        .poll_timeout()
                        .unwrap_or(self.now + 1_000)
                        .max(self.now + 1);
                    if next > until {
                        return None;
                    }
                    self.now = next;
                    self.engine.handle_timeout(self.now);
                }
            }
            panic!("the engine neither finished nor went idle");
        }

        fn drive(&mut self) {
            self.drive_until(u64::MAX, &mut |_| false);
        }
    }

    fn small_batches() -> EngineConfig {
        EngineConfig {
            batch_items: 64,
            batch_bytes: 8 * 1024,
            ..EngineConfig::default()
        }
    }

    fn is_commit(op: &StoreOp) -> bool {
        matches!(op.action, StoreAction::Commit { .. })
    }

    #[test]
    fn resume_while_a_commit_is_in_flight_writes_the_batch_once() {
        let state = generate(&SyntheticConfig::new(300, 9));
        let mut net = Net::new(state.store, state.root, small_batches());
        net.join(1);
        let mut commits = 0;
        let op = net
            .drive_until(u64::MAX, &mut |op| {
                is_commit(op) && {
                    commits += 1;
                    commits == 3
                }
            })
            .expect("a third commit");
        // The host is writing it; the user pauses and resumes, twice.
        for _ in 0..2 {
            net.engine.pause(net.now);
            net.engine.resume(net.now);
            assert_eq!(
                net.engine.poll_store_op(),
                None,
                "a second op while one is out"
            );
        }
        net.run(op);
        net.drive();
        assert!(net.engine.is_done());
        for (i, a) in net.written.iter().enumerate() {
            for b in &net.written[i + 1..] {
                assert!(!Arc::ptr_eq(a, b), "a batch was written twice");
            }
        }
        assert_eq!(net.store.keys(), net.source.keys());
        assert_eq!(net.store.staged_count(), 0);
    }

    #[test]
    fn a_failed_commit_is_sent_again_once_on_resume_and_only_then() {
        let state = generate(&SyntheticConfig::new(300, 9));
        let mut net = Net::new(state.store, state.root, small_batches());
        net.join(1);
        let op = net.drive_until(u64::MAX, &mut is_commit).expect("a commit");
        let StoreAction::Commit { batch, .. } = &op.action else {
            unreachable!()
        };
        let batch = Arc::clone(batch);
        let unwritten = net.engine.unwritten();
        let failure = StoreFailure {
            kind: StoreFailureKind::QuotaExceeded,
            message: "full".into(),
        };
        net.engine
            .handle_store_result(op.id, StoreResult::Failed(failure.clone()), net.now);
        net.collect_events();
        assert!(net.events.contains(&Event::Paused(failure)));
        // Paused by the store: nothing is retried on its own, nothing is lost.
        assert_eq!(net.engine.poll_store_op(), None);
        assert_eq!(net.engine.unwritten(), unwritten);
        net.engine.resume(net.now);
        let again = net.engine.poll_store_op().expect("the failed batch again");
        let StoreAction::Commit { batch: resent, .. } = &again.action else {
            panic!("{again:?} is not the commit")
        };
        assert!(Arc::ptr_eq(&batch, resent), "not the same batch");
        net.engine.resume(net.now);
        assert_eq!(net.engine.poll_store_op(), None, "sent twice");
        net.run(again);
        net.drive();
        assert!(net.engine.is_done());
        assert_eq!(net.store.keys(), net.source.keys());
    }

    #[test]
    fn unwritten_items_never_exceed_one_batch_with_a_slow_store() {
        let state = generate(&SyntheticConfig::new(1_000, 4));
        let config = EngineConfig {
            batch_items: 200,
            ..EngineConfig::default()
        };
        let mut net = Net::new(state.store, state.root, config);
        for peer in 1..=3 {
            net.join(peer);
        }
        // The store answers one op per round of answers: peers are faster than it.
        let mut peak = 0;
        for _ in 0..100_000 {
            net.answer_all();
            peak = peak.max(net.engine.unwritten().0);
            assert!(net.engine.unwritten().0 <= 200);
            if let Some(op) = net.engine.poll_store_op() {
                net.run(op);
            }
            net.collect_events();
            if net.engine.is_finished() {
                break;
            }
        }
        assert!(net.engine.is_done());
        assert!(peak > 100, "the bound was never approached ({peak})");
        let largest = net
            .written
            .iter()
            .map(|b| b.operations())
            .max()
            .unwrap_or(0);
        assert!(largest <= 200, "a batch of {largest} operations");
    }

    #[test]
    fn a_stall_past_the_timeout_writes_everything_then_fails_naming_the_first_unservable_item() {
        let state = generate(&SyntheticConfig::new(300, 2));
        let leaf = *state
            .store
            .keys()
            .iter()
            .find(|k| k.hash != state.root && k.kind == ItemKind::Node)
            .expect("a node");
        let config = EngineConfig {
            stall_timeout_ms: Some(20_000),
            ..EngineConfig::default()
        };
        let mut net = Net::new(state.store, state.root, config);
        net.withheld.push(leaf);
        net.join(1);
        net.drive();
        assert!(net.engine.is_finished() && !net.engine.is_done());
        let stalled = net
            .events
            .iter()
            .position(|e| matches!(e, Event::Stalled { first: Some(h), .. } if *h == leaf.hash))
            .expect("a Stalled event naming the item");
        let Some(Event::Failed(EngineError::Stalled {
            first, stalled_ms, ..
        })) = net.events.last()
        else {
            panic!("ended with {:?}", net.events.last());
        };
        assert_eq!(*first, Some(leaf.hash));
        assert!(*stalled_ms >= 20_000);
        assert!(stalled < net.events.len() - 1);
        // Everything verified is durable: nothing is left in memory.
        assert_eq!(net.engine.unwritten(), (0, 0));
        let fetched = net.engine.progress().processed;
        assert_eq!(
            net.store.node_count() + net.store.code_count() + net.store.staged_count(),
            fetched as usize
        );
    }

    #[test]
    fn a_peer_that_sends_no_status_is_dropped_after_the_grace_period() {
        let state = generate(&SyntheticConfig::new(10, 1));
        let mut net = Net::new(state.store, state.root, EngineConfig::default());
        net.engine.handle_peer_joined(7, 0);
        net.engine.handle_timeout(4_999);
        assert_eq!(net.engine.poll_transmit(), None);
        assert_eq!(net.engine.poll_timeout(), Some(5_000));
        net.engine.handle_timeout(5_000);
        assert_eq!(
            net.engine.poll_transmit(),
            Some(Transmit::Disconnect {
                peer: 7,
                reason: DisconnectReason::NoStatus { waited_ms: 5_000 }
            })
        );
    }

    #[test]
    fn no_stall_is_reported_before_the_peers_have_had_time_to_connect() {
        let state = generate(&SyntheticConfig::new(10, 1));
        let mut net = Net::new(state.store, state.root, EngineConfig::default());
        net.drive_until(4_900, &mut |_| false);
        assert!(
            !net.events
                .iter()
                .any(|e| matches!(e, Event::Stalled { .. })),
            "{:?}",
            net.events
        );
        assert!(net
            .events
            .iter()
            .all(|e| !matches!(e, Event::Progress(p) if p.phase == Phase::Stalled)));
        net.drive_until(6_000, &mut |_| false);
        assert!(net.events.contains(&Event::Stalled {
            unservable: 0,
            first: None,
            peers: 0
        }));
        assert_eq!(net.engine.progress().phase, Phase::Stalled);
        assert_eq!(net.engine.progress().eta_ms, None);
    }

    #[test]
    fn a_resumed_sync_takes_staged_items_back_instead_of_fetching_them() {
        let state = generate(&SyntheticConfig::new(400, 6));
        let mut net = Net::new(state.store.clone(), state.root, small_batches());
        net.join(1);
        // Run until a few batches landed, then "crash": the engine and its memory are gone.
        let mut commits = 0;
        let held = net.drive_until(u64::MAX, &mut |op| {
            is_commit(op) && {
                commits += 1;
                commits == 6
            }
        });
        assert!(held.is_some());
        let staged = net.store.staged_count();
        assert!(staged > 0, "nothing was staged");
        let record = net.written.last().map(|_| net.engine.committed);
        let mut store = std::mem::take(&mut net.store);
        let durable: Vec<H256> = store
            .keys()
            .iter()
            .map(|k| k.hash)
            .chain(store.staged().into_iter().map(|(h, _)| h))
            .collect();
        // Corrupt one staged entry: it must be dropped and fetched again, not used.
        let (bad, _) = store.staged()[0].clone();
        store.stage(bad, b"not the node".to_vec());
        let mut resumed = Net {
            engine: Engine::new(state.root, small_batches(), record, net.now),
            source: state.store,
            store,
            withheld: Vec::new(),
            now: net.now,
            events: Vec::new(),
            written: Vec::new(),
        };
        resumed.join(1);
        let mut asked = Vec::new();
        for _ in 0..1_000_000 {
            if let Some(op) = resumed.engine.poll_store_op() {
                resumed.run(op);
                continue;
            }
            let frames: Vec<Transmit> =
                std::iter::from_fn(|| resumed.engine.poll_transmit()).collect();
            for transmit in &frames {
                if let Transmit::Frame { frame, .. } = transmit {
                    if let Ok(Message::GetNodeData { hashes, .. }) = Message::decode(frame) {
                        asked.extend(hashes);
                    }
                }
            }
            for transmit in frames {
                let Transmit::Frame { peer, frame } = transmit else {
                    continue;
                };
                let Ok(Message::GetNodeData { id, hashes }) = Message::decode(&frame) else {
                    continue;
                };
                let blobs: Vec<&[u8]> = hashes
                    .iter()
                    .filter_map(|h| {
                        resumed
                            .source
                            .get(StoreKey::node(*h))
                            .or(resumed.source.get(StoreKey::code(*h)))
                    })
                    .collect();
                let reply = Message::NodeData { id, blobs }.encode();
                resumed.engine.handle_frame(peer, &reply, resumed.now);
            }
            resumed.collect_events();
            if resumed.engine.is_finished() {
                break;
            }
            resumed.now += 1;
            resumed.engine.handle_timeout(resumed.now);
        }
        assert!(resumed.engine.is_done());
        let progress = resumed.engine.progress();
        assert_eq!(progress.restored as usize, staged - 1, "{progress:?}");
        assert!(
            asked.contains(&bad),
            "the corrupt staged item was not fetched"
        );
        let refetched: Vec<&H256> = asked
            .iter()
            .filter(|h| **h != bad && durable.contains(h))
            .collect();
        assert!(refetched.is_empty(), "fetched again: {refetched:?}");
        assert_eq!(resumed.store.keys(), resumed.source.keys());
        assert_eq!(resumed.store.staged_count(), 0);
    }
}
