//! The one test harness of the engine, after quinn-proto's `Pair`: the engine between
//! in-process peers that answer from a source state and a store that runs its operations at
//! once, on a virtual clock that jumps to the engine's next timer whenever nothing else
//! happens. Engine unit tests and `bench-native` drive it; the network simulator
//! (`tests/src/sim`) is the one with latency, bandwidth and faults.
//!
//! ```text
//!   step(): store ops ──▶ Engine::handle_store_result
//!           requests  ──▶ peers (honest, garbage, silent, or a custom server)
//!                           └──▶ Engine::handle_frame
//!           events    ──▶ kept in `events`
//!   idle: now = poll_timeout ──▶ Engine::handle_timeout
//! ```
//!
//! Compiled for core's own tests, and for other crates with the `testnet` feature.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::hash::H256;
use crate::progress::ProgressRecord;
use crate::serve::{self, ServeLimits};
use crate::store::{CommitBatch, MemoryStore, StoreKey};
use crate::wire::{Message, Status, PROTOCOL_VERSION};

use super::{Engine, EngineConfig, Event, PeerId, StoreAction, StoreOp, StoreResult, Transmit};

/// Steps `drive` takes before it calls the engine livelocked.
pub const MAX_STEPS: u64 = 1_000_000;

/// How a peer answers the requests it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// Serves what the source holds (less the withheld items), with geth's serving limits.
    Honest,
    /// Answers every hash with junk.
    Garbage,
    /// Never answers.
    Silent,
}

/// The store beside the engine.
#[derive(Debug)]
pub enum TestStore {
    /// A memory store: lookups see what was committed, commits are applied and kept.
    Memory(MemoryStore),
    /// Finds nothing and keeps nothing: only the engine's own work is left (the benchmarks).
    Discard,
}

/// A GetNodeData the engine sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentRequest {
    pub peer: PeerId,
    pub id: u64,
    pub hashes: Vec<H256>,
}

/// How fast the world around the engine moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Requests answered per step (`usize::MAX`: every one sent, including those sent while
    /// answering).
    pub answers_per_step: usize,
    /// Virtual milliseconds each step takes.
    pub ms_per_step: u64,
}

impl Pace {
    /// Everything at once, no time passing but to reach a timer.
    pub const INSTANT: Pace = Pace {
        answers_per_step: usize::MAX,
        ms_per_step: 0,
    };
}

/// A server for every peer instead of the built-in kinds: the frame the engine sent, and
/// the answer to deliver, if any.
pub type Server<'s> = Box<dyn FnMut(PeerId, &[u8]) -> Option<Vec<u8>> + 's>;

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing: no store operation, no request to answer.
    Idle,
    Busy,
    /// `hold` kept this store operation back; the host may run it later with `run_op`.
    Held(StoreOp),
}

/// The engine could not finish within the step bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Livelock {
    pub steps: u64,
    pub now: u64,
}

/// The engine, its peers and its store.
pub struct TestNet<'s> {
    pub engine: Engine,
    /// Virtual time, in milliseconds.
    pub now: u64,
    pub source: &'s MemoryStore,
    pub store: TestStore,
    peers: BTreeMap<PeerId, PeerKind>,
    server: Option<Server<'s>>,
    /// Items no honest peer serves.
    pub withheld: Vec<StoreKey>,
    pub pace: Pace,
    /// Events polled so far (unless `keep_events` is off).
    pub events: Vec<Event>,
    pub keep_events: bool,
    /// Commit batches written, in order (memory store only).
    pub written: Vec<Arc<CommitBatch>>,
    /// Keys the store was asked about.
    pub looked_up: usize,
    /// Every request sent, when `log_requests` is on.
    pub requests: Vec<SentRequest>,
    pub log_requests: bool,
}

impl<'s> TestNet<'s> {
    /// A fresh sync of `root` at time 0 into an empty memory store, no peers yet.
    pub fn new(source: &'s MemoryStore, root: H256, config: EngineConfig) -> TestNet<'s> {
        TestNet::resume(source, root, config, MemoryStore::new(), None, 0)
    }

    /// A sync of `root` at `now` into `store`, resumed from `record` (as after a crash).
    pub fn resume(
        source: &'s MemoryStore,
        root: H256,
        config: EngineConfig,
        store: MemoryStore,
        record: Option<ProgressRecord>,
        now: u64,
    ) -> TestNet<'s> {
        TestNet {
            engine: Engine::new(root, config, record, now),
            now,
            source,
            store: TestStore::Memory(store),
            peers: BTreeMap::new(),
            server: None,
            withheld: Vec::new(),
            pace: Pace::INSTANT,
            events: Vec::new(),
            keep_events: true,
            written: Vec::new(),
            looked_up: 0,
            requests: Vec::new(),
            log_requests: false,
        }
    }

