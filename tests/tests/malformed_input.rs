//! Malformed and hostile input to the scheduler. Blobs a peer sends that match no request
//! (truncated, garbage, another trie's valid nodes) are refused as not requested and change
//! nothing, and the sync still completes. A blob that does match a request but is not what
//! the trie needs there (a root committing to a broken trie) gets a typed error, and also
//! changes nothing.

use statesync_core::node::{BranchNode, ChildRef, NodeError};
use statesync_core::rng::SeededRng;
use statesync_core::{
    keccak256, Account, BatchLimit, HashedBlob, KeyMode, MemoryStore, Nibbles, ProcessError,
    Scheduler, SchedulerConfig, StoreKey, SyncMode, TrieBuilder, TrieNode, H256,
};
use statesync_tests::fixtures::{make_test_state, make_test_trie};
use statesync_tests::harness::{answer_lookups, assert_synced, fetch_by_hash};

/// Delivers `blob`, expects `expected`, and checks the scheduler is exactly as it was:
/// its whole state (`Debug`) when `deep`, else its counters.
fn refused(scheduler: &mut Scheduler, blob: Vec<u8>, expected: &ProcessError, deep: bool) {
    let before = deep.then(|| format!("{scheduler:?}"));
    let counters = |s: &Scheduler| (s.stats(), s.pending(), s.batch_len(), s.has_lookups());
    let counted = counters(scheduler);
    assert_eq!(
        scheduler.process(HashedBlob::new(blob)).as_ref(),
        Err(expected)
    );
    assert_eq!(counters(scheduler), counted);
    if let Some(before) = before {
        assert_eq!(
            format!("{scheduler:?}"),
            before,
            "a refused blob changed the scheduler"
        );
    }
}

#[test]
fn truncated_garbage_and_foreign_blobs_are_refused_and_the_sync_still_completes() {
    let trie = make_test_trie();
    let (other_state, _) = make_test_state();
    let foreign: Vec<Vec<u8>> = other_state
        .store
        .keys()
        .into_iter()
        .map(|k| other_state.store.get(k).unwrap().to_vec())
        .collect();
    let mut rng = SeededRng::new(77);
    let config = SchedulerConfig {
        mode: SyncMode::Trie,
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::new(trie.root, config);
    let mut store = MemoryStore::new();
    let mut junk = 0;
    loop {
        answer_lookups(&mut scheduler, &store);
        let tasks = scheduler.missing(64);
        if tasks.is_empty() {
            break;
        }
        for (i, task) in tasks.iter().enumerate() {
            let blob = fetch_by_hash(&trie.store, task);
            let mut garbage = vec![0u8; 1 + rng.below(600) as usize];
            rng.fill(&mut garbage);
            let mut extended = blob.clone();
            extended.push(0);
            let mut flipped = blob.clone();
            flipped[blob.len() / 2] ^= 1;
            let bad = [
                blob[..blob.len() - 1].to_vec(),
                blob[..blob.len() / 2].to_vec(),
                extended,
                flipped,
                garbage,
                Vec::new(),
                vec![0xc0],
                foreign[rng.below(foreign.len() as u64) as usize].clone(),
            ];
            for blob in bad {
                refused(&mut scheduler, blob, &ProcessError::NotRequested, i == 0);
                junk += 1;
            }
        }
        for task in tasks {
            let blob = fetch_by_hash(&trie.store, &task);
            scheduler.process(HashedBlob::new(blob)).unwrap();
        }
        store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
    }
    assert!(scheduler.is_done());
    assert!(junk > 8 * 4000);
    assert_synced(trie.root, SyncMode::Trie, &trie.store, &store);
    assert_eq!(store.keys(), trie.store.keys());
    assert_eq!(
        scheduler.stats().processed as usize,
        trie.store.node_count()
    );
}

/// A scheduler for `root` in `mode`, with the root looked up (absent) and handed out.
fn scheduler_for(root: H256, mode: SyncMode) -> Scheduler {
    let config = SchedulerConfig {
        mode,
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::new(root, config);
    answer_lookups(&mut scheduler, &MemoryStore::new());
    let tasks = scheduler.missing(0);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].hash, root);
    scheduler
}

/// A root branch whose slot 1 refers by hash to `bad`, next to a sound leaf in slot 0. The
/// root is fine; the child it commits to is not a trie node.
fn root_committing_to(bad: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let good = TrieNode::Leaf {
        path: Nibbles::from_bytes(&[0x12; 20]),
        value: vec![7; 40],
    }
    .encode();
    let mut branch = BranchNode::default();
    branch.children[0] = ChildRef::Hash(keccak256(&good));
    branch.children[1] = ChildRef::Hash(keccak256(bad));
    (TrieNode::Branch(Box::new(branch)).encode(), good)
}

/// Which decode error a broken blob should give.
type ErrorCheck = fn(&NodeError) -> bool;

