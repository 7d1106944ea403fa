//! The properties the fuzz targets check, one function per target, kept out of the targets so
//! that `core/tests/fuzz_corpus.rs` replays every corpus and regression file through exactly
//! the same code on stable, without libFuzzer (it includes this file with `#[path]`).
//!
//! Each function panics when a property fails; returning is a pass. The only dependency is
//! `statesync_core`.

use std::sync::OnceLock;

use statesync_core::node::{visit_encoded, ChildRef, NodeShape};
use statesync_core::scheduler::{SchedulerConfig, DEFAULT_MAX_PENDING};
use statesync_core::serve::{answer, ServeLimits, ServeOutcome};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::walk::walk;
use statesync_core::wire::{Message, MAX_HASHES_PER_REQUEST};
use statesync_core::{
    keccak256, Account, HashedBlob, MemoryStore, Nibbles, Scheduler, StoreKey, SyncMode, Task,
    TrieNode, H256,
};

/// `TrieNode::decode` on any bytes; a node that decodes re-encodes to bytes that decode to the
/// same node, and that encoding is stable. Reading the node in place (`visit_encoded`, what
/// the scheduler does) refuses exactly what decoding refuses, with the same error, and meets
/// the same children in the same order.
pub fn node_decode(data: &[u8]) {
    let start = Nibbles::from_nibbles(vec![0xa, 0x5]).unwrap_or_default();
    let mut path = start.clone();
    let mut walked = Vec::new();
    let shape = visit_encoded(data, &mut path, true, &mut |child| {
        walked.push(child.to_node_child())
    });
    assert_eq!(path, start, "visit_encoded did not restore the path");
    let node = match TrieNode::decode(data) {
        Ok(node) => node,
        Err(err) => {
            assert_eq!(shape, Err(err), "visit_encoded and decode disagree");
            return;
        }
    };
    let mut decoded = Vec::new();
    node.visit_children(&start, &mut |child| decoded.push(child));
    assert_eq!(walked, decoded, "visit_encoded met other children");
    let expected = match &node {
        TrieNode::Branch(branch) => NodeShape::Branch {
            hashed: (0..16)
                .filter(|i| matches!(branch.children[*i], ChildRef::Hash(_)))
                .fold(0, |mask, i| mask | 1 << i),
        },
        TrieNode::Extension { path, child } => NodeShape::Extension {
            len: path.len(),
            hashed: matches!(child, ChildRef::Hash(_)),
        },
        TrieNode::Leaf { .. } => NodeShape::Leaf,
    };
    assert_eq!(shape, Ok(expected), "visit_encoded saw another shape");
    let encoded = node.encode();
    let again = match TrieNode::decode(&encoded) {
        Ok(again) => again,
        Err(err) => panic!("re-encoding of {node:?} does not decode: {err}"),
    };
    assert_eq!(again, node, "decode(encode(node)) differs");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
    let mut children = 0usize;
    node.visit_children(&Nibbles::new(), &mut |_| children += 1);
}

/// `Account::decode` on any bytes; an account that decodes round-trips.
pub fn account_decode(data: &[u8]) {
    let Ok(account) = Account::decode(data) else {
        return;
    };
    let encoded = account.encode();
    assert_eq!(Account::decode(&encoded), Ok(account), "round trip");
    // Integers are read minimally, so an accepted encoding is the canonical one.
    assert_eq!(encoded, data, "accepted a non-canonical account");
}

/// `Nibbles::decode_compact` on any bytes: an accepted path re-encodes to exactly the input;
/// and any nibble sequence (built from the input) survives encode then decode.
pub fn compact_path(data: &[u8]) {
    if let Ok((path, leaf)) = Nibbles::decode_compact(data) {
        assert_eq!(path.encode_compact(leaf), data, "compact round trip");
    }
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let nibbles: Vec<u8> = rest.iter().map(|b| b & 0x0f).collect();
    let Some(path) = Nibbles::from_nibbles(nibbles) else {
        panic!("nibbles under 16 refused");
    };
    let leaf = flags & 1 == 1;
    let encoded = path.encode_compact(leaf);
    assert_eq!(Nibbles::decode_compact(&encoded), Ok((path, leaf)));
}

/// A small state every `process` run syncs: contracts with shared code, hashed and dense
/// storage (embedded nodes), and its items in a fixed order for the input to index.
struct Fixture {
    root: H256,
    source: MemoryStore,
    items: Vec<(StoreKey, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut config = SyntheticConfig::new(12, 7);
        config.contract_share = 0.5;
        config.max_slots = 24;
        config.dense_storage_share = 0.3;
        config.shared_storage_share = 0.2;
        let built = generate(&config);
        let items = built
            .store
            .keys()
            .into_iter()
            .filter_map(|key| built.store.get(key).map(|blob| (key, blob.to_vec())))
            .collect();
        Fixture {
            root: built.root,
            source: built.store,
            items,
        }
    })
}

/// The fixture's nodes and code in the order operations index them, for seed inputs.
pub fn fixture_items() -> &'static [(StoreKey, Vec<u8>)] {
    &fixture().items
}