    /// The memory store. Panics for a discarding one.
    pub fn memory(&self) -> &MemoryStore {
        match &self.store {
            TestStore::Memory(store) => store,
            TestStore::Discard => panic!("the store discards everything"),
        }
    }

    /// A Status frame announcing `head_root`.
    pub fn status(head_root: H256) -> Vec<u8> {
        Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root,
        })
        .encode()
    }

    /// An honest peer connects and sends its Status.
    pub fn join(&mut self, peer: PeerId) {
        self.join_as(peer, PeerKind::Honest);
    }

    /// A peer of `kind` connects and sends its Status (a silent one too: it only never
    /// answers requests).
    pub fn join_as(&mut self, peer: PeerId, kind: PeerKind) {
        self.connect(peer, kind);
        let status = TestNet::status(self.engine.root());
        self.engine.handle_frame(peer, &status, self.now);
    }

    /// A peer of `kind` connects and sends nothing yet.
    pub fn connect(&mut self, peer: PeerId, kind: PeerKind) {
        self.peers.insert(peer, kind);
        self.engine.handle_peer_joined(peer, self.now);
    }

    /// Every peer is answered by `server` instead of its kind.
    pub fn set_server(&mut self, server: Server<'s>) {
        self.server = Some(server);
    }

    /// Runs store op `op` against the store and hands the result back, having let go of
    /// the op as a host does once it is done with it.
    pub fn run_op(&mut self, op: StoreOp) {
        let StoreOp { id, action } = op;
        let result = match (&action, &mut self.store) {
            (StoreAction::Lookup(keys), store) => {
                self.looked_up += keys.len();
                StoreResult::Lookup(match store {
                    TestStore::Memory(store) => keys.iter().map(|k| store.contains(*k)).collect(),
                    TestStore::Discard => vec![false; keys.len()],
                })
            }
            (StoreAction::Commit { batch, .. }, TestStore::Memory(store)) => {
                store.apply(batch);
                self.written.push(Arc::clone(batch));
                StoreResult::Committed
            }
            (StoreAction::Commit { .. }, TestStore::Discard) => StoreResult::Committed,
            (StoreAction::LoadStaged, TestStore::Memory(store)) => {
                StoreResult::Staged(store.staged())
            }
            (StoreAction::LoadStaged, TestStore::Discard) => StoreResult::Staged(Vec::new()),
        };
        drop(action);
        self.engine.handle_store_result(id, result, self.now);
    }

    /// Runs every store operation the engine hands out, unless `hold` keeps one back.
    fn run_ops(&mut self, hold: &mut dyn FnMut(&StoreOp) -> bool) -> Step {
        let mut step = Step::Idle;
        while let Some(op) = self.engine.poll_store_op() {
            if hold(&op) {
                return Step::Held(op);
            }
            self.run_op(op);
            step = Step::Busy;
        }
        step
    }

    /// Runs every store operation the engine hands out. False if there was none.
    pub fn run_store_ops(&mut self) -> bool {
        self.run_ops(&mut |_| false) == Step::Busy
    }

    /// Drains the engine's transmits: the requests it sent (disconnects forget the peer).
    pub fn take_requests(&mut self) -> Vec<SentRequest> {
        std::iter::from_fn(|| self.next_frame())
            .filter_map(|(peer, frame)| decode_request(peer, &frame))
            .collect()
    }

    /// The next frame the engine sends, logged if asked; a disconnect forgets the peer.
    fn next_frame(&mut self) -> Option<(PeerId, Vec<u8>)> {
        loop {
            match self.engine.poll_transmit()? {
                Transmit::Frame { peer, frame } => {
                    if self.log_requests {
                        self.requests.extend(decode_request(peer, &frame));
                    }
                    return Some((peer, frame));
                }
                Transmit::Disconnect { peer, .. } => {
                    self.peers.remove(&peer);
                }
            }
        }
    }

    /// The honest answer to `request`: what the source holds of it, less the withheld items.
    pub fn honest_answer(&self, request: &SentRequest) -> Vec<u8> {
        let withheld = &self.withheld;
        let blobs = serve::select(&request.hashes, ServeLimits::default(), |key| {
            if withheld.iter().any(|w| w.hash == key.hash) {
                None
            } else {
                self.source.get(key)
            }
        });
        Message::NodeData {
            id: request.id,
            blobs,
        }
        .encode()
    }

    /// The NodeData frame answering request `id` with `blobs`.
    pub fn answer_frame(id: u64, blobs: Vec<&[u8]>) -> Vec<u8> {
        Message::NodeData { id, blobs }.encode()
    }

    /// Delivers `frame` from `peer` to the engine.
    pub fn deliver(&mut self, peer: PeerId, frame: &[u8]) {
        self.engine.handle_frame(peer, frame, self.now);
    }

    /// Answers one request the engine sent, if any (by the peer's kind or the server).
    /// True if there was one.
    pub fn answer_one(&mut self) -> bool {
        let Some((peer, frame)) = self.next_frame() else {
            return false;
        };
        let reply = if let Some(server) = &mut self.server {
            server(peer, &frame)
        } else {
            let kind = self.peers.get(&peer).copied();
            decode_request(peer, &frame).and_then(|request| match kind {
                Some(PeerKind::Honest) => Some(self.honest_answer(&request)),
                Some(PeerKind::Garbage) => {
                    let junk = vec![&b"garbage"[..]; request.hashes.len()];
                    Some(TestNet::answer_frame(request.id, junk))
                }
                Some(PeerKind::Silent) | None => None,
            })
        };
        if let Some(reply) = reply {
            self.deliver(peer, &reply);
        }
        true
    }

    /// Answers every request sent, including those sent in reply. False if there was none.
    pub fn answer_all(&mut self) -> bool {
        let mut any = false;
        while self.answer_one() {
            any = true;
        }
        any
    }

    /// Polls the engine's events (kept if `keep_events`).
    pub fn collect_events(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            if self.keep_events {
                self.events.push(event);
            }
        }
    }

    /// One round at the configured pace: the clock moves `ms_per_step`, every store
    /// operation runs (unless `hold` keeps one back), requests are answered, events polled.
    pub fn step_holding(&mut self, hold: &mut dyn FnMut(&StoreOp) -> bool) -> Step {
        self.now += self.pace.ms_per_step;
        let mut step = self.run_ops(hold);
        if matches!(step, Step::Held(_)) {
            return step;
        }
        let mut answered = 0;
        while answered < self.pace.answers_per_step && self.answer_one() {
            answered += 1;
            step = Step::Busy;
        }
        self.collect_events();
        step
    }

    /// `step_holding` without holding anything back.
    pub fn step(&mut self) -> Step {
        self.step_holding(&mut |_| false)
    }

    /// Moves the clock to the engine's next timer (or a second on, if none) and fires it.
    /// False if that would pass `until`.
    pub fn advance(&mut self, until: u64) -> bool {
        let next = self
            .engine
            .poll_timeout()
            .unwrap_or(self.now + 1_000)
            .max(self.now + 1);
        if next > until {
            return false;
        }
        self.now = next;
        self.engine.handle_timeout(self.now);
        true
    }

    /// Steps until the engine is finished or `until` (virtual ms) has passed, jumping to the
    /// next timer whenever a step does nothing. Returns a store operation `hold` kept back.
    /// Panics after [`MAX_STEPS`] steps: the engine neither finished nor went idle.
    pub fn drive_until(
        &mut self,
        until: u64,
        hold: &mut dyn FnMut(&StoreOp) -> bool,
    ) -> Option<StoreOp> {
        for _ in 0..MAX_STEPS {
            match self.step_holding(hold) {
                Step::Held(op) => return Some(op),
                _ if self.engine.is_finished() || self.now > until => return None,
                Step::Busy => {}
                Step::Idle => {
                    if !self.advance(until) {
                        return None;
                    }
                }
            }
        }
        panic!("the engine neither finished nor went idle in {MAX_STEPS} steps");
    }

    /// Steps until the engine is finished. Panics on a livelock.
    pub fn drive(&mut self) {
        self.drive_until(u64::MAX, &mut |_| false);
    }

    /// Steps until the engine is finished, at most `max_steps`; `each` sees the net after
    /// every step. The steps taken, or `Livelock`.
    pub fn drive_bounded(
        &mut self,
        max_steps: u64,
        mut each: impl FnMut(&TestNet<'s>),
    ) -> Result<u64, Livelock> {
        for steps in 1..=max_steps {
            let step = self.step();
            each(self);
            if self.engine.is_finished() {
                return Ok(steps);
            }
            if step == Step::Idle {
                self.advance(u64::MAX);
            }
        }
        Err(Livelock {
            steps: max_steps,
            now: self.now,
        })
    }
}

/// The GetNodeData in `frame`, if it is one.
fn decode_request(peer: PeerId, frame: &[u8]) -> Option<SentRequest> {
    match Message::decode(frame) {
        Ok(Message::GetNodeData { id, hashes }) => Some(SentRequest { peer, id, hashes }),
        _ => None,
    }
}
