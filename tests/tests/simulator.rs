//! The sync engine against simulated networks: one test per fault mix, each over many seeds.
//! `SIM_SEED=x` replays one seed, `SIM_SEEDS=n` (or `xk`) changes how many run. See
//! `tests/SCENARIOS.md` for what each mix exercises and the figures of a run.

use std::collections::HashSet;
use std::sync::Arc;

use statesync_core::engine::EngineConfig;
use statesync_core::rng::SeededRng;
use statesync_core::StoreKey;
use statesync_tests::sim::{
    run_seeds, CrashPlan, Faults, Holdings, Latency, PeerSpec, Report, ServeLimits, Sim, SimConfig,
    SimError, World,
};

/// A generator for the shape of one run, independent of the simulator's own draws.
fn shape_rng(name: &str, seed: u64) -> SeededRng {
    let salt = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    SeededRng::new(seed ^ salt)
}

fn pick<T: Copy>(rng: &mut SeededRng, options: &[T]) -> T {
    options[rng.below(options.len() as u64) as usize]
}

/// 100 to 600 accounts: a few hundred to a couple of thousand items.
fn small_world(rng: &mut SeededRng, seed: u64) -> World {
    World::synthetic(100 + rng.below(501) as usize, seed)
}

/// Engine settings varied per seed, so that batching, pipelining, hedging and lookup chunking
/// are all covered: small commit batches (many cross-batch I2 checks, an unwritten budget that
/// holds the requests back), small requests, one to eight requests in flight per peer, eager,
/// default or no hedging, small lookup ops, short and long time cuts. Batches under 16 KiB are
/// left out: the byte budget also bounds the answers on their way, so a 2 KiB batch allows
/// about 18 items in flight, and the per-request faults (a dropped connection per request)
/// then exhaust the peers' reconnections before the sync ends.
fn varied_engine(rng: &mut SeededRng) -> EngineConfig {
    EngineConfig {
        batch_bytes: pick(rng, &[16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024]),
        batch_items: pick(rng, &[64, 256, 1024, 8192]),
        batch_interval_ms: pick(rng, &[200, 2_000]),
        max_items_per_request: pick(rng, &[384, 384, 64, 16]),
        max_in_flight_per_peer: pick(rng, &[1, 2, 4, 8]),
        max_lookups_per_op: pick(rng, &[8, 64, 4096]),
        hedge_after_rtts: pick(rng, &[1.5, 4.0, f64::INFINITY]),
        min_hedge_ms: pick(rng, &[50, 250]),
        ..EngineConfig::default()
    }
}

fn honest(rng: &mut SeededRng) -> PeerSpec {
    PeerSpec::honest(10 + rng.below(90), rng.below(20))
}

fn config(name: &str, seed: u64, rng: &mut SeededRng, peers: Vec<PeerSpec>) -> SimConfig {
    let mut config = SimConfig::new(name, seed, peers);
    config.engine = varied_engine(rng);
    config.store_latency = Latency::new(rng.below(5), rng.below(10));
    config
}

fn run(config: SimConfig, world: World) -> Result<Report, SimError> {
    Sim::new(config, world).run()
}

/// Builds and runs one seed of a scenario.
fn scenario(
    name: &'static str,
    default_seeds: u64,
    build: impl Fn(&mut SeededRng, u64) -> (SimConfig, World),
) {
    run_seeds(name, default_seeds, |seed| {
        let mut rng = shape_rng(name, seed);
        let (config, world) = build(&mut rng, seed);
        run(config, world)
    });
}

#[test]
fn clean() {
    scenario("clean", 50, |rng, seed| {
        let peers = (0..1 + rng.below(4)).map(|_| honest(rng)).collect();
        (config("clean", seed, rng, peers), small_world(rng, seed))
    });
}

#[test]
fn latency_jitter_and_bandwidth() {
    scenario("latency_jitter_and_bandwidth", 50, |rng, seed| {
        let peers = (0..4)
            .map(|_| {
                let rtt = 100 + rng.below(500);
                PeerSpec {
                    latency: Latency::rtt(rtt, rng.below(rtt / 2 + 1)),
                    // 50 KB/s to 2 MB/s each way.
                    bandwidth: Some(50 + rng.below(1950)),
                    serve_ms: rng.below(20),
                    ..PeerSpec::default()
                }
            })
            .collect();
        let mut config = config("latency_jitter_and_bandwidth", seed, rng, peers);
        config.store_latency = Latency::new(5, 20);
        (config, small_world(rng, seed))
    });
}

