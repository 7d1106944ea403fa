//! Ports of go-ethereum's trie/sync_test.go (spec §5) on its `makeTestTrie`: 3060 entries of a
//! secure trie, synced node by node with the Trie mode scheduler.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use statesync_core::node::NodeChild;
use statesync_core::rng::SeededRng;
use statesync_core::walk::{walk, WalkError, Walker};
use statesync_core::{
    keccak256, BatchLimit, KeyMode, MemoryStore, Nibbles, Scheduler, SchedulerConfig, StoreKey,
    SyncMode, TrieBuilder, TrieNode, EMPTY_ROOT_HASH, H256,
};
use statesync_tests::fixtures::{make_test_trie, trie_paths, TestTrie};
use statesync_tests::harness::{
    answer_lookups, assert_synced, check_verified_subset, fetch_by_hash, fetch_by_sync_path,
    node_at_path, sync, sync_with, trie_entries, value_at, Delivery, LoopOptions, LoopReport,
};

fn trie_config() -> SchedulerConfig {
    SchedulerConfig {
        mode: SyncMode::Trie,
        ..SchedulerConfig::default()
    }
}

/// geth's `checkTrieContents`: the copy is consistent, holds exactly the source's nodes, and
/// every key of `content` reads back its value.
fn check_trie_contents(trie: &TestTrie, store: &MemoryStore) {
    assert_synced(trie.root, SyncMode::Trie, &trie.store, store);
    assert_eq!(store.keys(), trie.store.keys());
    assert_eq!(
        trie_entries(store, trie.root).unwrap(),
        trie_paths(&trie.content, KeyMode::Secure)
    );
}

/// Syncs the test trie into a fresh store by hash, checks it, and returns the report.
fn sync_test_trie(batch: usize, delivery: Delivery) -> LoopReport {
    let trie = make_test_trie();
    let mut store = MemoryStore::new();
    let report = sync(
        trie.root,
        SyncMode::Trie,
        &trie.store,
        &mut store,
        LoopOptions { batch, delivery },
    );
    check_trie_contents(&trie, &store);
    // Every node was fetched, and only once.
    assert_eq!(report.tasks.len(), trie.store.node_count());
    report
}

#[test]
fn test_trie_has_3060_entries_under_the_shared_values() {
    let trie = make_test_trie();
    assert_eq!(trie.content.len(), 3060);
    // `LeftPadBytes`: the two significant bytes sit at the end of the key.
    let key = statesync_tests::fixtures::left_pad32(&[7, 9]);
    assert_eq!(&key[30..], &[7, 9]);
    assert!(key[..30].iter().all(|b| *b == 0));
    let path = Nibbles::from_bytes(keccak256(&key).as_bytes());
    assert_eq!(value_at(&trie.store, trie.root, &path), Some(vec![7, 9]));
    let stats = walk(trie.root, SyncMode::Trie, &trie.store).unwrap();
    assert_eq!(stats.values, 3060);
}

/// TestEmptySync: an empty trie, however it came about, hashes to the empty root, and a
/// scheduler for the empty root has nothing to look up or fetch and is done.
#[test]
fn empty_root_sync_has_nothing_to_look_up_or_fetch() {
    let mut emptied = TrieBuilder::new(KeyMode::Secure);
    emptied.insert(b"key", b"value");
    emptied.insert(b"key", b"");
    let roots = [
        TrieBuilder::new(KeyMode::Plain).root(),
        emptied.root(),
        keccak256(&[0x80]),
    ];
    for root in roots {
        assert_eq!(root, EMPTY_ROOT_HASH);
        for mode in [SyncMode::Trie, SyncMode::State] {
            let config = SchedulerConfig {
                mode,
                ..SchedulerConfig::default()
            };
            let mut scheduler = Scheduler::new(root, config);
            assert!(scheduler.take_lookups().is_empty());
            assert!(scheduler.missing(1).is_empty());
            assert!(scheduler.missing(0).is_empty());
            assert!(scheduler.is_done());
            assert_eq!(scheduler.pending(), 0);
            assert_eq!(scheduler.completed_fraction(), 1.0);
            assert!(scheduler.commit(BatchLimit::UNLIMITED).batch.is_empty());
        }
    }
}

#[test]
fn iterative_sync_individual_rebuilds_the_trie() {
    let report = sync_test_trie(1, Delivery::InOrder);
    assert_eq!(report.rounds, report.tasks.len());
}

