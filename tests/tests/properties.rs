//! Property tests of the scheduler against the source it syncs from (the oracle) and the
//! invariants in DESIGN.md, under adversarial schedules: random batch sizes, shuffled and
//! partial deliveries, duplicates re-delivered, valid blobs from another trie, blobs delivered
//! before they are asked for, and store lookups answered late, in random order and batches.
//!
//! After every step that writes the store: I1 (every stored item hashes to its key, is the
//! source's item, and was taken by the scheduler) and I2 (every stored node has its hashed
//! children, and every stored account its storage root and code, in the store). After every
//! step: the completed fraction never falls and is 1.0 exactly when the sync is done, a
//! refused blob changes nothing, and the scheduler never stops handing out work while nothing
//! else can move. At the end the store is exactly the source and walks clean.
#![allow(clippy::result_large_err)] // ProcessError carries an inline trie path.

use std::collections::HashSet;

use proptest::prelude::*;
use statesync_core::rng::SeededRng;
use statesync_core::scheduler::{DEFAULT_MAX_FETCHES_PER_DEPTH, DEFAULT_MAX_PENDING};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::walk::walk;
use statesync_core::{
    BatchLimit, HashedBlob, KeyMode, MemoryStore, Nibbles, ProcessError, Scheduler,
    SchedulerConfig, StoreKey, SyncMode, Task, TrieBuilder, H256,
};
use statesync_tests::fixtures::make_test_state;
use statesync_tests::harness::{
    account_trie_nodes, answer_lookups, check_closed, check_verified_subset, fetch_by_hash,
    reachable_items,
};

/// What a run syncs: a root and its nodes, and blobs of another trie that this one lacks.
struct Source {
    root: H256,
    mode: SyncMode,
    store: MemoryStore,
    foreign: Vec<Vec<u8>>,
}

/// Blobs of `other` that `store` does not hold.
fn foreign_blobs(store: &MemoryStore, other: &MemoryStore) -> Vec<Vec<u8>> {
    other
        .keys()
        .into_iter()
        .filter(|key| !store.contains(*key))
        .map(|key| other.get(key).unwrap_or_default().to_vec())
        .collect()
}

/// A small synthetic state with many contracts, shared storage, dense (embedded) storage.
fn synthetic_source(accounts: usize, seed: u64) -> Source {
    let config = |seed| SyntheticConfig {
        contract_share: 0.5,
        max_slots: 24,
        shared_storage_share: 0.3,
        dense_storage_share: 0.3,
        ..SyntheticConfig::new(accounts, seed)
    };
    let state = generate(&config(seed));
    let other = generate(&config(seed ^ 0xf0f0));
    // The generator stores its shared storage trie and code pool whether used or not.
    let store = reachable_items(&state.store, state.root, SyncMode::State);
    Source {
        root: state.root,
        mode: SyncMode::State,
        foreign: foreign_blobs(&store, &other.store),
        store,
    }
}

/// A trie of arbitrary keys: short keys from a small alphabet share prefixes and end inside
/// one another (values in branches); short values give embedded nodes.
fn trie_source(entries: &[(Vec<u8>, Vec<u8>)], secure: bool) -> Source {
    let mode = if secure {
        KeyMode::Secure
    } else {
        KeyMode::Plain
    };
    let mut trie = TrieBuilder::new(mode);
    let mut other = TrieBuilder::new(mode);
    for (key, value) in entries {
        trie.insert(key, value);
        other.insert(key, &[value.as_slice(), b"~"].concat());
    }
    let mut store = MemoryStore::new();
    let root = trie.build(&mut |hash, node| store.insert(StoreKey::node(hash), node));
    let mut other_store = MemoryStore::new();
    other.build(&mut |hash, node| other_store.insert(StoreKey::node(hash), node));
    Source {
        root,
        mode: SyncMode::Trie,
        foreign: foreign_blobs(&store, &other_store),
        store,
    }
}

