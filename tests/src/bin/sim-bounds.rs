//! How much of a sync's time at a real round trip is bound by dependency depth and how much by
//! capacity (issue 12). 4 honest peers at one round trip (+0-10 ms jitter), a 5 ms store,
//! engine defaults, a synthetic state; virtual time, so the figures do not depend on the
//! machine.
//!
//! ```text
//! cargo run --release -p statesync-tests --bin sim-bounds [seeds] [accounts] [rtt_ms] [in_flight] [batch_items] [kb_per_s] [max_items] [max_pending]
//! ```
//!
//! After every simulator step the engine has asked for all it can, so the state it is left in
//! says what holds it back until the next step, and the virtual time until then is charged to:
//! - *slots*: every usable peer has `max_in_flight_per_peer` requests out (capacity: requests
//!   in flight × items per request), split into *full* (at least 90 % of the slots' items are
//!   out), *sized* (less, but the requests are as large as msgrate sizes them: the peer's
//!   measured throughput × the target round trip, below `max_items_per_request`) and *thin*
//!   (the requests are smaller than msgrate allows: there was no more to ask, so this is
//!   depth too);
//! - *window*: slots are free, but every usable peer has its pipe's window out (no whole
//!   request of msgrate's size fits in what is left of it): capacity as the engine measures
//!   each peer, twice its delivery rate × its shortest round trip;
//! - *budget*: slots and windows are free but the request budget is 0: the items asked plus the answer
//!   blobs held unverified (while the unwritten batch is full) fill the ask cap,
//!   `ASK_BATCHES` batches (4 × 8,192 items / 1 MiB): capacity, set by the batch and the
//!   store's pace;
//! - *depth*: slots and budget are free but nothing is askable: what is missing is only known
//!   once answers on their way arrive (dependency depth; also the scheduler's per-depth caps);
//! - *connecting*: no peer has sent its Status yet.
//!
//! Beside them: the depth bound (the state's fetch levels × the round trip: no sync can be
//! faster) and the capacity bounds (items / the items the slots or the ask cap allow per round
//! trip, × the round trip), and the most items asked and held at once.

use statesync_core::engine::{EngineConfig, ASK_BATCHES};
use statesync_tests::sim::{Latency, PeerSpec, Sim, SimConfig, World};

