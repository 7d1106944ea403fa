//! The reference sync loop of geth's tests (spec §5): ask `missing`, fetch from a source,
//! `process`, `commit`, write, repeat. Variants pick batch sizes and delivery orders.

use statesync_core::rng::SeededRng;
use statesync_core::walk::{walk, WalkStats};
use statesync_core::{HashedBlob, MemoryStore, Scheduler, SchedulerConfig, SyncMode, Task, H256};

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
    let mut report = LoopReport::default();
    let mut carried: Vec<Task> = Vec::new();
    let mut rng = match options.delivery {
        Delivery::Random(seed) | Delivery::RandomHalf(seed) => SeededRng::new(seed),
        _ => SeededRng::new(0),
    };
    loop {
        answer_lookups(&mut scheduler, store);
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
            let blob = source
                .get(task.key())
                .unwrap_or_else(|| panic!("source lacks {task:?}"));
            scheduler
                .process(HashedBlob::new(blob.to_vec()))
                .unwrap_or_else(|e| panic!("process {task:?}: {e}"));
        }
        store.apply(&scheduler.commit());
    }
    assert!(
        scheduler.is_done(),
        "loop ended with {} pending",
        scheduler.pending()
    );
    store.apply(&scheduler.commit());
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