#[test]
fn iterative_sync_batched_rebuilds_the_trie() {
    let report = sync_test_trie(100, Delivery::InOrder);
    assert!(
        report.rounds < report.tasks.len() / 50,
        "{} rounds",
        report.rounds
    );
}

/// TestIterativeSyncIndividualByPath / BatchedByPath: each node is fetched by walking the
/// source trie along the task's sync path, not by its hash; the loop hashes the blob.
fn sync_by_path(batch: usize) {
    let trie = make_test_trie();
    let mut store = MemoryStore::new();
    let mut scheduler = Scheduler::new(trie.root, trie_config());
    let report = sync_with(
        &mut scheduler,
        &mut store,
        LoopOptions {
            batch,
            delivery: Delivery::InOrder,
        },
        &mut |task| {
            assert_eq!(task.sync_path().len(), 1, "{task:?}");
            fetch_by_sync_path(&trie.store, trie.root, task)
        },
        &mut |_, _, _| {},
    );
    check_trie_contents(&trie, &store);
    assert_eq!(report.tasks.len(), trie.store.node_count());
}

#[test]
fn iterative_sync_individual_by_path_rebuilds_the_trie() {
    sync_by_path(1);
}

#[test]
fn iterative_sync_batched_by_path_rebuilds_the_trie() {
    sync_by_path(100);
}

#[test]
fn iterative_delayed_sync_answering_half_each_round_rebuilds_the_trie() {
    let report = sync_test_trie(10_000, Delivery::DelayedHalf);
    // Deliveries really were carried over: more rounds than the trie is deep.
    assert!(report.rounds > 10, "{} rounds", report.rounds);
}

#[test]
fn iterative_random_sync_individual_rebuilds_the_trie() {
    sync_test_trie(1, Delivery::Random(1));
}

#[test]
fn iterative_random_sync_batched_rebuilds_the_trie() {
    for seed in [2, 3] {
        sync_test_trie(100, Delivery::Random(seed));
    }
}

#[test]
fn iterative_random_delayed_sync_rebuilds_the_trie() {
    for seed in [4, 5] {
        sync_test_trie(10_000, Delivery::RandomHalf(seed));
    }
}

/// TestDuplicateAvoidanceSync: with no limit on `missing`, no hash is handed out twice.
#[test]
fn duplicate_avoidance_no_hash_is_handed_out_twice() {
    let report = sync_test_trie(0, Delivery::InOrder);
    let mut seen = BTreeSet::new();
    for task in &report.tasks {
        assert!(seen.insert(task.key()), "{task:?} handed out twice");
    }
}

/// TestIncompleteSync: after every commit each committed node is the root of a complete
/// subtrie in the store, and a processed node that is not committed yet is not stored. Once
/// done, removing any node makes the walk from the root fail at exactly that node.
#[test]
fn incomplete_sync_stores_only_complete_subtries_and_any_removal_is_detected() {
    let trie = make_test_trie();
    let mut store = MemoryStore::new();
    let mut scheduler = Scheduler::new(trie.root, trie_config());
    let processed: RefCell<BTreeSet<H256>> = RefCell::default();
    let mut commits = 0;
    sync_with(
        &mut scheduler,
        &mut store,
        LoopOptions {
            batch: 1,
            delivery: Delivery::InOrder,
        },
        &mut |task| {
            processed.borrow_mut().insert(task.hash);
            fetch_by_hash(&trie.store, task)
        },
        &mut |_, batch, store| {
            let mut processed = processed.borrow_mut();
            for (hash, _) in &batch.nodes {
                assert!(processed.remove(hash), "{hash} committed unprocessed");
                walk(*hash, SyncMode::Trie, store)
                    .unwrap_or_else(|e| panic!("committed {hash} is incomplete: {e}"));
                commits += 1;
            }
            // Still waiting for children: not in the store.
            for hash in processed.iter() {
                assert!(
                    !store.contains(StoreKey::node(*hash)),
                    "{hash} stored early"
                );
            }
        },
    );
    assert_eq!(commits, trie.store.node_count());
    check_trie_contents(&trie, &store);

    // The walk from the root reads every stored node, so it misses any one of them. Walking
    // once per deleted node is quadratic (seconds here), so the deletions are a sample spread
    // over the walk order, the last node read included.
    let order = walk_order(trie.root, &store);
    assert_eq!(
        order.iter().copied().collect::<BTreeSet<_>>(),
        store.keys().into_iter().collect::<BTreeSet<_>>()
    );
    let sample = order.iter().step_by(16).chain(order.last());
    for key in sample {
        let blob = store.remove(*key).unwrap();
        match walk(trie.root, SyncMode::Trie, &store) {
            Err(WalkError::Missing { hash, .. }) => assert_eq!(hash, key.hash),
            other => panic!("walk without {key:?}: {other:?}"),
        }
        store.insert(*key, blob);
    }
}

