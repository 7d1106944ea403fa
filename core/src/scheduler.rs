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

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use thiserror::Error;

use crate::account::{Account, AccountError};
use crate::hash::{keccak256, DigestMap, DigestSet, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
use crate::nibbles::Nibbles;
use crate::node::{ChildRef, NodeChild, NodeError, TrieNode};
use crate::store::{CommitBatch, ItemKind, StoreKey};

/// geth's `maxFetchesPerDepth`: how many requests of one depth may be fetched or waiting for
/// their children at once. It bounds the memory of a sync by depth rather than by state size.
pub const DEFAULT_MAX_FETCHES_PER_DEPTH: usize = 16384;

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
}

/// Default of [`SchedulerConfig::recent_complete`]: about 2 MB of sets.
pub const DEFAULT_RECENT_COMPLETE: usize = 32_768;

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            mode: SyncMode::State,
            max_fetches_per_depth: DEFAULT_MAX_FETCHES_PER_DEPTH,
            recent_complete: DEFAULT_RECENT_COMPLETE,
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RequestState {
    /// Waiting for the host to say whether the store has it.
    Checking,
    /// In the fetch queue.
    Queued,
    /// Handed out by `missing`.
    Fetching,
    /// Processed, waiting for `deps` children to complete.
    Waiting,
}

#[derive(Debug)]
struct Request {
    path: Nibbles,
    state: RequestState,
    /// Held from `process` until commit.
    data: Option<Vec<u8>>,
    /// Nodes waiting on this one; a parent appears once per reference to this item.
    parents: Vec<H256>,
    /// Children not yet complete.
    deps: u32,
    /// The depth counted in `fetches` while fetched or waiting.
    fetch_depth: Option<usize>,
    /// Keyspace to credit when this request commits (an account leaf's range).
    credit_on_commit: u128,
    /// Its data is in the store's staging area (or on its way there in a cut batch).
    staged: bool,
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

#[derive(PartialEq, Eq, Debug)]
struct QueueEntry {
    priority: u64,
    seq: Reverse<u64>,
    kind: ItemKind,
    hash: H256,
}

impl Ord for QueueEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

impl PartialOrd for QueueEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// geth's priority (v1.9.21+): depth in the top byte, so the deepest item comes first; then
/// the first 14 nibbles inverted, so at equal depth the smallest path comes first. The walk
/// is therefore depth-first in path order, and completed subtries leave memory early.
fn priority(path: &Nibbles) -> u64 {
    let mut prio = (path.len().min(255) as u64) << 56;
    for (i, nibble) in path.as_slice().iter().take(14).enumerate() {
        prio |= u64::from(15 - nibble) << (52 - 4 * i);
    }
    prio
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
    node_reqs: DigestMap<Request>,
    code_reqs: DigestMap<Request>,
    queue: BinaryHeap<QueueEntry>,
    seq: u64,
    lookups: Vec<StoreKey>,
    /// Requests fetched or waiting for children, per depth.
    fetches: Vec<usize>,
    /// Requests waiting on the host: a lookup answer (`Checking`) or a delivery (`Fetching`).
    awaiting_host: usize,
    /// Complete items in completion order: a child always before its parents, so any prefix
    /// can be written on its own without breaking I2.
    batch: VecDeque<Completed>,
    /// Keys of the memory batch: complete without asking the store.
    complete_nodes: DigestSet,
    complete_codes: DigestSet,
    /// Code and storage roots cut from the batch recently, complete too (written, or on their
    /// way: a later batch lands after them, so a parent completed on their account lands
    /// after them, I2). Accounts share these; another reference to one completes at once
    /// instead of costing a store lookup.
    recent: RecentKeys,
    batch_bytes: usize,
    /// Nodes that went waiting for children since the last cut, to be staged by the next one.
    to_stage: Vec<H256>,
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
}

/// How a referenced child was handled.
enum Child {
    /// Already complete (in the memory batch); nothing to wait for.
    Complete,
    /// The parent must wait for it.
    Pending,
}

impl Scheduler {
    /// A scheduler for everything under `root`. The root itself is looked up first, so a
    /// store that already holds it (a finished or resumed sync) completes at once.
    pub fn new(root: H256, config: SchedulerConfig) -> Scheduler {
        let recent = RecentKeys::new(config.recent_complete);
        let mut scheduler = Scheduler {
            config,
            root,
            node_reqs: DigestMap::default(),
            code_reqs: DigestMap::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            lookups: Vec::new(),
            fetches: Vec::new(),
            awaiting_host: 0,
            batch: VecDeque::new(),
            complete_nodes: DigestSet::default(),
            complete_codes: DigestSet::default(),
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
        };
        if root == EMPTY_ROOT_HASH {
            scheduler.completed = KEYSPACE_ONE;
        } else {
            scheduler.add_child(StoreKey::node(root), Nibbles::new(), None);
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
        self.node_reqs.len() + self.code_reqs.len()
    }

    pub fn is_done(&self) -> bool {
        self.pending() == 0
    }

    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// Entries the scheduler holds in memory: requests and queue slots. Bounded by the
    /// per-depth cap times the fan-out, not by the size of the state (I5).
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
        std::mem::take(&mut self.lookups)
    }

