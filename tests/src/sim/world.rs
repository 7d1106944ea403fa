//! What the peers serve: one state, or two related states for a root switch, plus the facts
//! the invariant checks need (which nodes are account-trie nodes, what each node depends on).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use statesync_core::node::NodeChild;
use statesync_core::rng::SeededRng;
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::{
    keccak256, Account, ItemKind, KeyMode, MemoryStore, Nibbles, StateBuilder, StoreKey,
    TrieBuilder, TrieNode, Wei, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY,
};

/// The data of a run.
#[derive(Clone, Debug)]
pub struct World {
    /// The root the sync starts with.
    pub root: H256,
    /// The root it is switched to mid-sync, if any.
    pub switch_to: Option<H256>,
    /// Every item of both states: what honest peers serve and what stored values must equal.
    pub source: Arc<MemoryStore>,
    /// Hashes of account-trie nodes of both states: their values are accounts.
    pub account_nodes: Arc<HashSet<H256>>,
    /// Valid nodes of an unrelated state, for peers that send what was not asked.
    pub foreign: Arc<Vec<Vec<u8>>>,
    /// Items under `root`.
    pub items: usize,
}

impl World {
    /// A synthetic state of `accounts` accounts (see `statesync_core::synthetic`).
    pub fn synthetic(accounts: usize, seed: u64) -> World {
        let state = generate(&SyntheticConfig::new(accounts, seed));
        World::from_states(state.root, None, state.store, seed)
    }

    /// State A and a mutation B of it that shares most of its subtries; peers serve both.
    pub fn switching(accounts: usize, seed: u64) -> World {
        let mut rng = SeededRng::new(seed ^ 0x5717_c400);
        let a = StateSpec::random(accounts, &mut rng);
        let b = a.mutate(&mut rng);
        let (root_a, store_a) = a.build();
        let (root_b, store_b) = b.build();
        let mut union = store_a;
        for key in store_b.keys() {
            if let Some(value) = store_b.get(key) {
                union.insert(key, value.to_vec());
            }
        }
        World::from_states(root_a, Some(root_b), union, seed)
    }

    fn from_states(root: H256, switch_to: Option<H256>, source: MemoryStore, seed: u64) -> World {
        let mut account_nodes = account_trie_nodes(&source, root);
        if let Some(other) = switch_to {
            account_nodes.extend(account_trie_nodes(&source, other));
        }
        let foreign_state = generate(&SyntheticConfig::new(40, seed ^ 0xf0_4e16));
        let foreign = foreign_state
            .store
            .keys()
            .into_iter()
            .filter_map(|k| foreign_state.store.get(k).map(<[u8]>::to_vec))
            .collect();
        let items = reachable(&source, root, &account_nodes).len();
        World {
            root,
            switch_to,
            source: Arc::new(source),
            account_nodes: Arc::new(account_nodes),
            foreign: Arc::new(foreign),
            items,
        }
    }

    /// The root the sync must end on.
    pub fn final_root(&self) -> H256 {
        self.switch_to.unwrap_or(self.root)
    }

    /// What `key` must be complete before it may be stored (I2): a node's hashed children and,
    /// in the account trie, each account's storage root and code.
    pub fn dependencies(&self, key: StoreKey, value: &[u8]) -> Result<Vec<StoreKey>, String> {
        dependencies(key, value, &self.account_nodes)
    }

    /// Every item reachable from `root`.
    pub fn reachable(&self, root: H256) -> HashSet<StoreKey> {
        reachable(&self.source, root, &self.account_nodes)
    }

    /// What a sync can store while `absent` cannot be fetched: items it can discover (reached
    /// without going through an absent item) that do not depend on an absent item.
    pub fn completable_without(&self, root: H256, absent: &HashSet<StoreKey>) -> HashSet<StoreKey> {
        let blocked = self.blocked_by(root, absent);
        let mut seen = HashSet::new();
        let mut stack = vec![StoreKey::node(root)];
        while let Some(key) = stack.pop() {
            if absent.contains(&key) || !seen.insert(key) {
                continue;
            }
            if let Some(value) = self.source.get(key) {
                stack.extend(dependencies(key, value, &self.account_nodes).unwrap_or_default());
            }
        }
        seen.retain(|k| !blocked.contains(k));
        seen
    }