/// Peers with one kind of fault at a random rate in `rates`, `faulty` of them, plus
/// `honest_peers` honest ones. Faulty peers reconnect after being disconnected or dropped.
fn fault_mix(
    name: &'static str,
    seeds: u64,
    faulty: u64,
    honest_peers: u64,
    rates: (f64, f64),
    fault: fn(f64) -> Faults,
) {
    scenario(name, seeds, move |rng, seed| {
        let mut peers: Vec<PeerSpec> = (0..faulty)
            .map(|_| {
                let rate = rates.0 + rng.next_f64() * (rates.1 - rates.0);
                honest(rng)
                    .with_faults(fault(rate))
                    .with_rejoin(500, 5_000, 20)
            })
            .collect();
        peers.extend((0..honest_peers).map(|_| honest(rng)));
        rng.shuffle(&mut peers);
        (config(name, seed, rng, peers), small_world(rng, seed))
    });
}

#[test]
fn dropped_connections() {
    fault_mix("dropped_connections", 50, 3, 0, (0.01, 0.08), |p| Faults {
        drop: p,
        ..Faults::NONE
    });
}

#[test]
fn no_answer() {
    fault_mix("no_answer", 50, 3, 0, (0.05, 0.3), |p| Faults {
        no_answer: p,
        ..Faults::NONE
    });
}

/// A peer that sends its Status first and then never answers is asked for the root before
/// anyone else can be. Its silence must cost seconds, not a minute: each seed runs with and
/// without the silent peer, and the difference is the cost. The stall rule drops the silent
/// peer after three start-up timeouts one after the other, so it cannot cost more than that.
/// (With the engine's one shared timeout it cost a mean 90 virtual seconds: 4 peers joining
/// cut geth's confidence to 1/4.)
#[test]
fn a_silent_first_answer_costs_seconds_not_a_minute() {
    const MOST_MS: u64 = 3 * statesync_core::rate::STARTUP_TIMEOUT_MS as u64;
    let name = "a_silent_first_answer_costs_seconds_not_a_minute";
    let mut costs = Vec::new();
    let summary = run_seeds(name, 20, |seed| {
        let build = |silent: bool| {
            let mut rng = shape_rng(name, seed);
            // Honest peers 50-150 ms away; the silent one is nearer, so its Status comes first.
            let mut peers: Vec<PeerSpec> = (0..3)
                .map(|_| PeerSpec::honest(50 + rng.below(100), rng.below(10)))
                .collect();
            if silent {
                let never = Faults {
                    no_answer: 1.0,
                    ..Faults::NONE
                };
                peers.insert(0, PeerSpec::honest(10, 0).with_faults(never));
            }
            let mut config = SimConfig::new(name, seed, peers);
            config.engine = EngineConfig::default();
            (config, small_world(&mut rng, seed))
        };
        let (config, world) = build(false);
        let honest_only = run(config, world)?;
        let (config, world) = build(true);
        let report = run(config, world)?;
        let cost = report.virtual_ms.saturating_sub(honest_only.virtual_ms);
        if cost > MOST_MS {
            return Err(SimError {
                name: name.to_string(),
                seed,
                now: report.virtual_ms,
                steps: report.steps,
                message: format!(
                    "the silent peer cost {cost} ms ({} ms against {} ms without it)",
                    report.virtual_ms, honest_only.virtual_ms
                ),
            });
        }
        costs.push(cost);
        Ok(report)
    });
    let mean = costs.iter().sum::<u64>() / costs.len().max(1) as u64;
    println!(
        "{name}: the silent peer cost a mean {mean} ms (max {:?}), {} seeds",
        costs.iter().max(),
        summary.runs
    );
}