/// The keys a Trie mode walk from `root` reads, in the order it reads them.
fn walk_order(root: H256, store: &MemoryStore) -> Vec<StoreKey> {
    let mut walker = Walker::new(root, SyncMode::Trie);
    let mut order = Vec::new();
    while !walker.is_finished() {
        for key in walker.wanted(1) {
            order.push(key);
            walker.supply(key, store.get(key));
        }
    }
    walker.result().unwrap();
    order
}

/// TestSyncOrdering: with `missing(1)`, every sync path is a 1-tuple naming the task's path,
/// and the paths come out in non-decreasing lexicographic order (a pre-order walk).
#[test]
fn sync_ordering_hands_out_paths_in_lexicographic_order() {
    let report = sync_test_trie(1, Delivery::InOrder);
    let mut previous = Nibbles::new();
    for task in &report.tasks {
        let sync_path = task.sync_path();
        assert_eq!(sync_path.len(), 1, "{task:?}");
        let (path, leaf) = Nibbles::decode_compact(&sync_path[0]).unwrap();
        assert!(!leaf);
        assert_eq!(path, task.path);
        assert!(previous <= path, "{path} handed out after {previous}");
        previous = path;
    }
    assert!(report.tasks.iter().any(|t| t.path.len() >= 3));
}

/// The hashed nodes reachable from `root` in `store`.
fn reachable(store: &MemoryStore, root: H256) -> BTreeSet<H256> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root];
    if root == EMPTY_ROOT_HASH {
        return out;
    }
    while let Some(hash) = stack.pop() {
        if !out.insert(hash) {
            continue;
        }
        let node = TrieNode::decode(store.get(StoreKey::node(hash)).unwrap()).unwrap();
        node.visit_children(&Nibbles::new(), &mut |child| {
            if let NodeChild::Hash { hash, .. } = child {
                stack.push(hash);
            }
        });
    }
    out
}

/// Syncs `root` into `store` (which may hold an older trie) and checks the result: the
/// store is a verified subset of the source, complete from `root`, and holds `expected`. It
/// fetches exactly the nodes of `root` the store lacked. Returns how many it fetched.
fn sync_again(
    root: H256,
    source: &MemoryStore,
    store: &mut MemoryStore,
    expected: &BTreeMap<Nibbles, Vec<u8>>,
) -> usize {
    let lacking = reachable(source, root)
        .into_iter()
        .filter(|h| !store.contains(StoreKey::node(*h)))
        .collect::<BTreeSet<_>>();
    let options = LoopOptions {
        batch: 100,
        delivery: Delivery::InOrder,
    };
    let report = sync(root, SyncMode::Trie, source, store, options);
    let fetched: BTreeSet<H256> = report.tasks.iter().map(|t| t.hash).collect();
    assert_eq!(
        fetched.len(),
        report.tasks.len(),
        "a node was fetched twice"
    );
    assert_eq!(
        fetched, lacking,
        "fetched something other than what was missing"
    );
    check_verified_subset(store, source).unwrap();
    walk(root, SyncMode::Trie, store).unwrap();
    assert_eq!(&trie_entries(store, root).unwrap(), expected);
    report.tasks.len()
}

fn random_bytes(rng: &mut SeededRng, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill(&mut out);
    out
}

