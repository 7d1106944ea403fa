//! A deterministic network simulator for the sync [`Engine`], after quinn-proto's simulated
//! network: a virtual clock in milliseconds, an event queue ordered by `(time, sequence)`,
//! one seeded [`SeededRng`] for every random choice, so a seed replays exactly.
//!
//! ```text
//!        ┌──────────── event queue (time, seq) ─────────────┐
//!        │ frames to peers / to the client, store completions, │
//!        │ joins, leaves, drops, root switch                   │
//!        └──────┬────────────────────────────▲──────────────┘
//!   pop earliest│ or, if the engine's timer   │ schedule after latency
//!               ▼ is sooner, handle_timeout   │ (+ bandwidth, faults)
//!   Engine::handle_* ──▶ poll_transmit / poll_store_op / poll_event ──▶ peers, store, checks
//! ```
//!
//! After every input all engine outputs are polled. Frames travel over per-connection links
//! (FIFO, latency + jitter per message, bandwidth); peers answer GetNodeData from the source
//! with geth's serving limits, mangled by their faults; store operations run one at a time in
//! order, after a latency. When nothing is due, the clock jumps to the earlier of the next
//! event and `Engine::poll_timeout`.
//!
//! Checked on every run: each commit's items hash to their keys and equal the source's (I1),
//! each committed node's dependencies are stored already or in the same batch (I2), the
//! progress record advances by exactly the batch (I3), staging deletes name staged entries and
//! the record counts them, at every step the verified items not yet durable stay within one
//! batch (I7), no item durable at a crash is fetched again after it, the completed fraction never falls
//! within a root and session and is 1.0 when finished, no event reports failure, honest peers
//! are never disconnected as misbehaving, and the run ends in `Event::Finished` with a state
//! that walks completely, within a bound on steps and virtual time.

pub mod faults;
pub mod network;
pub mod peer;
pub mod runner;
pub mod store;
pub mod world;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use statesync_core::engine::{DisconnectReason, Engine, EngineConfig, Event, Transmit};
use statesync_core::progress::Progress;
use statesync_core::rng::SeededRng;
use statesync_core::walk::walk;
use statesync_core::wire::{Message, Status, PROTOCOL_VERSION};
use statesync_core::{keccak256, StoreKey, SyncMode, H256};

pub use faults::Faults;
pub use network::Latency;
pub use peer::{Holdings, PeerSpec, Rejoin, ServeLimits};
pub use runner::{run_seeds, seeds, Summary};
pub use store::SimStore;
pub use world::World;

use network::{EventQueue, Payload};
use peer::SimPeer;

/// When the client process dies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CrashPlan {
    #[default]
    Never,
    /// At these simulator steps.
    AtSteps(Vec<u64>),
    /// Right after the n-th commit (counted over the whole run) is durable, before the engine
    /// hears of it.
    AfterCommits(Vec<u64>),
}

/// One run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub name: String,
    pub seed: u64,
    pub engine: EngineConfig,
    pub peers: Vec<PeerSpec>,
    pub store_latency: Latency,
    pub crashes: CrashPlan,
    /// When to switch to `World::switch_to`.
    pub switch_at: Option<u64>,
    pub max_steps: u64,
    pub max_virtual_ms: u64,
    /// `Progress::live_entries` must stay at or under this (I5).
    pub live_entries_bound: Option<usize>,
}

