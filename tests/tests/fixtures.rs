//! Every third-party fixture with a known root (fixtures/): the ethereum/tests
//! TrieTests, the genesis states of five networks, and the GenesisTests. Each trie case is
//! rebuilt and its root compared, then synced from its own nodes and walked.

use std::collections::BTreeMap;

use statesync_core::walk::walk;
use statesync_core::{
    keccak256, Account, KeyMode, MemoryStore, Nibbles, StoreKey, SyncMode, TrieBuilder,
    EMPTY_ROOT_HASH, H256,
};
use statesync_tests::fixtures::{
    basic_genesis, fixtures_dir, genesis, genesis_networks, read_json, trie_case,
};
use statesync_tests::harness::{
    assert_synced, sync, trie_entries, value_at, Delivery, LoopOptions,
};

/// The case's final entries by trie path, and the trie built from its operations in order.
fn build_case(
    file: &str,
    name: &str,
    mode: KeyMode,
) -> (TrieBuilder, BTreeMap<Nibbles, Vec<u8>>, H256) {
    let case = trie_case(file, name);
    let mut trie = TrieBuilder::new(mode);
    let mut live = BTreeMap::new();
    for (key, value) in case.ops {
        let path = match mode {
            KeyMode::Plain => Nibbles::from_bytes(&key),
            KeyMode::Secure => Nibbles::from_bytes(keccak256(&key).as_bytes()),
        };
        match value {
            Some(value) if !value.is_empty() => {
                trie.insert(&key, &value);
                live.insert(path, value);
            }
            _ => {
                trie.remove(&key);
                live.remove(&path);
            }
        }
    }
    (trie, live, case.root)
}

fn assert_case_root(file: &str, name: &str, mode: KeyMode) {
    let (trie, _, expected) = build_case(file, name, mode);
    assert_eq!(trie.root(), expected, "{file} {name}");
}

/// Syncs the case's trie from a source holding only its nodes, with the Trie mode scheduler,
/// and checks the copy holds exactly the case's entries.
fn assert_case_syncs(file: &str, name: &str, mode: KeyMode) {
    let (trie, live, expected) = build_case(file, name, mode);
    let mut source = MemoryStore::new();
    let root = trie.build(&mut |hash, node| source.insert(StoreKey::node(hash), node));
    assert_eq!(root, expected, "{file} {name}");
    let mut store = MemoryStore::new();
    let options = LoopOptions {
        batch: 0,
        delivery: Delivery::InOrder,
    };
    let report = sync(root, SyncMode::Trie, &source, &mut store, options);
    let stats = assert_synced(root, SyncMode::Trie, &source, &store);
    assert_eq!(store.keys(), source.keys(), "{file} {name}: stored keys");
    assert_eq!(
        report.tasks.len(),
        source.node_count(),
        "{file} {name}: fetched once each"
    );
    assert_eq!(
        stats.values as usize,
        live.len(),
        "{file} {name}: values walked"
    );
    assert_eq!(
        trie_entries(&store, root).unwrap(),
        live,
        "{file} {name}: entries"
    );
}

macro_rules! trie_cases {
    ($($root_test:ident, $sync_test:ident: $file:literal / $case:literal, $mode:ident;)*) => {
        $(
            #[test]
            fn $root_test() {
                assert_case_root($file, $case, KeyMode::$mode);
            }

            #[test]
            fn $sync_test() {
                assert_case_syncs($file, $case, KeyMode::$mode);
            }
        )*

        /// Every (file, case) above, to check that no case of a file is left out.
        const COVERED: &[(&str, &str)] = &[$(($file, $case)),*];
    };
}