/// One adversarial sync, checking the invariants after every step.
struct Run<'a> {
    source: &'a Source,
    scheduler: Scheduler,
    store: MemoryStore,
    rng: SeededRng,
    account_nodes: HashSet<H256>,
    /// Lookups taken from the scheduler and not answered yet.
    lookups: Vec<StoreKey>,
    /// Handed out by `missing` and not delivered yet.
    outstanding: Vec<Task>,
    handed_out: HashSet<StoreKey>,
    /// Keys whose blob `process` took.
    accepted: HashSet<StoreKey>,
    /// Keys that came out in a commit batch.
    committed: HashSet<StoreKey>,
    fraction: f64,
    steps: usize,
    /// Whether blobs are also delivered before they are asked for. That unblocks a scheduler
    /// that stopped handing out work, so runs that check liveness go without.
    early_deliveries: bool,
}

impl<'a> Run<'a> {
    fn new(source: &'a Source, seed: u64, max_fetches_per_depth: usize) -> Run<'a> {
        let mut rng = SeededRng::new(seed);
        let config = SchedulerConfig {
            mode: source.mode,
            max_fetches_per_depth,
            // Remembering cut keys as complete (and forgetting the oldest) must not matter.
            recent_complete: [0, 16, 32_768][(seed % 3) as usize],
            // Nor must a bound on the requests held that the walk keeps running into.
            max_pending: [DEFAULT_MAX_PENDING, 64, 4][(seed / 3 % 3) as usize],
        };
        Run {
            source,
            scheduler: Scheduler::new(source.root, config),
            store: MemoryStore::new(),
            early_deliveries: rng.chance(0.5),
            rng,
            account_nodes: account_trie_nodes(&source.store, source.root, source.mode),
            lookups: Vec::new(),
            outstanding: Vec::new(),
            handed_out: HashSet::new(),
            accepted: HashSet::new(),
            committed: HashSet::new(),
            fraction: 0.0,
            steps: 0,
        }
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.below(items.len() as u64) as usize].clone())
    }

    /// Delivers a blob that must be refused, and checks that the refusal changed nothing.
    fn deliver_refused(
        &mut self,
        blob: Vec<u8>,
        allowed: &[ProcessError],
    ) -> Result<(), ProcessError> {
        let before = format!("{:?}", self.scheduler);
        let result = self.scheduler.process(HashedBlob::new(blob));
        if let Err(err) = &result {
            assert!(allowed.contains(err), "unexpected {err:?}");
            assert_eq!(
                format!("{:?}", self.scheduler),
                before,
                "a refused blob changed state"
            );
        }
        result
    }

    fn step(&mut self) {
        self.steps += 1;
        assert!(
            self.steps < 200_000,
            "no progress after {} steps",
            self.steps
        );
        let fresh = self.scheduler.take_lookups();
        self.lookups.extend(fresh);
        match self.rng.below(16) {
            // Answer some lookups, in random order.
            0..=2 => {
                self.rng.shuffle(&mut self.lookups);
                let n = self.rng.below(self.lookups.len() as u64 + 1) as usize;
                for key in self.lookups.drain(..n) {
                    self.scheduler.handle_lookup(key, self.store.contains(key));
                }
            }
            // Ask for a random number of tasks (0: all there are).
            3..=5 => {
                let max = self.rng.below(6) as usize;
                let tasks = self.scheduler.missing(max);
                if max != 0 {
                    assert!(tasks.len() <= max);
                }
                // Nothing handed out, nothing in flight, no lookup due: only a stall.
                let idle = self.outstanding.is_empty() && self.lookups.is_empty();
                assert!(
                    !(tasks.is_empty() && idle && !self.scheduler.has_lookups())
                        || self.scheduler.is_done(),
                    "stalled with {} pending",
                    self.scheduler.pending()
                );
                for task in tasks {
                    assert!(
                        self.handed_out.insert(task.key()),
                        "{task:?} handed out twice"
                    );
                    self.outstanding.push(task);
                }
            }
            // Deliver some of what is outstanding, shuffled; keep the rest.
            6..=8 => {
                self.rng.shuffle(&mut self.outstanding);
                let n = self.rng.below(self.outstanding.len() as u64 + 1) as usize;
                let tasks: Vec<Task> = self.outstanding.drain(..n).collect();
                for task in tasks {
                    let blob = fetch_by_hash(&self.source.store, &task);
                    self.scheduler
                        .process(HashedBlob::new(blob))
                        .unwrap_or_else(|e| panic!("{task:?} refused: {e}"));
                    self.accepted.insert(task.key());
                }
            }
            // Re-deliver something already taken. Until it is committed it is refused;
            // afterwards a second parent may have asked for it again.
            9 => {
                let accepted: Vec<StoreKey> = self.accepted.iter().copied().collect();
                if let Some(key) = self.pick(&accepted) {
                    let blob = self.source.store.get(key).unwrap_or_default().to_vec();
                    let result = self.deliver_refused(
                        blob,
                        &[ProcessError::AlreadyProcessed, ProcessError::NotRequested],
                    );
                    assert!(
                        result.is_err() || self.committed.contains(&key),
                        "{key:?} taken twice"
                    );
                }
            }
            // A valid node of another trie: never requested.
            10 => {
                let foreign = self.source.foreign.clone();
                if let Some(blob) = self.pick(&foreign) {
                    let result = self.deliver_refused(blob, &[ProcessError::NotRequested]);
                    assert_eq!(result, Err(ProcessError::NotRequested));
                }
            }
            // A blob of this source before it is asked for: taken only if a request for it
            // is pending (being looked up or queued).
            11 if self.early_deliveries => {
                let keys = self.source.store.keys();
                if let Some(key) = self.pick(&keys) {
                    if !self.handed_out.contains(&key) && !self.accepted.contains(&key) {
                        let blob = self.source.store.get(key).unwrap_or_default().to_vec();
                        if self
                            .deliver_refused(blob, &[ProcessError::NotRequested])
                            .is_ok()
                        {
                            self.accepted.insert(key);
                        }
                    }
                }
            }
            // Commit and write the batch, as one atomic store write: the only step that
            // changes the store, so the only one after which I1 and I2 can break.
            _ => {
                self.commit();
                self.check_store();
            }
        }
        let fraction = self.scheduler.completed_fraction();
        assert!(
            fraction >= self.fraction,
            "progress fell from {} to {fraction}",
            self.fraction
        );
        assert!((0.0..=1.0).contains(&fraction));
        assert_eq!(
            fraction == 1.0,
            self.scheduler.is_done(),
            "fraction {fraction}"
        );
        self.fraction = fraction;
    }

    fn commit(&mut self) {
        let batch = self.scheduler.commit(BatchLimit::UNLIMITED).batch;
        for (key, _) in batch.items() {
            assert!(
                self.accepted.contains(&key),
                "{key:?} committed but never taken"
            );
            self.committed.insert(key);
        }
        self.store.apply(&batch);
    }

    /// I1 and I2 over the whole store.
    fn check_store(&self) {
        check_verified_subset(&self.store, &self.source.store).unwrap();
        for key in self.store.keys() {
            assert!(
                self.accepted.contains(&key),
                "{key:?} stored but never taken"
            );
        }
        check_closed(&self.store, &self.account_nodes).unwrap();
    }

    /// Runs to the end and checks the store is exactly the source.
    fn finish(mut self) -> MemoryStore {
        while !(self.scheduler.is_done() && self.outstanding.is_empty()) {
            self.step();
        }
        // Stale lookups (for items delivered before they were answered) change nothing.
        for key in std::mem::take(&mut self.lookups) {
            self.scheduler.handle_lookup(key, self.store.contains(key));
        }
        self.commit();
        self.check_store();
        assert!(self.scheduler.is_done());
        assert!(self.scheduler.take_lookups().is_empty());
        assert!(self.scheduler.missing(0).is_empty());
        assert_eq!(self.scheduler.completed_fraction(), 1.0);
        assert_eq!(self.store.keys(), self.source.store.keys());
        let (source, mode, root) = (&self.source.store, self.source.mode, self.source.root);
        assert_eq!(walk(root, mode, &self.store), walk(root, mode, source));
        assert!(walk(root, mode, &self.store).is_ok());
        self.store
    }
}

