//! The reference sync loop of geth's tests (spec §5): ask `missing`, fetch from a source,
//! `process`, `commit`, write, repeat. Variants pick batch sizes and delivery orders.
//!
//! Beside it, the oracles the tests check against, written apart from the crate's walk: reading
//! a stored trie by path and by key, listing its entries, and DESIGN.md's invariants I1 (the
//! store is a verified subset of the source) and I2 (every stored item has its subtrie stored).

use std::collections::{BTreeMap, HashSet};

use statesync_core::node::{ChildRef, NodeChild};
use statesync_core::rng::SeededRng;
use statesync_core::walk::{walk, WalkStats};
use statesync_core::{
    keccak256, Account, BatchLimit, CommitBatch, HashedBlob, ItemKind, MemoryStore, Nibbles,
    Scheduler, SchedulerConfig, StoreKey, SyncMode, Task, TrieNode, EMPTY_ROOT_HASH, H256,
    KECCAK_EMPTY,
};

/// Answers every pending lookup from `store`, as an in-memory store can at once.
pub fn answer_lookups(scheduler: &mut Scheduler, store: &MemoryStore) {
    for key in scheduler.take_lookups() {
        scheduler.handle_lookup(key, store.contains(key));
    }
}

/// How the loop delivers what `missing` returned.
#[derive(Clone, Copy, Debug)]
pub enum Delivery {
    /// All, in the order returned.
    InOrder,
    /// All, shuffled.
    Random(u64),
    /// The first half (+1) each round; the rest is carried to the next round.
    DelayedHalf,
    /// A random half each round; the rest is carried.
    RandomHalf(u64),
}

/// Options for [`sync`].
#[derive(Clone, Copy, Debug)]
pub struct LoopOptions {
    /// `missing(max)`; 0 is unlimited.
    pub batch: usize,
    pub delivery: Delivery,
}

/// What a finished loop saw.
#[derive(Debug, Default)]
pub struct LoopReport {
    pub rounds: usize,
    /// Every task `missing` returned, in order.
    pub tasks: Vec<Task>,
}