/// Reads the fuzz input front to back; past the end everything reads as zero.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A blob of up to 2^16 - 1 bytes: a little-endian u16 length, then the bytes.
    fn blob(&mut self) -> &'a [u8] {
        let len = usize::from(u16::from_le_bytes([self.byte(), self.byte()]));
        let len = len.min(self.data.len());
        let (blob, rest) = self.data.split_at(len);
        self.data = rest;
        blob
    }
}

/// Answers a lookup honestly from `local`.
fn answer_honestly(scheduler: &mut Scheduler, local: &MemoryStore) {
    for key in scheduler.take_lookups() {
        scheduler.handle_lookup(key, local.contains(key));
    }
}

/// Writes a commit batch, checking that everything in it is what its key names (I1).
fn commit(scheduler: &mut Scheduler, local: &mut MemoryStore) {
    let batch = scheduler
        .commit(statesync_core::BatchLimit::UNLIMITED)
        .batch;
    for (key, blob) in batch.items() {
        assert_eq!(keccak256(blob), key.hash, "committed an unverified blob");
    }
    local.apply(&batch);
}

/// A scheduler over the fixture trie, driven by the input as a list of operations (see the
/// match below; the first byte picks the mode and the per-depth fetch cap). Whatever the
/// input, nothing panics; if the input never claimed a missing item was stored, an honest
/// drive afterwards completes the sync and the local store holds the whole, sound state.
///
/// Blobs from the input reach the scheduler through `HashedBlob::new`, so only exact fixture
/// blobs match a request; operation 1 also syncs a one-node trie rooted at the blob's own
/// hash, which puts arbitrary bytes through the scheduler's node and account decoding.
pub fn process(data: &[u8]) {
    let fx = fixture();
    let mut input = Input { data };
    let setup = input.byte();
    let config = SchedulerConfig {
        mode: if setup & 1 == 0 {
            SyncMode::State
        } else {
            SyncMode::Trie
        },
        max_fetches_per_depth: 1 + usize::from((setup >> 1) & 7),
        recent_complete: if setup & 16 == 0 { 0 } else { 8 },
        // A tiny bound: no more is handed out while anything else can move.
        max_pending: if setup & 32 == 0 {
            DEFAULT_MAX_PENDING
        } else {
            4
        },
    };
    let mut scheduler = Scheduler::new(fx.root, config.clone());
    let mut local = MemoryStore::new();
    // Tasks handed out and not delivered: a host re-requests them, so the honest drive must.
    let mut in_flight: Vec<Task> = Vec::new();
    // Set when the input told the scheduler that an item it lacks is stored.
    let mut lied = false;
    let mut ops = 0;
    while !input.data.is_empty() && ops < 4096 {
        ops += 1;
        match input.byte() % 9 {
            0 => {
                let (_, blob) = &fx.items[usize::from(input.byte()) % fx.items.len()];
                let _ = scheduler.process(HashedBlob::new(blob.clone()));
            }
            1 => {
                let blob = input.blob();
                let _ = scheduler.process(HashedBlob::new(blob.to_vec()));
                one_node_sync(blob, config.clone(), input.byte());
            }
            2 => {
                let (_, blob) = &fx.items[usize::from(input.byte()) % fx.items.len()];
                let mut blob = blob.clone();
                let at = usize::from(input.byte()) % blob.len().max(1);
                if let Some(b) = blob.get_mut(at) {
                    *b ^= input.byte() | 1;
                }
                let _ = scheduler.process(HashedBlob::new(blob));
            }
            3 => answer_honestly(&mut scheduler, &local),
            4 => {
                let bits = input.byte();
                for (i, key) in scheduler.take_lookups().into_iter().enumerate() {
                    let present = bits >> (i % 8) & 1 == 1;
                    lied |= present && !local.contains(key);
                    scheduler.handle_lookup(key, present);
                }
            }
            5 => {
                let max = usize::from(input.byte() % 8);
                let deliver = input.byte();
                for (i, task) in scheduler.missing(max).into_iter().enumerate() {
                    if deliver >> (i % 8) & 1 == 0 {
                        in_flight.push(task);
                    } else if let Some(blob) = fx.source.get(task.key()) {
                        let _ = scheduler.process(HashedBlob::new(blob.to_vec()));
                    }
                }
            }
            6 => commit(&mut scheduler, &mut local),
            7 => {
                // A stale or unasked answer for any fixture key.
                let (key, _) = fx.items[usize::from(input.byte()) % fx.items.len()];
                let present = input.byte() & 1 == 1;
                lied |= present && !local.contains(key);
                scheduler.handle_lookup(key, present);
            }
            _ => {
                // Restart: what was committed stays, the rest is lost (I2: resume from it).
                scheduler = Scheduler::new(fx.root, config.clone());
                in_flight.clear();
            }
        }
        let _ = (scheduler.live_entries(), scheduler.batch_bytes());
        let fraction = scheduler.completed_fraction();
        assert!((0.0..=1.0).contains(&fraction), "fraction {fraction}");
    }
    if lied {
        return;
    }
    // An honest host and peer from here on must finish the sync.
    for _ in 0..100_000 {
        if scheduler.is_done() {
            break;
        }
        answer_honestly(&mut scheduler, &local);
        let mut tasks = std::mem::take(&mut in_flight);
        tasks.extend(scheduler.missing(0));
        for task in tasks {
            let blob = fx.source.get(task.key()).map(<[u8]>::to_vec);
            let Some(blob) = blob else {
                panic!("scheduler asked for {task:?}, which is not in the state");
            };
            let _ = scheduler.process(HashedBlob::new(blob));
        }
        commit(&mut scheduler, &mut local);
    }
    assert!(scheduler.is_done(), "an honest drive did not finish");
    commit(&mut scheduler, &mut local);
    assert_eq!(scheduler.completed_fraction(), 1.0);
    if let Err(err) = walk(fx.root, config.mode, &local) {
        panic!("synced state is not complete: {err}");
    }
}

