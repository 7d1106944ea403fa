//! What the host tells the engine: tunables whose defaults suit a browser syncing from a
//! handful of WebSocket peers, and [`EngineConfig::validate`], which names the first one that
//! cannot work.

use thiserror::Error;

use crate::rate::RateConfig;
use crate::scheduler::{
    SchedulerConfig, SyncMode, DEFAULT_MAX_FETCHES_PER_DEPTH, DEFAULT_MAX_PENDING,
};
use crate::wire::MAX_HASHES_PER_REQUEST;

/// Tunables. The defaults suit a browser syncing from a handful of WebSocket peers.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub mode: SyncMode,
    pub max_fetches_per_depth: usize,
    /// Requests the scheduler holds at most, counting the children expected of what is out,
    /// before it slows handing out to what drains the table ([`SchedulerConfig::max_pending`]):
    /// the bound on its memory, whatever the state's size.
    pub max_pending: usize,
    /// Items per request at most: by default the protocol's 1,024 (geth's client asks for
    /// 384, its `MaxStateFetch`; its servers answer up to 1,024). msgrate sizes each peer's
    /// requests from its measured rate within this, so a slow peer gets small ones; on a
    /// 100–300 ms link larger requests fill the pipe with fewer of them (simulator, 308k items:
    /// 2.81 → 2.58 s at 100 ms, 7.93 → 6.78 s at 300 ms).
    pub max_items_per_request: usize,
    /// Requests one peer may have outstanding at most (a cap; geth allows one). Within it,
    /// the items out to a peer follow its measured bandwidth-delay product (`rate::Pipe`):
    /// a few full requests until its first answer, then twice its delivery rate × its
    /// shortest round trip, so a high-latency peer gets a full pipe and a slow one no queue.
    pub max_in_flight_per_peer: usize,
    /// A commit batch holds at most this many payload bytes. It is also the most verified
    /// data held unwritten at once (the batch being written and the one being filled): what
    /// a crash can lose. Items asked for and answers held unverified have their own bound,
    /// [`ASK_BATCHES`](super::ASK_BATCHES) times this (by an estimate of the item size).
    pub batch_bytes: usize,
    /// The same in items (puts and deletes). This bound is exact: verified items not yet
    /// durable never exceed it. Items asked plus blobs held stay within
    /// [`ASK_BATCHES`](super::ASK_BATCHES) times this.
    pub batch_items: usize,
    /// Verified items are written within this long even when no batch fills up (an idle or
    /// stalled sync flushes what it holds).
    pub batch_interval_ms: u64,
    /// Keys per store lookup operation.
    pub max_lookups_per_op: usize,
    /// The round-trip model and the request timeouts derived from it: a request to a peer
    /// that has not answered yet waits `rate.startup_timeout_ms` (3 s), then
    /// `rate.timeout_rtts` (4) of that peer's recent round trips within
    /// `[rate.min_timeout_ms, rate.max_timeout_ms]` (1 s to 60 s). See `rate.rs`.
    pub rate: RateConfig,
    /// Penalty at which a peer is disconnected.
    pub disconnect_penalty: u32,
    /// Timeouts in a row, each on a request of at most two items, that make a peer useless
    /// (geth's stall rule, which drops on the first). Requests that were out together count
    /// once, and a late answer clears the row: the peer is slow, not stalled.
    pub stall_timeouts: u32,
    /// How often items that no peer could serve are tried again on every peer.
    pub unservable_retry_ms: u64,
    /// How long a connected peer has to send its Status before it is dropped, and how long
    /// after the start a sync with nothing to do is not yet called stalled (peers connect).
    pub peer_grace_ms: u64,
    /// Give up after this long stalled without progress: everything verified is written,
    /// then the sync fails with [`EngineError::Stalled`](super::EngineError::Stalled).
    /// `None` waits for peers forever.
    pub stall_timeout_ms: Option<u64>,
    /// How often a progress event is emitted while syncing.
    pub progress_interval_ms: u64,
    /// An idle peer re-requests the items of another peer's request once that request is
    /// this many of its peer's recent round trips old (and at least `min_hedge_ms`), so a
    /// dropped or garbled answer costs a few round trips instead of a timeout. Infinity
    /// turns hedging off.
    pub hedge_after_rtts: f64,
    pub min_hedge_ms: u64,
    /// Size of the filter of keys committed this session, used when the store had no
    /// progress record (a fresh store): lookups it rules out never reach the store. 0 turns
    /// it off. See `filter.rs`.
    pub fresh_store_filter_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: SyncMode::State,
            max_fetches_per_depth: DEFAULT_MAX_FETCHES_PER_DEPTH,
            max_pending: DEFAULT_MAX_PENDING,
            max_items_per_request: MAX_HASHES_PER_REQUEST,
            max_in_flight_per_peer: 16,
            batch_bytes: 1024 * 1024,
            batch_items: 8192,
            batch_interval_ms: 2_000,
            max_lookups_per_op: 4096,
            rate: RateConfig::default(),
            disconnect_penalty: 100,
            stall_timeouts: 3,
            unservable_retry_ms: 30_000,
            peer_grace_ms: 5_000,
            stall_timeout_ms: None,
            progress_interval_ms: 500,
            hedge_after_rtts: 4.0,
            min_hedge_ms: 250,
            // 4 MiB: under 1 % false "maybe" up to about 2.5 million items, 2 % at 3.5 million.
            fresh_store_filter_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why a configuration cannot work. The first problem found is named.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count or period that must be positive is zero: nothing could be asked, written or
    /// waited for.
    #[error("{field} must be at least 1")]
    Zero { field: &'static str },
    #[error("max_items_per_request is {got}, but a request carries at most {max} hashes")]
    TooManyItemsPerRequest { got: usize, max: usize },
    #[error("{field} must be a number at least {min}, got {got}")]
    OutOfRange {
        field: &'static str,
        got: f64,
        min: f64,
    },
    #[error("rate.min_rtt_ms ({min}) is above rate.max_rtt_ms ({max})")]
    RoundTripBounds { min: f64, max: f64 },
    #[error("rate.min_timeout_ms ({min}) is above rate.max_timeout_ms ({max})")]
    TimeoutBounds { min: f64, max: f64 },
}