/// Syncs `root` from `source` into `store` and returns the report.
pub fn sync(
    root: H256,
    mode: SyncMode,
    source: &MemoryStore,
    store: &mut MemoryStore,
    options: LoopOptions,
) -> LoopReport {
    let config = SchedulerConfig {
        mode,
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::new(root, config);
    sync_with(
        &mut scheduler,
        store,
        options,
        &mut |task| fetch_by_hash(source, task),
        &mut |_, _, _| {},
    )
}

/// The blob of `task` in `source`, looked up by its hash as GetNodeData serves it.
pub fn fetch_by_hash(source: &MemoryStore, task: &Task) -> Vec<u8> {
    source
        .get(task.key())
        .unwrap_or_else(|| panic!("source lacks {task:?}"))
        .to_vec()
}

/// The loop of [`sync`] around a scheduler the caller built: `fetch` answers each delivered
/// task with a blob (which the loop hashes), and `observe` sees every commit batch right after
/// it was written to `store`, with the scheduler as it was then.
pub fn sync_with(
    scheduler: &mut Scheduler,
    store: &mut MemoryStore,
    options: LoopOptions,
    fetch: &mut dyn FnMut(&Task) -> Vec<u8>,
    observe: &mut dyn FnMut(&Scheduler, &CommitBatch, &MemoryStore),
) -> LoopReport {
    let mut report = LoopReport::default();
    let mut carried: Vec<Task> = Vec::new();
    let mut rng = match options.delivery {
        Delivery::Random(seed) | Delivery::RandomHalf(seed) => SeededRng::new(seed),
        _ => SeededRng::new(0),
    };
    loop {
        answer_lookups(scheduler, store);
        let fresh = scheduler.missing(options.batch);
        report.tasks.extend(fresh.iter().cloned());
        carried.extend(fresh);
        if carried.is_empty() {
            break;
        }
        report.rounds += 1;
        assert!(report.rounds < 10_000_000, "sync loop does not terminate");
        let deliver: Vec<Task> = match options.delivery {
            Delivery::InOrder => std::mem::take(&mut carried),
            Delivery::Random(_) => {
                let mut all = std::mem::take(&mut carried);
                rng.shuffle(&mut all);
                all
            }
            Delivery::DelayedHalf => {
                let n = carried.len() / 2 + 1;
                carried.drain(..n.min(carried.len())).collect()
            }
            Delivery::RandomHalf(_) => {
                rng.shuffle(&mut carried);
                let n = carried.len() / 2 + 1;
                carried.drain(..n.min(carried.len())).collect()
            }
        };
        for task in deliver {
            let blob = fetch(&task);
            scheduler
                .process(HashedBlob::new(blob))
                .unwrap_or_else(|e| panic!("process {task:?}: {e}"));
        }
        let batch = scheduler.commit(BatchLimit::UNLIMITED).batch;
        store.apply(&batch);
        observe(scheduler, &batch, store);
    }
    assert!(
        scheduler.is_done(),
        "loop ended with {} pending",
        scheduler.pending()
    );
    let batch = scheduler.commit(BatchLimit::UNLIMITED).batch;
    store.apply(&batch);
    observe(scheduler, &batch, store);
    report
}

/// Checks that `store` holds exactly the complete state (or trie) of `root` from `source`.
pub fn assert_synced(
    root: H256,
    mode: SyncMode,
    source: &MemoryStore,
    store: &MemoryStore,
) -> WalkStats {
    let stats = walk(root, mode, store).unwrap_or_else(|e| panic!("synced store incomplete: {e}"));
    assert_eq!(walk(root, mode, source).expect("source walk"), stats);
    for key in store.keys() {
        assert_eq!(
            store.get(key),
            source.get(key),
            "store holds {key:?} differently from the source"
        );
    }
    stats
}

/// The hashed node at `path` below `root`, found by walking down from the root as geth's
/// `TryGetNode` does. `None` if the path leads nowhere, or to a node embedded in its parent
/// (which has no blob of its own).
pub fn node_at_path(store: &MemoryStore, root: H256, path: &Nibbles) -> Option<Vec<u8>> {
    let mut blob = store.get(StoreKey::node(root))?.to_vec();
    let mut node = TrieNode::decode(&blob).ok()?;
    let mut hashed = true;
    let mut at = 0;
    loop {
        if at == path.len() {
            return hashed.then_some(blob);
        }
        let next = match node {
            TrieNode::Branch(branch) => {
                at += 1;
                branch.children[usize::from(path.at(at - 1))].clone()
            }
            TrieNode::Extension { path: key, child } => {
                if !path.as_slice()[at..].starts_with(key.as_slice()) {
                    return None;
                }
                at += key.len();
                child
            }
            TrieNode::Leaf { .. } => return None,
        };
        match next {
            ChildRef::Empty => return None,
            ChildRef::Hash(hash) => {
                blob = store.get(StoreKey::node(hash))?.to_vec();
                node = TrieNode::decode(&blob).ok()?;
                hashed = true;
            }
            ChildRef::Embedded(inner) => {
                node = *inner;
                hashed = false;
            }
        }
    }
}

/// The value stored under the full key `key` in the trie at `root` (geth's `TryGet` on the
/// already hashed key).
pub fn value_at(store: &MemoryStore, root: H256, key: &Nibbles) -> Option<Vec<u8>> {
    if root == EMPTY_ROOT_HASH {
        return None;
    }
    let mut node = TrieNode::decode(store.get(StoreKey::node(root))?).ok()?;
    let mut at = 0;
    loop {
        let rest = &key.as_slice()[at..];
        let next = match node {
            TrieNode::Branch(branch) => {
                let Some(&nibble) = rest.first() else {
                    return branch.value;
                };
                at += 1;
                branch.children[usize::from(nibble)].clone()
            }
            TrieNode::Extension { path, child } => {
                if !rest.starts_with(path.as_slice()) {
                    return None;
                }
                at += path.len();
                child
            }
            TrieNode::Leaf { path, value } => {
                return (path.as_slice() == rest).then_some(value);
            }
        };
        node = match next {
            ChildRef::Empty => return None,
            ChildRef::Hash(hash) => TrieNode::decode(store.get(StoreKey::node(hash))?).ok()?,
            ChildRef::Embedded(inner) => *inner,
        };
    }
}

/// Every key and value of the trie at `root`, read from `store` (geth's `checkTrieContents`
/// oracle, independent of the crate's walk). Fails on a missing or undecodable node.
pub fn trie_entries(store: &MemoryStore, root: H256) -> Result<BTreeMap<Nibbles, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    if root == EMPTY_ROOT_HASH {
        return Ok(out);
    }
    let mut stack = vec![(root, Nibbles::new())];
    while let Some((hash, path)) = stack.pop() {
        let blob = store
            .get(StoreKey::node(hash))
            .ok_or_else(|| format!("node {hash} at {path} missing"))?;
        let node = TrieNode::decode(blob).map_err(|e| format!("node {hash}: {e}"))?;
        node.visit_children(&path, &mut |child| match child {
            NodeChild::Hash { path, hash } => stack.push((hash, path)),
            NodeChild::Value { path, value } => {
                out.insert(path, value.to_vec());
            }
        });
    }
    Ok(out)
}

/// Fetches a task the way snap's `GetTrieNodes` would: by its sync path rather than its hash.
/// A 1-tuple is a path in the trie at `root`; a 2-tuple names an account (by its hashed key)
/// whose storage trie holds the node at the second path. Code is fetched by hash.
pub fn fetch_by_sync_path(source: &MemoryStore, root: H256, task: &Task) -> Vec<u8> {
    if task.kind == ItemKind::Code {
        return fetch_by_hash(source, task);
    }
    let sync_path = task.sync_path();
    let compact = |bytes: &[u8]| {
        let (path, leaf) = Nibbles::decode_compact(bytes).expect("compact sync path");
        assert!(!leaf, "sync path {bytes:?} has the leaf flag");
        path
    };
    let found = match sync_path.as_slice() {
        [path] => node_at_path(source, root, &compact(path)),
        [account, path] => {
            let leaf = value_at(source, root, &Nibbles::from_bytes(account))
                .unwrap_or_else(|| panic!("no account at {account:?} for {task:?}"));
            let account = Account::decode(&leaf).expect("account leaf");
            node_at_path(source, account.storage_root, &compact(path))
        }
        other => panic!("sync path of {} elements", other.len()),
    };
    found.unwrap_or_else(|| panic!("nothing at the sync path of {task:?}"))
}

