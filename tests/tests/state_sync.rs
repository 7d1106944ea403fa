//! Ports of go-ethereum's core/state/sync_test.go (spec §5) on its `makeTestState`, plus
//! synthetic states with shared code, shared storage and embedded nodes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use statesync_core::node::{ChildRef, TrieNode};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::walk::{walk, WalkError};
use statesync_core::{
    Account, BatchLimit, BuiltState, HashedBlob, ItemKind, MemoryStore, Scheduler, SchedulerConfig,
    StoreKey, SyncMode, EMPTY_ROOT_HASH, H256,
};
use statesync_tests::fixtures::{check_state_accounts, make_test_state};
use statesync_tests::harness::{
    account_trie_nodes, answer_lookups, assert_synced, check_closed, fetch_by_hash,
    fetch_by_sync_path, reachable_items, sync, sync_with, trie_entries, Delivery, LoopOptions,
    LoopReport,
};

fn state_config() -> SchedulerConfig {
    SchedulerConfig {
        mode: SyncMode::State,
        ..SchedulerConfig::default()
    }
}

/// Syncs the test state into a fresh store by hash and checks every account
/// (geth's `checkStateAccounts`) and that the copy is exactly the source.
fn sync_test_state(batch: usize, delivery: Delivery) -> LoopReport {
    let (state, accounts) = make_test_state();
    let mut store = MemoryStore::new();
    let options = LoopOptions { batch, delivery };
    let report = sync(
        state.root,
        SyncMode::State,
        &state.store,
        &mut store,
        options,
    );
    check_state_accounts(&store, state.root, &accounts).unwrap();
    assert_synced(state.root, SyncMode::State, &state.store, &store);
    assert_eq!(store.keys(), state.store.keys());
    assert_eq!(report.tasks.len(), state.store.keys().len());
    report
}

#[test]
fn test_state_has_96_accounts_32_contracts_and_20_storage_tries() {
    let (state, accounts) = make_test_state();
    assert_eq!(accounts.len(), 96);
    // BytesToAddress([i]): right-aligned.
    assert_eq!(accounts[7].0[19], 7);
    assert!(accounts[7].0[..19].iter().all(|b| *b == 0));
    let stats = walk(state.root, SyncMode::State, &state.store).unwrap();
    assert_eq!(stats.accounts, 96);
    assert_eq!(stats.contracts, 32);
    assert_eq!(stats.codes, 32);
    assert_eq!(stats.storage_tries, 20);
    assert_eq!(stats.values, 100);
    check_state_accounts(&state.store, state.root, &accounts).unwrap();
}

#[test]
fn the_accounts_check_fails_on_a_wrong_account() {
    // The oracle itself can fail: a store lacking one code blob, or another state's accounts.
    let (state, mut accounts) = make_test_state();
    let mut store = state.store.clone();
    let code = store
        .keys()
        .into_iter()
        .find(|k| k.kind == ItemKind::Code)
        .unwrap();
    store.remove(code);
    assert!(check_state_accounts(&store, state.root, &accounts).is_err());
    accounts[5].1.nonce += 1;
    assert!(check_state_accounts(&state.store, state.root, &accounts).is_err());
}

/// TestEmptyStateSync.
#[test]
fn empty_state_sync_has_nothing_to_fetch() {
    let mut scheduler = Scheduler::new(EMPTY_ROOT_HASH, state_config());
    assert!(scheduler.take_lookups().is_empty());
    assert!(scheduler.missing(1).is_empty());
    assert!(scheduler.is_done());
}

#[test]
fn iterative_state_sync_individual_restores_every_account() {
    let report = sync_test_state(1, Delivery::InOrder);
    assert_eq!(report.rounds, report.tasks.len());
}

#[test]
fn iterative_state_sync_batched_restores_every_account() {
    sync_test_state(100, Delivery::InOrder);
}