    /// How many distinct depths (path lengths, storage paths continuing their account's) the
    /// items under `root` sit at: the scheduler's per-depth cap applies to each.
    pub fn depths(&self, root: H256) -> usize {
        let mut depths = HashSet::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(StoreKey::node(root), Nibbles::new())];
        while let Some((key, path)) = stack.pop() {
            depths.insert(path.len());
            // A shared subtrie at another depth puts its nodes at other depths too.
            if !seen.insert((key, path.len())) {
                continue;
            }
            let Some(node) = self
                .source
                .get(key)
                .filter(|_| key.kind == ItemKind::Node)
                .and_then(|blob| TrieNode::decode(blob).ok())
            else {
                continue;
            };
            let in_accounts = self.account_nodes.contains(&key.hash);
            node.visit_children(&path, &mut |child| match child {
                NodeChild::Hash { path, hash } => stack.push((StoreKey::node(hash), path)),
                NodeChild::Value { path, value } if in_accounts => {
                    if let Ok(account) = Account::decode(value) {
                        if account.storage_root != EMPTY_ROOT_HASH {
                            stack.push((StoreKey::node(account.storage_root), path.clone()));
                        }
                        if account.code_hash != KECCAK_EMPTY {
                            stack.push((StoreKey::code(account.code_hash), path));
                        }
                    }
                }
                NodeChild::Value { .. } => {}
            });
        }
        depths.len()
    }

    /// The dependency depth of the state under `root`, in fetches: an item can only be asked
    /// for once an item that refers to it has arrived, so a sync takes at least this many
    /// round trips however much the peers can serve at once. (Breadth first: a subtrie shared
    /// at several places is fetched as soon as its shallowest parent arrives.)
    pub fn fetch_levels(&self, root: H256) -> usize {
        let mut seen = HashSet::new();
        let mut level = vec![StoreKey::node(root)];
        let mut levels = 0;
        while !level.is_empty() {
            levels += 1;
            let mut next = Vec::new();
            for key in level {
                if !seen.insert(key) {
                    continue;
                }
                if let Some(value) = self.source.get(key) {
                    next.extend(dependencies(key, value, &self.account_nodes).unwrap_or_default());
                }
            }
            next.retain(|key| !seen.contains(key));
            level = next;
        }
        levels
    }

    /// Items under `root` that cannot complete while `absent` cannot be fetched: those
    /// with something of `absent` below them.
    pub fn blocked_by(&self, root: H256, absent: &HashSet<StoreKey>) -> HashSet<StoreKey> {
        let mut blocked: HashMap<StoreKey, bool> = HashMap::new();
        // Iterative post-order: a key is blocked if it is absent or any dependency is blocked.
        let mut stack = vec![(StoreKey::node(root), false)];
        while let Some((key, expanded)) = stack.pop() {
            if blocked.contains_key(&key) && !expanded {
                continue;
            }
            let deps = match self.source.get(key) {
                Some(value) => dependencies(key, value, &self.account_nodes).unwrap_or_default(),
                None => Vec::new(),
            };
            if expanded {
                let is_blocked =
                    absent.contains(&key) || deps.iter().any(|d| blocked.get(d) == Some(&true));
                blocked.insert(key, is_blocked);
            } else {
                blocked.insert(key, false);
                stack.push((key, true));
                for dep in deps {
                    if !blocked.contains_key(&dep) {
                        stack.push((dep, false));
                    }
                }
            }
        }
        blocked
            .into_iter()
            .filter_map(|(k, b)| b.then_some(k))
            .collect()
    }
}

