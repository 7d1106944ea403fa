//! The native main job until the Node.js tool exists: build a source state (the mainnet
//! genesis by default), sync it from memory with the scheduler, verify the synced store from
//! the root, and print what was verified.
//!
//! Usage: native-sync [--genesis FILE | --synthetic ACCOUNTS[:SEED]]

use std::process::ExitCode;
use std::time::Instant;

use statesync_core::state::{build_genesis, parse_genesis_alloc};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::walk::walk;
use statesync_core::{BuiltState, MemoryStore, SyncMode};
use statesync_tests::harness::{sync, Delivery, LoopOptions};

const DEFAULT_GENESIS: &str = "fixtures/genesis_mainnet.json";
/// The mainnet genesis state root (go-ethereum, ethereumjs).
const MAINNET_ROOT: &str = "0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("native-sync: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let (label, source) = match args.as_slice() {
        [] => load_genesis(DEFAULT_GENESIS)?,
        [flag, file] if flag == "--genesis" => load_genesis(file)?,
        [flag, spec] if flag == "--synthetic" => {
            let (accounts, seed) = spec.split_once(':').unwrap_or((spec, "1"));
            let accounts = accounts
                .parse()
                .map_err(|_| format!("bad account count {accounts:?}"))?;
            let seed = seed.parse().map_err(|_| format!("bad seed {seed:?}"))?;
            let state = generate(&SyntheticConfig::new(accounts, seed));
            (
                format!("synthetic state ({accounts} accounts, seed {seed})"),
                state,
            )
        }
        _ => {
            return Err("usage: native-sync [--genesis FILE | --synthetic ACCOUNTS[:SEED]]".into())
        }
    };
    println!("source: {label}");
    println!(
        "  root {} · {} nodes · {} code blobs · {} bytes",
        source.root,
        source.store.node_count(),
        source.store.code_count(),
        source.store.bytes()
    );

    let started = Instant::now();
    let mut store = MemoryStore::new();
    let report = sync(
        source.root,
        SyncMode::State,
        &source.store,
        &mut store,
        LoopOptions {
            batch: 384,
            delivery: Delivery::InOrder,
        },
    );
    let elapsed = started.elapsed();
    println!(
        "synced in {:.2?}: {} items fetched in {} rounds of up to 384",
        elapsed,
        report.tasks.len(),
        report.rounds
    );

    let stats = walk(source.root, SyncMode::State, &store)
        .map_err(|e| format!("verification failed: {e}"))?;
    println!(
        "verified root {}: {} accounts, {} contracts, {} storage slots, {} nodes ({} bytes), {} code blobs ({} bytes)",
        source.root, stats.accounts, stats.contracts, stats.values, stats.nodes, stats.node_bytes, stats.codes, stats.code_bytes
    );
    if label.contains("genesis_mainnet") && source.root.to_string() != MAINNET_ROOT {
        return Err(format!(
            "mainnet genesis root is {}, expected {MAINNET_ROOT}",
            source.root
        ));
    }
    Ok(())
}

fn load_genesis(file: &str) -> Result<(String, BuiltState), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("reading {file}: {e}"))?;
    let alloc = parse_genesis_alloc(&text).map_err(|e| format!("{file}: {e}"))?;
    Ok((
        format!("{file} ({} accounts)", alloc.len()),
        build_genesis(&alloc),
    ))
}
