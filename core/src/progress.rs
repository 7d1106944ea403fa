//! Progress: the record persisted with every commit batch, and the live report the engine
//! emits (counters, completed fraction, ETA, per-peer figures).

use std::collections::VecDeque;

use rlp::RlpStream;
use thiserror::Error;

use crate::hash::H256;
use crate::rlp_items::{self, RlpError};

/// Version of the persisted progress record. Version 1 (no staging area) is still read.
pub const PROGRESS_RECORD_VERSION: u64 = 2;

/// The store's meta record, written in the same transaction as the batch it describes (I3).
/// It survives crashes, so a restarted sync knows its target and totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct ProgressRecord {
    /// The root being synced towards.
    pub root: H256,
    /// Items (nodes and code) in the main keyspace, written by all sessions so far.
    pub committed_items: u64,
    pub committed_bytes: u64,
    /// Verified nodes in the staging area now: their subtries were not complete yet.
    pub staged_items: u64,
    pub staged_bytes: u64,
    /// Whether everything under `root` is stored.
    pub complete: bool,
}

/// Why a stored progress record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("progress record: {0}")]
    Rlp(#[from] RlpError),
    #[error("progress record version {got} is not supported (expected {PROGRESS_RECORD_VERSION})")]
    Version { got: u64 },
    #[error("progress record root is {got} bytes, expected 32")]
    BadRoot { got: usize },
}

impl ProgressRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(7);
        s.append(&PROGRESS_RECORD_VERSION);
        s.append(&self.root.0.as_slice());
        s.append(&self.committed_items);
        s.append(&self.committed_bytes);
        s.append(&u64::from(self.complete));
        s.append(&self.staged_items);
        s.append(&self.staged_bytes);
        s.out().to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<ProgressRecord, RecordError> {
        let list = rlp_items::exactly_one(bytes)?.list()?;
        let version = match list.clone().next() {
            Some(item) => item?.u64()?,
            None => {
                return Err(RlpError::WrongItemCount {
                    got: 0,
                    expected: 7,
                }
                .into())
            }
        };
        let (head, staged) = match version {
            // Written before the staging area existed: nothing is staged.
            1 => (list.exactly::<5>()?, None),
            PROGRESS_RECORD_VERSION => {
                let [v, root, items, bytes_, complete, staged, staged_bytes] =
                    list.exactly::<7>()?;
                (
                    [v, root, items, bytes_, complete],
                    Some((staged, staged_bytes)),
                )
            }
            got => return Err(RecordError::Version { got }),
        };
        let [_, root, items, bytes_, complete] = head;
        let root = root.string()?;
        let (staged_items, staged_bytes) = match staged {
            Some((items, bytes_)) => (items.u64()?, bytes_.u64()?),
            None => (0, 0),
        };
        Ok(ProgressRecord {
            root: H256::from_slice(root).ok_or(RecordError::BadRoot { got: root.len() })?,
            committed_items: items.u64()?,
            committed_bytes: bytes_.u64()?,
            staged_items,
            staged_bytes,
            complete: complete.u64()? != 0,
        })
    }
}

/// One peer's figures in a progress report.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct PeerProgress {
    pub peer: u64,
    /// Measured round trip.
    pub rtt_ms: f64,
    /// Items the next request to it would ask for.
    pub capacity: usize,
    /// Requests outstanding.
    pub in_flight: usize,
    /// Items those requests ask for.
    pub outstanding: usize,
    /// Items it may have outstanding: twice its bandwidth-delay product, within
    /// `max_in_flight_per_peer` full requests.
    pub window: usize,
    /// Useful items it delivered.
    pub served: u64,
    /// Timeouts and empty answers.
    pub failures: u64,
    /// Accumulated protocol penalty; the peer is disconnected at the configured limit.
    pub penalty: u32,
    /// Root the peer announced as its head, once its Status arrived.
    pub head_root: Option<H256>,
}

/// What the engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum Phase {
    Syncing,
    /// No peer can serve what is left; waiting for a new peer or a retry.
    Stalled,
    /// Paused by the host, or by a store failure until the host resumes.
    Paused,
    Done,
    Cancelled,
    Failed,
}