/// A peer answers after 4-6 s, longer than the start-up timeout, beside one with a 20 KB/s
/// link (so that the sync lasts long enough to need both). Its first requests (one item
/// each: it has no throughput yet) time out together, but their late
/// answers stretch its timeout to fit it: it is never dropped as stalling (requests that were
/// out together count as one silence, and a late answer clears the row), and the sync
/// finishes.
#[test]
fn a_peer_slower_than_the_startup_timeout_is_kept() {
    let name = "a_peer_slower_than_the_startup_timeout_is_kept";
    run_seeds(name, 10, |seed| {
        let mut rng = shape_rng(name, seed);
        let peers = vec![
            PeerSpec {
                bandwidth: Some(20),
                ..PeerSpec::honest(20 + rng.below(30), rng.below(10))
            },
            PeerSpec::honest(4_000 + rng.below(1_000), rng.below(1_000)),
        ];
        let mut config = SimConfig::new(name, seed, peers);
        config.engine = EngineConfig::default();
        let report = run(config, small_world(&mut rng, seed))?;
        if report.disconnects > 0 {
            return Err(SimError {
                name: name.to_string(),
                seed,
                now: report.virtual_ms,
                steps: report.steps,
                message: format!(
                    "the slow peer was disconnected {} times",
                    report.disconnects
                ),
            });
        }
        Ok(report)
    });
}

#[test]
fn late_answers() {
    fault_mix("late_answers", 50, 3, 1, (0.05, 0.3), |p| Faults {
        late: p,
        ..Faults::NONE
    });
}

#[test]
fn partial_answers() {
    scenario("partial_answers", 50, |rng, seed| {
        let peers = (0..3)
            .map(|_| {
                let p = 0.1 + rng.next_f64() * 0.5;
                PeerSpec {
                    // Tight serving limits cut answers short too.
                    limits: ServeLimits {
                        max_items: pick(rng, &[8, 32, 1024]),
                        soft_bytes: pick(rng, &[4 * 1024, 32 * 1024, 2 * 1024 * 1024]),
                    },
                    ..honest(rng)
                }
                .with_faults(Faults {
                    partial: p,
                    truncate: p / 2.0,
                    ..Faults::NONE
                })
            })
            .collect();
        (
            config("partial_answers", seed, rng, peers),
            small_world(rng, seed),
        )
    });
}

#[test]
fn empty_answers() {
    fault_mix("empty_answers", 50, 3, 0, (0.05, 0.4), |p| Faults {
        empty: p,
        ..Faults::NONE
    });
}

#[test]
fn reordered_answers() {
    fault_mix("reordered_answers", 40, 3, 0, (0.3, 1.0), |p| Faults {
        reorder: p,
        ..Faults::NONE
    });
}

#[test]
fn garbage_frames() {
    fault_mix("garbage_frames", 50, 2, 1, (0.05, 0.5), |p| Faults {
        garbage: p,
        ..Faults::NONE
    });
}

#[test]
fn unrequested_valid_nodes() {
    fault_mix("unrequested_valid_nodes", 50, 2, 1, (0.05, 0.5), |p| {
        Faults {
            unrequested: p,
            ..Faults::NONE
        }
    });
}

#[test]
fn wrong_hash_blobs() {
    fault_mix("wrong_hash_blobs", 50, 2, 1, (0.05, 0.5), |p| Faults {
        wrong_hash: p,
        ..Faults::NONE
    });
}

/// Each item is missing from a random subset of the peers, never from all of them.
fn lacking_sets(
    world: &World,
    peers: usize,
    share: f64,
    rng: &mut SeededRng,
) -> Vec<Arc<HashSet<StoreKey>>> {
    let mut sets = vec![HashSet::new(); peers];
    for key in world.source.keys() {
        let lacking: Vec<usize> = (0..peers).filter(|_| rng.chance(share)).collect();
        let keeper = rng.below(peers as u64) as usize;
        for peer in lacking {
            if peer != keeper {
                sets[peer].insert(key);
            }
        }
    }
    sets.into_iter().map(Arc::new).collect()
}

#[test]
fn peers_lacking_part_of_the_state() {
    scenario("peers_lacking_part_of_the_state", 50, |rng, seed| {
        let world = small_world(rng, seed);
        let count = 2 + rng.below(3) as usize;
        let share = 0.05 + rng.next_f64() * 0.45;
        let peers = lacking_sets(&world, count, share, rng)
            .into_iter()
            .map(|missing| PeerSpec {
                holdings: Holdings::Without(missing),
                ..honest(rng)
            })
            .collect();
        (
            config("peers_lacking_part_of_the_state", seed, rng, peers),
            world,
        )
    });
}

#[test]
fn crash_and_restart() {
    scenario("crash_and_restart", 50, |rng, seed| {
        let peers = (0..2 + rng.below(2)).map(|_| honest(rng)).collect();
        let mut config = config("crash_and_restart", seed, rng, peers);
        let crashes = (0..1 + rng.below(3)).map(|_| 5 + rng.below(600)).collect();
        config.crashes = CrashPlan::AtSteps(crashes);
        (config, small_world(rng, seed))
    });
}