/// TestSyncMovingTarget: sync a root, move the source on (10 random keys added), sync the new
/// root into the same store, then delete those keys and rewrite every old key, and sync again.
#[test]
fn sync_moving_target_reuses_the_store_and_ends_on_the_new_contents() {
    let trie = make_test_trie();
    let mut source = trie.store.clone();
    let mut store = MemoryStore::new();
    let mut content = trie.content.clone();
    let first = sync_again(
        trie.root,
        &source,
        &mut store,
        &trie_paths(&content, KeyMode::Secure),
    );
    assert_eq!(first, trie.store.node_count());

    let mut rng = SeededRng::new(0x5eed);
    let mut builder = trie.builder.clone();
    let mut added = Vec::new();
    for _ in 0..10 {
        let (key, value) = (random_bytes(&mut rng, 32), random_bytes(&mut rng, 32));
        builder.insert(&key, &value);
        content.insert(key.clone(), value);
        added.push(key);
    }
    let root = builder.build(&mut |hash, node| source.insert(StoreKey::node(hash), node));
    let fresh = reachable(&source, root).len();
    let second = sync_again(
        root,
        &source,
        &mut store,
        &trie_paths(&content, KeyMode::Secure),
    );
    // Ten new leaves touch at most a few dozen nodes of the thousands in the trie.
    assert!(
        second > 0 && second * 20 < fresh,
        "{second} of {fresh} nodes fetched"
    );

    for key in &added {
        builder.remove(key);
        content.remove(key);
    }
    for (key, value) in content.iter_mut() {
        *value = random_bytes(&mut rng, 32);
        builder.insert(key, value);
    }
    let root = builder.build(&mut |hash, node| source.insert(StoreKey::node(hash), node));
    sync_again(
        root,
        &source,
        &mut store,
        &trie_paths(&content, KeyMode::Secure),
    );
    for key in &added {
        let path = Nibbles::from_bytes(keccak256(key).as_bytes());
        assert_eq!(value_at(&store, root, &path), None);
    }
}

/// TestPivotMove: root A; root B deletes keys so that the trie collapses; root C expands it
/// again. Each is synced into the same store, with 4-byte (embedded) or 32-byte values.
fn pivot_move(tiny: bool, seed: u64) {
    let mut rng = SeededRng::new(seed);
    let mut value = || random_bytes(&mut rng, if tiny { 4 } else { 32 });
    let mut source = MemoryStore::new();
    let mut build = |state: &BTreeMap<Vec<u8>, Vec<u8>>| {
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        for (k, v) in state {
            trie.insert(k, v);
        }
        trie.build(&mut |hash, node| source.insert(StoreKey::node(hash), node))
    };
    let paths = |state: &BTreeMap<Vec<u8>, Vec<u8>>| trie_paths(state, KeyMode::Plain);

    let mut state_a = BTreeMap::new();
    for key in [
        [0x01, 0x23],
        [0x01, 0x24],
        [0x12, 0x33],
        [0x12, 0x34],
        [0x02, 0x34],
        [0x13, 0x44],
    ] {
        state_a.insert(key.to_vec(), value());
    }
    let root_a = build(&state_a);

    let mut state_b = state_a.clone();
    state_b.remove(&[0x02, 0x34][..]);
    state_b.remove(&[0x13, 0x44][..]);
    state_b.insert(vec![0x01, 0x24], value());
    let root_b = build(&state_b);

    let mut state_c = state_b.clone();
    state_c.insert(vec![0x01, 0x24], state_a[&[0x01, 0x24][..]].clone());
    state_c.insert(vec![0x02, 0x34], value());
    state_c.insert(vec![0x13, 0x44], value());
    let root_c = build(&state_c);

    let mut store = MemoryStore::new();
    let fetched_a = sync_again(root_a, &source, &mut store, &paths(&state_a));
    assert_eq!(fetched_a, reachable(&source, root_a).len());
    let fetched_b = sync_again(root_b, &source, &mut store, &paths(&state_b));
    let fetched_c = sync_again(root_c, &source, &mut store, &paths(&state_c));
    let (fresh_b, fresh_c) = (
        reachable(&source, root_b).len(),
        reachable(&source, root_c).len(),
    );
    assert!(fetched_b <= fresh_b && fetched_c <= fresh_c);
    if !tiny {
        // With 32-byte values every leaf is hashed, so the unchanged ones are reused.
        assert!(fetched_b < fresh_b, "B: {fetched_b} of {fresh_b}");
        assert!(fetched_c < fresh_c, "C: {fetched_c} of {fresh_c}");
    }
}

#[test]
fn pivot_move_with_tiny_values_collapses_and_expands_the_trie() {
    for seed in 0..4 {
        pivot_move(true, seed);
    }
}