    /// Whether lookups are waiting to be taken.
    pub fn has_lookups(&self) -> bool {
        !self.lookups.is_empty()
    }

    /// The host's answer to a lookup: whether the store holds `key`. A present item is
    /// complete with its whole subtrie (I2), so it is skipped; an absent one is queued for
    /// fetching. Answers for keys no longer being checked are ignored.
    pub fn handle_lookup(&mut self, key: StoreKey, present: bool) {
        let Some(req) = self.requests(key.kind).get(&key.hash) else {
            return;
        };
        if req.state != RequestState::Checking {
            return;
        }
        let path_len = req.path.len();
        let keyspace = key.kind == ItemKind::Node && self.is_keyspace_path(&req.path);
        let priority = priority(&req.path);
        if present {
            self.stats.found_in_store += 1;
            if keyspace {
                self.completed += keyspace_share(path_len);
            }
            self.complete(key);
            return;
        }
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
        if let Some(req) = self.requests_mut(key.kind).get_mut(&key.hash) {
            req.state = RequestState::Queued;
        }
        self.host_answered();
        self.seq += 1;
        self.queue.push(QueueEntry {
            priority,
            seq: Reverse(self.seq),
            kind: key.kind,
            hash: key.hash,
        });
    }

    /// Up to `max` items to fetch (0: no limit), deepest and then smallest path first. Stops
    /// early when the next item's depth already has `max_fetches_per_depth` requests out, as
    /// geth does. No item is handed out twice.
    #[must_use]
    pub fn missing(&mut self, max: usize) -> Vec<Task> {
        let mut out = Vec::new();
        while let Some(top) = self.queue.peek() {
            if max != 0 && out.len() >= max {
                break;
            }
            let (kind, hash) = (top.kind, top.hash);
            let queued = self
                .requests(kind)
                .get(&hash)
                .is_some_and(|r| r.state == RequestState::Queued);
            if !queued {
                // Delivered before it was fetched; drop the stale queue slot.
                self.queue.pop();
                continue;
            }
            let depth = (top.priority >> 56) as usize;
            let at_cap =
                self.fetches.get(depth).copied().unwrap_or(0) >= self.config.max_fetches_per_depth;
            // Past the cap only when nothing else can move: the requests holding this depth
            // wait on children queued behind it (a node shared at a shallower depth, as in a
            // trie of keys of different lengths) and no lookup or delivery is due. Stopping
            // there, as geth does, would stall the sync for good.
            if at_cap && (!out.is_empty() || self.awaiting_host > 0) {
                break;
            }
            self.queue.pop();
            if self.fetches.len() <= depth {
                self.fetches.resize(depth + 1, 0);
            }
            self.fetches[depth] += 1;
            self.awaiting_host += 1;
            if let Some(req) = self.requests_mut(kind).get_mut(&hash) {
                req.state = RequestState::Fetching;
                req.fetch_depth = Some(depth);
                out.push(Task {
                    hash,
                    kind,
                    path: req.path.clone(),
                });
            }
        }
        out
    }

    /// Takes a verified blob. A code request completes at once; a node request is decoded,
    /// its children are scheduled (or looked up), and it completes when they have.
    ///
    /// A hash that is pending both as code and as a node feeds both. An error leaves the
    /// scheduler as it was.
    pub fn process(&mut self, blob: HashedBlob) -> Result<(), ProcessError> {
        self.process_blob(blob, false)
    }