/// Keys of 1 to 4 bytes from a small alphabet (branching at both nibbles of a byte); values random or from a pool of two, so that
/// equal subtries appear under different keys, at equal and at different depths.
fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let byte = prop::sample::select(vec![0x00u8, 0x01, 0x10, 0x11, 0x21]);
    let key = prop::collection::vec(byte, 1..5);
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..40),
        Just(vec![0x55; 40]),
        Just(vec![0x66; 3]),
    ];
    prop::collection::vec((key, value), 1..60)
}

/// One small subtrie placed under several prefixes of odd nibble lengths (1, 3, 5): equal
/// nodes at depths two apart, which the per-depth cap counts at the depth first seen.
fn shared_depth_entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let nibbles = |len: usize| prop::collection::vec(0u8..16, len..=len);
    let suffix = prop_oneof![nibbles(1), nibbles(3)];
    let value = prop_oneof![
        Just(vec![0x55; 40]),
        prop::collection::vec(any::<u8>(), 32..40)
    ];
    let subtrie = prop::collection::vec((suffix, value), 1..4);
    let prefix = prop_oneof![nibbles(1), nibbles(3), nibbles(5)];
    let prefixes = prop::collection::vec(prefix, 2..6);
    (subtrie, prefixes).prop_map(|(subtrie, prefixes)| {
        let mut out = Vec::new();
        for prefix in &prefixes {
            for (suffix, value) in &subtrie {
                let nibbles = [prefix.as_slice(), suffix].concat();
                let key = Nibbles::from_nibbles(nibbles).and_then(|n| n.to_bytes());
                out.push((key.expect("whole bytes"), value.clone()));
            }
        }
        out
    })
}

