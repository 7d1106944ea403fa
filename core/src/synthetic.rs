//! Seeded synthetic states for tests and benchmarks, from a few hundred nodes to millions.
//!
//! Shaped like the real state where it matters to a sync: many plain accounts; a share of
//! contracts whose storage sizes are heavy-tailed (most have a few slots, a few have
//! thousands); contracts that share code; accounts that share one storage trie; and "dense"
//! storage tries with short values under neighbouring keys, whose small nodes are embedded in
//! their parents. Real storage keys are hashed, so they never produce embedded nodes; dense
//! tries use raw keys so that the sync's embedded-node handling is exercised too.

use crate::account::{Account, Wei};
use crate::builder::{KeyMode, TrieBuilder};
use crate::hash::{keccak256, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
use crate::rng::SeededRng;
use crate::state::{BuiltState, StateBuilder};

#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticConfig {
    pub accounts: usize,
    pub seed: u64,
    /// Share of accounts that are contracts.
    pub contract_share: f64,
    /// Cap on one contract's storage slots (the tail of the size distribution).
    pub max_slots: usize,
    /// Pareto shape of storage sizes: smaller means a heavier tail.
    pub slots_shape: f64,
    /// How many distinct code blobs contracts draw from.
    pub distinct_codes: usize,
    /// Share of contracts that use the one shared storage trie.
    pub shared_storage_share: f64,
    /// Share of contracts whose storage is dense (raw neighbouring keys, 1-byte values).
    pub dense_storage_share: f64,
}

impl SyntheticConfig {
    /// A state of `accounts` accounts with the default mix.
    pub fn new(accounts: usize, seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            accounts,
            seed,
            contract_share: 0.2,
            max_slots: 4096,
            slots_shape: 1.1,
            distinct_codes: (accounts / 40).max(1),
            shared_storage_share: 0.05,
            dense_storage_share: 0.05,
        }
    }
}

/// Generates the state described by `config`. The same config gives the same root.
pub fn generate(config: &SyntheticConfig) -> BuiltState {
    let mut rng = SeededRng::new(config.seed);
    let mut builder = StateBuilder::new();
    let codes: Vec<H256> = (0..config.distinct_codes)
        .map(|i| builder.add_code(&code_blob(config.seed, i, &mut rng)))
        .collect();
    let shared_storage = {
        let mut trie = TrieBuilder::new(KeyMode::Secure);
        for slot in 0..32u64 {
            trie.insert(&word(slot), &rlp::encode(&(slot + 1)));
        }
        builder.add_storage_trie(&trie)
    };
    for index in 0..config.accounts {
        let mut account = Account {
            nonce: rng.below(1000),
            balance: Wei::from_u64(rng.next_u64() >> rng.below(64)),
            storage_root: EMPTY_ROOT_HASH,
            code_hash: KECCAK_EMPTY,
        };
        if rng.chance(config.contract_share) {
            account.code_hash = codes[rng.below(codes.len() as u64) as usize];
            account.storage_root = if rng.chance(config.shared_storage_share) {
                shared_storage
            } else {
                let slots = heavy_tailed(&mut rng, config.slots_shape, config.max_slots);
                let dense = rng.chance(config.dense_storage_share);
                builder.add_storage_trie(&storage_trie(&mut rng, slots, dense))
            };
        }
        let address_hash = keccak256(
            &[
                &config.seed.to_be_bytes()[..],
                &(index as u64).to_be_bytes(),
            ]
            .concat(),
        );
        builder.insert_account(address_hash, &account);
    }
    builder.finish()
}

/// A 32-byte big-endian word holding `value`.
fn word(value: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[24..].copy_from_slice(&value.to_be_bytes());
    out
}

/// Pareto-distributed count in `1..=max`.
fn heavy_tailed(rng: &mut SeededRng, shape: f64, max: usize) -> usize {
    let u = 1.0 - rng.next_f64(); // (0, 1]
    let draw = u.powf(-1.0 / shape);
    (draw as usize).clamp(1, max.max(1))
}

fn storage_trie(rng: &mut SeededRng, slots: usize, dense: bool) -> TrieBuilder {
    if dense {
        // Neighbouring raw keys and 1-byte values: leaves of a few bytes, embedded in branches.
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        for slot in 0..slots as u64 {
            trie.insert(&word(slot), &[1 + rng.below(100) as u8]);
        }
        return trie;
    }
    let mut trie = TrieBuilder::new(KeyMode::Secure);
    for _ in 0..slots {
        let slot = rng.next_u64();
        let value = (rng.next_u64() >> rng.below(56)).max(1);
        trie.insert(&word(slot), &rlp::encode(&value));
    }
    trie
}

/// Contract code of 64 to 4 KiB bytes, distinct per index.
fn code_blob(seed: u64, index: usize, rng: &mut SeededRng) -> Vec<u8> {
    let len = 64 + rng.below(4096 - 64) as usize;
    let mut code = vec![0u8; len];
    rng.fill(&mut code);
    code[..8].copy_from_slice(&seed.to_be_bytes());
    code[8..16].copy_from_slice(&(index as u64).to_be_bytes());
    code
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::scheduler::SyncMode;
    use crate::walk::walk;

    #[test]
    fn same_seed_same_root_and_a_sound_state() {
        let config = SyntheticConfig::new(300, 5);
        let a = generate(&config);
        assert_eq!(a.root, generate(&config).root);
        assert_ne!(a.root, generate(&SyntheticConfig::new(300, 6)).root);
        let stats = walk(a.root, SyncMode::State, &a.store).unwrap();
        assert_eq!(stats.accounts, 300);
        assert!(stats.contracts > 20 && stats.storage_tries > 5);
        // Shared code: fewer distinct blobs than contracts.
        assert!(stats.codes < stats.contracts);
    }

    #[test]
    fn dense_storage_embeds_small_nodes() {
        let mut rng = SeededRng::new(1);
        let trie = storage_trie(&mut rng, 40, true);
        let mut nodes = Vec::new();
        trie.build(&mut |_, n| nodes.push(n));
        // 40 values but only a handful of hashed nodes: the leaves are embedded.
        assert!(nodes.len() < 10, "{} hashed nodes", nodes.len());
    }
}