impl EngineConfig {
    /// Checks that the engine can work with this configuration. `Engine::new` does not
    /// insist (it clamps what it must), so a host that takes settings from users calls this
    /// first and reports the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let counts: [(&'static str, u64); 12] = [
            ("max_fetches_per_depth", self.max_fetches_per_depth as u64),
            ("max_pending", self.max_pending as u64),
            ("max_items_per_request", self.max_items_per_request as u64),
            ("max_in_flight_per_peer", self.max_in_flight_per_peer as u64),
            ("batch_bytes", self.batch_bytes as u64),
            ("batch_items", self.batch_items as u64),
            ("max_lookups_per_op", self.max_lookups_per_op as u64),
            ("disconnect_penalty", u64::from(self.disconnect_penalty)),
            ("stall_timeouts", u64::from(self.stall_timeouts)),
            ("unservable_retry_ms", self.unservable_retry_ms),
            ("progress_interval_ms", self.progress_interval_ms),
            ("stall_timeout_ms", self.stall_timeout_ms.unwrap_or(1)),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero { field });
        }
        if self.max_items_per_request > MAX_HASHES_PER_REQUEST {
            return Err(ConfigError::TooManyItemsPerRequest {
                got: self.max_items_per_request,
                max: MAX_HASHES_PER_REQUEST,
            });
        }
        // NaN fails every comparison, so `!(x >= min)` catches it too.
        let at_least = |field: &'static str, got: f64, min: f64| {
            if got >= min {
                Ok(())
            } else {
                Err(ConfigError::OutOfRange { field, got, min })
            }
        };
        at_least("hedge_after_rtts", self.hedge_after_rtts, 0.0)?;
        let rate = &self.rate;
        // Fewer than one round trip would time out answers that arrive on time.
        at_least("rate.timeout_rtts", rate.timeout_rtts, 1.0)?;
        for (field, got) in [
            ("rate.initial_rtt_ms", rate.initial_rtt_ms),
            ("rate.min_rtt_ms", rate.min_rtt_ms),
            ("rate.max_rtt_ms", rate.max_rtt_ms),
            ("rate.startup_timeout_ms", rate.startup_timeout_ms),
            ("rate.timeout_rtts", rate.timeout_rtts),
            ("rate.min_timeout_ms", rate.min_timeout_ms),
            ("rate.max_timeout_ms", rate.max_timeout_ms),
        ] {
            at_least(field, got, 1.0)?;
            if got.is_infinite() {
                return Err(ConfigError::OutOfRange {
                    field,
                    got,
                    min: 1.0,
                });
            }
        }
        if rate.min_rtt_ms > rate.max_rtt_ms {
            return Err(ConfigError::RoundTripBounds {
                min: rate.min_rtt_ms,
                max: rate.max_rtt_ms,
            });
        }
        if rate.min_timeout_ms > rate.max_timeout_ms {
            return Err(ConfigError::TimeoutBounds {
                min: rate.min_timeout_ms,
                max: rate.max_timeout_ms,
            });
        }
        Ok(())
    }

    /// The scheduler's share of the configuration.
    pub(super) fn scheduler(&self) -> SchedulerConfig {
        SchedulerConfig {
            mode: self.mode,
            max_fetches_per_depth: self.max_fetches_per_depth,
            max_pending: self.max_pending,
            ..SchedulerConfig::default()
        }
    }

    /// Items one request may carry: the configured size within the protocol's limit.
    pub(super) fn max_items(&self) -> usize {
        self.max_items_per_request.min(MAX_HASHES_PER_REQUEST)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_first_setting_that_cannot_work() {
        let zero_items = EngineConfig {
            batch_items: 0,
            ..EngineConfig::default()
        };
        assert_eq!(
            zero_items.validate(),
            Err(ConfigError::Zero {
                field: "batch_items"
            })
        );
        let huge = EngineConfig {
            max_items_per_request: 5000,
            ..EngineConfig::default()
        };
        assert_eq!(
            huge.validate(),
            Err(ConfigError::TooManyItemsPerRequest {
                got: 5000,
                max: MAX_HASHES_PER_REQUEST
            })
        );
        let nan = EngineConfig {
            hedge_after_rtts: f64::NAN,
            ..EngineConfig::default()
        };
        assert!(matches!(
            nan.validate(),
            Err(ConfigError::OutOfRange {
                field: "hedge_after_rtts",
                ..
            })
        ));
        let never_hedge = EngineConfig {
            hedge_after_rtts: f64::INFINITY,
            ..EngineConfig::default()
        };
        assert_eq!(never_hedge.validate(), Ok(()));
        let mut upside_down = EngineConfig::default();
        upside_down.rate.min_rtt_ms = 30_000.0;
        assert_eq!(
            upside_down.validate(),
            Err(ConfigError::RoundTripBounds {
                min: 30_000.0,
                max: 20_000.0
            })
        );
        let mut impatient = EngineConfig::default();
        impatient.rate.timeout_rtts = 0.5;
        assert_eq!(
            impatient.validate(),
            Err(ConfigError::OutOfRange {
                field: "rate.timeout_rtts",
                got: 0.5,
                min: 1.0
            })
        );
        let mut never_starts = EngineConfig::default();
        never_starts.rate.startup_timeout_ms = f64::INFINITY;
        assert!(matches!(
            never_starts.validate(),
            Err(ConfigError::OutOfRange {
                field: "rate.startup_timeout_ms",
                ..
            })
        ));
        let mut crossed = EngineConfig::default();
        crossed.rate.min_timeout_ms = 90_000.0;
        assert_eq!(
            crossed.validate(),
            Err(ConfigError::TimeoutBounds {
                min: 90_000.0,
                max: 60_000.0
            })
        );
        let no_wait = EngineConfig {
            stall_timeout_ms: Some(0),
            ..EngineConfig::default()
        };
        assert_eq!(
            no_wait.validate().map_err(|e| e.to_string()),
            Err("stall_timeout_ms must be at least 1".to_string())
        );
    }
}
