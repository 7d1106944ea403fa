//! The trie-sync scheduler: go-ethereum's `trie.Sync` (spec §2), sans-IO.
//!
//! It knows which nodes and code are still needed to complete a root, hands them out in
//! depth-first, path order ([`Scheduler::missing`]), takes verified blobs back
//! ([`Scheduler::process`]), and moves an item into its memory batch only once everything
//! below it is complete ([`Scheduler::commit`] hands the batch over). So a key present in the
//! store always means its whole subtrie is present (DESIGN.md I2).
//!
//! Unlike geth, it never reads the store. Where geth asks the database "do I have this
//! child?", the scheduler parks the child and emits a [`StoreKey`] lookup
//! ([`Scheduler::take_lookups`]); the host answers in batches ([`Scheduler::handle_lookup`]),
//! which suits IndexedDB's asynchronous reads. A parked child is not fetched until answered.
//!
//! ```text
//!   new(root) ──▶ lookups ──host──▶ handle_lookup ──absent──▶ queue ──▶ missing() ──▶ peers
//!                    ▲                    │present                                   │
//!                    │                    ▼                                          ▼
//!                 children ◀── process(blob) ◀─────────────── keccak-verified blob ◀──┘
//!                                   │ all children complete
//!                                   ▼
//!                             memory batch ──▶ commit() ──▶ one atomic store write
//! ```
//!
//! Verified nodes still waiting for their children are handed out too, by [`Scheduler::commit`],
//! for the store's staging area (DESIGN.md I7), so a crash does not lose them; when one
//! completes, the batch that puts it in the main keyspace removes it from staging. Blobs read
//! back from staging on resume, or left over by a root switch, wait in a pool of *loose*
//! verified blobs ([`Scheduler::add_loose`]); a request for one of them that the store does not
//! hold is answered from the pool instead of a peer.
//!
//! Every item known and not complete yet is one entry of one table keyed by [`StoreKey`]:
//! looked up, queued, fetched, or waiting for children. The hot
//! path allocates nothing per item beyond the item's own data: parent lists are inline, a
//! node's children are read in place from its RLP ([`visit_encoded`]), and each path is
//! built once, packed into its entry. [`SchedulerConfig::max_pending`] bounds the table: it is
//! sized for the bound (and a sixth) once a sync is large enough to need it, an item goes out
//! while the table plus the children expected of everything out fit that (`fanout`), and past
//! it only a few of the deepest at a time, so that how far a large state's frontier happens
//! to grow does not decide how much memory the sync takes.

mod buffers;
mod fanout;
mod recent;
mod request;
mod table;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use thiserror::Error;

use crate::account::{Account, AccountError};
use crate::filter::KeyFilter;
use crate::hash::{keccak256, DigestMap, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
use crate::nibbles::Nibbles;
use crate::node::{visit_encoded, ChildAt, NodeError, NodeShape};
use crate::store::{CommitBatch, ItemKind, KeySet, StoreKey};

use buffers::Buffers;
use fanout::Fanout;
use recent::RecentKeys;
use request::{PackedPath, Phase, QueueEntry, Request};
use table::{Lookup, Slot, Table};

/// How many requests of one depth may be fetched or waiting for their children at once
/// (geth's `maxFetchesPerDepth`, 16,384 there, its only memory bound). Here the table bound
/// (`max_pending`, with room kept for the children of what is out) bounds memory, and at
/// 16,384 the per-depth cap held back the frontier of large states at real round trips: with
/// the wider ask cap, 827k items at 100 ms took 5.4 s in the simulator where the bound alone
/// takes 5.2 s. So by default it is as large as the table's bound, and binds only if set.
pub const DEFAULT_MAX_FETCHES_PER_DEPTH: usize = DEFAULT_MAX_PENDING;

/// Nibbles in a state-trie key: the account trie's leaves are at this depth.
pub const ACCOUNT_PATH_LEN: usize = 64;

/// What kind of trie is being synced, which decides how leaves are read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncMode {
    /// An Ethereum state: account-trie leaves are accounts whose storage trie and code are
    /// synced too, and an account's leaf completes only after them.
    State,
    /// A single trie with opaque values (geth's trie sync tests).
    Trie,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub mode: SyncMode,
    pub max_fetches_per_depth: usize,
    /// How many code hashes and storage roots handed out by recent cuts are remembered as
    /// complete, so that another account referencing them completes without a store lookup
    /// (the most referenced stay). Bounds memory by configuration; 0 turns it off.
    pub recent_complete: usize,
    /// Requests held (looked up, queued, fetched or waiting for children): the bound on the
    /// scheduler's memory, whatever the state's size (I5). Once a sync holds a quarter of it,
    /// the request table is sized for it and a sixth more, and items are handed out while
    /// what is held plus the children expected of what is out fit that; past it, only a few
    /// at a time (the deepest, which drain the table).
    pub max_pending: usize,
}

/// Default of [`SchedulerConfig::recent_complete`]: about 2 MB of sets.
pub const DEFAULT_RECENT_COMPLETE: usize = 32_768;

/// How many items may wait on the host (looked up or fetched) while the table is full: the
/// table's headroom over `max_pending` divided by the most children one node can add (16), so
/// that even full branches would not outgrow it by more than its headroom again; at least
/// one, so the sync always moves.
fn past_bound_flow(max_pending: usize) -> usize {
    (headroom(max_pending) / usize::from(fanout::MAX_CHILDREN)).max(1)
}

/// The table's room over [`SchedulerConfig::max_pending`] (a sixth): for the estimates'
/// errors, and for the deepest items that go out when it is full.
fn headroom(max_pending: usize) -> usize {
    max_pending / 6
}

/// The entries the table is sized for once a sync needs it: what is held, plus the children
/// expected of what is out, stays within this.
fn table_capacity(max_pending: usize) -> usize {
    max_pending.saturating_add(headroom(max_pending))
}

/// Default of [`SchedulerConfig::max_pending`]: with the headroom, a table of 2^17 slots
/// (hash tables fill to 7/8), about 21 MB.
pub const DEFAULT_MAX_PENDING: usize = 98_304;

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            mode: SyncMode::State,
            max_fetches_per_depth: DEFAULT_MAX_FETCHES_PER_DEPTH,
            recent_complete: DEFAULT_RECENT_COMPLETE,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// A blob together with its keccak-256 hash. The only way to build one computes the hash, so