    /// `process` for a blob that is durable already (`staged`: in the staging area) or not.
    fn process_blob(&mut self, blob: HashedBlob, staged: bool) -> Result<(), ProcessError> {
        let hash = blob.hash;
        let wants = |reqs: &DigestMap<Request>| reqs.get(&hash).map(|r| r.data.is_none());
        let (as_code, as_node) = (wants(&self.code_reqs), wants(&self.node_reqs));
        if as_code.is_none() && as_node.is_none() {
            return Err(ProcessError::NotRequested);
        }
        let (as_code, as_node) = (as_code == Some(true), as_node == Some(true));
        if !as_code && !as_node {
            return Err(ProcessError::AlreadyProcessed);
        }
        // Decode first: a node that does not decode must change nothing.
        let children = if as_node {
            let path = self
                .node_reqs
                .get(&hash)
                .map(|r| r.path.clone())
                .unwrap_or_default();
            Some(self.expand(hash, &path, &blob.data)?)
        } else {
            None
        };
        if staged {
            self.stats.restored += 1;
        } else {
            self.stats.processed += 1;
            self.stats.processed_bytes += blob.data.len() as u64;
            // Durable nowhere until a batch holds it, in the main keyspace or in staging.
            self.unwritten_items += u64::from(as_code) + u64::from(as_node);
            self.unwritten_bytes +=
                blob.data.len() as u64 * (u64::from(as_code) + u64::from(as_node));
        }
        let mut data = blob.data;
        if as_code {
            // Only a hash pending as both code and node needs a second copy.
            let code_data = if as_node {
                data.clone()
            } else {
                std::mem::take(&mut data)
            };
            if let Some(req) = self.code_reqs.get_mut(&hash) {
                req.data = Some(code_data);
            }
            self.complete(StoreKey::code(hash));
        }
        if let Some(expanded) = children {
            self.attach_children(hash, data, expanded, staged);
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
        match self.node_reqs.get_mut(&hash) {
            Some(req) if req.data.is_some() => {
                // Verified here already; a staged copy makes it durable.
                if staged && !req.staged {
                    req.staged = true;
                    self.unwritten_items -= 1;
                    self.unwritten_bytes -= len;
                }
                return;
            }
            Some(req) if matches!(req.state, RequestState::Queued | RequestState::Fetching) => {
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
        if self.complete_nodes.contains(&hash) {
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
            // Counted while loose; `process_blob` counts it again as fetched and unwritten.
            self.unwritten_items -= 1;
            self.unwritten_bytes -= len as u64;
        }
        let staged = loose.staged;
        let blob = HashedBlob {
            hash,
            data: loose.data,
        };
        match self.process_blob(blob, staged) {
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

    /// Whether `key` was handed out by `missing` and is still awaited: a retry of it is
    /// worth sending.
    pub fn is_wanted(&self, key: StoreKey) -> bool {
        self.requests(key.kind)
            .get(&key.hash)
            .is_some_and(|r| r.state == RequestState::Fetching && r.data.is_none())
    }

    /// Cuts a batch to write in one atomic store transaction, within `limit` (but never
    /// empty while there is something to write): the oldest complete items for the main
    /// keyspace (removing from staging those that were staged), then waiting and loose nodes
    /// for the staging area. Once the sync is done, staged blobs nobody claimed are removed.
    #[must_use]
    pub fn commit(&mut self, limit: BatchLimit) -> Cut {
        let mut cut = Cut::default();
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
            match item.key.kind {
                ItemKind::Node => {
                    self.complete_nodes.remove(&item.key.hash);
                    cut.batch.nodes.push((item.key.hash, item.data));
                }
                ItemKind::Code => {
                    self.complete_codes.remove(&item.key.hash);
                    cut.batch.codes.push((item.key.hash, item.data));
                }
            }
            if item.from_account {
                self.recent.insert(item.key);
            }
        }
        for (hash, len) in self.discard.drain(..) {
            cut.batch.unstaged.push(hash);
            cut.unstaged_bytes += len as u64;
            ops += 1;
        }
        // Waiting nodes, oldest first; what does not fit stays for the next cut.
        let mut staged_upto = 0;
        for hash in &self.to_stage {
            let Some(req) = self.node_reqs.get_mut(hash) else {
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
            cut.batch.staged.push((*hash, data.clone()));
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
                cut.batch.staged.push((*hash, loose.data.clone()));
            }
        }
        self.unwritten_items -= cut.new_items;
        self.unwritten_bytes -= cut.new_bytes;
        cut
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
        for item in self.batch.drain(..) {
            let set = match item.key.kind {
                ItemKind::Node => &mut next.complete_nodes,
                ItemKind::Code => &mut next.complete_codes,
            };
            if !set.insert(item.key.hash) {
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
        for (hash, req) in self.node_reqs.drain() {
            if let Some(data) = req.data {
                next.add_loose(hash, data, req.staged);
            }
        }
        for (hash, loose) in self.loose.drain() {
            next.add_loose(hash, loose.data, loose.staged);
        }
    }

    fn requests(&self, kind: ItemKind) -> &DigestMap<Request> {
        match kind {
            ItemKind::Node => &self.node_reqs,
            ItemKind::Code => &self.code_reqs,
        }
    }

    fn requests_mut(&mut self, kind: ItemKind) -> &mut DigestMap<Request> {
        match kind {
            ItemKind::Node => &mut self.node_reqs,
            ItemKind::Code => &mut self.code_reqs,
        }
    }

    /// Whether a node at `path` is part of the keyspace the completed fraction measures.
    fn is_keyspace_path(&self, path: &Nibbles) -> bool {
        match self.config.mode {
            SyncMode::State => path.len() < ACCOUNT_PATH_LEN,
            SyncMode::Trie => true,
        }
    }

    /// Registers a reference to `key` from `parent`. Complete items are skipped; an item
    /// already pending gains a parent; anything else is parked for a store lookup.
    fn add_child(&mut self, key: StoreKey, path: Nibbles, parent: Option<H256>) -> Child {
        let in_batch = match key.kind {
            ItemKind::Node => self.complete_nodes.contains(&key.hash),
            ItemKind::Code => self.complete_codes.contains(&key.hash),
        };
        if in_batch || self.recent.contains(key) {
            self.stats.found_in_batch += 1;
            return Child::Complete;
        }
        let reqs = self.requests_mut(key.kind);
        if let Some(existing) = reqs.get_mut(&key.hash) {
            existing.parents.extend(parent);
            return Child::Pending;
        }
        reqs.insert(
            key.hash,
            Request {
                path,
                state: RequestState::Checking,
                data: None,
                parents: parent.into_iter().collect(),
                deps: 0,
                fetch_depth: None,
                credit_on_commit: 0,
                staged: false,
            },
        );
        self.lookups.push(key);
        self.awaiting_host += 1;
        Child::Pending
    }

    /// A request stopped waiting on the host (its lookup was answered or its data arrived).
    fn host_answered(&mut self) {
        debug_assert!(self.awaiting_host > 0, "awaiting_host accounting");
        self.awaiting_host = self.awaiting_host.saturating_sub(1);
    }

    /// Decodes a node and lists what it references, without changing anything.
    fn expand(&self, hash: H256, path: &Nibbles, data: &[u8]) -> Result<Expanded, ProcessError> {
        let node = TrieNode::decode(data).map_err(|source| ProcessError::InvalidNode {
            hash,
            path: path.clone(),
            source,
        })?;
        let keyspace = self.is_keyspace_path(path);
        let mut expanded = Expanded::default();
        if keyspace {
            let depth = path.len();
            match &node {
                TrieNode::Branch(branch) => {
                    for child in &branch.children {
                        if !matches!(child, ChildRef::Hash(_)) {
                            expanded.credit_now += keyspace_share(depth + 1);
                        }
                    }
                }
                TrieNode::Extension { path: key, child } => {
                    let below = keyspace_share(depth + key.len());
                    expanded.credit_now += keyspace_share(depth) - below;
                    if !matches!(child, ChildRef::Hash(_)) {
                        expanded.credit_now += below;
                    }
                }
                TrieNode::Leaf { .. } => expanded.credit_on_commit = keyspace_share(depth),
            }
        }
        let accounts = self.config.mode == SyncMode::State && path.len() < ACCOUNT_PATH_LEN;
        let mut failure = None;
        node.visit_children(path, &mut |child| match child {
            NodeChild::Hash { path, hash } => expanded.children.push((StoreKey::node(hash), path)),
            NodeChild::Value {
                path: value_path,
                value,
            } if accounts => {
                if failure.is_some() {
                    return;
                }
                if value_path.len() != ACCOUNT_PATH_LEN {
                    failure = Some(ProcessError::ValueOffAccountPath {
                        hash,
                        path: value_path,
                    });
                    return;
                }
                match Account::decode(value) {
                    Ok(account) => {
                        if account.storage_root != EMPTY_ROOT_HASH {
                            let key = StoreKey::node(account.storage_root);
                            expanded.children.push((key, value_path.clone()));
                        }
                        if account.code_hash != KECCAK_EMPTY {
                            expanded
                                .children
                                .push((StoreKey::code(account.code_hash), value_path));
                        }
                    }
                    Err(source) => {
                        failure = Some(ProcessError::InvalidAccount {
                            hash,
                            path: value_path,
                            source,
                        })
                    }
                }
            }
            NodeChild::Value { .. } => {}
        });
        match failure {
            Some(err) => Err(err),
            None => Ok(expanded),
        }
    }

    fn attach_children(&mut self, hash: H256, data: Vec<u8>, expanded: Expanded, staged: bool) {
        let mut deps = 0;
        let mut credit = expanded.credit_now;
        for (key, path) in expanded.children {
            let share = if key.kind == ItemKind::Node && self.is_keyspace_path(&path) {
                keyspace_share(path.len())
            } else {
                0
            };
            match self.add_child(key, path, Some(hash)) {
                Child::Complete => credit += share,
                Child::Pending => deps += 1,
            }
        }
        self.completed += credit;
        let Some(req) = self.node_reqs.get_mut(&hash) else {
            return;
        };
        req.data = Some(data);
        req.staged = staged;
        req.deps += deps;
        req.credit_on_commit = expanded.credit_on_commit;
        if req.deps == 0 {
            self.complete(StoreKey::node(hash));
        } else {
            let answered = matches!(req.state, RequestState::Checking | RequestState::Fetching);
            req.state = RequestState::Waiting;
            if !staged {
                self.to_stage.push(hash);
            }
            if answered {
                self.host_answered();
            }
        }
    }

    /// Completes `key`: its data (if fetched) goes to the memory batch, the request is
    /// dropped, and parents left with no pending children complete in turn.
    fn complete(&mut self, key: StoreKey) {
        let mut stack = vec![key];
        while let Some(key) = stack.pop() {
            let Some(req) = self.requests_mut(key.kind).remove(&key.hash) else {
                continue;
            };
            if matches!(req.state, RequestState::Checking | RequestState::Fetching) {
                self.host_answered();
            }
            if let Some(depth) = req.fetch_depth {
                if let Some(count) = self.fetches.get_mut(depth) {
                    *count = count.saturating_sub(1);
                }
            }
            self.completed += req.credit_on_commit;
            if let Some(data) = req.data {
                self.stats.committed += 1;
                self.batch_bytes += data.len();
                match key.kind {
                    ItemKind::Node => self.complete_nodes.insert(key.hash),
                    ItemKind::Code => self.complete_codes.insert(key.hash),
                };
                let from_account = key.kind == ItemKind::Code
                    || (self.config.mode == SyncMode::State && req.path.len() == ACCOUNT_PATH_LEN);
                self.batch.push_back(Completed {
                    key,
                    from_account,
                    data,
                    staged: req.staged,
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
            for parent in req.parents {
                if let Some(p) = self.node_reqs.get_mut(&parent) {
                    p.deps = p.deps.saturating_sub(1);
                    if p.deps == 0 && p.state == RequestState::Waiting {
                        stack.push(StoreKey::node(parent));
                    }
                }
            }
        }
    }
}

/// Keys cut recently, bounded: two generations of at most half the cap each. A key found in
/// the older generation moves to the newer one, so keys referenced again and again (shared
/// code, a shared storage trie) stay while the rest ages out: an LRU at the cost of two sets.
#[derive(Debug)]
struct RecentKeys {
    half: usize,
    current: KeySets,
    old: KeySets,
}

#[derive(Debug, Default)]
struct KeySets {
    nodes: DigestSet,
    codes: DigestSet,
}

impl KeySets {
    fn set(&mut self, kind: ItemKind) -> &mut DigestSet {
        match kind {
            ItemKind::Node => &mut self.nodes,
            ItemKind::Code => &mut self.codes,
        }
    }

    fn len(&self) -> usize {
        self.nodes.len() + self.codes.len()
    }
}

impl RecentKeys {
    fn new(cap: usize) -> RecentKeys {
        RecentKeys {
            half: cap / 2,
            current: KeySets::default(),
            old: KeySets::default(),
        }
    }

    fn insert(&mut self, key: StoreKey) {
        if self.half == 0 {
            return;
        }
        self.current.set(key.kind).insert(key.hash);
        if self.current.len() >= self.half {
            self.old = std::mem::take(&mut self.current);
        }
    }

    fn contains(&mut self, key: StoreKey) -> bool {
        if self.current.set(key.kind).contains(&key.hash) {
            return true;
        }
        if self.old.set(key.kind).remove(&key.hash) {
            self.insert(key);
            return true;
        }
        false
    }
}

/// What a node references, found before anything is changed.
#[derive(Default)]
struct Expanded {
    children: Vec<(StoreKey, Nibbles)>,
    credit_now: u128,
    credit_on_commit: u128,
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