trie_cases! {
    trietest_empty_values_root_matches, trietest_empty_values_syncs_from_its_nodes:
        "trietest.json" / "emptyValues", Plain;
    trietest_branching_tests_root_matches, trietest_branching_tests_syncs_from_its_nodes:
        "trietest.json" / "branchingTests", Plain;
    trietest_jeff_root_matches, trietest_jeff_syncs_from_its_nodes:
        "trietest.json" / "jeff", Plain;
    trietest_insert_middle_leaf_root_matches, trietest_insert_middle_leaf_syncs_from_its_nodes:
        "trietest.json" / "insert-middle-leaf", Plain;
    trietest_branch_value_update_root_matches, trietest_branch_value_update_syncs_from_its_nodes:
        "trietest.json" / "branch-value-update", Plain;
    secure_trietest_empty_values_root_matches, secure_trietest_empty_values_syncs_from_its_nodes:
        "trietest_secureTrie.json" / "emptyValues", Secure;
    secure_trietest_branching_tests_root_matches, secure_trietest_branching_tests_syncs_from_its_nodes:
        "trietest_secureTrie.json" / "branchingTests", Secure;
    secure_trietest_jeff_root_matches, secure_trietest_jeff_syncs_from_its_nodes:
        "trietest_secureTrie.json" / "jeff", Secure;
    anyorder_single_item_root_matches, anyorder_single_item_syncs_from_its_nodes:
        "trieanyorder.json" / "singleItem", Plain;
    anyorder_dogs_root_matches, anyorder_dogs_syncs_from_its_nodes:
        "trieanyorder.json" / "dogs", Plain;
    anyorder_puppy_root_matches, anyorder_puppy_syncs_from_its_nodes:
        "trieanyorder.json" / "puppy", Plain;
    anyorder_foo_root_matches, anyorder_foo_syncs_from_its_nodes:
        "trieanyorder.json" / "foo", Plain;
    anyorder_small_values_root_matches, anyorder_small_values_syncs_from_its_nodes:
        "trieanyorder.json" / "smallValues", Plain;
    anyorder_testy_root_matches, anyorder_testy_syncs_from_its_nodes:
        "trieanyorder.json" / "testy", Plain;
    anyorder_hex_root_matches, anyorder_hex_syncs_from_its_nodes:
        "trieanyorder.json" / "hex", Plain;
    secure_anyorder_single_item_root_matches, secure_anyorder_single_item_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "singleItem", Secure;
    secure_anyorder_dogs_root_matches, secure_anyorder_dogs_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "dogs", Secure;
    secure_anyorder_puppy_root_matches, secure_anyorder_puppy_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "puppy", Secure;
    secure_anyorder_foo_root_matches, secure_anyorder_foo_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "foo", Secure;
    secure_anyorder_small_values_root_matches, secure_anyorder_small_values_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "smallValues", Secure;
    secure_anyorder_testy_root_matches, secure_anyorder_testy_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "testy", Secure;
    secure_anyorder_hex_root_matches, secure_anyorder_hex_syncs_from_its_nodes:
        "trieanyorder_secureTrie.json" / "hex", Secure;
    hex_encoded_secure_test1_root_matches, hex_encoded_secure_test1_syncs_from_its_nodes:
        "hex_encoded_securetrie_test.json" / "test1", Secure;
    hex_encoded_secure_test2_root_matches, hex_encoded_secure_test2_syncs_from_its_nodes:
        "hex_encoded_securetrie_test.json" / "test2", Secure;
    hex_encoded_secure_test3_root_matches, hex_encoded_secure_test3_syncs_from_its_nodes:
        "hex_encoded_securetrie_test.json" / "test3", Secure;
}

#[test]
fn every_case_of_every_rooted_trie_file_has_tests() {
    let files = [
        "trietest.json",
        "trietest_secureTrie.json",
        "trieanyorder.json",
        "trieanyorder_secureTrie.json",
        "hex_encoded_securetrie_test.json",
    ];
    let mut in_files: Vec<(String, String)> = Vec::new();
    for file in files {
        let all = read_json(fixtures_dir().join(file));
        for name in all.as_object().expect("cases").keys() {
            in_files.push((file.to_string(), name.clone()));
        }
    }
    let mut covered: Vec<(String, String)> = COVERED
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect();
    in_files.sort();
    covered.sort();
    assert_eq!(covered, in_files);
    assert_eq!(covered.len(), 25);
}

/// Cases whose tries embed small nodes in their parents still sync to every value: the values
/// inside embedded nodes arrive with their parent's blob.
#[test]
fn trie_cases_with_embedded_nodes_have_fewer_blobs_than_values() {
    let cases = [
        ("trietest.json", "branch-value-update"),
        ("trieanyorder.json", "foo"),
        ("trieanyorder.json", "testy"),
        ("trieanyorder.json", "hex"),
    ];
    for (file, name) in cases {
        let (trie, live, _) = build_case(file, name, KeyMode::Plain);
        let mut hashed = 0;
        trie.build(&mut |_, _| hashed += 1);
        assert!(
            hashed < live.len(),
            "{name}: {hashed} blobs for {} values",
            live.len()
        );
    }
}

// --- Genesis states ---------------------------------------------------------------------

#[test]
fn genesis_index_lists_the_five_networks() {
    let mut networks = genesis_networks();
    networks.sort();
    assert_eq!(
        networks,
        ["goerli", "holesky", "mainnet", "ropsten", "sepolia"]
    );
}

/// The network's built state root against `genesis_index.json`, then the README's counts:
/// accounts, distinct hashed nodes, code blobs, and the account-trie bytes where the state
/// has nothing else.
fn assert_genesis(network: &str, accounts: u64, nodes: usize, account_trie_bytes: Option<u64>) {
    let (state, expected) = genesis(network);
    assert_eq!(state.root, expected, "{network} state root");
    assert_eq!(state.accounts as u64, accounts, "{network} accounts built");
    let stats = walk(state.root, SyncMode::State, &state.store).expect("genesis walks clean");
    assert_eq!(stats.accounts, accounts, "{network} accounts walked");
    assert_eq!(state.store.node_count(), nodes, "{network} hashed nodes");
    assert_eq!(stats.nodes as usize, nodes, "{network}: no node is shared");
    if let Some(bytes) = account_trie_bytes {
        assert_eq!(stats.node_bytes, bytes, "{network} account-trie bytes");
        assert_eq!((stats.contracts, stats.storage_tries), (0, 0), "{network}");
    }
}

