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
//! batch is capped in operations and bytes and also cut by time; an answer is verified only
//! as far as the verified-but-unwritten items stay within one batch, and what does not fit is
//! held, unverified, until a commit lands (`held`). What may be asked is bounded on its own,
//! [`ASK_BATCHES`] batches of items asked or held, so the pipe is not capped by the batch while
//! a slow store still slows the requests down: held answers count against asking more.
//!
//! Differences from geth, on purpose: several requests may be in flight per peer; an item no
//! peer can serve parks the sync as *stalled* instead of failing it (geth #21943) and is
//! retried when a peer joins; a timeout is not an instant drop (no drop storms, geth #15576);
//! answers to requests made for an old root are still used after a switch (geth #21260);
//! each peer has its own timeout, 3 s until its first answer and then four of its recent
//! round trips (1 s to 60 s), where geth waits a minute for every peer at start-up; and a late
//! answer is used and measured, so a slow peer's timeout grows to fit it.
//!
//! The engine only composes owned parts, each with its own data and rules: the peer table
//! (`peers`), the requests in flight (`requests`), the items to ask again (`retry`), the
//! matching of an answer to its request (`answer`), the store operations and the commit state
//! machine (`store_ops`), the deadlines (`timer`), and progress and stalls (`progress`).

mod answer;
mod config;
mod event;
mod held;
mod peers;
mod progress;
mod requests;
mod retry;
mod store_ops;
#[cfg(any(test, feature = "testnet"))]
pub mod testnet;
#[cfg(test)]
mod tests;
mod timer;

use std::collections::VecDeque;
use std::sync::Arc;

use crate::filter::KeyFilter;
use crate::hash::H256;
use crate::progress::ProgressRecord;
use crate::scheduler::{HashedSlice, ProcessError, Scheduler};
use crate::wire::{Message, WireError, PROTOCOL_VERSION};

pub use config::{ConfigError, EngineConfig};
pub use event::{DisconnectReason, EngineError, Event, PeerId, Transmit};
pub use peers::PeerLoad;
pub use store_ops::{StoreAction, StoreFailure, StoreFailureKind, StoreOp, StoreResult};

use answer::match_answer;
use held::Held;
use peers::Peers;
use progress::{Counters, Reporting, Stall};
use requests::{Request, Requests};
use retry::{Retries, Retry};
use store_ops::{CommitState, Outcome, StoreOps};
use timer::{Timer, TimerTable};

/// Penalty for a frame that does not decode or breaks the protocol.
const PENALTY_MALFORMED: u32 = 25;
/// Penalty for an answer to a request id the peer was never sent.
const PENALTY_UNKNOWN_REQUEST: u32 = 10;
/// Penalty per blob in an answer that matches nothing asked of that peer for the current
/// root: a corrupt blob and an unrequested one look the same.
const PENALTY_FOREIGN_BLOB: u32 = 5;
/// Item size assumed for answers on their way before anything was measured: a full branch.
const INITIAL_ITEM_BYTES: u64 = 532;
/// Items asked for and answers held unverified stay within this many commit batches (in items
/// exactly, in bytes by estimate): the bound on what is on its way or waiting, apart from the
/// one batch of verified-but-unwritten items (DESIGN.md I5, I7). Eight (65,536 items, 8 MiB
/// with the default batch) so that a 300 ms round trip can carry ~200k items/s; at four the
/// cap bound syncs of large states at 300 ms.
pub const ASK_BATCHES: u64 = 8;
/// Full requests a peer may have out before its first answer measures its pipe, and at least
/// after it (the window of the earlier fixed default, 4 requests in flight).
const INITIAL_REQUESTS: usize = 4;

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