/// the scheduler never sees data that was not checked against its key (I1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HashedBlob {
    hash: H256,
    data: Vec<u8>,
}

impl HashedBlob {
    pub fn new(data: Vec<u8>) -> HashedBlob {
        HashedBlob {
            hash: keccak256(&data),
            data,
        }
    }

    pub fn hash(&self) -> H256 {
        self.hash
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// A borrowed blob together with its keccak-256 hash: [`HashedBlob`] for data the caller
/// keeps (a frame), so that the scheduler copies only blobs it wants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HashedSlice<'a> {
    hash: H256,
    data: &'a [u8],
}

impl<'a> HashedSlice<'a> {
    pub fn new(data: &'a [u8]) -> HashedSlice<'a> {
        HashedSlice {
            hash: keccak256(data),
            data,
        }
    }

    /// A blob hashed earlier: `hash` must be `keccak256(data)`, computed by the caller from
    /// these very bytes (the engine holds answers it hashed on arrival).
    pub(crate) fn prehashed(hash: H256, data: &'a [u8]) -> HashedSlice<'a> {
        debug_assert_eq!(hash, keccak256(data));
        HashedSlice { hash, data }
    }

    pub fn hash(&self) -> H256 {
        self.hash
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// Verified bytes on their way into the scheduler, owned or borrowed: copied only once
/// they are wanted.
enum Bytes<'a> {
    Owned(Vec<u8>),
    Borrowed(&'a [u8]),
}

impl Bytes<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Owned(data) => data,
            Bytes::Borrowed(data) => data,
        }
    }

    /// The bytes as an owned buffer: the given one, or a (pooled) copy.
    fn into_vec(self, buffers: &mut Buffers) -> Vec<u8> {
        match self {
            Bytes::Owned(data) => data,
            Bytes::Borrowed(data) => buffers.copy_of(data),
        }
    }
}

/// Something to fetch from a peer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Task {
    pub hash: H256,
    pub kind: ItemKind,
    /// Where the item sits: nibbles from the account-trie root; a storage node's path is its
    /// account's 64-nibble path followed by its path in the storage trie. Code carries its
    /// account's path.
    pub path: Nibbles,
}

impl Task {
    pub fn key(&self) -> StoreKey {
        StoreKey {
            kind: self.kind,
            hash: self.hash,
        }
    }

    /// geth's `SyncPath`, as snap's `GetTrieNodes` asks for a node: `[compact(path)]` in the
    /// account trie, `[accountHash, compact(storagePath)]` in a storage trie.
    pub fn sync_path(&self) -> Vec<Vec<u8>> {
        sync_path(&self.path)
    }
}

/// geth's `NewSyncPath`: see [`Task::sync_path`].
pub fn sync_path(path: &Nibbles) -> Vec<Vec<u8>> {
    if path.len() < ACCOUNT_PATH_LEN {
        return vec![path.encode_compact(false)];
    }
    let account = path.prefix(ACCOUNT_PATH_LEN).to_bytes().unwrap_or_default();
    vec![account, path.suffix(ACCOUNT_PATH_LEN).encode_compact(false)]
}

/// Why a delivered blob was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// No request is pending for this hash: unrequested, or already committed.
    #[error("not requested")]
    NotRequested,
    /// The request already has its data.
    #[error("already processed")]
    AlreadyProcessed,
    /// The blob matches its hash but is not a trie node: the root commits to a broken trie.
    #[error("invalid trie node {hash} at {path}: {source}")]
    InvalidNode {
        hash: H256,
        path: Nibbles,
        source: NodeError,
    },
    /// An account-trie leaf is not an account.
    #[error("invalid account in node {hash} at {path}: {source}")]
    InvalidAccount {
        hash: H256,
        path: Nibbles,
        source: AccountError,
    },
    /// A value in the account trie whose key is not 32 bytes long.
    #[error("node {hash} has a value at {path}, which is not an account key")]
    ValueOffAccountPath { hash: H256, path: Nibbles },
}

/// Counters of what the scheduler has done, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Nodes and code taken by `process`.
    pub processed: u64,
    pub processed_bytes: u64,
    /// Items moved into the memory batch.
    pub committed: u64,
    /// Loose blobs (read back from staging, or left by a root switch) used instead of a fetch.
    pub restored: u64,
    /// Lookups that found the item already stored, so its subtrie was skipped.
    pub found_in_store: u64,
    /// Items skipped because they were already in the memory batch.
    pub found_in_batch: u64,
}

/// A complete item waiting in the memory batch.
#[derive(Debug)]
struct Completed {
    key: StoreKey,
    /// Referenced from an account (code, a storage root): the items that accounts share, so
    /// worth remembering once written.
    from_account: bool,
    data: Vec<u8>,
    /// It is in the staging area, so the batch that stores it removes it from there.
    staged: bool,
}

/// A verified blob that no request has claimed yet.
#[derive(Debug)]
struct Loose {
    data: Vec<u8>,
    staged: bool,
}

/// What [`Scheduler::commit`] hands over: one atomic batch and what it does to durability.
#[derive(Debug, Default)]
pub struct Cut {
    pub batch: CommitBatch,
    /// Items and payload bytes of the batch that were durable nowhere before it (the
    /// durability lag it carries).
    pub new_items: u64,
    pub new_bytes: u64,
    /// Payload bytes the batch removes from the staging area.
    pub unstaged_bytes: u64,
}

/// Caps on one batch: puts and deletes, and payload bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimit {
    pub items: usize,
    pub bytes: usize,
}

impl BatchLimit {
    pub const UNLIMITED: BatchLimit = BatchLimit {
        items: usize::MAX,
        bytes: usize::MAX,
    };
}

/// Fixed-point share of the keyspace: `KEYSPACE_ONE` is the whole account trie.
pub const KEYSPACE_ONE: u128 = 1 << 124;

/// The share of the keyspace under a path of `len` nibbles (zero past 31 nibbles, which no
/// realistic account trie reaches).
fn keyspace_share(len: usize) -> u128 {
    if len <= 31 {
        1 << (124 - 4 * len)
    } else {
        0
    }
}