/// Syncs the trie whose root node is `blob`: every child it references is reported stored
/// (`stored_bits` bit 0) or absent. Stored children must let the root complete at once.
fn one_node_sync(blob: &[u8], config: SchedulerConfig, stored_bits: u8) {
    let root = keccak256(blob);
    let mut scheduler = Scheduler::new(root, config);
    for key in scheduler.take_lookups() {
        scheduler.handle_lookup(key, false);
    }
    let tasks = scheduler.missing(0);
    if tasks.len() != 1 {
        // The blob is an empty trie's root node (rlp("")): nothing to fetch.
        assert!(scheduler.is_done());
        return;
    }
    if scheduler.process(HashedBlob::new(blob.to_vec())).is_err() {
        assert_eq!(
            scheduler.pending(),
            1,
            "a refused blob changed the scheduler"
        );
        return;
    }
    let all_stored = stored_bits & 1 == 1;
    while scheduler.has_lookups() {
        for key in scheduler.take_lookups() {
            scheduler.handle_lookup(key, all_stored);
        }
    }
    let _ = scheduler.missing(0);
    let fraction = scheduler.completed_fraction();
    assert!((0.0..=1.0).contains(&fraction), "fraction {fraction}");
    if all_stored {
        assert!(
            scheduler.is_done(),
            "root with every child stored is not done"
        );
        let batch = scheduler
            .commit(statesync_core::BatchLimit::UNLIMITED)
            .batch;
        assert_eq!(batch.nodes.len(), 1);
    }
}

/// A server's view of any frame a client sends (`serve::answer` over the `process` fixture,
/// what `serve` and the JavaScript `requestedKeys` / `answerFrom` run): never a panic; a
/// GetNodeData gets a NodeData with its id, holding the stored blobs of the requested hashes
/// in request order within the limits; other messages are ignored; anything else is refused
/// with the decoder's own error. Checked under geth's limits and under limits derived from
/// the input's length, so the item and byte cut-offs are reached too.
pub fn serve_answer(data: &[u8]) {
    let store = &fixture().source;
    let tight = ServeLimits {
        max_items: 1 + data.len() % 7,
        soft_bytes: 1 + 97 * (data.len() % 11),
    };
    for limits in [ServeLimits::default(), tight] {
        let outcome = answer(data, limits, |key| store.get(key));
        match (Message::decode(data), outcome) {
            (Ok(Message::GetNodeData { id, hashes }), Ok(ServeOutcome::Answer(frame))) => {
                assert!(
                    hashes.len() <= MAX_HASHES_PER_REQUEST,
                    "request over the limit"
                );
                let Ok(Message::NodeData {
                    id: answered,
                    blobs,
                }) = Message::decode(&frame)
                else {
                    panic!("the answer is not a NodeData frame");
                };
                assert_eq!(answered, id, "answer id");
                assert!(blobs.len() <= limits.max_items, "more items than the limit");
                let before_last: usize = blobs.iter().rev().skip(1).map(|b| b.len()).sum();
                assert!(
                    blobs.is_empty() || before_last < limits.soft_bytes,
                    "kept adding blobs past the byte limit"
                );
                // The blobs are the stored values of requested hashes, in request order.
                let mut requested = hashes.iter();
                for blob in &blobs {
                    let hash = keccak256(blob);
                    assert!(
                        requested.any(|h| *h == hash),
                        "a blob that was not requested, or out of order"
                    );
                    assert!(
                        store.contains(StoreKey::node(hash))
                            || store.contains(StoreKey::code(hash)),
                        "a blob that is not stored"
                    );
                }
            }
            (Ok(Message::GetNodeData { .. }), other) => {
                panic!("a valid request was not answered: {other:?}")
            }
            (Ok(_), outcome) => assert_eq!(outcome, Ok(ServeOutcome::Ignored), "not a request"),
            (Err(decoded), outcome) => assert_eq!(outcome, Err(decoded), "refused differently"),
        }
    }
}