#[test]
fn root_switch_mid_sync() {
    scenario("root_switch_mid_sync", 50, |rng, seed| {
        let peers = (0..2 + rng.below(3)).map(|_| honest(rng)).collect();
        let mut config = config("root_switch_mid_sync", seed, rng, peers);
        config.switch_at = Some(rng.below(2_000));
        let world = World::switching(100 + rng.below(400) as usize, seed);
        (config, world)
    });
}

#[test]
fn late_joining_and_leaving_peers() {
    scenario("late_joining_and_leaving_peers", 50, |rng, seed| {
        let mut peers: Vec<PeerSpec> = (0..4)
            .map(|_| {
                let join_at = rng.below(5_000);
                PeerSpec {
                    join_at,
                    leave_at: rng.chance(0.7).then(|| join_at + rng.below(3_000)),
                    ..honest(rng)
                }
            })
            .collect();
        // Someone stays: a peer that joins late and never leaves.
        peers.push(PeerSpec {
            join_at: 1_000 + rng.below(10_000),
            ..honest(rng)
        });
        (
            config("late_joining_and_leaving_peers", seed, rng, peers),
            small_world(rng, seed),
        )
    });
}

#[test]
fn everything_mixed() {
    scenario("everything_mixed", 100, |rng, seed| {
        let mut peers: Vec<PeerSpec> = (0..4)
            .map(|_| {
                let mut faults = Faults::NONE;
                let knobs: [&mut f64; 10] = [
                    &mut faults.drop,
                    &mut faults.no_answer,
                    &mut faults.garbage,
                    &mut faults.late,
                    &mut faults.partial,
                    &mut faults.truncate,
                    &mut faults.empty,
                    &mut faults.reorder,
                    &mut faults.unrequested,
                    &mut faults.wrong_hash,
                ];
                for knob in knobs {
                    if rng.chance(0.5) {
                        *knob = rng.next_f64() * 0.08;
                    }
                }
                let rtt = 20 + rng.below(400);
                PeerSpec {
                    latency: Latency::rtt(rtt, rng.below(rtt / 2 + 1)),
                    bandwidth: rng.chance(0.5).then(|| 100 + rng.below(2000)),
                    join_at: rng.below(3_000),
                    leave_at: rng.chance(0.2).then(|| 3_000 + rng.below(10_000)),
                    faults,
                    holdings: if rng.chance(0.3) {
                        Holdings::Lacking(rng.next_f64() * 0.2)
                    } else {
                        Holdings::Full
                    },
                    ..PeerSpec::default()
                }
                .with_rejoin(500, 10_000, 10)
            })
            .collect();
        // One honest peer, possibly slow and late, keeps the sync finishable.
        peers.push(PeerSpec {
            join_at: rng.below(20_000),
            ..PeerSpec::honest(50 + rng.below(500), rng.below(100))
        });
        let mut config = config("everything_mixed", seed, rng, peers);
        if rng.chance(0.5) {
            config.switch_at = Some(rng.below(20_000));
        }
        if rng.chance(0.5) {
            config.crashes = CrashPlan::AtSteps(
                (0..1 + rng.below(2))
                    .map(|_| 5 + rng.below(3_000))
                    .collect(),
            );
        }
        let accounts = 100 + rng.below(400) as usize;
        let world = if config.switch_at.is_some() {
            World::switching(accounts, seed)
        } else {
            World::synthetic(accounts, seed)
        };
        (config, world)
    });
}

/// A store ten times slower than the network: peers answer in 5–20 ms, each store operation
/// takes 50–200 ms. The store sets the pace (I7, checked at every step by the simulator): the
/// verified items not yet durable stay within one batch, so requests wait for the writes
/// instead of verified data piling up in memory.
#[test]
fn a_store_ten_times_slower_than_the_network() {
    let name = "a_store_ten_times_slower_than_the_network";
    let summary = run_seeds(name, 30, |seed| {
        let mut rng = shape_rng(name, seed);
        let peers = (0..2 + rng.below(3))
            .map(|_| PeerSpec::honest(5 + rng.below(15), rng.below(5)))
            .collect();
        let mut config = config(name, seed, &mut rng, peers);
        config.store_latency = Latency::new(50 + rng.below(100), 50);
        let world = World::synthetic(300 + rng.below(1_200) as usize, seed);
        let bound = config.engine.batch_items as u64;
        let report = run(config, world)?;
        if report.max_unwritten == 0 || report.max_unwritten > bound {
            return Err(SimError {
                name: name.to_string(),
                seed,
                now: report.virtual_ms,
                steps: report.steps,
                message: format!("peak unwritten {} (bound {bound})", report.max_unwritten),
            });
        }
        Ok(report)
    });
    println!("{name}: {} seeds passed", summary.runs);
}

