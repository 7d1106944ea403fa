//! The engine's side of the store: which operation runs next, one at a time, and the commit
//! state machine (DESIGN.md I3, I7).
//!
//! The host runs one store operation at a time. The engine hands out the next one only when
//! the previous result is back, and chooses it at that moment: the staged items to read back
//! (once, on resume), then a commit batch if one is due, then every lookup gathered meanwhile
//! in one operation. Deciding late keeps the queue empty: a commit never waits behind a row of
//! small lookups, lookups are batched by how long the store took, and a batch holds exactly
//! what was complete when the store was free, within the configured caps.
//!
//! ```text
//!            cut a batch             Committed
//!   Idle ───────────────▶ InFlight ────────────▶ Idle
//!                            │ Failed (pause)
//!                            ▼          resume: the same batch again
//!                          Failed ───────────────────────▶ InFlight
//! ```
//! A commit is in flight or failed until the host answers it; `resume` while it is in flight
//! does nothing, so a batch is never handed out twice at once.

use std::collections::VecDeque;
use std::sync::Arc;

use thiserror::Error;

use crate::hash::H256;
use crate::progress::ProgressRecord;
use crate::scheduler::BatchLimit;
use crate::store::{CommitBatch, StoreKey};

use super::{Engine, EngineError, State};

/// A store operation for the host to run. At most one is outstanding at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOp {
    pub id: u64,
    pub action: StoreAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAction {
    /// Answer whether each key is in the main keyspace: `StoreResult::Lookup`, one bool per
    /// key.
    Lookup(Vec<StoreKey>),
    /// Write the batch (main keyspace puts, staging puts and deletes) and the progress record
    /// in one atomic transaction.
    Commit {
        batch: Arc<CommitBatch>,
        progress: ProgressRecord,
    },
    /// Read every entry of the staging area: `StoreResult::Staged`. Asked once, first, when a
    /// sync resumes with staged items.
    LoadStaged,
}

/// The outcome of a store operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreResult {
    Lookup(Vec<bool>),
    Committed,
    /// The staging area's entries: a node hash and the blob stored under it.
    Staged(Vec<(H256, Vec<u8>)>),
    /// Nothing was written. The engine pauses until `resume`, then retries.
    Failed(StoreFailure),
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct StoreFailure {
    pub kind: StoreFailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailureKind {
    QuotaExceeded,
    Closed,
    Blocked,
    Other,
}

/// A commit batch handed to the host, and what it changes.
#[derive(Debug, Clone)]
pub(super) struct PendingCommit {
    pub batch: Arc<CommitBatch>,
    pub record: ProgressRecord,
    /// Items and bytes in it that were durable nowhere before: the lag it carries.
    pub new_items: u64,
    pub new_bytes: u64,
}

/// The one commit the engine has handed out, if any.
#[derive(Debug, Default)]
pub(super) enum CommitState {
    #[default]
    Idle,
    /// Handed to the host; no other commit is cut until it is answered.
    InFlight(PendingCommit),
    /// The store refused it; nothing landed. Sent again, as it is, on `resume`.
    Failed(PendingCommit),
}

impl CommitState {
    /// The commit not yet durable, in flight or failed.
    pub fn pending(&self) -> Option<&PendingCommit> {
        match self {
            CommitState::Idle => None,
            CommitState::InFlight(commit) | CommitState::Failed(commit) => Some(commit),
        }
    }
}

/// The operation the host is running.
#[derive(Debug)]
enum Running {
    Lookup {
        id: u64,
        generation: u64,
        keys: Vec<StoreKey>,
    },
    Commit {
        id: u64,
    },
    LoadStaged {
        id: u64,
    },
}

/// Store operations: ids, the one running, the commit state, lookups waiting to be sent.
#[derive(Debug)]
pub(super) struct StoreOps {
    next_id: u64,
    running: Option<Running>,
    pub commit: CommitState,
    /// Keys to look up for the current root generation, in the order they were found.
    lookups: VecDeque<StoreKey>,
    /// The staging area is to be read back before anything else (a resumed sync).
    load_staged: bool,
    /// The largest batch handed out this session: operations, payload bytes.
    pub largest_batch: (u64, u64),
    /// Write everything verified now (a pause); cleared once nothing is left to write.
    pub flush_requested: bool,
    /// Since when something has waited to be written (a verified item, or a staged one that
    /// completed and is to move to the main keyspace).
    pub unwritten_since: Option<u64>,
    /// It has waited `batch_interval_ms`: cut a batch even if it is small.
    pub time_cut_due: bool,
    /// The last assignment could not send a request for lack of budget (asked and held items
    /// fill the ask cap): the store has to catch up, so a batch is cut as soon as it is free.
    pub budget_blocked: bool,
}

/// What a store result means to the engine.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Answers for lookups of the current root generation.
    Lookup(Vec<StoreKey>, Vec<bool>),
    Committed(PendingCommit),
    Staged(Vec<(H256, Vec<u8>)>),
    /// Nothing was done; the engine pauses until `resume`.
    Failed(StoreFailure),
    /// The host broke the contract (a lookup answer of the wrong length).
    Fatal(EngineError),
    /// A result for an op of an earlier root generation, or for no op.
    Ignored,
}