impl SimConfig {
    /// Defaults: the engine's defaults with small batches (so that small states still commit
    /// in many batches), a 2 ms store, no crash, generous bounds.
    pub fn new(name: &str, seed: u64, peers: Vec<PeerSpec>) -> SimConfig {
        SimConfig {
            name: name.to_string(),
            seed,
            engine: EngineConfig {
                batch_bytes: 32 * 1024,
                batch_items: 256,
                ..EngineConfig::default()
            },
            peers,
            store_latency: Latency::new(2, 3),
            crashes: CrashPlan::Never,
            switch_at: None,
            max_steps: 2_000_000,
            max_virtual_ms: 4 * 3_600_000,
            live_entries_bound: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub name: String,
    pub seed: u64,
    /// Items under the final root.
    pub items: usize,
    /// The `Finished` event's progress.
    pub finished: Option<Progress>,
    pub virtual_ms: u64,
    pub steps: u64,
    /// GetNodeData frames sent, and the hashes they asked for.
    pub requests: u64,
    pub items_requested: u64,
    /// Hashes asked for by each engine session (one more after each crash).
    pub items_requested_per_session: Vec<u64>,
    /// Duplicate and unexpected items, summed over sessions.
    pub duplicate: u64,
    pub unexpected: u64,
    /// The last progress report of each session.
    pub last_progress: Vec<Option<Progress>>,
    pub crashes: u32,
    /// Peers the engine disconnected, and connections the network dropped.
    pub disconnects: u64,
    pub drops: u64,
    pub rejoins: u64,
    /// `(time, unservable, peers)` of every `Stalled` event (at the start, before any
    /// peer's Status, the engine reports a stall with no peers).
    pub stalls: Vec<(u64, usize, usize)>,
    pub max_live_entries: usize,
    /// The most verified items that were not durable at any step (I7).
    pub max_unwritten: u64,
    /// The most items asked of peers (on their way), and the most answer blobs held
    /// unverified until the store caught up, at any step; together they never exceed the
    /// engine's ask cap.
    pub max_outstanding: u64,
    pub max_held: u64,
    /// Hashes asked of peers after a crash although they were durable (main keyspace or
    /// staging) when it happened: zero, or the run fails.
    pub refetched_after_crash: u64,
    pub commits: u64,
    pub rewrites: u64,
    pub switched_at: Option<u64>,
    /// Answers mangled by a fault, or withheld.
    pub faults_injected: u64,
}

/// A failed run: what went wrong, and how to replay it.
#[derive(Clone, Debug)]
pub struct SimError {
    pub name: String,
    pub seed: u64,
    pub now: u64,
    pub steps: u64,
    pub message: String,
}

impl SimError {
    /// A check that a test makes on a finished run's `report` failed.
    pub fn after(name: &str, seed: u64, report: &Report, message: String) -> SimError {
        SimError {
            name: name.to_string(),
            seed,
            now: report.virtual_ms,
            steps: report.steps,
            message,
        }
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario `{}` seed {} failed at {} ms, step {}: {}\n  replay: SIM_SEED={} cargo test -p statesync-tests --test simulator {}",
            self.name, self.seed, self.now, self.steps, self.message, self.seed, self.name
        )
    }
}

impl std::error::Error for SimError {}

/// The simulator. See the module documentation.
pub struct Sim {
    pub config: SimConfig,
    pub world: World,
    rng: SeededRng,
    now: u64,
    steps: u64,
    queue: EventQueue,
    engine: Engine,
    /// The root the user wants now.
    target: H256,
    peers: Vec<SimPeer>,
    /// Whether the current connection's Status reached the engine.
    status_seen: Vec<bool>,
    pub store: SimStore,
    crash_steps: VecDeque<u64>,
    crash_commits: VecDeque<u64>,
    switch_pending: bool,
    session: usize,
    /// `SIM_TRACE` is set: print every step.
    trace: bool,
    /// `(session, root, fraction)` of the last progress report.
    fraction: Option<(usize, H256, f64)>,
    /// Hashes durable at the last crash: a later session must not fetch them.
    durable_at_crash: HashSet<H256>,
    report: Report,
}

impl Sim {
    pub fn new(config: SimConfig, world: World) -> Sim {
        let mut rng = SeededRng::new(config.seed ^ 0x5349_4d5f_5345_4544);
        let engine = Engine::new(world.root, config.engine.clone(), None, 0);
        let mut queue = EventQueue::default();
        let mut peers = Vec::new();
        let keys = world.source.keys();
        for (index, spec) in config.peers.iter().enumerate() {
            let missing: Arc<HashSet<StoreKey>> = match &spec.holdings {
                Holdings::Full => Arc::default(),
                Holdings::Lacking(share) => Arc::new(
                    keys.iter()
                        .copied()
                        .filter(|_| rng.chance(*share))
                        .collect(),
                ),
                Holdings::Without(keys) => keys.clone(),
            };
            queue.push(spec.join_at, Payload::PeerJoin { peer: index });
            if let Some(at) = spec.leave_at {
                queue.push(at, Payload::PeerLeave { peer: index });
            }
            peers.push(SimPeer::new(spec.clone(), missing));
        }
        let switch_pending = match (config.switch_at, world.switch_to) {
            (Some(at), Some(_)) => {
                queue.push(at, Payload::SwitchRoot);
                true
            }
            _ => false,
        };
        let (crash_steps, crash_commits) = match &config.crashes {
            CrashPlan::Never => (VecDeque::new(), VecDeque::new()),
            CrashPlan::AtSteps(steps) => {
                let mut steps = steps.clone();
                steps.sort_unstable();
                (steps.into(), VecDeque::new())
            }
            CrashPlan::AfterCommits(commits) => {
                let mut commits = commits.clone();
                commits.sort_unstable();
                (VecDeque::new(), commits.into())
            }
        };
        let report = Report {
            name: config.name.clone(),
            seed: config.seed,
            items: world.reachable(world.final_root()).len(),
            items_requested_per_session: vec![0],
            last_progress: vec![None],
            ..Report::default()
        };
        Sim {
            store: SimStore::new(config.store_latency),
            status_seen: vec![false; peers.len()],
            target: world.root,
            config,
            world,
            rng,
            now: 0,
            steps: 0,
            queue,
            engine,
            peers,
            crash_steps,
            crash_commits,
            switch_pending,
            session: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            fraction: None,
            durable_at_crash: HashSet::new(),
            report,
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What happened so far.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Runs to the end and checks the outcome.
    pub fn run(mut self) -> Result<Report, SimError> {
        if self.trace {
            eprintln!("config {:?}", self.config.engine);
        }
        while self.step()? {}
        self.final_checks()?;
        self.report.virtual_ms = self.now;
        self.report.steps = self.steps;
        self.report.commits = self.store.commits;
        self.report.rewrites = self.store.rewrites;
        Ok(self.report)
    }

    /// Runs everything due at or before `until` (virtual ms), unless the sync ends first.
    pub fn run_until(&mut self, until: u64) -> Result<(), SimError> {
        while self.next_due().is_some_and(|at| at <= until) {
            if !self.step()? {
                break;
            }
        }
        self.now = self.now.max(until);
        Ok(())
    }

    fn next_due(&self) -> Option<u64> {
        match (self.queue.next_time(), self.engine.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn complete(&self) -> bool {
        self.engine.is_done() && self.engine.root() == self.target && !self.switch_pending
    }

    fn error(&self, message: impl Into<String>) -> SimError {
        SimError {
            name: self.config.name.clone(),
            seed: self.config.seed,
            now: self.now,
            steps: self.steps,
            message: message.into(),
        }
    }

    /// One step: the next event or timer. False once the sync is complete.
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.complete() {
            return Ok(false);
        }
        self.steps += 1;
        if self.steps > self.config.max_steps || self.now > self.config.max_virtual_ms {
            return Err(self.error(format!(
                "livelock: not finished after {} steps and {} virtual ms; progress {:?}",
                self.steps,
                self.now,
                self.engine.progress()
            )));
        }
        if self.crash_steps.front() == Some(&self.steps) {
            self.crash_steps.pop_front();
            return self.crash().map(|()| true);
        }
        let timer = self.engine.poll_timeout();
        let event = self.queue.next_time();
        match (event, timer) {
            (None, None) => {
                return Err(self.error(format!(
                    "deadlock: no event queued and no timer armed; progress {:?}",
                    self.engine.progress()
                )))
            }
            (Some(at), Some(t)) if t < at => self.fire_timer(t)?,
            (None, Some(t)) => self.fire_timer(t)?,
            (Some(_), _) => {
                let Some((at, payload)) = self.queue.pop() else {
                    unreachable!("peeked an event");
                };
                self.now = self.now.max(at);
                if self.trace {
                    eprintln!("{} {}", self.now, describe(&payload));
                }
                self.handle(payload)?;
            }
        }
        Ok(true)
    }

    fn fire_timer(&mut self, at: u64) -> Result<(), SimError> {
        self.now = self.now.max(at);
        if self.trace {
            eprintln!("{} timer", self.now);
        }
        self.engine.handle_timeout(self.now);
        self.pump()
    }

    fn handle(&mut self, payload: Payload) -> Result<(), SimError> {
        let now = self.now;
        match payload {
            Payload::PeerJoin { peer } => self.connect(peer)?,
            Payload::PeerLeave { peer } => {
                self.peers[peer].gone = true;
                if self.peers[peer].connected {
                    self.peers[peer].disconnect();
                    self.engine.handle_peer_left(peer as u64, now);
                    self.pump()?;
                }
            }
            Payload::PeerDrop { peer, conn } => {
                let p = &mut self.peers[peer];
                if p.connected && p.conn == conn {
                    p.disconnect();
                    self.report.drops += 1;
                    self.engine.handle_peer_left(peer as u64, now);
                    self.pump()?;
                    self.schedule_rejoin(peer);
                }
            }
            Payload::ToPeer { peer, conn, frame } => {
                let p = &self.peers[peer];
                if p.connected && p.conn == conn {
                    self.peer_receives(peer, &frame)?;
                }
            }
            Payload::ToEngine { peer, conn, frame } => {
                let p = &self.peers[peer];
                if p.connected && p.conn == conn {
                    if frame.first() == Some(&statesync_core::wire::CODE_STATUS) {
                        self.status_seen[peer] = true;
                    }
                    self.engine.handle_frame(peer as u64, &frame, now);
                    self.pump()?;
                }
            }
            Payload::StoreDone { epoch } => {
                if epoch == self.store.epoch {
                    self.store_done()?;
                }
            }
            Payload::SwitchRoot => {
                self.switch_pending = false;
                if let Some(root) = self.world.switch_to {
                    self.target = root;
                    self.report.switched_at = Some(now);
                    self.engine.switch_root(root, now);
                    self.pump()?;
                }
            }
        }
        Ok(())
    }

    /// Finishes the store op being run and hands its result to the engine.
    fn store_done(&mut self) -> Result<(), SimError> {
        let commits_before = self.store.commits;
        let done = self
            .store
            .complete(&self.world)
            .map_err(|m| self.error(m))?;
        let Some((id, result, next)) = done else {
            return Ok(());
        };
        if next {
            self.schedule_store();
        }
        if self.store.commits > commits_before
            && self.crash_commits.front() == Some(&self.store.commits)
        {
            // Durable, but the process dies before it hears so.
            self.crash_commits.pop_front();
            return self.crash();
        }
        self.engine.handle_store_result(id, result, self.now);
        self.pump()
    }

    fn schedule_store(&mut self) {
        let at = self.now + self.store.latency.sample(&mut self.rng);
        self.queue.push(
            at,
            Payload::StoreDone {
                epoch: self.store.epoch,
            },
        );
    }

    /// Opens a connection to `peer`: the engine hears of it, and the peer's Status follows.
    fn connect(&mut self, peer: usize) -> Result<(), SimError> {
        let p = &mut self.peers[peer];
        if p.gone || p.connected {
            return Ok(());
        }
        p.connect();
        self.status_seen[peer] = false;
        self.engine.handle_peer_joined(peer as u64, self.now);
        self.pump()?;
        let status = Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root: self.target,
        })
        .encode();
        self.send_to_engine(peer, self.now, status);
        Ok(())
    }

    fn schedule_rejoin(&mut self, peer: usize) {
        let p = &mut self.peers[peer];
        let Some(rejoin) = p.spec.rejoin else {
            return;
        };
        if p.gone || p.rejoins >= rejoin.max {
            return;
        }
        p.rejoins += 1;
        self.report.rejoins += 1;
        let delay = rejoin.min_ms
            + self
                .rng
                .below(rejoin.max_ms.saturating_sub(rejoin.min_ms) + 1);
        self.queue
            .push(self.now + delay, Payload::PeerJoin { peer });
    }

    fn send_to_engine(&mut self, peer: usize, at: u64, frame: Vec<u8>) {
        let p = &mut self.peers[peer];
        let arrival = p.down.transit(
            at,
            frame.len(),
            p.spec.latency,
            p.spec.bandwidth,
            &mut self.rng,
        );
        let conn = p.conn;
        self.queue
            .push(arrival, Payload::ToEngine { peer, conn, frame });
    }

    /// A peer got a frame from the client: it must be a GetNodeData, which it answers.
    fn peer_receives(&mut self, peer: usize, frame: &[u8]) -> Result<(), SimError> {
        let (id, hashes) = match Message::decode(frame) {
            Ok(Message::GetNodeData { id, hashes }) => (id, hashes),
            other => return Err(self.error(format!("the engine sent peer {peer} {other:?}"))),
        };
        let now = self.now;
        let rng = &mut self.rng;
        let p = &mut self.peers[peer];
        p.requests += 1;
        let f = p.spec.faults;
        if f.is_none() {
            let blobs = p.serve(&self.world.source, &hashes);
            let at = now + p.spec.serve_ms;
            let frame = node_data(id, &blobs);
            self.send_to_engine(peer, at, frame);
            return Ok(());
        }
        if rng.chance(f.drop) {
            let at = now + rng.below(p.spec.latency.base_ms + 1);
            let conn = p.conn;
            self.queue.push(at, Payload::PeerDrop { peer, conn });
            self.report.faults_injected += 1;
            return Ok(());
        }
        if rng.chance(f.no_answer) {
            self.report.faults_injected += 1;
            return Ok(());
        }
        let mut mangled = false;
        let frame = if rng.chance(f.garbage) {
            mangled = true;
            faults::garbage_frame(id, self.target, rng)
        } else {
            let mut blobs = p.serve(&self.world.source, &hashes);
            if rng.chance(f.partial) {
                faults::keep_subset(&mut blobs, rng);
                mangled = true;
            }
            if rng.chance(f.truncate) {
                faults::truncate(&mut blobs, rng);
                mangled = true;
            }
            if rng.chance(f.empty) {
                blobs.clear();
                mangled = true;
            }
            if rng.chance(f.reorder) {
                rng.shuffle(&mut blobs);
                mangled = true;
            }
            if rng.chance(f.unrequested) {
                faults::mix_in(&mut blobs, &self.world.foreign, rng);
                mangled = true;
            }
            if rng.chance(f.wrong_hash) {
                faults::corrupt_one(&mut blobs, rng);
                mangled = true;
            }
            node_data(id, &blobs)
        };
        let mut at = now + p.spec.serve_ms;
        if rng.chance(f.late) {
            at += faults::LATE_BY_MS + rng.below(5_000);
            mangled = true;
        }
        if mangled {
            self.report.faults_injected += 1;
        }
        self.send_to_engine(peer, at, frame);
        Ok(())
    }

    /// Polls every engine output: frames onto the network, store ops into the store, events
    /// into the checks.
    fn pump(&mut self) -> Result<(), SimError> {
        while let Some(transmit) = self.engine.poll_transmit() {
            match transmit {
                Transmit::Frame { peer, frame } => self.send_to_peer(peer, frame)?,
                Transmit::Disconnect { peer, .. } => {
                    let index = peer as usize;
                    if let Some(p) = self.peers.get_mut(index) {
                        if p.connected {
                            p.disconnect();
                            self.report.disconnects += 1;
                            self.schedule_rejoin(index);
                        }
                    }
                }
            }
        }
        while let Some(op) = self.engine.poll_store_op() {
            if self.store.submit(op) {
                self.schedule_store();
            }
        }
        while let Some(event) = self.engine.poll_event() {
            self.on_event(event)?;
        }
        // I7: what is verified but not durable stays within one batch, at every step.
        let (unwritten, _) = self.engine.unwritten();
        self.report.max_unwritten = self.report.max_unwritten.max(unwritten);
        let bound = self.config.engine.batch_items as u64;
        if unwritten > bound {
            return Err(self.error(format!(
                "I7: {unwritten} verified items not durable, over the bound of {bound}"
            )));
        }
        // The pipe's caps: a peer's requests within `max_in_flight_per_peer`, its items within
        // that many full requests (its window never exceeds them), at every step.
        let engine_config = &self.config.engine;
        let max_requests = engine_config.max_in_flight_per_peer.max(1);
        let max_items = max_requests * engine_config.max_items_per_request.clamp(1, 1024);
        for peer in 0..self.peers.len() as u64 {
            let load = self.engine.peer_load(peer);
            let (requests, items) = (load.in_flight, load.outstanding);
            if requests > max_requests || items > max_items {
                return Err(self.error(format!(
                    "peer {peer} has {requests} requests and {items} items out, over the caps \
                     of {max_requests} and {max_items}"
                )));
            }
        }
        // I5: items asked plus answers held unverified stay within the ask cap, at every step.
        let outstanding = self.engine.outstanding_items();
        let (held, _) = self.engine.held();
        self.report.max_outstanding = self.report.max_outstanding.max(outstanding);
        self.report.max_held = self.report.max_held.max(held);
        let cap = self.engine.ask_cap_items();
        if outstanding + held > cap {
            return Err(self.error(format!(
                "I5: {outstanding} items asked and {held} held, over the ask cap of {cap}"
            )));
        }
        Ok(())
    }

    fn send_to_peer(&mut self, peer: u64, frame: Vec<u8>) -> Result<(), SimError> {
        let index = peer as usize;
        let connected = self.peers.get(index).is_some_and(|p| p.connected);
        if !connected {
            return Err(self.error(format!(
                "the engine sent a frame to peer {peer}, which is not connected"
            )));
        }
        if !self.status_seen[index] {
            return Err(self.error(format!(
                "the engine sent a request to peer {peer} before its Status"
            )));
        }
        if let Ok(Message::GetNodeData { hashes, .. }) = Message::decode(&frame) {
            if let Some(hash) = hashes.iter().find(|h| self.durable_at_crash.contains(*h)) {
                self.report.refetched_after_crash += 1;
                return Err(self.error(format!(
                    "I7: asked for {hash} after a crash, but it was durable when the crash happened"
                )));
            }
            self.report.requests += 1;
            self.report.items_requested += hashes.len() as u64;
            if let Some(count) = self.report.items_requested_per_session.last_mut() {
                *count += hashes.len() as u64;
            }
        }
        let p = &mut self.peers[index];
        let arrival = p.up.transit(
            self.now,
            frame.len(),
            p.spec.latency,
            p.spec.bandwidth,
            &mut self.rng,
        );
        let conn = p.conn;
        self.queue.push(
            arrival,
            Payload::ToPeer {
                peer: index,
                conn,
                frame,
            },
        );
        Ok(())
    }

    fn on_event(&mut self, event: Event) -> Result<(), SimError> {
        match event {
            Event::Progress(progress) => self.check_progress(&progress)?,
            Event::Finished(progress) => {
                if progress.fraction != 1.0 {
                    return Err(self.error(format!("finished with fraction {}", progress.fraction)));
                }
                if !self.engine.is_done() {
                    return Err(self.error("Finished emitted but the engine is not done"));
                }
                self.check_progress(&progress)?;
                self.report.finished = Some(progress);
            }
            Event::Stalled {
                unservable, peers, ..
            } => {
                self.report.stalls.push((self.now, unservable, peers));
            }
            Event::PeerDisconnected { peer, reason } => {
                let honest = self
                    .peers
                    .get(peer as usize)
                    .is_some_and(|p| p.spec.faults.is_none());
                if honest && matches!(reason, DisconnectReason::Misbehaving { .. }) {
                    return Err(self.error(format!(
                        "honest peer {peer} disconnected as misbehaving: {reason:?}"
                    )));
                }
            }
            Event::RootSwitched { .. } => {}
            Event::Paused(failure) => {
                return Err(self.error(format!("paused without a store failure: {failure}")))
            }
            Event::Cancelled => return Err(self.error("cancelled without a cancel")),
            Event::Failed(err) => return Err(self.error(format!("engine failed: {err}"))),
        }
        Ok(())
    }

    fn check_progress(&mut self, progress: &Progress) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&progress.fraction) {
            return Err(self.error(format!("fraction {} out of range", progress.fraction)));
        }
        if let Some((session, root, last)) = self.fraction {
            if session == self.session && root == progress.root && progress.fraction < last {
                return Err(self.error(format!(
                    "fraction fell from {last} to {} for root {root}",
                    progress.fraction
                )));
            }
        }
        self.fraction = Some((self.session, progress.root, progress.fraction));
        self.report.max_live_entries = self.report.max_live_entries.max(progress.live_entries);
        if let Some(bound) = self.config.live_entries_bound {
            if progress.live_entries > bound {
                return Err(self.error(format!(
                    "I5: {} live entries, over the bound of {bound}",
                    progress.live_entries
                )));
            }
        }
        if let Some(last) = self.report.last_progress.last_mut() {
            *last = Some(progress.clone());
        }
        self.report.duplicate = 0;
        self.report.unexpected = 0;
        for p in self.report.last_progress.iter().flatten() {
            self.report.duplicate += p.duplicate;
            self.report.unexpected += p.unexpected;
        }
        Ok(())
    }