/// The scheduler. See the module documentation for the flow.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    root: H256,
    /// Every item known and not complete yet, nodes and code alike.
    table: Table,
    /// Keys of the memory batch: complete without asking the store. Small (a batch's worth)
    /// and so cheap to ask, where the table is large.
    in_batch: KeySet,
    /// The table was sized for `max_pending`.
    sized: bool,
    queue: BinaryHeap<QueueEntry>,
    seq: u64,
    lookups: Vec<StoreKey>,
    /// Requests fetched or waiting for children, per depth.
    fetches: Vec<usize>,
    /// Requests waiting on the host: a lookup answer (`Checking`) or a delivery (`Fetching`).
    awaiting_host: usize,
    /// Children a fetched node brings, per depth, learned as nodes arrive.
    fanout: Fanout,
    /// Complete items in completion order: a child always before its parents, so any prefix
    /// can be written on its own without breaking I2.
    batch: VecDeque<Completed>,
    /// Code and storage roots cut from the batch recently, complete too (written, or on their
    /// way: a later batch lands after them, so a parent completed on their account lands
    /// after them, I2). Accounts share these; another reference to one completes at once
    /// instead of costing a store lookup.
    recent: RecentKeys,
    batch_bytes: usize,
    /// Nodes that went waiting for children since the last cut, to be staged by the next one
    /// (a slot whose entry has another key by then completed meanwhile).
    to_stage: Vec<(Slot, H256)>,
    /// Verified blobs not claimed by a request yet (see the module documentation).
    loose: DigestMap<Loose>,
    /// Loose blobs not in the staging area yet.
    loose_unstaged: usize,
    /// Staged entries to remove: corrupt ones found on resume.
    discard: Vec<(H256, usize)>,
    /// Verified items and bytes durable nowhere yet: the memory batch's fetched items, waiting
    /// nodes not staged yet, and loose blobs not staged yet.
    unwritten_items: u64,
    unwritten_bytes: u64,
    /// Completed share of the account keyspace, in `KEYSPACE_ONE` units.
    completed: u128,
    stats: SchedulerStats,
    /// Buffers of written batches, for the next copies.
    buffers: Buffers,
    /// Keys written this session, when the store started empty: a key it rules out is
    /// certainly absent, so it is queued at once instead of looked up (see `filter.rs`).
    filter: Option<KeyFilter>,
    /// Keys the filter ruled out that a loose blob may answer: handled as absent lookups when
    /// the host next takes the lookups, as the store's answers would be.
    absent: Vec<StoreKey>,
    scratch: Scratch,
}

/// Buffers reused from item to item, so that processing one allocates nothing. They hold no
/// state between calls (and `Debug` shows none).
#[derive(Default)]
struct Scratch {
    /// The children of the node being processed, gathered before anything changes.
    children: Vec<(StoreKey, PackedPath)>,
    /// The path of the node being processed, extended in place for its children.
    path: Nibbles,
    /// Requests completing in turn.
    completing: Vec<Slot>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

/// How a referenced child was handled.
enum Child {
    /// Already complete (in the memory batch, or written recently); nothing to wait for.
    Complete,
    /// The parent must wait for it.
    Pending,
}

/// What a processed node does to the keyspace share.
struct Credit {
    /// Credited now: the parts of its keyspace no hashed child covers.
    now: u128,
    /// An account-trie leaf: its share is credited when it completes.
    leaf: bool,
}

impl Scheduler {
    /// A scheduler for everything under `root`. The root itself is looked up first, so a
    /// store that already holds it (a finished or resumed sync) completes at once.
    pub fn new(root: H256, config: SchedulerConfig) -> Scheduler {
        Scheduler::with_filter(root, config, None)
    }

    /// A scheduler for a store that started empty this session: `filter` learns every key
    /// cut for the main keyspace, and a key it rules out is queued for fetching without a
    /// lookup. Only a filter of exactly what this session wrote is sound here.
    pub fn with_filter(
        root: H256,
        config: SchedulerConfig,
        filter: Option<KeyFilter>,
    ) -> Scheduler {
        let recent = RecentKeys::new(config.recent_complete);
        let mut scheduler = Scheduler {
            config,
            root,
            table: Table::default(),
            in_batch: KeySet::default(),
            sized: false,
            queue: BinaryHeap::new(),
            seq: 0,
            lookups: Vec::new(),
            fetches: Vec::new(),
            awaiting_host: 0,
            fanout: Fanout::default(),
            batch: VecDeque::new(),
            recent,
            batch_bytes: 0,
            to_stage: Vec::new(),
            loose: DigestMap::default(),
            loose_unstaged: 0,
            discard: Vec::new(),
            unwritten_items: 0,
            unwritten_bytes: 0,
            completed: 0,
            stats: SchedulerStats::default(),
            buffers: Buffers::default(),
            filter,
            absent: Vec::new(),
            scratch: Scratch::default(),
        };
        if root == EMPTY_ROOT_HASH {
            scheduler.completed = KEYSPACE_ONE;
        } else {
            scheduler.add_child(
                StoreKey::node(root),
                PackedPath::pack(&Nibbles::new()),
                None,
            );
        }
        scheduler
    }

