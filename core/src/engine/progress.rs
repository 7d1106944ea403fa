//! How the sync is doing: session counters, the live progress report (DESIGN.md I6) and its
//! periodic event, and stalls: noticed when nothing can move, told once the peers have had
//! time to connect, and given up on after `stall_timeout_ms`.

use crate::progress::{EtaEstimator, Phase, Progress, RateMeter};

use super::{Engine, EngineError, Event, State, Stop};

/// Session counters.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    pub processed: u64,
    pub processed_bytes: u64,
    pub duplicate: u64,
    pub unexpected: u64,
    pub bytes_received: u64,
    /// The most verified items held unwritten at once.
    pub peak_unwritten: u64,
    /// Found in store and restored from staging by earlier schedulers of this session (root
    /// switches).
    pub skipped_before: u64,
    pub restored_before: u64,
}

/// How the sync is doing at making progress.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stall {
    /// Since when nothing could be done (no request out, no store work, items left).
    pub since: Option<u64>,
    /// The last time an item was verified, restored or found stored.
    pub last_progress_at: u64,
    /// `(processed, restored, found in store)` at that time.
    mark: (u64, u64, u64),
    /// The `Stalled` event was emitted for this stall.
    pub reported: bool,
}

impl Stall {
    pub fn new(now: u64) -> Stall {
        Stall {
            last_progress_at: now,
            ..Stall::default()
        }
    }
}

/// The periodic progress event and the estimates it carries.
#[derive(Debug)]
pub(super) struct Reporting {
    pub next_at: u64,
    pub eta: EtaEstimator,
    pub meter: RateMeter,
}

impl Reporting {
    pub fn new(now: u64) -> Reporting {
        Reporting {
            next_at: now,
            eta: EtaEstimator::default(),
            meter: RateMeter::default(),
        }
    }
}

impl Engine {
    /// A progress report. The fraction is that of the current root: after a root switch it
    /// restarts from what the store already holds of the new root.
    pub fn progress(&self) -> Progress {
        let stats = self.scheduler.stats();
        let stalled = self.stall.reported && self.state == State::Syncing;
        let phase = match self.state {
            State::Syncing if stalled => Phase::Stalled,
            State::Syncing | State::Stopping(_) => Phase::Syncing,
            State::Paused { .. } => Phase::Paused,
            State::Done => Phase::Done,
            State::Cancelled => Phase::Cancelled,
            State::Failed => Phase::Failed,
        };
        let fraction = if self.state == State::Done {
            1.0
        } else {
            self.scheduler
                .completed_fraction()
                .min(if self.scheduler.is_done() {
                    1.0
                } else {
                    0.999_999
                })
        };
        let eta_ms = match self.state {
            State::Done => Some(0),
            // Nobody can say when a peer that has the rest will come.
            _ if stalled => None,
            _ => self.reporting.eta.eta_ms(),
        };
        let (unwritten_items, unwritten_bytes) = self.unwritten();
        let counters = &self.counters;
        Progress {
            root: self.root(),
            phase,
            fraction,
            eta_ms,
            processed: counters.processed,
            restored: counters.restored_before + stats.restored,
            committed: self.committed.committed_items,
            committed_bytes: self.committed.committed_bytes,
            staged: self.committed.staged_items,
            staged_bytes: self.committed.staged_bytes,
            unwritten_items,
            unwritten_bytes,
            peak_unwritten_items: counters.peak_unwritten,
            largest_batch_items: self.store.largest_batch.0,
            largest_batch_bytes: self.store.largest_batch.1,
            pending: self.scheduler.pending() as u64,
            duplicate: counters.duplicate,
            unexpected: counters.unexpected,
            skipped: counters.skipped_before + stats.found_in_store,
            bytes_received: counters.bytes_received,
            requests_in_flight: self.requests.len(),
            retrying: self.retries.len(),
            unservable: self.retries.unservable(),
            first_unservable: self.retries.first_unservable(),
            live_entries: self.scheduler.live_entries()
                + self.retries.len()
                + self.retries.unservable(),
            items_per_sec: self.reporting.meter.per_sec(),
            peers: self
                .peers
                .report(self.config.max_items_per_request, |peer| {
                    self.peer_load(peer)
                }),
        }
    }

    /// Emits a progress event when one is due.
    pub(super) fn report_progress(&mut self, now: u64) {
        if now < self.reporting.next_at || self.is_finished() {
            return;
        }
        self.reporting.next_at = now + self.config.progress_interval_ms;
        self.reporting.meter.sample(now, self.counters.processed);
        let fraction = self.scheduler.completed_fraction();
        self.reporting.eta.sample(now, fraction);
        let progress = self.progress();
        self.events.push_back(Event::Progress(progress));
    }

    /// Notices when nothing can move, reports it once the peers have had time to connect, and
    /// gives up after `stall_timeout_ms` without progress.
    ///
    /// Stuck means: after assigning, no request is out, no answer is held unverified, none is
    /// held back by the budget, no lookup or staged read can bring new work, and items are left. A stall ends
    /// with progress (an item verified, restored or found stored), not with a retry going out.
    pub(super) fn track_stall(&mut self, now: u64) {
        let stats = self.scheduler.stats();
        let mark = (
            self.counters.processed,
            stats.restored,
            stats.found_in_store,
        );
        if mark != self.stall.mark {
            self.stall = Stall {
                mark,
                last_progress_at: now,
                ..Stall::default()
            };
        }
        if self.state != State::Syncing {
            return;
        }
        let stuck = self.requests.is_empty()
            && self.held.is_empty()
            && !self.store.budget_blocked
            && !self.store.lookups_pending()
            && !self.store.loading_staged()
            && !self.scheduler.is_done();
        if !stuck {
            if !self.stall.reported {
                self.stall.since = None;
            }
            return;
        }
        let since = *self.stall.since.get_or_insert(now);
        if self.retries.unservable() > 0 {
            self.arm_unservable_retry(now);
        }
        if !self.stall.reported && now >= self.stall_reportable_at(since) {
            self.stall.reported = true;
            let peers = self.peers.usable().count();
            self.events.push_back(Event::Stalled {
                unservable: self.retries.unservable(),
                first: self.retries.first_unservable(),
                peers,
            });
        }
        if let Some(timeout) = self.config.stall_timeout_ms {
            let stalled_ms = now.saturating_sub(self.stall.last_progress_at);
            if stalled_ms >= timeout {
                let err = EngineError::Stalled {
                    stalled_ms,
                    unservable: self.retries.unservable(),
                    first: self.retries.first_unservable(),
                    peers: self.peers.usable().count(),
                };
                self.state = State::Stopping(Stop::Fail(err));
            }
        }
    }

    /// A stall is told only once the peers have had time to connect, and has lasted a moment.
    pub(super) fn stall_reportable_at(&self, since: u64) -> u64 {
        (self.started_at + self.config.peer_grace_ms).max(since + 1_000)
    }
}