    /// The client dies: the engine is dropped with everything in memory, the store keeps what
    /// it committed, and a new engine resumes from the stored progress record with the peers
    /// reconnected.
    fn crash(&mut self) -> Result<(), SimError> {
        if self.trace {
            eprintln!("{} crash", self.now);
        }
        self.report.crashes += 1;
        self.store
            .crash(&mut self.rng, &self.world)
            .map_err(|m| self.error(m))?;
        // Everything verified before the last landed batch is durable: never fetched again.
        let durable = self.store.data.keys().into_iter().map(|k| k.hash);
        let staged = self.store.data.staged().into_iter().map(|(h, _)| h);
        self.durable_at_crash.extend(durable.chain(staged));
        self.session += 1;
        self.report.items_requested_per_session.push(0);
        self.report.last_progress.push(None);
        self.engine = Engine::new(
            self.target,
            self.config.engine.clone(),
            self.store.record,
            self.now,
        );
        for peer in 0..self.peers.len() {
            if self.peers[peer].connected {
                self.peers[peer].disconnect();
                self.connect(peer)?;
            }
        }
        self.pump()
    }

    fn final_checks(&self) -> Result<(), SimError> {
        let Some(finished) = &self.report.finished else {
            return Err(self.error("no Finished event"));
        };
        if !self.engine.is_done() || self.engine.root() != self.target {
            return Err(self.error("the engine is not done with the target root"));
        }
        if finished.root != self.target {
            return Err(self.error("Finished for another root"));
        }
        match self.store.record {
            Some(record) if record.complete && record.root == self.target => {}
            other => return Err(self.error(format!("final progress record {other:?}"))),
        }
        walk(self.target, SyncMode::State, &self.store.data)
            .map_err(|e| self.error(format!("final walk: {e}")))?;
        for key in self.store.data.keys() {
            let value = self.store.data.get(key).unwrap_or_default();
            if keccak256(value) != key.hash || self.world.source.get(key) != Some(value) {
                return Err(self.error(format!("I1: stored {key:?} is not the source's")));
            }
        }
        Ok(())
    }
}

/// One line for a trace: the event without its bytes.
fn describe(payload: &Payload) -> String {
    let frame = |frame: &[u8]| match Message::decode(frame) {
        Ok(Message::Status(s)) => format!("Status head {}", s.head_root),
        Ok(Message::GetNodeData { id, hashes }) => {
            format!("GetNodeData {id}: {} hashes", hashes.len())
        }
        Ok(Message::NodeData { id, blobs }) => format!("NodeData {id}: {} blobs", blobs.len()),
        Err(e) => format!("{} bad bytes ({e})", frame.len()),
    };
    match payload {
        Payload::ToPeer {
            peer,
            conn,
            frame: f,
        } => format!("to peer {peer}/{conn}: {}", frame(f)),
        Payload::ToEngine {
            peer,
            conn,
            frame: f,
        } => format!("from peer {peer}/{conn}: {}", frame(f)),
        other => format!("{other:?}"),
    }
}

fn node_data(id: u64, blobs: &[Vec<u8>]) -> Vec<u8> {
    Message::NodeData {
        id,
        blobs: blobs.iter().map(Vec::as_slice).collect(),
    }
    .encode()
}
