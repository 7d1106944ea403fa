//! Running a scenario over many seeds: which seeds (`SIM_SEED`, `SIM_SEEDS`), reporting a
//! failing seed so that it replays, and totals for `tests/SCENARIOS.md`.

use std::fmt;

use super::{Report, SimError};

/// Seeds to run: `SIM_SEED=x` replays one seed; `SIM_SEEDS=n` runs `0..n`, `SIM_SEEDS=xk`
/// multiplies the default count by `k`; otherwise `0..default`.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return vec![seed];
    }
    let count = match std::env::var("SIM_SEEDS") {
        Ok(value) => {
            let value = value.trim();
            match value.strip_prefix('x') {
                Some(factor) => default * factor.parse::<u64>().unwrap_or(1),
                None => value.parse().unwrap_or(default),
            }
        }
        Err(_) => default,
    };
    (0..count).collect()
}

/// Totals over the seeds of one scenario.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub name: String,
    pub runs: u64,
    pub items: u64,
    pub virtual_ms: u64,
    pub requests: u64,
    pub items_requested: u64,
    pub duplicate: u64,
    pub unexpected: u64,
    pub crashes: u64,
    pub disconnects: u64,
    pub stalls: u64,
    pub faults: u64,
    pub max_live_entries: usize,
    pub wall: std::time::Duration,
}

impl Summary {
    pub fn add(&mut self, report: &Report) {
        self.runs += 1;
        self.items += report.items as u64;
        self.virtual_ms += report.virtual_ms;
        self.requests += report.requests;
        self.items_requested += report.items_requested;
        self.duplicate += report.duplicate;
        self.unexpected += report.unexpected;
        self.crashes += u64::from(report.crashes);
        self.disconnects += report.disconnects;
        self.stalls += report.stalls.iter().filter(|s| s.1 > 0).count() as u64;
        self.faults += report.faults_injected;
        self.max_live_entries = self.max_live_entries.max(report.max_live_entries);
    }

    fn mean(&self, total: u64) -> f64 {
        total as f64 / self.runs.max(1) as f64
    }
}

impl fmt::Display for Summary {
    /// A markdown table row: name, seeds, mean items under the root, mean virtual s, mean
    /// requests, mean items asked, mean duplicate, mean unexpected, crashes, disconnects,
    /// stalls with unservable items, faults injected, wall time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| {} | {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {:.1?} |",
            self.name,
            self.runs,
            self.mean(self.items),
            self.mean(self.virtual_ms) / 1000.0,
            self.mean(self.requests),
            self.mean(self.items_requested),
            self.mean(self.duplicate),
            self.mean(self.unexpected),
            self.crashes,
            self.disconnects,
            self.stalls,
            self.faults,
            self.wall,
        )
    }
}

/// Runs `run` for every seed of [`seeds`]. A failure or panic names the scenario and seed and
/// how to replay it, then fails the test. `SIM_VERBOSE=1` prints every run's figures;
/// `SIM_TRACE=1` (best with `SIM_SEED`) prints every step.
pub fn run_seeds(
    name: &str,
    default_seeds: u64,
    mut run: impl FnMut(u64) -> Result<Report, SimError>,
) -> Summary {
    let started = std::time::Instant::now();
    let mut summary = Summary {
        name: name.to_string(),
        ..Summary::default()
    };
    let verbose = std::env::var_os("SIM_VERBOSE").is_some();
    for seed in seeds(default_seeds) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
        match outcome {
            Ok(Ok(report)) => {
                if verbose {
                    println!(
                        "{name} seed {seed}: {} items, {} ms, {} steps, {} requests, {} asked {:?}, dup {}, unexp {}, crashes {}, disconnects {}, drops {}, stalls {:?}, live {}, commits {}, rewrites {}",
                        report.items,
                        report.virtual_ms,
                        report.steps,
                        report.requests,
                        report.items_requested,
                        report.items_requested_per_session,
                        report.duplicate,
                        report.unexpected,
                        report.crashes,
                        report.disconnects,
                        report.drops,
                        report.stalls,
                        report.max_live_entries,
                        report.commits,
                        report.rewrites,
                    );
                }
                summary.add(&report)
            }
            Ok(Err(err)) => panic!("{err}"),
            Err(panic) => {
                eprintln!(
                    "scenario `{name}` seed {seed} panicked\n  replay: SIM_SEED={seed} cargo test -p statesync-tests --test simulator {name}"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    summary.wall = started.elapsed();
    println!("{summary}");
    summary
}