/// The pipe is not capped by the commit batch (issue 12). Four peers 100 ms away, 16 requests
/// in flight each, a 79k-item state: the items asked are bounded by the ask cap, not by the
/// 8,192 items of a batch (which bounds only what is verified and not yet durable, I7, checked
/// at every step). So more than a batch is on its way at some point, and the sync takes
/// within 10 % of the virtual time it takes with the batch itself lifted eightfold (65,536
/// items / 8 MiB). Asking within the batch took 1.45× as long here (2.32 s against 1.6 s;
/// tests/SCENARIOS.md, "Depth or capacity").
#[test]
fn the_items_asked_are_not_capped_by_the_commit_batch() {
    let name = "the_items_asked_are_not_capped_by_the_commit_batch";
    let summary = run_seeds(name, 1, |seed| {
        let sync = |engine: EngineConfig| {
            let peers = (0..4).map(|_| PeerSpec::honest(100, 10)).collect();
            let mut config = SimConfig::new(name, seed, peers);
            config.engine = engine;
            config.store_latency = Latency::new(5, 0);
            run(config, World::synthetic(25_000, seed))
        };
        let engine = EngineConfig {
            max_in_flight_per_peer: 16,
            ..EngineConfig::default()
        };
        let lifted = EngineConfig {
            batch_items: 8 * engine.batch_items,
            batch_bytes: 8 * engine.batch_bytes,
            ..engine.clone()
        };
        let batch = engine.batch_items as u64;
        let report = sync(engine)?;
        let unbounded = sync(lifted)?;
        let fail = |message: String| SimError::after(name, seed, &report, message);
        if report.max_outstanding <= batch {
            return Err(fail(format!(
                "at most {} items asked at once, within one batch of {batch}",
                report.max_outstanding
            )));
        }
        if report.virtual_ms * 10 > unbounded.virtual_ms * 11 {
            return Err(fail(format!(
                "{} ms, more than 10 % over the {} ms with the batch lifted",
                report.virtual_ms, unbounded.virtual_ms
            )));
        }
        println!(
            "{name} seed {seed}: {} ms ({} ms with the batch lifted), {} items asked at most",
            report.virtual_ms, unbounded.virtual_ms, report.max_outstanding
        );
        Ok(report)
    });
    println!("{name}: {} seeds passed", summary.runs);
}

/// A store ten times slower than the network, with small batches: answers arrive faster than
/// the unwritten batch empties, so they are held unverified until commits land. The held blobs
/// plus the items asked stay within the engine's ask cap at every step (checked by the
/// simulator), and the holding does happen (else this test would prove nothing).
#[test]
fn held_answers_stay_within_the_ask_cap_under_a_slow_store() {
    let name = "held_answers_stay_within_the_ask_cap_under_a_slow_store";
    let mut held_runs = 0;
    let summary = run_seeds(name, 20, |seed| {
        let mut rng = shape_rng(name, seed);
        let peers = (0..2 + rng.below(3))
            .map(|_| PeerSpec::honest(5 + rng.below(15), rng.below(5)))
            .collect();
        let mut config = SimConfig::new(name, seed, peers);
        config.engine = EngineConfig {
            batch_items: pick(&mut rng, &[256, 1024]),
            max_in_flight_per_peer: 8,
            ..EngineConfig::default()
        };
        config.store_latency = Latency::new(50 + rng.below(100), 50);
        let cap = statesync_core::engine::ASK_BATCHES * config.engine.batch_items as u64;
        let world = World::synthetic(1_000 + rng.below(2_000) as usize, seed);
        let report = run(config, world)?;
        if report.max_held > cap || report.max_outstanding > cap {
            return Err(SimError {
                name: name.to_string(),
                seed,
                now: report.virtual_ms,
                steps: report.steps,
                message: format!(
                    "{} held, {} asked at most, over the ask cap of {cap}",
                    report.max_held, report.max_outstanding
                ),
            });
        }
        held_runs += u64::from(report.max_held > 0);
        Ok(report)
    });
    assert!(
        held_runs * 2 >= summary.runs,
        "answers were held in only {held_runs} of {} runs",
        summary.runs
    );
    println!(
        "{name}: {} seeds passed, {held_runs} held answers",
        summary.runs
    );
}