/// The node keys of the account trie at `root` in `source` (not its storage tries): the nodes
/// whose values are accounts. Empty for a plain trie.
pub fn account_trie_nodes(source: &MemoryStore, root: H256, mode: SyncMode) -> HashSet<H256> {
    let mut out = HashSet::new();
    if mode != SyncMode::State || root == EMPTY_ROOT_HASH {
        return out;
    }
    let mut stack = vec![root];
    while let Some(hash) = stack.pop() {
        if !out.insert(hash) {
            continue;
        }
        let blob = source.get(StoreKey::node(hash)).expect("source node");
        let node = TrieNode::decode(blob).expect("source node decodes");
        node.visit_children(&Nibbles::new(), &mut |child| {
            if let NodeChild::Hash { hash, .. } = child {
                stack.push(hash);
            }
        });
    }
    out
}

/// I1: every stored entry hashes to its key and is the source's entry.
pub fn check_verified_subset(store: &MemoryStore, source: &MemoryStore) -> Result<(), String> {
    for key in store.keys() {
        let value = store.get(key).unwrap_or_default();
        if keccak256(value) != key.hash {
            return Err(format!(
                "{key:?} holds a blob hashing to {}",
                keccak256(value)
            ));
        }
        if source.get(key) != Some(value) {
            return Err(format!("{key:?} is not in the source"));
        }
    }
    Ok(())
}

/// I2: every stored node has all its hashed children in the store, and every account in a
/// stored account-trie node (`account_nodes`) has its storage root and code there too.
pub fn check_closed(store: &MemoryStore, account_nodes: &HashSet<H256>) -> Result<(), String> {
    for key in store.keys() {
        if key.kind == ItemKind::Code {
            continue;
        }
        let blob = store.get(key).unwrap_or_default();
        let node = TrieNode::decode(blob).map_err(|e| format!("{key:?}: {e}"))?;
        let mut problem = None;
        node.visit_children(&Nibbles::new(), &mut |child| {
            let needs: Vec<StoreKey> = match child {
                NodeChild::Hash { hash, .. } => vec![StoreKey::node(hash)],
                NodeChild::Value { value, .. } if account_nodes.contains(&key.hash) => {
                    match Account::decode(value) {
                        Ok(account) => {
                            let mut keys = Vec::new();
                            if account.storage_root != EMPTY_ROOT_HASH {
                                keys.push(StoreKey::node(account.storage_root));
                            }
                            if account.code_hash != KECCAK_EMPTY {
                                keys.push(StoreKey::code(account.code_hash));
                            }
                            keys
                        }
                        Err(e) => {
                            problem.get_or_insert(format!("{key:?} holds a bad account: {e}"));
                            Vec::new()
                        }
                    }
                }
                NodeChild::Value { .. } => Vec::new(),
            };
            for need in needs {
                if !store.contains(need) {
                    problem.get_or_insert(format!("{key:?} is stored without {need:?}"));
                }
            }
        });
        if let Some(problem) = problem {
            return Err(problem);
        }
    }
    Ok(())
}

/// The items of `source` reachable from `root`: the account trie, and in State mode every
/// account's storage trie and code. A builder may hold more (a generator's unused code).
pub fn reachable_items(source: &MemoryStore, root: H256, mode: SyncMode) -> MemoryStore {
    let account_nodes = account_trie_nodes(source, root, mode);
    let mut out = MemoryStore::new();
    let mut stack = Vec::new();
    if root != EMPTY_ROOT_HASH {
        stack.push(StoreKey::node(root));
    }
    while let Some(key) = stack.pop() {
        if out.contains(key) {
            continue;
        }
        let blob = source.get(key).expect("source item");
        out.insert(key, blob.to_vec());
        if key.kind == ItemKind::Code {
            continue;
        }
        let node = TrieNode::decode(blob).expect("source node decodes");
        node.visit_children(&Nibbles::new(), &mut |child| match child {
            NodeChild::Hash { hash, .. } => stack.push(StoreKey::node(hash)),
            NodeChild::Value { value, .. } if account_nodes.contains(&key.hash) => {
                let account = Account::decode(value).expect("source account");
                if account.storage_root != EMPTY_ROOT_HASH {
                    stack.push(StoreKey::node(account.storage_root));
                }
                if account.code_hash != KECCAK_EMPTY {
                    stack.push(StoreKey::code(account.code_hash));
                }
            }
            NodeChild::Value { .. } => {}
        });
    }
    out
}