#[test]
fn a_requested_blob_that_is_no_trie_node_is_a_typed_error_that_changes_nothing() {
    let leaf = TrieNode::Leaf {
        path: Nibbles::from_bytes(&[1, 2]),
        value: vec![9; 40],
    }
    .encode();
    let three_items = vec![0xc3, 0x01, 0x02, 0x03];
    let not_a_list = vec![0x83, 1, 2, 3];
    let mut bad_flags = leaf.clone();
    bad_flags[2] = 0x45; // the hex-prefix flag byte of the leaf's path
    let cases: Vec<(Vec<u8>, ErrorCheck)> = vec![
        (leaf[..leaf.len() - 1].to_vec(), |e| {
            matches!(e, NodeError::Rlp(_))
        }),
        ([leaf.as_slice(), &[0]].concat(), |e| {
            matches!(e, NodeError::Rlp(_))
        }),
        (three_items, |e| *e == NodeError::WrongItemCount { got: 3 }),
        (not_a_list, |e| *e == NodeError::NotAList),
        (bad_flags, |e| matches!(e, NodeError::Path(_))),
        (b"garbage that is long enough to be hashed".to_vec(), |e| {
            matches!(e, NodeError::Rlp(_) | NodeError::NotAList)
        }),
    ];
    for (bad, is_expected) in cases {
        let (root_blob, good) = root_committing_to(&bad);
        let root = keccak256(&root_blob);
        let mut scheduler = scheduler_for(root, SyncMode::Trie);
        scheduler.process(HashedBlob::new(root_blob)).unwrap();
        answer_lookups(&mut scheduler, &MemoryStore::new());
        let tasks = scheduler.missing(0);
        assert_eq!(tasks.len(), 2);
        scheduler.process(HashedBlob::new(good)).unwrap();

        let before = format!("{scheduler:?}");
        let err = scheduler.process(HashedBlob::new(bad.clone())).unwrap_err();
        match &err {
            ProcessError::InvalidNode { hash, path, source } => {
                assert_eq!(*hash, keccak256(&bad));
                assert_eq!(path.as_slice(), &[1]);
                assert!(is_expected(source), "{bad:?}: {source:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        assert_eq!(format!("{scheduler:?}"), before);
        // Not taken: the same blob is refused the same way again, not as a duplicate.
        assert_eq!(scheduler.process(HashedBlob::new(bad)), Err(err));
        assert!(!scheduler.is_done());
        assert_eq!(scheduler.pending(), 2, "the root and the broken child");
        // The sound leaf is complete; the root, which commits to the broken child, is not.
        let batch = scheduler.commit(BatchLimit::UNLIMITED).batch;
        assert_eq!(batch.nodes.len(), 1);
        assert_ne!(batch.nodes[0].0, root);
    }
}

#[test]
fn an_account_leaf_that_is_no_account_is_a_typed_error_that_changes_nothing() {
    let mut trie = TrieBuilder::new(KeyMode::Secure);
    trie.insert(&[1; 20], b"this value is not an rlp account record");
    let mut source = MemoryStore::new();
    let root = trie.build(&mut |h, n| source.insert(StoreKey::node(h), n));
    let blob = source.get(StoreKey::node(root)).unwrap().to_vec();
    let mut scheduler = scheduler_for(root, SyncMode::State);
    let before = format!("{scheduler:?}");
    match scheduler.process(HashedBlob::new(blob.clone())) {
        Err(ProcessError::InvalidAccount { hash, path, .. }) => {
            assert_eq!(hash, root);
            assert_eq!(path, Nibbles::from_bytes(keccak256(&[1; 20]).as_bytes()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(format!("{scheduler:?}"), before);
    // The same trie synced as a plain trie is fine: its values are opaque there.
    let mut plain = scheduler_for(root, SyncMode::Trie);
    plain.process(HashedBlob::new(blob)).unwrap();
    assert!(plain.is_done());
}

#[test]
fn a_value_off_the_account_depth_is_a_typed_error_that_changes_nothing() {
    // A 2-byte key: the account sits at depth 4, not 64.
    let mut trie = TrieBuilder::new(KeyMode::Plain);
    trie.insert(&[0xab, 0xcd], &Account::default().encode());
    let mut source = MemoryStore::new();
    let root = trie.build(&mut |h, n| source.insert(StoreKey::node(h), n));
    let blob = source.get(StoreKey::node(root)).unwrap().to_vec();
    let mut scheduler = scheduler_for(root, SyncMode::State);
    let before = format!("{scheduler:?}");
    assert_eq!(
        scheduler.process(HashedBlob::new(blob)),
        Err(ProcessError::ValueOffAccountPath {
            hash: root,
            path: Nibbles::from_bytes(&[0xab, 0xcd]),
        })
    );
    assert_eq!(format!("{scheduler:?}"), before);
}

#[test]
fn a_storage_root_that_is_no_trie_node_is_a_typed_error_at_the_account_path() {
    let bad = b"a storage root preimage that is not a node".to_vec();
    let account = Account {
        storage_root: keccak256(&bad),
        ..Account::default()
    };
    let address_hash = keccak256(&[5; 20]);
    let mut trie = TrieBuilder::new(KeyMode::Secure);
    trie.insert_hashed(address_hash, &account.encode());
    let mut source = MemoryStore::new();
    let root = trie.build(&mut |h, n| source.insert(StoreKey::node(h), n));
    let mut scheduler = scheduler_for(root, SyncMode::State);
    let blob = source.get(StoreKey::node(root)).unwrap().to_vec();
    scheduler.process(HashedBlob::new(blob)).unwrap();
    answer_lookups(&mut scheduler, &MemoryStore::new());
    let tasks = scheduler.missing(0);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].hash, account.storage_root);
    let before = format!("{scheduler:?}");
    match scheduler.process(HashedBlob::new(bad)) {
        Err(ProcessError::InvalidNode { hash, path, .. }) => {
            assert_eq!(hash, account.storage_root);
            assert_eq!(path, Nibbles::from_bytes(address_hash.as_bytes()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(format!("{scheduler:?}"), before);
    let batch = scheduler.commit(BatchLimit::UNLIMITED).batch;
    assert!(
        batch.nodes.is_empty() && batch.codes.is_empty(),
        "the account cannot complete"
    );
    // The root is verified, so it is staged.
    assert_eq!(batch.staged.len(), 1);
}
