//! Sweeps `max_in_flight_per_peer` over the simulator's high-latency scenario (4 honest peers,
//! 100 ms round trip, a synthetic state of about 20k items) and prints throughput in items per
//! virtual second, to choose the engine's default.
//!
//! ```text
//! cargo run --release -p statesync-tests --bin sim-sweep [seeds] [accounts]
//! ```

use statesync_core::engine::EngineConfig;
use statesync_tests::sim::{Latency, PeerSpec, Sim, SimConfig, World};

fn main() {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let accounts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7_000);
    let in_flight = [1usize, 2, 4, 8];
    // Unlimited links, then 1 MB/s and 250 KB/s per peer each way.
    let bandwidths = [None, Some(1_000u64), Some(250)];
    println!("4 peers, RTT 100 ms (+0-10 ms jitter), store 5 ms, {accounts} accounts");
    println!("items per virtual second (virtual time, requests, busiest peer's share, duplicates)");
    println!("| bandwidth | seed | items | in flight 1 | 2 | 4 | 8 |");
    println!("|---|---|---|---|---|---|---|");
    let mut totals = vec![vec![0.0f64; in_flight.len()]; bandwidths.len()];
    for (b, bandwidth) in bandwidths.iter().enumerate() {
        for seed in 0..seeds {
            let world = World::synthetic(accounts, seed);
            let mut row = Vec::new();
            for (i, &limit) in in_flight.iter().enumerate() {
                let peers = (0..4)
                    .map(|_| PeerSpec {
                        latency: Latency::rtt(100, 10),
                        bandwidth: *bandwidth,
                        ..PeerSpec::default()
                    })
                    .collect();
                let mut config = SimConfig::new("sim_sweep", seed, peers);
                config.engine = EngineConfig {
                    max_in_flight_per_peer: limit,
                    ..EngineConfig::default()
                };
                config.store_latency = Latency::new(5, 0);
                let report = match Sim::new(config, world.clone()).run() {
                    Ok(report) => report,
                    Err(err) => {
                        eprintln!("{err}");
                        std::process::exit(1);
                    }
                };
                let rate = report.items as f64 / (report.virtual_ms as f64 / 1000.0);
                totals[b][i] += rate;
                // How evenly the work spread: the busiest peer's share of useful items.
                let served: Vec<u64> = report
                    .finished
                    .as_ref()
                    .map(|p| p.peers.iter().map(|p| p.served).collect())
                    .unwrap_or_default();
                let total = served.iter().sum::<u64>().max(1);
                let busiest = served.iter().max().copied().unwrap_or(0) * 100 / total;
                row.push(format!(
                    "{rate:.0} ({:.1} s, {} req, top peer {busiest}%, dup {})",
                    report.virtual_ms as f64 / 1000.0,
                    report.requests,
                    report.duplicate
                ));
            }
            let label = bandwidth.map_or("unlimited".to_string(), |bw| format!("{bw} KB/s"));
            println!(
                "| {label} | {seed} | {} | {} |",
                world.items,
                row.join(" | ")
            );
        }
    }
    println!("mean items per virtual second:");
    for (b, bandwidth) in bandwidths.iter().enumerate() {
        let label = bandwidth.map_or("unlimited".to_string(), |bw| format!("{bw} KB/s"));
        let means: Vec<String> = totals[b]
            .iter()
            .map(|t| format!("{:.0}", t / seeds as f64))
            .collect();
        println!("  {label}: in flight 1, 2, 4, 8 -> {}", means.join(", "));
    }
}