/// The engine. See the module documentation for the flow.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    scheduler: Scheduler,
    /// Bumped by every root switch; requests and lookups remember theirs.
    generation: u64,
    state: State,
    started_at: u64,
    peers: Peers,
    requests: Requests,
    /// Answers that arrived while the unwritten batch was full, held unverified.
    held: Held,
    retries: Retries,
    timers: TimerTable,
    store: StoreOps,
    /// The last durable progress record.
    committed: ProgressRecord,
    counters: Counters,
    stall: Stall,
    reporting: Reporting,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
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
        // No record: the store is taken to be empty, so whatever it will hold, this session
        // wrote. (A store with data but no record only costs refetching that data.)
        let filter = (resumed.is_none() && config.fresh_store_filter_bytes > 0)
            .then(|| KeyFilter::new(config.fresh_store_filter_bytes));
        let scheduler = Scheduler::with_filter(root, config.scheduler(), filter);
        let load_staged = resumed.is_some_and(|r| r.staged_items > 0);
        let committed = ProgressRecord {
            root,
            complete: false,
            ..resumed.unwrap_or_default()
        };
        let mut engine = Engine {
            peers: Peers::new(config.rate, now),
            config,
            scheduler,
            generation: 0,
            state: State::Syncing,
            started_at: now,
            requests: Requests::default(),
            held: Held::default(),
            retries: Retries::default(),
            timers: TimerTable::default(),
            store: StoreOps::new(load_staged),
            committed,
            counters: Counters::default(),
            stall: Stall::new(now),
            reporting: Reporting::new(now),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        engine.arm_timers();
        engine
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
        if !self.peers.join(peer, now) {
            return;
        }
        self.timers
            .set(Timer::StatusGrace(peer), now + self.config.peer_grace_ms);
        self.drive(now);
    }

    /// A peer's connection closed. Its outstanding work goes to the others.
    pub fn handle_peer_left(&mut self, peer: PeerId, now: u64) {
        self.forget_peer(peer);
        self.drive(now);
    }

    /// A frame from a peer.
    pub fn handle_frame(&mut self, peer: PeerId, frame: &[u8], now: u64) {
        if !self.peers.contains(peer) {
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
                } else if self.peers.status(peer, status.head_root) {
                    self.timers.stop(Timer::StatusGrace(peer));
                    // Only now can it be asked: offer it what nobody else had.
                    self.retries.release_unservable(false);
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
                // Written, and the host let go of it: its buffers serve the next blobs.
                if let Ok(batch) = Arc::try_unwrap(commit.batch) {
                    self.scheduler.recycle(batch, self.config.batch_bytes);
                }
                self.reporting.meter.sample(now, self.counters.processed);
                let record = commit.record;
                if record.complete && record.root == self.root() && self.state == State::Syncing {
                    self.state = State::Done;
                    self.reporting.eta.sample(now, 1.0);
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
        // The timers that act here; the others only wake the engine up, and `drive` sees
        // what is due.
        let due = self.timers.take_expired(now, |timer| {
            matches!(
                timer,
                Timer::Request(_) | Timer::StatusGrace(_) | Timer::UnservableRetry
            )
        });
        let mut silent = Vec::new();
        let mut retry_unservable = false;
        for timer in due {
            match timer {
                Timer::Request(id) => {
                    if let Some(request) = self.requests.remove(id) {
                        self.on_timeout(id, request, now);
                    }
                }
                Timer::StatusGrace(peer) => silent.push(peer),
                Timer::UnservableRetry => retry_unservable = true,
                _ => {}
            }
        }
        // Peers in id order, whatever order their deadlines fell in.
        silent.sort_unstable();
        for peer in silent {
            if let Some(joined_at) = self.peers.joined_at(peer) {
                let waited_ms = now - joined_at;
                self.disconnect(peer, DisconnectReason::NoStatus { waited_ms });
            }
        }
        if retry_unservable {
            self.retries.release_unservable(true);
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
        let filter = self.scheduler.take_filter();
        let next = Scheduler::with_filter(root, self.config.scheduler(), filter);
        let old = std::mem::replace(&mut self.scheduler, next);
        self.counters.skipped_before += old.stats().found_in_store;
        self.counters.restored_before += old.stats().restored;
        old.hand_over(&mut self.scheduler);
        self.generation += 1;
        self.store.clear_lookups();
        self.retries.clear();
        self.committed.root = root;
        self.committed.complete = false;
        if matches!(self.state, State::Done | State::Failed) {
            self.state = State::Syncing;
        }
        self.reporting.eta = Default::default();
        self.events
            .push_back(Event::RootSwitched { from, to: root });
        self.drive(now);
    }

    /// Stops asking peers for more and writes everything verified; answers already coming
    /// are still taken.
    pub fn pause(&mut self, now: u64) {
        if self.state == State::Syncing {
            self.state = State::Paused { by_store: false };
            self.store.flush_requested = true;
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

    /// The next frame to send or peer to disconnect. Poll after every input until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the host. Poll after every input until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next be called, if ever: the earliest armed timer. Poll
    /// after every input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.is_finished() {
            return None;
        }
        self.timers.next()
    }

    // ── internals ───────────────────────────────────────────────────────────────────────

    /// Runs after every input: lookups, requests, stalls, the end of a stop, progress, and
    /// the timers that follow from them.
    fn drive(&mut self, now: u64) {
        if self.is_finished() {
            self.held.clear();
            return;
        }
        self.verify_held();
        self.store.queue_lookups(self.scheduler.take_lookups());
        if self.state == State::Syncing {
            self.assign(now);
        }
        self.track_unwritten(now);
        self.track_stall(now);
        if let State::Stopping(stop) = &self.state {
            let written = !self.scheduler.has_work_to_write()
                && self.held.is_empty()
                && matches!(self.store.commit, CommitState::Idle)
                && !self.store.busy();
            if written {
                let stop = stop.clone();
                self.finish_stop(stop);
            }
        }
        self.report_progress(now);
        self.arm_timers();
    }

    /// Arms the timers that follow from the engine's state (request and Status timers are
    /// armed where those start).
    fn arm_timers(&mut self) {
        let time_cut = self.time_cut_at();
        self.timers.set_or_stop(Timer::TimeCut, time_cut);
        let stalled = self.stall.since;
        let report = stalled
            .filter(|_| !self.stall.reported)
            .map(|since| self.stall_reportable_at(since));
        self.timers.set_or_stop(Timer::StallReport, report);
        let give_up = stalled
            .and(self.config.stall_timeout_ms)
            .map(|timeout| self.stall.last_progress_at + timeout);
        self.timers.set_or_stop(Timer::StallTimeout, give_up);
        let reporting = matches!(self.state, State::Syncing | State::Paused { .. });
        let next_report = reporting.then_some(self.reporting.next_at);
        self.timers.set_or_stop(Timer::Progress, next_report);
    }

    /// Items no peer could serve are offered again after `unservable_retry_ms`, unless a
    /// retry is already due.
    fn arm_unservable_retry(&mut self, now: u64) {
        if !self.timers.is_armed(Timer::UnservableRetry) {
            self.timers.set(
                Timer::UnservableRetry,
                now + self.config.unservable_retry_ms,
            );
        }
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

    /// Items asked of peers whose answers have not arrived (nor timed out) yet.
    pub fn outstanding_items(&self) -> u64 {
        self.requests.outstanding_items()
    }

    /// What is asked of `peer` now: its requests out and their items (within
    /// `max_in_flight_per_peer` and that many full requests), and its window.
    pub fn peer_load(&self, peer: PeerId) -> PeerLoad {
        PeerLoad {
            in_flight: self.requests.in_flight(peer),
            outstanding: self.requests.outstanding_of(peer),
            window: self.window_of(peer),
        }
    }

    /// Blobs held unverified until the store catches up, and their payload bytes.
    pub fn held(&self) -> (u64, u64) {
        (self.held.items(), self.held.bytes())
    }

    /// The most blobs held unverified at once this session.
    pub fn peak_held(&self) -> u64 {
        self.held.peak_items
    }

    /// Items asked for plus blobs held stay within this (DESIGN.md I5): [`ASK_BATCHES`]
    /// batches.
    pub fn ask_cap_items(&self) -> u64 {
        ASK_BATCHES * self.config.batch_items.max(1) as u64
    }

    /// How many more items may be asked for: the items on their way plus the blobs held
    /// unverified stay within [`ASK_BATCHES`] batches, in items exactly and in bytes by
    /// estimate. Verified-but-unwritten items do not count: their bound is kept where answers
    /// are verified. A slow store fills the held answers, and at 0 the engine asks for
    /// nothing more until it catches up.
    pub fn request_budget(&self) -> usize {
        let outstanding = self.requests.outstanding_items();
        let (held_items, held_bytes) = self.held();
        let by_items = self
            .ask_cap_items()
            .saturating_sub(outstanding + held_items);
        let item_bytes = self
            .counters
            .processed_bytes
            .checked_div(self.counters.processed)
            .map_or(INITIAL_ITEM_BYTES, |b| b.max(1));
        let by_bytes = (ASK_BATCHES * self.config.batch_bytes as u64)
            .saturating_sub(held_bytes)
            .saturating_sub(outstanding * item_bytes)
            / item_bytes;
        let budget = by_items.min(by_bytes) as usize;
        if outstanding + held_items == 0 {
            // Items larger than a whole batch still move, one at a time.
            budget.max(1)
        } else {
            budget
        }
    }

    /// Whether `blob` may be verified now: the verified-but-unwritten items and bytes it adds
    /// stay within one batch (DESIGN.md I7), in items exactly. With nothing unwritten any
    /// blob fits, so an item larger than a batch still moves.
    fn has_room(&self, blob: &HashedSlice<'_>) -> bool {
        let (items, bytes) = self.unwritten();
        if items == 0 && bytes == 0 {
            return true;
        }
        let batch_items = self.config.batch_items.max(1) as u64;
        let len = blob.data().len() as u64;
        // Almost every blob adds one item; only near the bound is it worth asking the
        // scheduler whether this one counts twice (pending as code and as a node).
        let cost = if items + 2 <= batch_items {
            1
        } else {
            self.scheduler.unwritten_cost(blob.hash())
        };
        items + cost <= batch_items && bytes + len * cost <= self.config.batch_bytes as u64
    }

    /// Verifies held answers, oldest first, as far as the unwritten batch has room.
    fn verify_held(&mut self) {
        while let Some(mut answer) = self.held.take_front() {
            while let Some(blob) = answer.peek() {
                if !self.has_room(&blob) {
                    self.held.put_back(answer);
                    return;
                }
                if self.deliver(blob).is_none() {
                    // Fatal: the state is invalid, the sync fails; nothing more is verified.
                    self.held.clear();
                    return;
                }
                answer.advance();
            }
        }
    }

    /// Fills idle request slots, fastest peers first, within the unwritten budget.
    fn assign(&mut self, now: u64) {
        let order = self.peers.capacity_order(now, self.config.max_items());
        let mut budget = self.request_budget();
        self.store.budget_blocked = false;
        let cap = self.config.max_in_flight_per_peer.max(1);
        for (capacity, peer) in order {
            let window = self.window_of(peer);
            while self.peers.contains(peer) && self.requests.in_flight(peer) < cap {
                // A request is sent whole or, while the peer has others out, not yet: a
                // window's remainder would only make more, thinner requests.
                let room = window.saturating_sub(self.requests.outstanding_of(peer));
                let whole = capacity.min(budget);
                if room == 0 || (room < whole && self.requests.in_flight(peer) > 0) {
                    break;
                }
                let n = whole.min(room);
                if n == 0 {
                    // The store has to catch up before more is asked for.
                    self.store.budget_blocked = true;
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
                let app_limited = tasks.len() < n;
                self.send_request(peer, tasks, now, (hedge, app_limited));
            }
        }
    }

    /// Items `peer` may have outstanding: a few full requests before its first answer, then
    /// its pipe's window, within `max_in_flight_per_peer` full requests.
    fn window_of(&self, peer: PeerId) -> usize {
        let max_items = self.config.max_items();
        let cap = self.config.max_in_flight_per_peer.max(1);
        let initial = max_items * cap.min(INITIAL_REQUESTS);
        self.peers.window(peer, initial, initial, cap * max_items)
    }

    /// Up to `n` tasks for `peer`: retries it has not refused first, then new work.
    fn fill(&mut self, peer: PeerId, n: usize, now: u64) -> Vec<Retry> {
        let usable: Vec<PeerId> = self.peers.usable().collect();
        let scheduler = &self.scheduler;
        let (mut tasks, parked) = self
            .retries
            .take_for(peer, n, &usable, |key| scheduler.is_wanted(key));
        if parked {
            self.arm_unservable_retry(now);
        }
        if tasks.len() < n {
            let fresh = self.scheduler.missing_keys(n - tasks.len());
            tasks.extend(fresh.into_iter().map(Retry::new));
        }
        tasks
    }

    /// Items of the oldest overdue request of another peer, for an idle `peer` to fetch too.
    /// Each request is hedged once; whichever answer arrives first is taken.
    fn hedge(&mut self, peer: PeerId, n: usize, now: u64) -> Vec<Retry> {
        let (after_rtts, min_ms) = (self.config.hedge_after_rtts, self.config.min_hedge_ms);
        let peers = &self.peers;
        let overdue = self
            .requests
            .oldest_overdue(peer, self.generation, now, |other| {
                let after = peers
                    .recent_rtt_ms(other)
                    .map_or(f64::INFINITY, |rtt| rtt * after_rtts);
                after.max(min_ms as f64)
            });
        let Some(request) = overdue.and_then(|id| self.requests.get_mut(id)) else {
            return Vec::new();
        };
        request.hedged = true;
        request
            .tasks
            .iter()
            .filter(|r| self.scheduler.is_wanted(r.key))
            .take(n)
            .cloned()
            .collect()
    }

    /// Sends `tasks` to `peer` and arms the request's timeout: the peer's own
    /// (`Peers::timeout_ms`), fixed when the request is sent.
    fn send_request(
        &mut self,
        peer: PeerId,
        tasks: Vec<Retry>,
        now: u64,
        (hedged, app_limited): (bool, bool),
    ) {
        let timeout = self.peers.timeout_ms(peer);
        let (id, frame) = self.requests.send(Request {
            peer,
            tasks,
            sent_at: now,
            generation: self.generation,
            hedged,
            delivered_at_send: self.peers.delivered(peer),
            app_limited,
        });
        self.transmits.push_back(Transmit::Frame { peer, frame });
        self.timers.set(Timer::Request(id), now + timeout);
    }

    fn on_node_data(&mut self, peer: PeerId, id: u64, blobs: &[&[u8]], now: u64) {
        let Some(request) = self.requests.take_answered(peer, id) else {
            if self.peers.answered_late(peer, id, now) {
                // Answer to a request that timed out (its round trip now stretches the peer's
                // timeout): take what is still useful while the unwritten batch has room (its
                // items were asked again, so the rest is not held).
                for blob in blobs {
                    let blob = HashedSlice::new(blob);
                    if !self.held.is_empty() || !self.has_room(&blob) {
                        break;
                    }
                    if self.deliver(blob).is_none() {
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
        self.timers.stop(Timer::Request(id));
        // Every blob is hashed where it lies in the frame; only wanted ones are copied.
        let asked: Vec<H256> = request.tasks.iter().map(Retry::hash).collect();
        let hashed: Vec<HashedSlice<'_>> = blobs.iter().map(|b| HashedSlice::new(b)).collect();
        let answered: Vec<H256> = hashed.iter().map(HashedSlice::hash).collect();
        let matched = match_answer(&asked, &answered);
        // The blobs that answer this request's tasks are verified in order as far as the
        // unwritten batch has room, and the rest are held (behind any answer held already):
        // none is dropped for lack of room. A blob that answers nothing of this request is
        // useful only if there is room now, after them.
        let mut foreign = 0u32;
        let mut others = Vec::new();
        let mut fitting = self.held.is_empty();
        let mut hold = Vec::new();
        for (blob, placed) in hashed.into_iter().zip(&matched.placed) {
            if placed.is_none() {
                if request.generation == self.generation {
                    foreign += 1;
                }
                others.push(blob);
                continue;
            }
            fitting = fitting && self.has_room(&blob);
            if !fitting {
                hold.push(blob);
            } else if self.deliver(blob).is_none() {
                return; // fatal: the state is invalid
            }
        }
        if hold.is_empty() && self.held.is_empty() {
            for blob in others {
                if !self.has_room(&blob) {
                    break;
                }
                if self.deliver(blob).is_none() {
                    return;
                }
            }
        } else {
            self.held.hold(hold);
        }
        let elapsed = now.saturating_sub(request.sent_at);
        self.peers.answered(
            peer,
            (elapsed, now),
            matched.served(),
            (request.delivered_at_send, request.app_limited),
        );
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
        let mut tasks: Vec<Option<Retry>> = request.tasks.into_iter().map(Some).collect();
        let mut undelivered = Vec::with_capacity(matched.missing.len());
        for (index, lacking) in matched.missing {
            let Some(mut retry) = tasks[index].take() else {
                continue;
            };
            if lacking && !retry.lacking.contains(&peer) {
                retry.lacking.push(peer);
            }
            undelivered.push(retry);
        }
        self.requeue(undelivered);
    }

    /// Gives a verified blob to the scheduler and counts the outcome. Returns its hash, or
    /// `None` after a fatal error.
    fn deliver(&mut self, blob: HashedSlice<'_>) -> Option<H256> {
        let hash = blob.hash();
        let len = blob.data().len() as u64;
        match self.scheduler.process_slice(blob) {
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
        let elsewhere = self.requests.hedged_hashes(self.generation);
        self.retries.requeue(tasks, &elsewhere);
    }

    fn on_timeout(&mut self, id: u64, request: Request, now: u64) {
        let minimal = request.tasks.len() <= 2;
        let stalling = self.peers.timed_out(
            request.peer,
            (id, request.sent_at),
            now,
            minimal,
            self.config.stall_timeouts,
        );
        if request.generation == self.generation {
            self.requeue(request.tasks);
        }
        if stalling {
            self.disconnect(request.peer, DisconnectReason::Stalling);
        }
    }

    fn penalise(&mut self, peer: PeerId, amount: u32, why: String) {
        let limit = self.config.disconnect_penalty;
        if let Some(penalty) = self.peers.penalise(peer, amount, limit) {
            self.disconnect(peer, DisconnectReason::Misbehaving { penalty, last: why });
        }
    }

    fn disconnect(&mut self, peer: PeerId, reason: DisconnectReason) {
        if !self.peers.contains(peer) {
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
        if !self.peers.remove(peer) {
            return;
        }
        self.timers.stop(Timer::StatusGrace(peer));
        for id in self.requests.ids_of(peer) {
            if let Some(request) = self.requests.remove(id) {
                self.timers.stop(Timer::Request(id));
                if request.generation == self.generation {
                    self.requeue(request.tasks);
                }
            }
        }
        for retry in self.retries.iter_mut().chain(self.requests.tasks_mut()) {
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

fn malformed(err: &WireError) -> String {
    format!("malformed frame: {err}")
}