/// Crashes at random steps while fast peers outrun a slow store, so that a crash usually
/// finds staged items, a commit in flight and answers on their way. After each restart no
/// item that was durable at the crash (main keyspace or staging) is fetched again (checked by
/// the simulator on every request), and the sync finishes.
#[test]
fn crashes_at_random_steps_lose_nothing_durable() {
    scenario(
        "crashes_at_random_steps_lose_nothing_durable",
        40,
        |rng, seed| {
            let peers = (0..1 + rng.below(3))
                .map(|_| PeerSpec::honest(2 + rng.below(20), rng.below(5)))
                .collect();
            let mut config = config(
                "crashes_at_random_steps_lose_nothing_durable",
                seed,
                rng,
                peers,
            );
            config.store_latency = Latency::new(5 + rng.below(60), 20);
            config.crashes = CrashPlan::AtSteps(
                (0..2 + rng.below(4))
                    .map(|_| 5 + rng.below(2_000))
                    .collect(),
            );
            (
                config,
                World::synthetic(200 + rng.below(800) as usize, seed),
            )
        },
    );
}

/// Every peer lacks the same few items. The engine must not fail: it reports a stall naming
/// the unservable items, commits everything that does not depend on them, and finishes once
/// a complete peer joins.
#[test]
fn no_peer_can_serve_until_a_complete_peer_joins() {
    const JOIN_AT: u64 = 600_000;
    let name = "no_peer_can_serve_until_a_complete_peer_joins";
    let mut after_join = Vec::new();
    let summary = run_seeds(name, 40, |seed| {
        let mut rng = shape_rng(name, seed);
        let world = small_world(&mut rng, seed);
        let root = world.root;
        let all: Vec<StoreKey> = {
            let mut keys: Vec<StoreKey> = world.reachable(root).into_iter().collect();
            keys.sort();
            keys
        };
        // A few items, never the root (then nothing at all could be committed).
        let one = all[rng.below(all.len() as u64) as usize];
        let absent: HashSet<StoreKey> = all
            .iter()
            .copied()
            .filter(|k| rng.chance(0.03) || *k == one)
            .filter(|k| k.hash != root)
            .collect();
        let without = Arc::new(absent.clone());
        let mut peers: Vec<PeerSpec> = (0..2 + rng.below(3))
            .map(|_| PeerSpec {
                holdings: Holdings::Without(without.clone()),
                ..honest(&mut rng)
            })
            .collect();
        peers.push(PeerSpec {
            join_at: JOIN_AT,
            ..honest(&mut rng)
        });
        let config = config(name, seed, &mut rng, peers);
        let mut sim = Sim::new(config, world);
        sim.run_until(JOIN_AT - 1)?;
        let fail = |message: String| SimError {
            name: name.to_string(),
            seed,
            now: JOIN_AT,
            steps: 0,
            message,
        };
        let report = sim.report();
        if report.finished.is_some() {
            return Err(fail("finished without the absent items".into()));
        }
        if !report
            .stalls
            .iter()
            .any(|&(_, unservable, _)| unservable > 0)
        {
            return Err(fail(format!(
                "no stall with unservable items: {:?}",
                report.stalls
            )));
        }
        // Long after the time cut, everything verified is durable (I7): what does not depend
        // on an absent item is in the main keyspace, the rest of what was fetched in staging.
        let unwritten = sim.engine().unwritten();
        if unwritten != (0, 0) {
            return Err(fail(format!(
                "{unwritten:?} verified items and bytes are not durable during the stall"
            )));
        }
        let completable = sim.world.completable_without(root, &absent);
        let missing = completable
            .iter()
            .filter(|k| !sim.store.data.contains(**k))
            .count();
        if missing > 0 {
            let keys: Vec<_> = completable
                .iter()
                .filter(|k| !sim.store.data.contains(**k))
                .map(|k| (k, sim.store.data.is_staged(&k.hash)))
                .collect();
            return Err(fail(format!(
                "{missing} items that could be stored are not in the main keyspace: {keys:?}"
            )));
        }
        let progress = sim.engine().progress();
        if progress.phase != statesync_core::progress::Phase::Stalled || progress.eta_ms.is_some() {
            return Err(fail(format!(
                "the stall shows as {:?} with ETA {:?}",
                progress.phase, progress.eta_ms
            )));
        }
        let retry_ms = sim.config.engine.unservable_retry_ms;
        let report = sim.run()?;
        let took = report.virtual_ms - JOIN_AT;
        // The new peer is asked as soon as its Status arrives, not at the next periodic retry.
        if took >= retry_ms / 3 {
            return Err(fail(format!(
                "took {took} ms after the complete peer joined (retry timer {retry_ms} ms)"
            )));
        }
        after_join.push(took);
        Ok(report)
    });
    let mean = after_join.iter().sum::<u64>() / after_join.len().max(1) as u64;
    println!(
        "{name}: finished a mean {mean} ms after the complete peer joined (max {:?}), {} seeds",
        after_join.iter().max(),
        summary.runs
    );
}