/// TestIterativeStateSyncIndividualByPath / BatchedByPath: nodes fetched by sync path. A
/// 1-tuple is an account-trie path; a 2-tuple is the account's hashed key and a path in its
/// storage trie, resolved through the storage root in the account's leaf. Code by hash.
fn state_sync_by_path(batch: usize) {
    let (state, accounts) = make_test_state();
    let mut store = MemoryStore::new();
    let mut scheduler = Scheduler::new(state.root, state_config());
    let mut tuples = BTreeMap::<usize, usize>::new();
    let options = LoopOptions {
        batch,
        delivery: Delivery::InOrder,
    };
    let report = sync_with(
        &mut scheduler,
        &mut store,
        options,
        &mut |task| {
            if task.kind == ItemKind::Node {
                *tuples.entry(task.sync_path().len()).or_default() += 1;
            }
            fetch_by_sync_path(&state.store, state.root, task)
        },
        &mut |_, _, _| {},
    );
    check_state_accounts(&store, state.root, &accounts).unwrap();
    assert_synced(state.root, SyncMode::State, &state.store, &store);
    assert_eq!(report.tasks.len(), state.store.keys().len());
    // Both kinds of path were exercised: the 20 storage tries' nodes are 2-tuples.
    assert!(tuples[&1] > 96 && tuples[&2] >= 20, "{tuples:?}");
    assert_eq!(tuples.len(), 2);
}

#[test]
fn iterative_state_sync_individual_by_path_restores_every_account() {
    state_sync_by_path(1);
}

#[test]
fn iterative_state_sync_batched_by_path_restores_every_account() {
    state_sync_by_path(100);
}

#[test]
fn iterative_delayed_state_sync_restores_every_account() {
    let report = sync_test_state(0, Delivery::DelayedHalf);
    assert!(report.rounds > 5, "{} rounds", report.rounds);
}

#[test]
fn iterative_random_state_sync_individual_restores_every_account() {
    sync_test_state(1, Delivery::Random(11));
}

#[test]
fn iterative_random_state_sync_batched_restores_every_account() {
    for seed in [12, 13, 14] {
        sync_test_state(100, Delivery::Random(seed));
    }
}

#[test]
fn iterative_random_delayed_state_sync_restores_every_account() {
    for seed in [15, 16, 17] {
        sync_test_state(0, Delivery::RandomHalf(seed));
    }
}

/// TestIncompleteStateSync: with `missing(1)`, after every commit each committed node is a
/// complete trie and the whole store is closed (every stored account has its storage and
/// code stored). Once done, removing any one node or code blob makes the state walk from the
/// root fail at exactly that item: missing storage and missing code are both detected.
#[test]
fn incomplete_state_sync_stores_only_complete_items_and_any_removal_is_detected() {
    let (state, accounts) = make_test_state();
    let account_nodes = account_trie_nodes(&state.store, state.root, SyncMode::State);
    let mut store = MemoryStore::new();
    let mut scheduler = Scheduler::new(state.root, state_config());
    let processed: RefCell<BTreeSet<StoreKey>> = RefCell::default();
    let mut committed = 0;
    let options = LoopOptions {
        batch: 1,
        delivery: Delivery::InOrder,
    };
    sync_with(
        &mut scheduler,
        &mut store,
        options,
        &mut |task| {
            processed.borrow_mut().insert(task.key());
            fetch_by_hash(&state.store, task)
        },
        &mut |_, batch, store| {
            let mut processed = processed.borrow_mut();
            for (key, _) in batch.items() {
                assert!(processed.remove(&key), "{key:?} committed unprocessed");
                committed += 1;
                if key.kind == ItemKind::Node {
                    walk(key.hash, SyncMode::Trie, store)
                        .unwrap_or_else(|e| panic!("committed {key:?} is incomplete: {e}"));
                }
            }
            for key in processed.iter() {
                assert!(!store.contains(*key), "{key:?} stored before its children");
            }
            check_closed(store, &account_nodes).unwrap();
        },
    );
    assert_eq!(committed, state.store.keys().len());
    check_state_accounts(&store, state.root, &accounts).unwrap();

    let mut removed = BTreeMap::<&str, usize>::new();
    for key in store.keys() {
        let blob = store.remove(key).unwrap();
        match walk(state.root, SyncMode::State, &store) {
            Err(WalkError::Missing { kind, hash, .. }) => {
                assert_eq!((kind, hash), (key.kind, key.hash))
            }
            other => panic!("state walk without {key:?}: {other:?}"),
        }
        store.insert(key, blob);
        let what = match key.kind {
            ItemKind::Code => "code",
            ItemKind::Node if account_nodes.contains(&key.hash) => "account node",
            ItemKind::Node => "storage node",
        };
        *removed.entry(what).or_default() += 1;
    }
    assert_eq!(removed["code"], 32);
    assert!(removed["storage node"] >= 20 && removed["account node"] > 96);
}