/// The per-depth fetch cap: tiny ones force the cap's stop (and its escape) often.
fn fetch_cap() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1),
        Just(2),
        Just(3),
        Just(DEFAULT_MAX_FETCHES_PER_DEPTH)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_schedule_syncs_a_synthetic_state_exactly_keeping_i1_and_i2(
        accounts in 1usize..40,
        seed in any::<u64>(),
        schedule in any::<u64>(),
        cap in fetch_cap(),
    ) {
        let source = synthetic_source(accounts, seed);
        let store = Run::new(&source, schedule, cap).finish();
        // A second schedule ends on the identical store.
        let again = Run::new(&source, schedule.wrapping_add(1), cap).finish();
        prop_assert_eq!(store.keys(), again.keys());
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_schedule_syncs_a_trie_of_arbitrary_keys_exactly_keeping_i1_and_i2(
        entries in entries(),
        secure in any::<bool>(),
        schedule in any::<u64>(),
        cap in fetch_cap(),
    ) {
        let source = trie_source(&entries, secure);
        Run::new(&source, schedule, cap).finish();
    }

    #[test]
    fn any_schedule_syncs_a_trie_with_nodes_shared_across_depths_under_any_cap(
        entries in shared_depth_entries(),
        schedule in any::<u64>(),
        cap in fetch_cap(),
    ) {
        let source = trie_source(&entries, false);
        Run::new(&source, schedule, cap).finish();
    }
}

/// The source of the deterministic tests below: geth's test state.
fn test_state_source() -> Source {
    let (state, _) = make_test_state();
    let other = generate(&SyntheticConfig::new(50, 9));
    Source {
        root: state.root,
        mode: SyncMode::State,
        foreign: foreign_blobs(&state.store, &other.store),
        store: state.store,
    }
}

