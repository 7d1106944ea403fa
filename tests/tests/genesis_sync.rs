//! Syncing real genesis states from an in-memory source.

use statesync_core::{MemoryStore, SyncMode};
use statesync_tests::fixtures::genesis;
use statesync_tests::harness::{assert_synced, sync, Delivery, LoopOptions};

fn sync_network(network: &str) {
    let (source, expected) = genesis(network);
    assert_eq!(source.root, expected, "{network} genesis root");
    let mut store = MemoryStore::new();
    sync(
        source.root,
        SyncMode::State,
        &source.store,
        &mut store,
        LoopOptions {
            batch: 384,
            delivery: Delivery::InOrder,
        },
    );
    assert_synced(source.root, SyncMode::State, &source.store, &store);
    // Exactly the source's nodes and code: nothing missing, nothing extra.
    assert_eq!(store.keys(), source.store.keys());
}

#[test]
fn mainnet_genesis_syncs_to_exactly_the_source() {
    sync_network("mainnet");
}

#[test]
fn holesky_genesis_with_contract_storage_and_code_syncs_to_exactly_the_source() {
    sync_network("holesky");
}