#[test]
fn mainnet_genesis_state_root_matches_with_8893_accounts_and_12356_nodes() {
    assert_genesis("mainnet", 8893, 12356, Some(1_483_023));
}

#[test]
fn sepolia_genesis_state_root_matches_with_15_accounts_and_19_nodes() {
    assert_genesis("sepolia", 15, 19, Some(2_410));
}

#[test]
fn holesky_genesis_state_root_matches_with_317_accounts_and_487_nodes() {
    assert_genesis("holesky", 317, 487, None);
}

#[test]
fn goerli_genesis_state_root_matches_with_260_accounts_and_361_nodes() {
    assert_genesis("goerli", 260, 361, Some(41_122));
}

#[test]
fn ropsten_genesis_state_root_matches_with_257_accounts_and_355_nodes() {
    assert_genesis("ropsten", 257, 355, Some(40_530));
}

#[test]
fn mainnet_genesis_keeps_its_two_zero_balance_accounts() {
    let (state, _) = genesis("mainnet");
    let mut zero = 0;
    let entries = trie_entries(&state.store, state.root).unwrap();
    for value in entries.values() {
        let account = Account::decode(value).unwrap();
        if account.balance.minimal_bytes().is_empty() {
            zero += 1;
        }
    }
    assert_eq!(entries.len(), 8893);
    assert_eq!(zero, 2);
}

#[test]
fn ropsten_genesis_keeps_its_246_empty_accounts_in_the_trie() {
    let (state, _) = genesis("ropsten");
    let empty = trie_entries(&state.store, state.root)
        .unwrap()
        .values()
        .map(|v| Account::decode(v).unwrap())
        .filter(|a| a.nonce == 0 && a.balance.minimal_bytes().is_empty() && !a.has_code())
        .count();
    assert_eq!(empty, 246);
}

#[test]
fn holesky_genesis_deposit_contract_has_its_code_and_31_storage_slots() {
    let (state, _) = genesis("holesky");
    let stats = walk(state.root, SyncMode::State, &state.store).unwrap();
    assert_eq!(stats.contracts, 1);
    assert_eq!(stats.codes, 1);
    assert_eq!(stats.code_bytes, 6358);
    assert_eq!(stats.storage_tries, 1);
    assert_eq!(stats.values, 31);
    // 441 account-trie nodes and 46 storage nodes.
    assert_eq!(state.store.node_count(), 441 + 46);
    // And they belong to the deposit contract at 0x4242…4242.
    let key = Nibbles::from_bytes(keccak256(&[0x42; 20]).as_bytes());
    let account = Account::decode(&value_at(&state.store, state.root, &key).unwrap()).unwrap();
    let code = state.store.get(StoreKey::code(account.code_hash)).unwrap();
    assert_eq!(code.len(), 6358);
    assert_eq!(
        trie_entries(&state.store, account.storage_root)
            .unwrap()
            .len(),
        31
    );
}

// --- GenesisTests/basic_genesis_tests.json ----------------------------------------------

#[test]
fn basic_genesis_test1_state_root_matches() {
    let (state, expected) = basic_genesis("test1");
    // The README gives `0xdd406a97…8c59`: the header was read at the right field.
    let text = expected.to_string();
    assert!(
        text.starts_with("0xdd406a97") && text.ends_with("8c59"),
        "{text}"
    );
    assert_eq!(state.root, expected);
    // The one contract: code 0x606060606060606060 and storage {0x03: 0x07}.
    let stats = walk(state.root, SyncMode::State, &state.store).unwrap();
    assert_eq!((stats.accounts, stats.contracts, stats.values), (2, 1, 1));
    assert_eq!(stats.code_bytes, 9);
}

#[test]
fn basic_genesis_test2_state_root_matches_with_legacy_wei_balances() {
    let (state, expected) = basic_genesis("test2");
    let text = expected.to_string();
    // The README abbreviates it as `0x9178d0f2…`.
    assert!(text.starts_with("0x9178d0f2"), "{text}");
    assert_eq!(state.root, expected);
    let entries = trie_entries(&state.store, state.root).unwrap();
    assert_eq!(entries.len(), 12);
    // `wei` is read as the balance: no account is left at zero.
    assert!(entries.values().all(|v| !Account::decode(v)
        .unwrap()
        .balance
        .minimal_bytes()
        .is_empty()));
}

#[test]
fn basic_genesis_test3_state_root_is_the_empty_root() {
    let (state, expected) = basic_genesis("test3");
    assert_eq!(expected, EMPTY_ROOT_HASH);
    assert_eq!(state.root, expected);
    assert_eq!(state.store.node_count(), 0);
}
