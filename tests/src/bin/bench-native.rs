//! Native benchmarks (issue 6): the hashing-and-decoding limit, the engine against it, and
//! peak engine memory as the state grows. Prints one line of JSON per measurement.
//!
//! Usage: bench-native [--sizes 100000,1000000] [--peers 4] [--repeat 3] [--max-fetches N]
//!
//! Sizes are target hashed-node counts; the synthetic generator is sized to reach them.
//! Memory is the heap (a counting allocator) above the source state's own footprint, with a
//! store that discards writes and answers lookups "absent": what the engine itself holds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use statesync_core::engine::testnet::{Pace, TestNet, TestStore};
use statesync_core::engine::EngineConfig;
use statesync_core::node::TrieNode;
use statesync_core::serve::{self, ServeOutcome};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::{keccak256, BuiltState, MemoryStore, StoreKey};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The engine's per-depth fetch cap for this run (`--max-fetches`).
static MAX_FETCHES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let peers: u64 = arg("--peers").and_then(|s| s.parse().ok()).unwrap_or(4);
    let repeat: usize = arg("--repeat").and_then(|s| s.parse().ok()).unwrap_or(3);
    let max_fetches: usize = arg("--max-fetches")
        .and_then(|s| s.parse().ok())
        .unwrap_or(EngineConfig::default().max_fetches_per_depth);
    MAX_FETCHES.store(max_fetches, Ordering::Relaxed);

    let genesis = {
        let text = std::fs::read_to_string("fixtures/genesis_mainnet.json")
            .expect("fixtures/genesis_mainnet.json (run from the repo root)");
        let alloc = statesync_core::state::parse_genesis_alloc(&text).expect("genesis");
        statesync_core::state::build_genesis(&alloc)
    };
    measure("mainnet-genesis", &genesis, peers, repeat);
    for target in sizes {
        // About 3.2 hashed items per account with the default mix (measured).
        let accounts = (target as f64 / 3.2) as usize;
        let started = Instant::now();
        let state = generate(&SyntheticConfig::new(accounts, 1));
        eprintln!(
            "generated {} nodes in {:.1?}",
            state.store.node_count(),
            started.elapsed()
        );
        measure(&format!("synthetic-{target}"), &state, peers, repeat);
    }
}

fn measure(name: &str, state: &BuiltState, peers: u64, repeat: usize) {
    let items = state.store.node_count() + state.store.code_count();
    let limit = best_of(repeat, || limit_pass(&state.store));
    let mut engine_best = f64::MAX;
    let mut peak = 0;
    for _ in 0..repeat {
        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let (secs, max_live_entries) = engine_pass(state, peers);
        peak = peak.max(PEAK.load(Ordering::Relaxed) - baseline);
        engine_best = engine_best.min(secs);
        let _ = max_live_entries;
    }
    let (_, live_entries) = engine_pass(state, peers);
    println!(
        "{{\"state\":\"{name}\",\"items\":{items},\"bytes\":{},\"limit_items_per_sec\":{:.0},\"engine_items_per_sec\":{:.0},\"engine_to_limit\":{:.3},\"peak_engine_heap_bytes\":{peak},\"max_live_entries\":{live_entries},\"peers\":{peers},\"max_fetches_per_depth\":{}}}",
        state.store.bytes(),
        items as f64 / limit,
        items as f64 / engine_best,
        limit / engine_best,
        MAX_FETCHES.load(Ordering::Relaxed),
    );
}

fn best_of(repeat: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..repeat.max(1)).map(|_| f()).fold(f64::MAX, f64::min)
}

/// keccak and node decoding of every item, nothing else: what no sync can beat.
fn limit_pass(store: &MemoryStore) -> f64 {
    let keys = store.keys();
    let started = Instant::now();
    let mut decoded = 0usize;
    for key in &keys {
        let blob = store.get(*key).unwrap_or_default();
        let hash = keccak256(blob);
        if key.kind == statesync_core::ItemKind::Node && TrieNode::decode(blob).is_ok() {
            decoded += 1;
        }
        std::hint::black_box(hash);
    }
    std::hint::black_box(decoded);
    started.elapsed().as_secs_f64()
}

/// A full engine sync from `peers` in-process peers that answer at once, into a store that
/// discards writes, on the engine's test harness. Returns the engine's seconds (serving
/// excluded) and the largest live-entries figure reported.
///
/// Each step of the harness moves virtual time a millisecond, completes every store
/// operation, then answers one request: a host with the store and the network running side
/// by side acknowledges a commit before the next answer arrives, so completed items do not
/// pile up in memory.
fn engine_pass(state: &BuiltState, peers: u64) -> (f64, usize) {
    let config = EngineConfig {
        progress_interval_ms: u64::MAX / 4,
        max_fetches_per_depth: MAX_FETCHES.load(Ordering::Relaxed),
        ..EngineConfig::default()
    };
    let started = Instant::now();
    let mut net = TestNet::new(&state.store, state.root, config);
    net.store = TestStore::Discard;
    net.keep_events = false;
    net.pace = Pace {
        answers_per_step: 1,
        ms_per_step: 1,
    };
    // The peers' serving is not the engine's work: on a network it runs elsewhere.
    let serving = Cell::new(Duration::ZERO);
    net.set_server(Box::new(|_peer, frame: &[u8]| {
        let serve_started = Instant::now();
        let answer = serve::answer(frame, Default::default(), |k: StoreKey| state.store.get(k));
        serving.set(serving.get() + serve_started.elapsed());
        match answer {
            Ok(ServeOutcome::Answer(reply)) => Some(reply),
            _ => None,
        }
    }));
    for peer in 0..peers {
        net.join(peer);
    }
    let mut max_live = 0;
    let mut steps = 0u64;
    net.drive_bounded(100_000_000, |net| {
        steps += 1;
        if steps % 8 == 0 {
            max_live = max_live.max(net.engine.progress().live_entries);
        }
    })
    .expect("engine did not finish");
    assert!(net.engine.is_done(), "engine ended without finishing");
    let elapsed = started.elapsed();
    drop(net);
    ((elapsed - serving.get()).as_secs_f64(), max_live)
}