    pub fn root(&self) -> H256 {
        self.root
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Requests not yet complete: being looked up, queued, fetched, or waiting for children.
    /// The sync is done when this is zero (and the last batch is committed).
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    pub fn is_done(&self) -> bool {
        self.pending() == 0
    }

    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// Entries the scheduler holds in memory: requests and queue slots. Bounded by
    /// [`SchedulerConfig::max_pending`] and the per-depth cap, not by the size of the state
    /// (I5).
    pub fn live_entries(&self) -> usize {
        self.pending() + self.queue.len() + self.loose.len()
    }

    /// The completed share of the account keyspace, 0.0 to 1.0. It only grows, and is 1.0
    /// exactly when the sync is done. The traversal is depth-first in path order, so the
    /// share tracks the work left closely.
    pub fn completed_fraction(&self) -> f64 {
        if self.is_done() {
            return 1.0;
        }
        (self.completed as f64 / KEYSPACE_ONE as f64).min(1.0)
    }

    /// Existence checks the host must answer with [`Scheduler::handle_lookup`], in any order.
    /// Answer them after any commit batch handed out earlier has been written.
    #[must_use]
    pub fn take_lookups(&mut self) -> Vec<StoreKey> {
        let lookups = std::mem::take(&mut self.lookups);
        for key in std::mem::take(&mut self.absent) {
            self.handle_lookup(key, false);
        }
        lookups
    }

    /// The filter of keys written this session, for the scheduler of the next root.
    pub fn take_filter(&mut self) -> Option<KeyFilter> {
        self.filter.take()
    }

    /// Whether lookups are waiting to be taken.
    pub fn has_lookups(&self) -> bool {
        !self.lookups.is_empty() || !self.absent.is_empty()
    }

    /// The host's answer to a lookup: whether the store holds `key`. A present item is
    /// complete with its whole subtrie (I2), so it is skipped; an absent one is queued for
    /// fetching. Answers for keys no longer being checked are ignored.
    pub fn handle_lookup(&mut self, key: StoreKey, present: bool) {
        let Some(slot) = self.table.slot(&key) else {
            return;
        };
        let Some(req) = self.table.at(slot).filter(|r| r.phase == Phase::Checking) else {
            return;
        };
        let path_len = req.path.len();
        if present {
            self.stats.found_in_store += 1;
            if key.kind == ItemKind::Node && self.is_keyspace_path(path_len) {
                self.completed += keyspace_share(path_len);
            }
            self.complete(slot);
            return;
        }
        let priority = req.path.priority();
        if key.kind == ItemKind::Node {
            if let Some(loose) = self.loose.remove(&key.hash) {
                if !loose.staged {
                    self.loose_unstaged -= 1;
                }
                // Verified in an earlier session or for an earlier root: no peer needs asking.
                if self.take_loose(key.hash, loose) {
                    return;
                }
            }
        }
        self.host_answered();
        self.enqueue(slot, priority);
    }

    /// Puts the request in `slot` in the fetch queue.
    fn enqueue(&mut self, slot: Slot, priority: u64) {
        self.seq += 1;
        if let Some(req) = self.table.at_mut(slot) {
            req.phase = Phase::Queued;
            req.queued = self.seq;
        }
        self.queue.push(QueueEntry {
            priority,
            seq: Reverse(self.seq),
            slot,
        });
    }

    /// Up to `max` items to fetch (0: no limit), deepest and then smallest path first. Stops
    /// early when the next item's depth already has `max_fetches_per_depth` requests out, as
    /// geth does, or when `max_pending` requests are held. No item is handed out twice.
    #[must_use]
    pub fn missing(&mut self, max: usize) -> Vec<Task> {
        let mut out = Vec::new();
        self.hand_out(max, |key, path| {
            out.push(Task {
                hash: key.hash,
                kind: key.kind,
                path: path.unpack(),
            })
        });
        out
    }

    /// [`Scheduler::missing`] without the paths: what a fetch needs.
    #[must_use]
    pub fn missing_keys(&mut self, max: usize) -> Vec<StoreKey> {
        let mut out = Vec::new();
        self.hand_out(max, |key, _| out.push(key));
        out
    }

    /// Hands out up to `max` queued items (0: no limit) to `emit`, marking them fetched.
    fn hand_out(&mut self, max: usize, mut emit: impl FnMut(StoreKey, &PackedPath)) {
        let mut count = 0;
        let max_pending = self.config.max_pending;
        let capacity = table_capacity(max_pending);
        let past_bound_flow = past_bound_flow(max_pending);
        // Handing out adds no request to the table, so this holds for the whole call.
        let pending = self.pending();
        let mut expected = self.fanout.expected();
        while let Some(top) = self.queue.peek() {
            if max != 0 && count >= max {
                break;
            }
            let (slot, seq) = (top.slot, top.seq.0);
            let depth = (top.priority >> 56) as usize;
            let Some(req) = self
                .table
                .at_mut(slot)
                .filter(|r| r.phase == Phase::Queued && r.queued == seq)
            else {
                // Delivered before it was fetched; drop the stale queue slot.
                self.queue.pop();
                continue;
            };
            let at_cap =
                self.fetches.get(depth).copied().unwrap_or(0) >= self.config.max_fetches_per_depth;
            // Past the per-depth cap only when nothing else can move: the requests holding this
            // depth wait on children queued behind it (a node shared at a shallower depth, as in
            // a trie of keys of different lengths), and no lookup or delivery is due. Stopping
            // there, as geth does, would stall the sync for good.
            if at_cap && (count > 0 || self.awaiting_host > 0) {
                break;
            }
            // An item goes out while the table has room for what it and everything else out
            // are expected to bring (a whole level's children land within one round trip of
            // each other). Past that, the table shrinks only as what it holds completes, and
            // that takes fetching the queued items its waiting nodes hold: handing them out
            // one at a time (one round trip each) starved a sync for minutes. So the deepest
            // items keep going out while few wait on the host: those are mostly leaves, and
            // even if all were full branches their children would fit in the headroom.
            let cost = self.fanout.estimate(depth);
            let room = pending + expected + usize::from(cost) <= capacity;
            if !room && self.awaiting_host >= past_bound_flow {
                break;
            }
            self.queue.pop();
            if self.fetches.len() <= depth {
                self.fetches.resize(depth + 1, 0);
            }
            self.fetches[depth] += 1;
            self.awaiting_host += 1;
            req.phase = Phase::Fetching;
            req.fetch_depth = Some(depth as u8);
            req.out = true;
            self.fanout.sent(depth);
            expected += usize::from(cost);
            emit(req.key, &req.path);
            count += 1;
        }
    }

    /// Takes a verified blob. A code request completes at once; a node request is decoded,
    /// its children are scheduled (or looked up), and it completes when they have.
    ///
    /// A hash that is pending both as code and as a node feeds both. An error leaves the
    /// scheduler as it was.
    pub fn process(&mut self, blob: HashedBlob) -> Result<(), ProcessError> {
        self.process_bytes(blob.hash, Bytes::Owned(blob.data), false)
    }

    /// [`Scheduler::process`] for a blob the caller keeps: it is copied only if wanted.
    pub fn process_slice(&mut self, blob: HashedSlice<'_>) -> Result<(), ProcessError> {
        self.process_bytes(blob.hash, Bytes::Borrowed(blob.data), false)
    }

    /// `process` for a blob that is durable already (`staged`: in the staging area) or not.
    fn process_bytes(
        &mut self,
        hash: H256,
        data: Bytes<'_>,
        staged: bool,
    ) -> Result<(), ProcessError> {
        let code_slot = self.table.slot(&StoreKey::code(hash));
        let node_slot = self.table.slot(&StoreKey::node(hash));
        let wants = |slot: Option<Slot>| {
            slot.and_then(|slot| self.table.at(slot))
                .map(|r| r.data.is_none())
        };
        let (as_code, as_node) = (wants(code_slot), wants(node_slot));
        if as_code.is_none() && as_node.is_none() {
            return Err(ProcessError::NotRequested);
        }
        let node_slot = node_slot.filter(|_| as_node == Some(true));
        let code_slot = code_slot.filter(|_| as_code == Some(true));
        let (as_code, as_node) = (code_slot.is_some(), node_slot.is_some());
        if !as_code && !as_node {
            return Err(ProcessError::AlreadyProcessed);
        }
        // Read the node first: one that does not decode must change nothing.
        let credit = match node_slot {
            Some(slot) => Some(self.expand(slot, hash, data.as_slice())?),
            None => None,
        };
        let len = data.as_slice().len() as u64;
        let copies = u64::from(as_code) + u64::from(as_node);
        if staged {
            self.stats.restored += 1;
        } else {
            self.stats.processed += 1;
            self.stats.processed_bytes += len;
            // Durable nowhere until a batch holds it, in the main keyspace or in staging.
            self.unwritten_items += copies;
            self.unwritten_bytes += len * copies;
        }
        let mut data = Some(data.into_vec(&mut self.buffers));
        if let Some(slot) = code_slot {
            // Only a hash pending as both code and node needs a second copy.
            let code_data = if as_node { data.clone() } else { data.take() };
            if let Some(req) = self.table.at_mut(slot) {
                req.data = code_data;
            }
            self.complete(slot);
        }
        if let (Some(slot), Some(credit), Some(data)) = (node_slot, credit, data) {
            self.attach_children(slot, data, credit, staged);
        }
        Ok(())
    }

    /// Offers a verified blob that no request has asked for yet: read back from the staging
    /// area (`staged`), or kept from an earlier root's scheduler. A request the store cannot
    /// answer takes it instead of a fetch. The blob is hashed here, and one that does not
    /// match `hash` (a corrupt staged entry) is dropped, and removed from staging by the next
    /// cut, so it is fetched again.
    pub fn add_loose(&mut self, hash: H256, data: Vec<u8>, staged: bool) {
        if keccak256(&data) != hash {
            if staged {
                self.discard.push((hash, data.len()));
            }
            return;
        }
        let len = data.len() as u64;
        match self.table.get_mut(&StoreKey::node(hash)) {
            Some(req) if req.data.is_some() => {
                // Verified here already; a staged copy makes it durable.
                if staged && !req.staged {
                    req.staged = true;
                    self.unwritten_items -= 1;
                    self.unwritten_bytes -= len;
                }
                return;
            }
            Some(req) if matches!(req.phase, Phase::Queued | Phase::Fetching) => {
                // Wanted from a peer already: take it now; that answer becomes a duplicate.
                if !staged {
                    // `take_loose` expects it counted as loose.
                    self.unwritten_items += 1;
                    self.unwritten_bytes += len;
                }
                self.take_loose(hash, Loose { data, staged });
                return;
            }
            _ => {}
        }
        if self.in_batch.contains(&StoreKey::node(hash)) {
            if staged {
                if let Some(item) = self
                    .batch
                    .iter_mut()
                    .find(|i| i.key == StoreKey::node(hash))
                {
                    if !item.staged {
                        item.staged = true;
                        self.unwritten_items -= 1;
                        self.unwritten_bytes -= len;
                    }
                }
            }
            return;
        }
        if !staged {
            self.unwritten_items += 1;
            self.unwritten_bytes += len;
            self.loose_unstaged += 1;
        }
        if let Some(old) = self.loose.insert(hash, Loose { data, staged }) {
            if !old.staged {
                self.unwritten_items -= 1;
                self.unwritten_bytes -= old.data.len() as u64;
                self.loose_unstaged -= 1;
            }
        }
    }

    /// Loose blobs waiting to be claimed.
    pub fn loose_len(&self) -> usize {
        self.loose.len()
    }

    /// Processes a loose blob for the node request `hash`, which the store lacks. False if
    /// it is not usable there (then it is fetched instead).
    fn take_loose(&mut self, hash: H256, loose: Loose) -> bool {
        let len = loose.data.len();
        if !loose.staged {
            // Counted while loose; `process_bytes` counts it again as fetched and unwritten.
            self.unwritten_items -= 1;
            self.unwritten_bytes -= len as u64;
        }
        let staged = loose.staged;
        match self.process_bytes(hash, Bytes::Owned(loose.data), staged) {
            Ok(()) => true,
            Err(_) => {
                // It was a valid node when verified; not for this path. The fetch decides.
                if staged {
                    self.discard.push((hash, len));
                }
                false
            }
        }
    }

    /// Unwritten items that verifying a blob with this hash would add: 2 when it is pending
    /// both as code and as a node, else 1 (or 0 when nothing wants it).
    pub fn unwritten_cost(&self, hash: H256) -> u64 {
        let wants = |key| self.table.get(&key).is_some_and(|r| r.data.is_none());
        u64::from(wants(StoreKey::code(hash))) + u64::from(wants(StoreKey::node(hash)))
    }

    /// Whether `key` was handed out by `missing` and is still awaited: a retry of it is
    /// worth sending.
    pub fn is_wanted(&self, key: StoreKey) -> bool {
        self.table
            .get(&key)
            .is_some_and(|r| r.phase == Phase::Fetching && r.data.is_none())
    }

    /// Cuts a batch to write in one atomic store transaction, within `limit` (but never
    /// empty while there is something to write): the oldest complete items for the main
    /// keyspace (removing from staging those that were staged), then waiting and loose nodes
    /// for the staging area. Once the sync is done, staged blobs nobody claimed are removed.
    #[must_use]
    pub fn commit(&mut self, limit: BatchLimit) -> Cut {
        let mut cut = Cut::default();
        // Sized once: these grow to thousands of entries per cut.
        let items = self.batch.len().min(limit.items);
        cut.batch.nodes.reserve(items);
        cut.batch
            .staged
            .reserve(self.to_stage.len().min(limit.items));
        let (mut ops, mut bytes) = (0usize, 0usize);
        // An entry fits if it stays within both caps; the first always does, so that an item
        // larger than a batch still moves.
        let fits = |ops: usize, bytes: usize, cost: usize, len: usize| {
            ops == 0 || (ops + cost <= limit.items && bytes.saturating_add(len) <= limit.bytes)
        };
        while let Some(item) = self.batch.front() {
            if !fits(ops, bytes, 1 + usize::from(item.staged), item.data.len()) {
                break;
            }
            let Some(item) = self.batch.pop_front() else {
                break;
            };
            ops += 1 + usize::from(item.staged);
            bytes += item.data.len();
            self.batch_bytes -= item.data.len();
            if item.staged {
                cut.batch.unstaged.push(item.key.hash);
                cut.unstaged_bytes += item.data.len() as u64;
            } else {
                cut.new_items += 1;
                cut.new_bytes += item.data.len() as u64;
            }
            self.in_batch.remove(&item.key);
            let entry = (item.key.hash, item.data);
            match item.key.kind {
                ItemKind::Node => cut.batch.nodes.push(entry),
                ItemKind::Code => cut.batch.codes.push(entry),
            }
            if item.from_account {
                self.recent.insert(item.key);
            }
            if let Some(filter) = &mut self.filter {
                // Before the write lands, which is fine: lookups run after it, in order.
                filter.insert(&item.key);
            }
        }
        for (hash, len) in self.discard.drain(..) {
            cut.batch.unstaged.push(hash);
            cut.unstaged_bytes += len as u64;
            ops += 1;
        }
        // Waiting nodes, oldest first; what does not fit stays for the next cut.
        let mut staged_upto = 0;
        for (slot, hash) in &self.to_stage {
            let Some(req) = self
                .table
                .at_mut(*slot)
                .filter(|r| r.key == StoreKey::node(*hash))
            else {
                staged_upto += 1;
                continue;
            };
            let Some(data) = req.data.as_ref().filter(|_| !req.staged) else {
                staged_upto += 1;
                continue;
            };
            if !fits(ops, bytes, 1, data.len()) {
                break;
            }
            ops += 1;
            bytes += data.len();
            req.staged = true;
            cut.new_items += 1;
            cut.new_bytes += data.len() as u64;
            cut.batch.staged.push((*hash, self.buffers.copy_of(data)));
            staged_upto += 1;
        }
        self.to_stage.drain(..staged_upto);
        if self.is_done() && self.batch.is_empty() {
            // Nothing will claim what is left: it leaves the staging area with the last batch.
            for (hash, loose) in self.loose.drain() {
                if loose.staged {
                    cut.batch.unstaged.push(hash);
                    cut.unstaged_bytes += loose.data.len() as u64;
                } else {
                    self.unwritten_items -= 1;
                    self.unwritten_bytes -= loose.data.len() as u64;
                }
            }
            self.loose_unstaged = 0;
        } else if self.loose_unstaged > 0 {
            for (hash, loose) in self.loose.iter_mut() {
                if loose.staged {
                    continue;
                }
                if !fits(ops, bytes, 1, loose.data.len()) {
                    break;
                }
                ops += 1;
                bytes += loose.data.len();
                loose.staged = true;
                self.loose_unstaged -= 1;
                cut.new_items += 1;
                cut.new_bytes += loose.data.len() as u64;
                cut.batch
                    .staged
                    .push((*hash, self.buffers.copy_of(&loose.data)));
            }
        }
        self.unwritten_items -= cut.new_items;
        self.unwritten_bytes -= cut.new_bytes;
        cut
    }

    /// Takes back the buffers of a batch the store has written, to copy later blobs into
    /// instead of allocating, while under `budget` bytes are held.
    pub fn recycle(&mut self, batch: CommitBatch, budget: usize) {
        let CommitBatch {
            nodes,
            codes,
            staged,
            ..
        } = batch;
        for (_, buffer) in nodes.into_iter().chain(codes).chain(staged) {
            self.buffers.give_back(buffer, budget);
        }
    }

    /// Whether a cut would write anything.
    pub fn has_work_to_write(&self) -> bool {
        !self.batch.is_empty()
            || !self.discard.is_empty()
            || self.unwritten_items > 0
            || (self.is_done() && self.loose.values().any(|l| l.staged))
    }

    /// Verified items and payload bytes that no batch has taken yet: what a crash now would
    /// lose, besides a batch being written.
    pub fn unwritten(&self) -> (u64, u64) {
        (self.unwritten_items, self.unwritten_bytes)
    }

    /// Items in the memory batch.
    pub fn batch_len(&self) -> usize {
        self.batch.len()
    }

    /// Payload bytes in the memory batch.
    pub fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// Ends this scheduler for a root switch, keeping what it verified: complete items stay
    /// to be written, waiting nodes become loose blobs for `next`, which syncs the new root.
    pub fn hand_over(mut self, next: &mut Scheduler) {
        next.recent = std::mem::replace(&mut self.recent, RecentKeys::new(0));
        if next.filter.is_none() {
            next.filter = self.filter.take();
        }
        for item in self.batch.drain(..) {
            if !next.in_batch.insert(item.key) {
                if item.staged {
                    next.discard.push((item.key.hash, item.data.len()));
                }
                continue;
            }
            if !item.staged {
                next.unwritten_items += 1;
                next.unwritten_bytes += item.data.len() as u64;
            }
            next.batch_bytes += item.data.len();
            next.batch.push_back(item);
        }
        next.discard.append(&mut self.discard);
        for req in self.table.drain() {
            if let (ItemKind::Node, Some(data)) = (req.key.kind, req.data) {
                next.add_loose(req.key.hash, data, req.staged);
            }
        }
        for (hash, loose) in self.loose.drain() {
            next.add_loose(hash, loose.data, loose.staged);
        }
    }

    /// Whether a node at a path of `len` nibbles is part of the keyspace the completed
    /// fraction measures.
    fn is_keyspace_path(&self, len: usize) -> bool {
        match self.config.mode {
            SyncMode::State => len < ACCOUNT_PATH_LEN,
            SyncMode::Trie => true,
        }
    }

    /// Registers a reference to `key` from `parent`. Complete items are skipped; an item
    /// already pending gains a parent; anything else is parked for a store lookup, or queued
    /// at once when the filter knows the store lacks it.
    fn add_child(&mut self, key: StoreKey, path: PackedPath, parent: Option<Slot>) -> Child {
        if self.in_batch.contains(&key) {
            self.stats.found_in_batch += 1;
            return Child::Complete;
        }
        let vacant = match self.table.lookup(key) {
            Lookup::Found(slot) => {
                if let (Some(parent), Some(req)) = (parent, self.table.at_mut(slot)) {
                    req.parents.push(parent);
                }
                return Child::Pending;
            }
            Lookup::Absent(vacant) => vacant,
        };
        if self.recent.contains(key) {
            self.stats.found_in_batch += 1;
            return Child::Complete;
        }
        let absent = self.filter.as_ref().is_some_and(|f| !f.may_contain(&key));
        let loose = key.kind == ItemKind::Node && self.loose.contains_key(&key.hash);
        let priority = path.priority();
        let slot = vacant.insert(Request::checking(key, path, parent));
        if absent && !loose {
            // Certainly not stored, and nothing here can answer it: queue it now.
            self.enqueue(slot, priority);
        } else {
            if absent {
                self.absent.push(key);
            } else {
                self.lookups.push(key);
            }
            self.awaiting_host += 1;
        }
        self.size_for_bound();
        Child::Pending
    }

    /// Sizes the table and the queue for `max_pending` at once when a sync first holds a
    /// quarter of it: small syncs stay small, and a large one's memory does not depend on how
    /// far its frontier grows before it reaches the bound.
    fn size_for_bound(&mut self) {
        let bound = self.config.max_pending;
        if self.sized || self.table.len() < bound / 4 {
            return;
        }
        self.sized = true;
        let capacity = table_capacity(bound);
        self.table
            .reserve(capacity.saturating_sub(self.table.len()));
        self.queue.reserve(bound.saturating_sub(self.queue.len()));
    }

    /// A request stopped waiting on the host (its lookup was answered or its data arrived).
    fn host_answered(&mut self) {
        debug_assert!(self.awaiting_host > 0, "awaiting_host accounting");
        self.awaiting_host = self.awaiting_host.saturating_sub(1);
    }

    /// Reads node `hash` (its request in `slot`) in place and gathers what it references into `self.children`,
    /// without changing anything else; says what it does to the keyspace share.
    fn expand(&mut self, slot: Slot, hash: H256, data: &[u8]) -> Result<Credit, ProcessError> {
        let Some(req) = self.table.at(slot) else {
            return Err(ProcessError::NotRequested);
        };
        let Scratch { children, path, .. } = &mut self.scratch;
        req.path.unpack_into(path);
        let depth = path.len();
        let accounts = self.config.mode == SyncMode::State && depth < ACCOUNT_PATH_LEN;
        children.clear();
        let mut failure = None;
        let shape = visit_encoded(data, path, accounts, &mut |child| match child {
            ChildAt::Hash { path, hash } => {
                children.push((StoreKey::node(hash), PackedPath::pack(path)));
            }
            ChildAt::Value { path, value } if accounts && failure.is_none() => {
                if path.len() != ACCOUNT_PATH_LEN {
                    failure = Some(ProcessError::ValueOffAccountPath {
                        hash,
                        path: path.clone(),
                    });
                    return;
                }
                match Account::decode(value) {
                    Ok(account) => {
                        if account.storage_root != EMPTY_ROOT_HASH {
                            let key = StoreKey::node(account.storage_root);
                            children.push((key, PackedPath::pack(path)));
                        }
                        if account.code_hash != KECCAK_EMPTY {
                            let key = StoreKey::code(account.code_hash);
                            children.push((key, PackedPath::pack(path)));
                        }
                    }
                    Err(source) => {
                        failure = Some(ProcessError::InvalidAccount {
                            hash,
                            path: path.clone(),
                            source,
                        })
                    }
                }
            }
            ChildAt::Value { .. } => {}
        });
        let shape = shape.map_err(|source| ProcessError::InvalidNode {
            hash,
            path: path.clone(),
            source,
        })?;
        if let Some(err) = failure {
            return Err(err);
        }
        let mut credit = Credit {
            now: 0,
            leaf: false,
        };
        if self.is_keyspace_path(depth) {
            match shape {
                NodeShape::Branch { hashed } => {
                    let unhashed = 16 - hashed.count_ones();
                    credit.now = u128::from(unhashed) * keyspace_share(depth + 1);
                }
                NodeShape::Extension { len, hashed } => {
                    let below = keyspace_share(depth + len);
                    credit.now = keyspace_share(depth) - below;
                    if !hashed {
                        credit.now += below;
                    }
                }
                NodeShape::Leaf => credit.leaf = true,
            }
        }
        Ok(credit)
    }

    /// Registers the children `expand` gathered under the node in `slot`, gives it its data,
    /// and completes it if nothing is left to wait for.
    fn attach_children(&mut self, slot: Slot, data: Vec<u8>, credit: Credit, staged: bool) {
        let mut deps = 0;
        let mut completed = credit.now;
        let mut children = std::mem::take(&mut self.scratch.children);
        for (key, path) in children.drain(..) {
            let share = if key.kind == ItemKind::Node && self.is_keyspace_path(path.len()) {
                keyspace_share(path.len())
            } else {
                0
            };
            match self.add_child(key, path, Some(slot)) {
                Child::Complete => completed += share,
                Child::Pending => deps += 1,
            }
        }
        self.scratch.children = children;
        self.completed += completed;
        let Some(req) = self.table.at_mut(slot) else {
            return;
        };
        req.data = Some(data);
        req.staged = staged;
        req.deps += deps;
        req.leaf = credit.leaf;
        if std::mem::take(&mut req.out) {
            if let Some(depth) = req.fetch_depth {
                self.fanout.answered(usize::from(depth), Some(deps));
            }
        }
        let Some(req) = self.table.at_mut(slot) else {
            return;
        };
        if req.deps == 0 {
            self.complete(slot);
        } else {
            let answered = matches!(req.phase, Phase::Checking | Phase::Fetching);
            req.phase = Phase::Waiting;
            if !staged {
                self.to_stage.push((slot, req.key.hash));
            }
            if answered {
                self.host_answered();
            }
        }
    }

    /// Completes the request in `slot`: its data (if fetched) goes to the memory batch, a
    /// request without data (found in the store) is dropped, and parents left with no
    /// pending children complete in turn.
    fn complete(&mut self, slot: Slot) {
        let mut stack = std::mem::take(&mut self.scratch.completing);
        stack.push(slot);
        while let Some(slot) = stack.pop() {
            // What completing needs is taken out; the rest is dropped where it lies.
            let Some(req) = self.table.at_mut(slot) else {
                continue;
            };
            let (key, staged, path_len) = (req.key, req.staged, req.path.len());
            let answered = matches!(req.phase, Phase::Checking | Phase::Fetching);
            let (fetch_depth, leaf) = (req.fetch_depth, req.leaf);
            if req.out {
                if let Some(depth) = fetch_depth {
                    self.fanout.answered(usize::from(depth), None);
                }
            }
            let data = req.data.take();
            let parents = std::mem::take(&mut req.parents);
            self.table.free(slot);
            if answered {
                self.host_answered();
            }
            if let Some(depth) = fetch_depth {
                if let Some(count) = self.fetches.get_mut(usize::from(depth)) {
                    *count = count.saturating_sub(1);
                }
            }
            if leaf {
                self.completed += keyspace_share(path_len);
            }
            if let Some(data) = data {
                self.stats.committed += 1;
                self.batch_bytes += data.len();
                self.in_batch.insert(key);
                let from_account = key.kind == ItemKind::Code
                    || (self.config.mode == SyncMode::State && path_len == ACCOUNT_PATH_LEN);
                self.batch.push_back(Completed {
                    key,
                    from_account,
                    data,
                    staged,
                });
            } else if key.kind == ItemKind::Node {
                if let Some(loose) = self.loose.remove(&key.hash) {
                    // Found complete in the store while a copy waited: drop the copy.
                    if loose.staged {
                        self.discard.push((key.hash, loose.data.len()));
                    } else {
                        self.unwritten_items -= 1;
                        self.unwritten_bytes -= loose.data.len() as u64;
                        self.loose_unstaged -= 1;
                    }
                }
            }
            parents.for_each(|parent| {
                if let Some(p) = self.table.at_mut(parent) {
                    p.deps = p.deps.saturating_sub(1);
                    if p.deps == 0 && p.phase == Phase::Waiting {
                        stack.push(parent);
                    }
                }
            });
        }
        self.scratch.completing = stack;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::builder::{KeyMode, TrieBuilder};
    use crate::store::MemoryStore;

    fn source(entries: &[(&[u8], &[u8])]) -> (H256, MemoryStore) {
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        for (key, value) in entries {
            trie.insert(key, value);
        }
        let mut store = MemoryStore::new();
        let root = trie.build(&mut |h, n| store.insert(StoreKey::node(h), n));
        (root, store)
    }

    /// Plays the host for a few rounds: answer lookups, fetch all `missing` hands out, commit.
    fn drive(scheduler: &mut Scheduler, source: &MemoryStore, store: &mut MemoryStore) {
        for _ in 0..20 {
            for key in scheduler.take_lookups() {
                scheduler.handle_lookup(key, store.contains(key));
            }
            for task in scheduler.missing(0) {
                let blob = source.get(task.key()).unwrap().to_vec();
                scheduler.process(HashedBlob::new(blob)).unwrap();
            }
            store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
        }
    }

    fn capped(root: H256, cap: usize) -> Scheduler {
        let config = SchedulerConfig {
            mode: SyncMode::Trie,
            max_fetches_per_depth: cap,
            ..SchedulerConfig::default()
        };
        Scheduler::new(root, config)
    }

    #[test]
    fn a_node_shared_at_two_depths_does_not_stall_a_capped_sync() {
        // One leaf sits at depth 1 (key 0x15) and at depth 3 (key 0x0235). With one fetch per
        // depth, the extension at depth 1 holds the slot while the branch below it waits on
        // that leaf, whose request was recorded at depth 1: nothing else could move.
        let (root, source) = source(&[
            (&[0x15], &[7; 40]),
            (&[0x02, 0x35], &[7; 40]),
            (&[0x02, 0x46], &[6; 40]),
        ]);
        let mut scheduler = capped(root, 1);
        let mut store = MemoryStore::new();
        drive(&mut scheduler, &source, &mut store);
        assert!(
            scheduler.is_done(),
            "stalled, {} pending",
            scheduler.pending()
        );
        assert_eq!(store.keys(), source.keys());
    }

    #[test]
    fn the_cap_holds_while_a_delivery_or_lookup_is_due() {
        let (root, source) = source(&[(&[0x10], &[1; 40]), (&[0x20], &[2; 40])]);
        let mut scheduler = capped(root, 1);
        for key in scheduler.take_lookups() {
            scheduler.handle_lookup(key, false);
        }
        let root_task = scheduler.missing(0);
        let blob = source.get(root_task[0].key()).unwrap().to_vec();
        scheduler.process(HashedBlob::new(blob)).unwrap();
        // Two leaves at depth 1; while their lookups are unanswered nothing is handed out.
        assert!(scheduler.missing(0).is_empty());
        for key in scheduler.take_lookups() {
            scheduler.handle_lookup(key, false);
        }
        // One slot at depth 1: one leaf, and none more while it is being fetched.
        let leaf = scheduler.missing(0);
        assert_eq!(leaf.len(), 1);
        assert!(scheduler.missing(0).is_empty());
        let blob = source.get(leaf[0].key()).unwrap().to_vec();
        scheduler.process(HashedBlob::new(blob)).unwrap();
        let mut store = MemoryStore::new();
        drive(&mut scheduler, &source, &mut store);
        assert!(scheduler.is_done());
    }
}