impl StoreOps {
    pub fn new(load_staged: bool) -> StoreOps {
        StoreOps {
            next_id: 1,
            running: None,
            commit: CommitState::Idle,
            lookups: VecDeque::new(),
            load_staged,
            largest_batch: (0, 0),
            flush_requested: false,
            unwritten_since: None,
            time_cut_due: false,
            budget_blocked: false,
        }
    }

    /// Whether the host is running an operation of ours.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Whether anything is left to look up or being looked up.
    pub fn lookups_pending(&self) -> bool {
        !self.lookups.is_empty() || matches!(self.running, Some(Running::Lookup { .. }))
    }

    /// Whether the staging area still has to be read back.
    pub fn loading_staged(&self) -> bool {
        self.load_staged || matches!(self.running, Some(Running::LoadStaged { .. }))
    }

    /// Queues keys to look up.
    pub fn queue_lookups(&mut self, keys: Vec<StoreKey>) {
        self.lookups.extend(keys);
    }

    /// Forgets lookups queued for an earlier root (a switch); one running is ignored when done.
    pub fn clear_lookups(&mut self) {
        self.lookups.clear();
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn load_staged_op(&mut self) -> StoreOp {
        let id = self.next_id();
        self.load_staged = false;
        self.running = Some(Running::LoadStaged { id });
        StoreOp {
            id,
            action: StoreAction::LoadStaged,
        }
    }

    fn lookup_op(&mut self, generation: u64, max: usize) -> Option<StoreOp> {
        if self.lookups.is_empty() {
            return None;
        }
        let id = self.next_id();
        let n = self.lookups.len().min(max.max(1));
        let keys: Vec<StoreKey> = self.lookups.drain(..n).collect();
        self.running = Some(Running::Lookup {
            id,
            generation,
            keys: keys.clone(),
        });
        Some(StoreOp {
            id,
            action: StoreAction::Lookup(keys),
        })
    }

    /// Hands `commit` to the host.
    fn commit_op(&mut self, commit: PendingCommit) -> StoreOp {
        let id = self.next_id();
        let size = (
            commit.batch.operations() as u64,
            (commit.batch.bytes() + commit.batch.staged_bytes()) as u64,
        );
        self.largest_batch = (
            self.largest_batch.0.max(size.0),
            self.largest_batch.1.max(size.1),
        );
        let op = StoreOp {
            id,
            action: StoreAction::Commit {
                batch: Arc::clone(&commit.batch),
                progress: commit.record,
            },
        };
        self.running = Some(Running::Commit { id });
        self.commit = CommitState::InFlight(commit);
        op
    }

    /// Makes sense of the result of op `id`; `generation` is the engine's current root
    /// generation.
    pub fn on_result(&mut self, id: u64, result: StoreResult, generation: u64) -> Outcome {
        let ours = self.running.as_ref().is_some_and(|r| r.id() == id);
        let Some(running) = self.running.take_if(|_| ours) else {
            return Outcome::Ignored;
        };
        let unexpected =
            |expected| Outcome::Fatal(EngineError::UnexpectedResult { op: id, expected });
        match running {
            Running::Lookup {
                generation: asked_for,
                keys,
                ..
            } => match result {
                StoreResult::Lookup(answers) if answers.len() != keys.len() => {
                    Outcome::Fatal(EngineError::LookupMismatch {
                        op: id,
                        got: answers.len(),
                        expected: keys.len(),
                    })
                }
                StoreResult::Lookup(_) if asked_for != generation => Outcome::Ignored,
                StoreResult::Lookup(answers) => Outcome::Lookup(keys, answers),
                StoreResult::Failed(failure) => {
                    if asked_for == generation {
                        // Asked again on resume; nothing is lost meanwhile.
                        for key in keys.into_iter().rev() {
                            self.lookups.push_front(key);
                        }
                    }
                    Outcome::Failed(failure)
                }
                _ => unexpected("a lookup answer"),
            },
            Running::Commit { .. } => {
                let commit = match std::mem::take(&mut self.commit) {
                    CommitState::InFlight(commit) => commit,
                    other => {
                        self.commit = other;
                        return unexpected("no commit answer: no commit is in flight");
                    }
                };
                match result {
                    StoreResult::Committed => Outcome::Committed(commit),
                    StoreResult::Failed(failure) => {
                        self.commit = CommitState::Failed(commit);
                        Outcome::Failed(failure)
                    }
                    _ => {
                        self.commit = CommitState::Failed(commit);
                        unexpected("a commit answer")
                    }
                }
            }
            Running::LoadStaged { .. } => match result {
                StoreResult::Staged(entries) => Outcome::Staged(entries),
                StoreResult::Failed(failure) => {
                    self.load_staged = true;
                    Outcome::Failed(failure)
                }
                _ => unexpected("the staged entries"),
            },
        }
    }
}

impl Running {
    fn id(&self) -> u64 {
        match self {
            Running::Lookup { id, .. } | Running::Commit { id } | Running::LoadStaged { id } => *id,
        }
    }
}

impl Engine {
    /// The next store operation, if the store is free and one is due. At most one is
    /// outstanding: after `handle_store_result` for it, poll again.
    #[must_use]
    pub fn poll_store_op(&mut self) -> Option<StoreOp> {
        if self.store.busy() || self.is_finished() {
            return None;
        }
        if matches!(self.state, State::Paused { by_store: true }) {
            return None;
        }
        if let CommitState::Failed(commit) = &self.store.commit {
            let commit = commit.clone();
            return Some(self.store.commit_op(commit));
        }
        if self.store.load_staged {
            return Some(self.store.load_staged_op());
        }
        if self.commit_due() {
            if let Some(commit) = self.cut() {
                return Some(self.store.commit_op(commit));
            }
        }
        if matches!(self.state, State::Stopping(_)) {
            // Winding down: lookups would only find more to write before the end.
            return None;
        }
        let (generation, max) = (self.generation, self.config.max_lookups_per_op);
        self.store.lookup_op(generation, max)
    }

