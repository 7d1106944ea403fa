//! Sweeps round trip × number of honest peers (× each peer's bandwidth) through the simulator
//! with the engine's defaults, and prints items per virtual second and the sync's virtual
//! seconds beside the depth bound (the state's fetch levels × the round trip: no sync can be
//! faster). Virtual time: the network's bound with CPU free, so the figures do not depend on
//! the machine (issue 12).
//!
//! ```text
//! cargo run --release -p statesync-tests --bin sim-sweep [seeds] [accounts]
//! ```
//!
//! bench/run.mjs parses the table (`parseSimSweep`): change its columns in both places.

use statesync_core::engine::EngineConfig;
use statesync_tests::sim::{Latency, PeerSpec, Sim, SimConfig, World};

const RTTS_MS: [u64; 3] = [20, 100, 300];
const PEERS: [usize; 3] = [1, 4, 16];
/// Unlimited links, then 1 MB/s per peer each way (bytes per millisecond).
const BANDWIDTHS: [Option<u64>; 2] = [None, Some(1_000)];

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let accounts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7_000);
    println!(
        "honest peers, RTT (+0-10 ms jitter), store 5 ms, engine defaults, {accounts} accounts"
    );
    println!("| bandwidth | rtt ms | peers | seed | items | levels | items/virtual s | virtual s | depth bound s | requests | top peer % | dup |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for seed in 0..seeds {
        let world = World::synthetic(accounts, seed);
        let levels = world.fetch_levels(world.root);
        for bandwidth in BANDWIDTHS {
            for rtt in RTTS_MS {
                for peers in PEERS {
                    let specs = (0..peers)
                        .map(|_| PeerSpec {
                            bandwidth,
                            ..PeerSpec::honest(rtt, 10)
                        })
                        .collect();
                    let mut config = SimConfig::new("sim_sweep", seed, specs);
                    // The engine's own defaults: SimConfig's small batches would make the
                    // ask cap (four batches) what binds.
                    config.engine = EngineConfig::default();
                    config.store_latency = Latency::new(5, 0);
                    let report = match Sim::new(config, world.clone()).run() {
                        Ok(report) => report,
                        Err(err) => {
                            eprintln!("{err}");
                            std::process::exit(1);
                        }
                    };
                    let seconds = report.virtual_ms as f64 / 1000.0;
                    // How evenly the work spread: the busiest peer's share of useful items.
                    let served: Vec<u64> = report
                        .finished
                        .as_ref()
                        .map(|p| p.peers.iter().map(|p| p.served).collect())
                        .unwrap_or_default();
                    let total = served.iter().sum::<u64>().max(1);
                    let busiest = served.iter().max().copied().unwrap_or(0) * 100 / total;
                    let label =
                        bandwidth.map_or("unlimited".to_string(), |bw| format!("{bw} KB/s"));
                    println!(
                        "| {label} | {rtt} | {peers} | {seed} | {} | {levels} | {:.0} | {seconds:.2} | {:.2} | {} | {busiest} | {} |",
                        report.items,
                        report.items as f64 / seconds,
                        (levels as u64 * rtt) as f64 / 1000.0,
                        report.requests,
                        report.duplicate,
                    );
                }
            }
        }
    }
}