fn dependencies(
    key: StoreKey,
    value: &[u8],
    account_nodes: &HashSet<H256>,
) -> Result<Vec<StoreKey>, String> {
    if key.kind == ItemKind::Code {
        return Ok(Vec::new());
    }
    let node = TrieNode::decode(value).map_err(|e| format!("{key:?} does not decode: {e}"))?;
    let in_accounts = account_nodes.contains(&key.hash);
    let mut deps = Vec::new();
    let mut problem = None;
    node.visit_children(&Nibbles::new(), &mut |child| match child {
        NodeChild::Hash { hash, .. } => deps.push(StoreKey::node(hash)),
        NodeChild::Value { value, .. } if in_accounts => match Account::decode(value) {
            Ok(account) => {
                if account.storage_root != EMPTY_ROOT_HASH {
                    deps.push(StoreKey::node(account.storage_root));
                }
                if account.code_hash != KECCAK_EMPTY {
                    deps.push(StoreKey::code(account.code_hash));
                }
            }
            Err(e) => {
                problem.get_or_insert(format!("{key:?} holds a bad account: {e}"));
            }
        },
        NodeChild::Value { .. } => {}
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(deps),
    }
}

fn reachable(source: &MemoryStore, root: H256, account_nodes: &HashSet<H256>) -> HashSet<StoreKey> {
    let mut seen = HashSet::new();
    let mut stack = vec![StoreKey::node(root)];
    while let Some(key) = stack.pop() {
        if !seen.insert(key) {
            continue;
        }
        if let Some(value) = source.get(key) {
            stack.extend(dependencies(key, value, account_nodes).unwrap_or_default());
        }
    }
    seen
}

/// The nodes of the account trie under `root` (not its storage tries).
fn account_trie_nodes(source: &MemoryStore, root: H256) -> HashSet<H256> {
    let mut out = HashSet::new();
    let mut stack = vec![root];
    while let Some(hash) = stack.pop() {
        if !out.insert(hash) {
            continue;
        }
        let Some(node) = source
            .get(StoreKey::node(hash))
            .and_then(|blob| TrieNode::decode(blob).ok())
        else {
            continue;
        };
        node.visit_children(&Nibbles::new(), &mut |child| {
            if let NodeChild::Hash { hash, .. } = child {
                stack.push(hash);
            }
        });
    }
    out
}

/// An account as the generator of related states describes it.
#[derive(Clone, Debug)]
struct AccountSpec {
    nonce: u64,
    balance: u64,
    /// Storage slot to value (non-empty bytes).
    storage: BTreeMap<u64, u64>,
    /// Index into the shared code blobs.
    code: Option<usize>,
}

/// A state that can be mutated a little and rebuilt, so that two versions share subtries the
/// way consecutive pivot states do.
#[derive(Clone, Debug)]
struct StateSpec {
    accounts: BTreeMap<H256, AccountSpec>,
    codes: Vec<Vec<u8>>,
}

impl StateSpec {
    fn random(accounts: usize, rng: &mut SeededRng) -> StateSpec {
        let codes = (0..(accounts / 30).max(2))
            .map(|i| {
                let mut code = vec![0u8; 100 + rng.below(2000) as usize];
                rng.fill(&mut code);
                code[..8].copy_from_slice(&(i as u64).to_be_bytes());
                code
            })
            .collect::<Vec<_>>();
        let mut spec = StateSpec {
            accounts: BTreeMap::new(),
            codes,
        };
        for _ in 0..accounts {
            spec.add_account(rng);
        }
        spec
    }

    fn add_account(&mut self, rng: &mut SeededRng) {
        let mut address = [0u8; 32];
        rng.fill(&mut address);
        let contract = rng.chance(0.25);
        let mut storage = BTreeMap::new();
        if contract {
            // Mostly small storage, some large.
            let slots = if rng.chance(0.1) {
                50 + rng.below(200)
            } else {
                rng.below(12)
            };
            for _ in 0..slots {
                storage.insert(rng.next_u64(), 1 + rng.below(u64::MAX - 1));
            }
        }
        let code = contract.then(|| rng.below(self.codes.len() as u64) as usize);
        self.accounts.insert(
            keccak256(&address),
            AccountSpec {
                nonce: rng.below(100),
                balance: rng.next_u64() >> rng.below(64),
                storage,
                code,
            },
        );
    }

    /// A successor state: some balances change, some storage slots are written, some
    /// accounts are removed and some added, as a few blocks would do.
    fn mutate(&self, rng: &mut SeededRng) -> StateSpec {
        let mut next = self.clone();
        let keys: Vec<H256> = next.accounts.keys().copied().collect();
        let touched = (keys.len() / 20).max(3);
        for _ in 0..touched {
            let key = keys[rng.below(keys.len() as u64) as usize];
            match rng.below(4) {
                0 => {
                    next.accounts.remove(&key);
                }
                1 => {
                    if let Some(account) = next.accounts.get_mut(&key) {
                        if account.code.is_some() {
                            for _ in 0..1 + rng.below(4) {
                                account.storage.insert(rng.next_u64(), 1 + rng.below(1000));
                            }
                        } else {
                            account.balance = account.balance.wrapping_add(1);
                        }
                    }
                }
                _ => {
                    if let Some(account) = next.accounts.get_mut(&key) {
                        account.nonce += 1;
                        account.balance = account.balance.wrapping_sub(rng.below(1000));
                    }
                }
            }
        }
        for _ in 0..touched / 2 {
            next.add_account(rng);
        }
        // One new contract with new code.
        let mut code = vec![0u8; 300];
        rng.fill(&mut code);
        next.codes.push(code);
        let index = next.codes.len() - 1;
        let mut address = [0u8; 32];
        rng.fill(&mut address);
        next.accounts.insert(
            keccak256(&address),
            AccountSpec {
                nonce: 1,
                balance: 0,
                storage: (0..8).map(|s| (s, s + 1)).collect(),
                code: Some(index),
            },
        );
        next
    }

    fn build(&self) -> (H256, MemoryStore) {
        let mut builder = StateBuilder::new();
        let codes: Vec<H256> = self.codes.iter().map(|c| builder.add_code(c)).collect();
        for (address_hash, spec) in &self.accounts {
            let mut storage = TrieBuilder::new(KeyMode::Secure);
            for (slot, value) in &spec.storage {
                storage.insert(&slot.to_be_bytes(), &value.to_be_bytes());
            }
            let account = Account {
                nonce: spec.nonce,
                balance: Wei::from_u64(spec.balance),
                storage_root: builder.add_storage_trie(&storage),
                code_hash: spec.code.map_or(KECCAK_EMPTY, |i| codes[i]),
            };
            builder.insert_account(*address_hash, &account);
        }
        let built = builder.finish();
        (built.root, built.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statesync_core::walk::walk;
    use statesync_core::SyncMode;

    #[test]
    fn switching_states_are_sound_and_share_most_items() {
        let world = World::switching(200, 1);
        let b = world.switch_to.unwrap();
        assert_ne!(world.root, b);
        walk(world.root, SyncMode::State, &world.source).unwrap();
        walk(b, SyncMode::State, &world.source).unwrap();
        let (in_a, in_b) = (world.reachable(world.root), world.reachable(b));
        let shared = in_a.intersection(&in_b).count();
        assert!(shared * 2 > in_b.len(), "{shared} of {}", in_b.len());
        assert!(in_b.difference(&in_a).count() > 0);
    }

    #[test]
    fn blocked_items_are_the_ancestors_of_what_is_absent() {
        let world = World::synthetic(100, 2);
        let all = world.reachable(world.root);
        let absent: HashSet<StoreKey> = all.iter().take(3).copied().collect();
        let blocked = world.blocked_by(world.root, &absent);
        assert!(blocked.contains(&StoreKey::node(world.root)));
        assert!(absent.iter().all(|k| blocked.contains(k)));
        assert!(blocked.len() < all.len());
    }
}