/// A crash after some commits: the restarted engine skips what is stored and asks for less
/// than a fresh sync does.
#[test]
fn resume_after_a_crash_fetches_only_what_is_missing() {
    let name = "resume_after_a_crash_fetches_only_what_is_missing";
    run_seeds(name, 40, |seed| {
        let build = || {
            let mut rng = shape_rng(name, seed);
            let peers = (0..1 + rng.below(3)).map(|_| honest(&mut rng)).collect();
            let mut config = config(name, seed, &mut rng, peers);
            // Small batches, so there is something durable to resume from.
            config.engine.batch_bytes = 4 * 1024;
            (config, small_world(&mut rng, seed), rng)
        };
        let (config, world, _) = build();
        let fresh = run(config, world)?;
        let (mut config, world, mut rng) = build();
        let crash_after = 1 + rng.below(fresh.commits.saturating_sub(1).max(1));
        config.crashes = CrashPlan::AfterCommits(vec![crash_after]);
        let mut sim = Sim::new(config, world);
        let mut committed_at_crash = None;
        while committed_at_crash.is_none() {
            if !sim.step()? {
                break;
            }
            if sim.report().crashes == 1 {
                // Durable: in the main keyspace or in staging.
                committed_at_crash = Some(
                    sim.store.data.node_count()
                        + sim.store.data.code_count()
                        + sim.store.data.staged_count(),
                );
            }
        }
        let committed_at_crash = committed_at_crash.unwrap_or(0) as u64;
        let resumed = sim.run()?;
        let fail = |message: String| SimError::after(name, seed, &resumed, message);
        if resumed.crashes != 1 {
            return Err(fail(format!("{} crashes", resumed.crashes)));
        }
        let after = resumed.items_requested_per_session[1];
        if after >= fresh.items_requested {
            return Err(fail(format!(
                "asked for {after} items after the restart, a fresh sync asks for {}",
                fresh.items_requested
            )));
        }
        // Clean peers: exactly what is not stored is asked for (stored subtries are skipped).
        if after + committed_at_crash != fresh.items_requested {
            return Err(fail(format!(
                "asked for {after} after the restart with {committed_at_crash} stored; fresh {}",
                fresh.items_requested
            )));
        }
        // What was durable is skipped (complete subtries) or taken back from staging.
        let kept = resumed.last_progress[1]
            .as_ref()
            .map_or(0, |p| p.skipped + p.restored);
        if kept == 0 {
            return Err(fail(
                "the resumed session skipped and restored nothing".into(),
            ));
        }
        Ok(resumed)
    });
}

/// I5 on a larger state: the scheduler's live entries stay under a bound computed from the
/// configuration (per-depth cap, fan-out, in-flight limits) and the trie's depth, far below
/// the size of the state.
#[test]
fn live_entries_stay_bounded_on_a_larger_state() {
    let name = "live_entries_stay_bounded_on_a_larger_state";
    run_seeds(name, 3, |seed| {
        let mut rng = shape_rng(name, seed);
        let world = World::synthetic(5_000, seed);
        let peers: Vec<PeerSpec> = (0..4).map(|_| honest(&mut rng)).collect();
        let peer_count = peers.len();
        let mut config = SimConfig::new(name, seed, peers);
        config.engine = EngineConfig {
            max_fetches_per_depth: 4,
            max_items_per_request: 64,
            max_in_flight_per_peer: 2,
            batch_bytes: 64 * 1024,
            ..EngineConfig::default()
        };
        let e = &config.engine;
        // Fetched or waiting requests: at most the cap per depth. Each waiting node holds at
        // most 16 children being looked up or queued, and the queue holds at most one slot per
        // queued request plus stale slots. Retries are bounded by what is in flight.
        let depths = world.depths(world.root);
        let bound = 2 * e.max_fetches_per_depth * depths * 17
            + peer_count * e.max_in_flight_per_peer * e.max_items_per_request;
        assert!(
            bound * 2 < world.items,
            "bound {bound} is not small next to {} items",
            world.items
        );
        config.live_entries_bound = Some(bound);
        let report = run(config, world)?;
        println!(
            "{name} seed {seed}: {} items, {depths} depths, bound {bound}, max live entries {}",
            report.items, report.max_live_entries
        );
        Ok(report)
    });
}