#[test]
fn pivot_move_with_32_byte_values_collapses_expands_and_reuses_nodes() {
    for seed in 0..4 {
        pivot_move(false, seed);
    }
}

/// With `max_fetches_per_depth = 4` the loop still finishes, and at no point are more than
/// four requests of one depth fetched or waiting for their children.
#[test]
fn per_depth_cap_of_four_bounds_outstanding_requests_and_still_completes() {
    let trie = make_test_trie();
    let config = SchedulerConfig {
        max_fetches_per_depth: 4,
        ..trie_config()
    };
    let mut scheduler = Scheduler::new(trie.root, config);
    let mut store = MemoryStore::new();
    // Handed out and not yet committed, with the depth each counts against.
    let mut outstanding: HashMap<H256, usize> = HashMap::new();
    let mut peak = 0;
    let mut rounds = 0;
    loop {
        answer_lookups(&mut scheduler, &store);
        let tasks = scheduler.missing(0);
        if tasks.is_empty() {
            break;
        }
        rounds += 1;
        for task in &tasks {
            assert!(outstanding.insert(task.hash, task.path.len()).is_none());
        }
        let mut per_depth: HashMap<usize, usize> = HashMap::new();
        for depth in outstanding.values() {
            *per_depth.entry(*depth).or_default() += 1;
        }
        for (depth, count) in per_depth {
            assert!(count <= 4, "{count} outstanding at depth {depth}");
            peak = peak.max(count);
        }
        for task in tasks {
            scheduler
                .process(statesync_core::HashedBlob::new(fetch_by_hash(
                    &trie.store,
                    &task,
                )))
                .unwrap();
        }
        let batch = scheduler.commit(BatchLimit::UNLIMITED).batch;
        for (hash, _) in &batch.nodes {
            outstanding.remove(hash);
        }
        store.apply(&batch);
    }
    assert!(scheduler.is_done());
    store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
    assert!(outstanding.is_empty());
    assert_eq!(peak, 4);
    check_trie_contents(&trie, &store);
    // Unlimited, the same loop needs only one round per level of the trie.
    let unlimited = sync_test_trie(0, Delivery::InOrder);
    assert!(
        rounds > unlimited.rounds * 10,
        "{rounds} vs {}",
        unlimited.rounds
    );
}

/// A node can sit at two depths in a trie of keys of different lengths. With a cap of one,
/// the extension holding depth 1 waits on a node first queued at depth 1, behind it; the
/// scheduler must not stop there for good (geth would).
#[test]
fn a_node_shared_at_two_depths_completes_under_a_cap_of_one() {
    let value = vec![0x55; 40];
    let mut content = BTreeMap::new();
    for prefix in [&[5u8][..], &[2, 7, 7]] {
        for suffix in [1u8, 3] {
            let nibbles = Nibbles::from_nibbles([prefix, &[suffix]].concat()).unwrap();
            content.insert(nibbles.to_bytes().unwrap(), value.clone());
        }
    }
    let mut builder = TrieBuilder::new(KeyMode::Plain);
    for (key, value) in &content {
        builder.insert(key, value);
    }
    let mut source = MemoryStore::new();
    let root = builder.build(&mut |hash, node| source.insert(StoreKey::node(hash), node));
    // The branch holding the two leaves is one node, at depths 1 and 3.
    let branch = node_at_path(&source, root, &Nibbles::from_nibbles(vec![5]).unwrap());
    let deep = node_at_path(
        &source,
        root,
        &Nibbles::from_nibbles(vec![2, 7, 7]).unwrap(),
    );
    assert!(branch.is_some() && branch == deep);
    for cap in [1, 2] {
        let config = SchedulerConfig {
            max_fetches_per_depth: cap,
            ..trie_config()
        };
        let mut scheduler = Scheduler::new(root, config);
        let mut store = MemoryStore::new();
        sync_with(
            &mut scheduler,
            &mut store,
            LoopOptions {
                batch: 0,
                delivery: Delivery::InOrder,
            },
            &mut |task| fetch_by_hash(&source, task),
            &mut |_, _, _| {},
        );
        assert_eq!(store.keys(), source.keys(), "cap {cap}");
        assert_eq!(
            trie_entries(&store, root).unwrap(),
            trie_paths(&content, KeyMode::Plain)
        );
    }
}