/// Virtual milliseconds charged to each cause, and the outstanding items integrated over them.
#[derive(Default)]
struct Causes {
    connecting: u64,
    full: u64,
    sized: u64,
    thin: u64,
    window: u64,
    budget: u64,
    depth: u64,
    /// Sum of outstanding items × ms, to give the mean pipe fill.
    outstanding_ms: f64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    // Each argument in order; absent, unparsable or 0: the default.
    let mut next = || {
        args.next()
            .and_then(|a| a.parse::<u64>().ok())
            .filter(|n| *n > 0)
    };
    let seeds = next().unwrap_or(3);
    let accounts = next().unwrap_or(7_000) as usize;
    let rtt = next().unwrap_or(100);
    let mut engine = EngineConfig::default();
    if let Some(n) = next() {
        engine.max_in_flight_per_peer = n as usize;
    }
    // A larger batch (and its bytes in the default proportion, 128 bytes an item) shows what
    // the unwritten budget costs.
    if let Some(items) = next() {
        engine.batch_bytes = items as usize * (engine.batch_bytes / engine.batch_items);
        engine.batch_items = items as usize;
    }
    // Each peer's link, KB/s each way (none: unlimited).
    let bandwidth = next();
    // Items per request at most (the protocol allows 1,024).
    if let Some(items) = next() {
        engine.max_items_per_request = items as usize;
    }
    // The scheduler's table bound (I5).
    if let Some(max_pending) = next() {
        engine.max_pending = max_pending as usize;
    }
    let peers = 4;
    let slot_items = peers * engine.max_in_flight_per_peer * engine.max_items_per_request;
    println!(
        "{peers} peers, RTT {rtt} ms (+0-10 ms jitter), store 5 ms, {accounts} accounts; engine: \
         {} in flight × {} items per peer ({slot_items} items per round trip), batch {} items",
        engine.max_in_flight_per_peer, engine.max_items_per_request, engine.batch_items
    );
    println!(
        "| seed | items | levels | depth bound s | slots bound s | budget bound s | sync s | depth % | slots full % | slots sized % | slots thin % | window % | budget % | connecting % | mean items out | peak out | peak held |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for seed in 0..seeds {
        let world = World::synthetic(accounts, seed);
        let levels = world.fetch_levels(world.root);
        let items = world.items as f64;
        let depth_bound = levels as f64 * rtt as f64 / 1000.0;
        let slots_bound = (items / slot_items as f64).ceil() * rtt as f64 / 1000.0;
        let ask_cap = ASK_BATCHES as f64 * engine.batch_items as f64;
        let budget_bound = (items / ask_cap).ceil() * rtt as f64 / 1000.0;
        let specs = (0..peers)
            .map(|_| PeerSpec {
                bandwidth,
                ..PeerSpec::honest(rtt, 10)
            })
            .collect();
        let mut config = SimConfig::new("sim_bounds", seed, specs);
        config.engine = engine.clone();
        config.store_latency = Latency::new(5, 0);
        let mut sim = Sim::new(config, world.clone());
        let mut causes = Causes::default();
        let mut last = (sim.now(), Cause::Connecting, 0u64);
        loop {
            match sim.step() {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => {
                    eprintln!("{err}");
                    std::process::exit(1);
                }
            }
            let (since, cause, outstanding) = last;
            let spent = sim.now() - since;
            match cause {
                Cause::Connecting => causes.connecting += spent,
                Cause::Full => causes.full += spent,
                Cause::Sized => causes.sized += spent,
                Cause::Thin => causes.thin += spent,
                Cause::Window => causes.window += spent,
                Cause::Budget => causes.budget += spent,
                Cause::Depth => causes.depth += spent,
            }
            causes.outstanding_ms += outstanding as f64 * spent as f64;
            last = (
                sim.now(),
                cause_now(&sim, &engine),
                sim.engine().outstanding_items(),
            );
        }
        let total = sim.now().max(1) as f64;
        let share = |ms: u64| 100.0 * ms as f64 / total;
        println!(
            "| {seed} | {} | {levels} | {depth_bound:.1} | {slots_bound:.1} | {budget_bound:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            world.items,
            total / 1000.0,
            share(causes.depth),
            share(causes.full),
            share(causes.sized),
            share(causes.thin),
            share(causes.window),
            share(causes.budget),
            share(causes.connecting),
            causes.outstanding_ms / total,
            sim.report().max_outstanding,
            sim.report().max_held,
        );
    }
}

#[derive(Clone, Copy)]
enum Cause {
    Connecting,
    Full,
    Sized,
    Thin,
    Window,
    Budget,
    Depth,
}

/// What holds the engine back now, right after a step (it has asked for all it could).
fn cause_now(sim: &Sim, engine: &EngineConfig) -> Cause {
    let progress = sim.engine().progress();
    let usable = progress
        .peers
        .iter()
        .filter(|p| p.head_root.is_some())
        .count();
    // What msgrate would let the slots carry now.
    let sized: usize = progress
        .peers
        .iter()
        .filter(|p| p.head_root.is_some())
        .map(|p| p.capacity * engine.max_in_flight_per_peer)
        .sum();
    if usable == 0 {
        Cause::Connecting
    } else if progress.requests_in_flight >= usable * engine.max_in_flight_per_peer {
        let slot_items = usable * engine.max_in_flight_per_peer * engine.max_items_per_request;
        let out = sim.engine().outstanding_items() as f64;
        if out >= 0.9 * slot_items as f64 {
            Cause::Full
        } else if out >= 0.9 * sized as f64 {
            Cause::Sized
        } else {
            Cause::Thin
        }
    } else if progress
        .peers
        .iter()
        .filter(|p| p.head_root.is_some())
        .all(|p| p.in_flight > 0 && p.outstanding + p.capacity > p.window)
    {
        Cause::Window
    } else if sim.engine().request_budget() == 0 {
        Cause::Budget
    } else {
        Cause::Depth
    }
}