#[test]
fn completed_fraction_never_falls_and_is_one_exactly_at_completion() {
    let source = test_state_source();
    for batch in [1, 7, 0] {
        let mut scheduler = Scheduler::new(source.root, SchedulerConfig::default());
        let mut store = MemoryStore::new();
        let mut seen = vec![scheduler.completed_fraction()];
        loop {
            answer_lookups(&mut scheduler, &store);
            let tasks = scheduler.missing(batch);
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                let blob = fetch_by_hash(&source.store, &task);
                scheduler.process(HashedBlob::new(blob)).unwrap();
                seen.push(scheduler.completed_fraction());
            }
            store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
            seen.push(scheduler.completed_fraction());
        }
        assert!(scheduler.is_done());
        assert_eq!(seen[0], 0.0);
        assert_eq!(*seen.last().unwrap(), 1.0);
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "batch {batch}: {seen:?}"
        );
        // Honest in between: 1.0 only at the very end, and intermediate values are reported.
        let done_at = seen.iter().position(|f| *f == 1.0).unwrap();
        assert!(seen[done_at..].iter().all(|f| *f == 1.0));
        let between = seen.iter().filter(|f| **f > 0.0 && **f < 1.0).count();
        assert!(
            between > seen.len() / 4,
            "batch {batch}: {between} of {}",
            seen.len()
        );
    }
}

#[test]
fn duplicate_and_unrequested_deliveries_are_typed_errors_that_change_nothing() {
    let source = test_state_source();
    let mut scheduler = Scheduler::new(source.root, SchedulerConfig::default());
    let mut store = MemoryStore::new();
    let refused = |scheduler: &mut Scheduler, blob: &[u8], expected: ProcessError| {
        let before = format!("{scheduler:?}");
        assert_eq!(
            scheduler.process(HashedBlob::new(blob.to_vec())),
            Err(expected)
        );
        assert_eq!(format!("{scheduler:?}"), before);
    };

    // The root is handed out. Its children are not pending until it is expanded, so one of
    // them delivered now was not requested.
    answer_lookups(&mut scheduler, &store);
    let root = scheduler.missing(1).pop().unwrap();
    assert_eq!(root.hash, source.root);
    let root_blob = fetch_by_hash(&source.store, &root);
    let children: Vec<H256> = {
        let mut out = Vec::new();
        let node = statesync_core::TrieNode::decode(&root_blob).unwrap();
        node.visit_children(&statesync_core::Nibbles::new(), &mut |c| {
            if let statesync_core::node::NodeChild::Hash { hash, .. } = c {
                out.push(hash);
            }
        });
        out
    };
    let child_blob = source
        .store
        .get(StoreKey::node(children[0]))
        .unwrap()
        .to_vec();
    refused(&mut scheduler, &child_blob, ProcessError::NotRequested);
    scheduler
        .process(HashedBlob::new(root_blob.clone()))
        .unwrap();
    // Waiting for its children: a second copy is a duplicate.
    refused(&mut scheduler, &root_blob, ProcessError::AlreadyProcessed);
    // A valid node of another state was never requested.
    refused(
        &mut scheduler,
        &source.foreign[0],
        ProcessError::NotRequested,
    );

    // Finish, then everything is refused as not requested: nothing is pending any more.
    loop {
        answer_lookups(&mut scheduler, &store);
        let tasks = scheduler.missing(0);
        if tasks.is_empty() {
            break;
        }
        for task in tasks {
            let blob = fetch_by_hash(&source.store, &task);
            scheduler.process(HashedBlob::new(blob)).unwrap();
        }
        store.apply(&scheduler.commit(BatchLimit::UNLIMITED).batch);
    }
    assert!(scheduler.is_done());
    assert_eq!(store.keys(), source.store.keys());
    for key in source.store.keys() {
        refused(
            &mut scheduler,
            source.store.get(key).unwrap(),
            ProcessError::NotRequested,
        );
    }
    assert_eq!(
        scheduler.stats().processed as usize,
        source.store.keys().len()
    );
}