    /// The time cut, the peak lag, and the end of a pause's flush.
    pub(super) fn track_unwritten(&mut self, now: u64) {
        let store = &mut self.store;
        if !self.scheduler.has_work_to_write() {
            store.unwritten_since = None;
            store.time_cut_due = false;
        } else {
            let since = *store.unwritten_since.get_or_insert(now);
            store.time_cut_due = now >= since + self.config.batch_interval_ms;
        }
        self.counters.peak_unwritten = self.counters.peak_unwritten.max(self.unwritten().0);
        if self.store.flush_requested && !self.scheduler.has_work_to_write() {
            self.store.flush_requested = false;
        }
    }

    /// When the time cut is due, if something waits to be written and it is not due yet.
    pub(super) fn time_cut_at(&self) -> Option<u64> {
        let store = &self.store;
        let since = store.unwritten_since.filter(|_| !store.time_cut_due)?;
        Some(since + self.config.batch_interval_ms)
    }

    /// Whether a batch should be cut now that the store is free.
    fn commit_due(&self) -> bool {
        if !self.scheduler.has_work_to_write() {
            // A done sync still owes the record that says so, even with nothing to write.
            return self.completes_now();
        }
        let (items, bytes) = self.scheduler.unwritten();
        let half_items = (self.config.batch_items / 2).max(1) as u64;
        let half_bytes = (self.config.batch_bytes / 2).max(1) as u64;
        matches!(self.state, State::Stopping(_))
            || self.store.flush_requested
            || self.scheduler.is_done()
            || self.store.time_cut_due
            || self.store.budget_blocked
            || !self.held.is_empty()
            || items >= half_items
            || bytes >= half_bytes
            || self.scheduler.batch_len() as u64 >= half_items
            || self.scheduler.batch_bytes() as u64 >= half_bytes
    }

    /// Whether everything under the root is verified and a batch holding the rest, if any,
    /// would leave nothing unwritten: its record says the sync is complete.
    fn completes_now(&self) -> bool {
        self.state == State::Syncing
            && self.scheduler.is_done()
            && !self.scheduler.has_work_to_write()
            && !(self.committed.complete && self.committed.root == self.root())
    }

    /// Cuts the next batch, with the progress record it advances to.
    fn cut(&mut self) -> Option<PendingCommit> {
        let limit = BatchLimit {
            items: self.config.batch_items.max(1),
            bytes: self.config.batch_bytes.max(1),
        };
        let cut = self.scheduler.commit(limit);
        let complete = self.completes_now();
        if cut.batch.is_empty() && !complete {
            return None;
        }
        // No commit is out (the store is free and none failed): the record builds on the last
        // durable one.
        let base = self.committed;
        let record = ProgressRecord {
            root: self.root(),
            committed_items: base.committed_items + cut.batch.len() as u64,
            committed_bytes: base.committed_bytes + cut.batch.bytes() as u64,
            staged_items: (base.staged_items + cut.batch.staged.len() as u64)
                .saturating_sub(cut.batch.unstaged.len() as u64),
            staged_bytes: (base.staged_bytes + cut.batch.staged_bytes() as u64)
                .saturating_sub(cut.unstaged_bytes),
            complete,
        };
        Some(PendingCommit {
            batch: Arc::new(cut.batch),
            record,
            new_items: cut.new_items,
            new_bytes: cut.new_bytes,
        })
    }
}