/// A synthetic state's shape: accounts sharing a storage root, contracts sharing code, and
/// nodes embedded in their parents.
struct Shape {
    shared_storage_accounts: usize,
    contracts: u64,
    codes: u64,
    embedded_children: usize,
}

fn shape(state: &BuiltState) -> Shape {
    let stats = walk(state.root, SyncMode::State, &state.store).unwrap();
    let mut roots = BTreeMap::<H256, usize>::new();
    for value in trie_entries(&state.store, state.root).unwrap().values() {
        let account = Account::decode(value).unwrap();
        if account.has_storage() {
            *roots.entry(account.storage_root).or_default() += 1;
        }
    }
    let mut embedded_children = 0;
    for key in state.store.keys() {
        if key.kind == ItemKind::Node {
            if let Ok(TrieNode::Branch(branch)) = TrieNode::decode(state.store.get(key).unwrap()) {
                embedded_children += branch
                    .children
                    .iter()
                    .filter(|c| matches!(c, ChildRef::Embedded(_)))
                    .count();
            }
        }
    }
    Shape {
        shared_storage_accounts: roots.values().filter(|n| **n > 1).sum(),
        contracts: stats.contracts,
        codes: stats.codes,
        embedded_children,
    }
}

#[test]
fn synthetic_states_with_shared_code_shared_storage_and_embedded_nodes_sync_exactly() {
    for (seed, delivery) in [
        (1, Delivery::InOrder),
        (2, Delivery::Random(2)),
        (3, Delivery::RandomHalf(3)),
    ] {
        let state = generate(&SyntheticConfig::new(2000, seed));
        let shape = shape(&state);
        assert!(shape.shared_storage_accounts >= 2, "seed {seed}");
        assert!(shape.codes < shape.contracts, "seed {seed}: no shared code");
        assert!(shape.embedded_children > 0, "seed {seed}: no embedded node");

        let mut store = MemoryStore::new();
        let options = LoopOptions {
            batch: 384,
            delivery,
        };
        let report = sync(
            state.root,
            SyncMode::State,
            &state.store,
            &mut store,
            options,
        );
        let stats = assert_synced(state.root, SyncMode::State, &state.store, &store);
        assert_eq!(stats.accounts, 2000);
        let reachable = reachable_items(&state.store, state.root, SyncMode::State).keys();
        assert_eq!(store.keys(), reachable, "seed {seed}");
        // Shared code and storage are fetched once, however many accounts use them.
        assert_eq!(report.tasks.len(), reachable.len(), "seed {seed}");
    }
}

/// geth's membatch check: a storage trie or code shared by several accounts that completed
/// in the memory batch is not looked up or fetched again for the next account, even while
/// the batch is not yet written (here nothing is written until the end).
#[test]
fn shared_items_complete_in_the_unwritten_batch_are_not_fetched_again() {
    let config = SyntheticConfig {
        contract_share: 0.8,
        shared_storage_share: 0.5,
        ..SyntheticConfig::new(200, 21)
    };
    let state = generate(&config);
    let mut scheduler = Scheduler::new(state.root, state_config());
    let unwritten = MemoryStore::new();
    let mut handed_out = BTreeSet::new();
    loop {
        // Every lookup is answered "absent": the store stays empty until the end.
        answer_lookups(&mut scheduler, &unwritten);
        // One at a time, depth first: a shared trie completes before its next user is seen.
        let tasks = scheduler.missing(1);
        if tasks.is_empty() {
            break;
        }
        for task in tasks {
            assert!(handed_out.insert(task.key()), "{task:?} fetched again");
            let blob = fetch_by_hash(&state.store, &task);
            scheduler.process(HashedBlob::new(blob)).unwrap();
        }
    }
    assert!(scheduler.is_done());
    assert!(scheduler.stats().found_in_batch > 0);
    let mut store = MemoryStore::new();
    store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
    assert_synced(state.root, SyncMode::State, &state.store, &store);
    assert_eq!(
        store.keys(),
        reachable_items(&state.store, state.root, SyncMode::State).keys()
    );
}