/// A table past `max_pending` drains at the speed of the pipe. With wide windows many items are
/// out when the table reaches its bound, and their children take it past the bound by
/// thousands; handing out one item at a time there (one round trip each) took a CLI sync from
/// four 100 ms peers down to ~10 items/s for minutes. Here a bound of three quarters of what a
/// sync of 25,000 accounts (~79k items) at 100 ms holds at its peak must cost at most 3× the
/// same sync without the bound, and the live entries stay within the table the bound sizes
/// (the bound, its headroom, and the queue's slots). Handing out one at a time past the bound,
/// or without room kept for the children of what is out, the live entries pass that at 1 s.
#[test]
fn a_table_past_max_pending_drains_at_speed() {
    let name = "a_table_past_max_pending_drains_at_speed";
    let summary = run_seeds(name, 2, |seed| {
        let sync = |max_pending: usize, live_bound: Option<usize>| {
            let peers = (0..4).map(|_| PeerSpec::honest(100, 10)).collect();
            let mut config = SimConfig::new(name, seed, peers);
            config.engine = EngineConfig {
                max_pending,
                ..EngineConfig::default()
            };
            config.store_latency = Latency::new(5, 0);
            config.live_entries_bound = live_bound;
            run(config, World::synthetic(25_000, seed))
        };
        // The bound binds: three quarters of what the sync holds at its peak without one (on
        // a small state that can be under what the waiting ancestors of one trie level need,
        // and then the sync is narrow by design: hence 25,000 accounts).
        let unbounded = sync(usize::MAX / 2, None)?;
        let bound = unbounded.max_live_entries * 3 / 4;
        // Requests held (bound + headroom), their queue slots, and stale slots: twice the table.
        let live_bound = 2 * (bound + bound / 6);
        let report = sync(bound, Some(live_bound))?;
        let fail = |message: String| SimError::after(name, seed, &report, message);
        if report.virtual_ms > 3 * unbounded.virtual_ms {
            return Err(fail(format!(
                "{} ms with max_pending {bound}, more than 3x the {} ms without it",
                report.virtual_ms, unbounded.virtual_ms
            )));
        }
        println!(
            "{name} seed {seed}: {} items, {} ms with max_pending {bound} (live entries at most {}), \
             {} ms without (at most {})",
            report.items,
            report.virtual_ms,
            report.max_live_entries,
            unbounded.virtual_ms,
            unbounded.max_live_entries
        );
        Ok(report)
    });
    println!("{name}: {} seeds passed", summary.runs);
}

/// A seed replays exactly: same events, same figures.
#[test]
fn a_seed_replays_exactly() {
    let build = |seed| {
        let mut rng = shape_rng("replay", seed);
        let mut peers: Vec<PeerSpec> = (0..3)
            .map(|_| {
                honest(&mut rng)
                    .with_faults(Faults {
                        drop: 0.02,
                        late: 0.05,
                        partial: 0.1,
                        garbage: 0.03,
                        ..Faults::NONE
                    })
                    .with_rejoin(100, 1_000, 5)
            })
            .collect();
        peers.push(honest(&mut rng));
        let mut config = config("replay", seed, &mut rng, peers);
        config.crashes = CrashPlan::AtSteps(vec![50 + rng.below(200)]);
        config.switch_at = Some(rng.below(3_000));
        (config, World::switching(200, seed))
    };
    for seed in 0..5 {
        let (config, world) = build(seed);
        let first = run(config, world).unwrap_or_else(|e| panic!("{e}"));
        let (config, world) = build(seed);
        let second = run(config, world).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, second, "seed {seed} did not replay");
        assert!(first.steps > 0);
    }
}