/// A live progress report (DESIGN.md I6).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct Progress {
    pub root: H256,
    pub phase: Phase,
    /// Completed share of the account keyspace: never decreases, exactly 1.0 when done.
    pub fraction: f64,
    /// Estimated time left, once the rate is known.
    pub eta_ms: Option<u64>,
    /// Items fetched from peers, verified and accepted in this session.
    pub processed: u64,
    /// Verified items loaded back from the staging area in this session (not fetched again).
    pub restored: u64,
    /// Items in the main keyspace (complete subtries), all sessions.
    pub committed: u64,
    pub committed_bytes: u64,
    /// Verified items in the staging area (durable, subtries not complete yet).
    pub staged: u64,
    pub staged_bytes: u64,
    /// Verified items and bytes not durable yet: what a crash now would lose (I7). Bounded
    /// by the batch configuration.
    pub unwritten_items: u64,
    pub unwritten_bytes: u64,
    /// The most verified items held unwritten at once this session.
    pub peak_unwritten_items: u64,
    /// The largest batch written this session: puts and deletes, and payload bytes.
    pub largest_batch_items: u64,
    pub largest_batch_bytes: u64,
    /// Requests known but not complete (the scheduler's pending set).
    pub pending: u64,
    /// Items delivered again after someone else's copy was taken.
    pub duplicate: u64,
    /// Items nobody asked for (stale answers, other roots, garbage).
    pub unexpected: u64,
    /// Subtries found already stored (resume, root switch) and skipped.
    pub skipped: u64,
    /// Frame bytes received from peers.
    pub bytes_received: u64,
    pub requests_in_flight: usize,
    /// Items waiting to be asked of another peer.
    pub retrying: usize,
    /// Items no connected peer could serve.
    pub unservable: usize,
    /// The first of them, for messages that name one.
    pub first_unservable: Option<H256>,
    /// Scheduler entries held in memory (I5).
    pub live_entries: usize,
    /// Items accepted per second, recently.
    pub items_per_sec: f64,
    pub peers: Vec<PeerProgress>,
}

/// Estimates time left from how fast the completed fraction has moved over a window.
#[derive(Clone, Debug, Default)]
pub struct EtaEstimator {
    samples: VecDeque<(u64, f64)>,
}

/// How far back the rate is measured.
const ETA_WINDOW_MS: u64 = 30_000;

impl EtaEstimator {
    pub fn sample(&mut self, now_ms: u64, fraction: f64) {
        self.samples.push_back((now_ms, fraction));
        while self.samples.front().is_some_and(|(t, _)| {
            now_ms.saturating_sub(*t) > ETA_WINDOW_MS && self.samples.len() > 2
        }) {
            self.samples.pop_front();
        }
    }

    /// Time left at the windowed rate; `None` until the fraction has moved over a second.
    pub fn eta_ms(&self) -> Option<u64> {
        let (t0, f0) = *self.samples.front()?;
        let (t1, f1) = *self.samples.back()?;
        if f1 >= 1.0 {
            return Some(0);
        }
        if t1 <= t0 + 1_000 || f1 <= f0 {
            return None;
        }
        let per_ms = (f1 - f0) / (t1 - t0) as f64;
        Some(((1.0 - f1) / per_ms).min(1e15) as u64)
    }
}

/// Items per second over a sliding window.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    samples: VecDeque<(u64, u64)>,
}

const RATE_WINDOW_MS: u64 = 5_000;

impl RateMeter {
    /// Records the running total `count` at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, count: u64) {
        self.samples.push_back((now_ms, count));
        while self.samples.front().is_some_and(|(t, _)| {
            now_ms.saturating_sub(*t) > RATE_WINDOW_MS && self.samples.len() > 2
        }) {
            self.samples.pop_front();
        }
    }

    pub fn per_sec(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                (c1 - c0) as f64 * 1000.0 / (t1 - t0) as f64
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::hash::keccak256;

    #[test]
    fn record_round_trips_and_refuses_other_versions() {
        let record = ProgressRecord {
            root: keccak256(b"root"),
            committed_items: 12356,
            committed_bytes: 1_483_023,
            staged_items: 7,
            staged_bytes: 3_500,
            complete: true,
        };
        assert_eq!(ProgressRecord::decode(&record.encode()), Ok(record));
        let mut s = RlpStream::new_list(5);
        s.append(&9u64)
            .append(&[0u8; 32].as_slice())
            .append(&0u64)
            .append(&0u64)
            .append(&0u64);
        assert_eq!(
            ProgressRecord::decode(&s.out()),
            Err(RecordError::Version { got: 9 })
        );
        assert!(ProgressRecord::decode(b"junk").is_err());
    }

    #[test]
    fn a_version_1_record_reads_as_nothing_staged() {
        let mut s = RlpStream::new_list(5);
        s.append(&1u64)
            .append(&[7u8; 32].as_slice())
            .append(&10u64)
            .append(&2000u64)
            .append(&0u64);
        let record = ProgressRecord::decode(&s.out()).expect("a version 1 record");
        assert_eq!(
            record,
            ProgressRecord {
                root: H256([7; 32]),
                committed_items: 10,
                committed_bytes: 2000,
                ..ProgressRecord::default()
            }
        );
    }

    #[test]
    fn eta_follows_the_recent_rate() {
        let mut eta = EtaEstimator::default();
        eta.sample(0, 0.0);
        assert_eq!(eta.eta_ms(), None);
        eta.sample(10_000, 0.25);
        // A quarter in 10 s leaves three quarters: 30 s.
        assert_eq!(eta.eta_ms(), Some(30_000));
        eta.sample(11_000, 1.0);
        assert_eq!(eta.eta_ms(), Some(0));
    }

    #[test]
    fn rate_meter_measures_a_window() {
        let mut meter = RateMeter::default();
        meter.sample(0, 0);
        meter.sample(2_000, 1_000);
        assert_eq!(meter.per_sec(), 500.0);
    }
}
