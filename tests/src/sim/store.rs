//! The simulated store: a `MemoryStore` (main keyspace and staging area) and the last
//! committed progress record, running the engine's operations strictly one at a time, in
//! order, each after a latency. Every commit is checked against I1, I2 and the staging rules
//! before it is applied, and applied whole with its record (I3).

use std::collections::VecDeque;

use statesync_core::engine::{StoreAction, StoreOp, StoreResult};
use statesync_core::rng::SeededRng;
use statesync_core::{keccak256, CommitBatch, MemoryStore, ProgressRecord, StoreKey};

use super::network::Latency;
use super::world::World;

#[derive(Debug)]
pub struct SimStore {
    pub data: MemoryStore,
    /// Written in the same transaction as each batch.
    pub record: Option<ProgressRecord>,
    pub latency: Latency,
    queue: VecDeque<StoreOp>,
    /// Whether the head of the queue is running (its completion is scheduled).
    running: bool,
    /// Bumped by a crash, so the completion of an op of the dead process is ignored.
    pub epoch: u64,
    pub commits: u64,
    /// Items written that were already stored (the same value written again).
    pub rewrites: u64,
    pub lookups: u64,
}

impl SimStore {
    pub fn new(latency: Latency) -> SimStore {
        SimStore {
            data: MemoryStore::new(),
            record: None,
            latency,
            queue: VecDeque::new(),
            running: false,
            epoch: 0,
            commits: 0,
            rewrites: 0,
            lookups: 0,
        }
    }

    /// Queues an op. Returns true if the caller must schedule its completion (the store was
    /// idle).
    pub fn submit(&mut self, op: StoreOp) -> bool {
        self.queue.push_back(op);
        self.start_next()
    }

    fn start_next(&mut self) -> bool {
        if self.running || self.queue.is_empty() {
            return false;
        }
        self.running = true;
        true
    }

    /// Runs the head op to completion. Returns its id and result, and whether the next op
    /// must be scheduled.
    pub fn complete(&mut self, world: &World) -> Result<Option<(u64, StoreResult, bool)>, String> {
        self.running = false;
        let Some(op) = self.queue.pop_front() else {
            return Ok(None);
        };
        let result = self.execute(op.action, world)?;
        let next = self.start_next();
        Ok(Some((op.id, result, next)))
    }

    fn execute(&mut self, action: StoreAction, world: &World) -> Result<StoreResult, String> {
        match action {
            StoreAction::Lookup(keys) => {
                self.lookups += keys.len() as u64;
                Ok(StoreResult::Lookup(
                    keys.iter().map(|k| self.data.contains(*k)).collect(),
                ))
            }
            StoreAction::Commit { batch, progress } => {
                self.commit(&batch, progress, world)?;
                Ok(StoreResult::Committed)
            }
            StoreAction::LoadStaged => Ok(StoreResult::Staged(self.data.staged())),
        }
    }

    /// Applies a batch and its record atomically, after checking it.
    pub fn commit(
        &mut self,
        batch: &CommitBatch,
        progress: ProgressRecord,
        world: &World,
    ) -> Result<(), String> {
        let before = self.record.unwrap_or_default();
        if progress.committed_items != before.committed_items + batch.len() as u64 {
            return Err(format!(
                "progress record says {} items committed after a batch of {} on top of {}",
                progress.committed_items,
                batch.len(),
                before.committed_items
            ));
        }
        for (key, value) in batch.items() {
            // I1: nothing unverified, and nothing but the source's data.
            if keccak256(value) != key.hash {
                return Err(format!(
                    "I1: commit of {key:?} holds a blob of another hash"
                ));
            }
            if world.source.get(key) != Some(value) {
                return Err(format!(
                    "I1: commit of {key:?} holds data not in the source"
                ));
            }
            if self.data.contains(key) {
                self.rewrites += 1;
            }
        }
        // Staging: verified nodes of the source only; a delete names an entry that exists;
        // nothing is put and deleted at once; the record counts what staging holds after.
        let mut staged_after = self.data.staged_count() as i64;
        for (hash, value) in &batch.staged {
            if keccak256(value) != *hash || world.source.get(StoreKey::node(*hash)) != Some(value) {
                return Err(format!("I1: staged {hash} is not the source's node"));
            }
            if batch.unstaged.contains(hash) {
                return Err(format!("staging: {hash} is put and deleted in one batch"));
            }
            if !self.data.is_staged(hash) {
                staged_after += 1;
            }
        }
        for hash in &batch.unstaged {
            if !self.data.is_staged(hash) {
                return Err(format!("staging: delete of {hash}, which is not staged"));
            }
            staged_after -= 1;
        }
        if progress.staged_items != staged_after as u64 {
            return Err(format!(
                "progress record says {} items staged, staging will hold {staged_after}",
                progress.staged_items
            ));
        }
        // I2: each node's dependencies are stored already or land in this same batch.
        let in_batch: std::collections::HashSet<StoreKey> = batch.items().map(|(k, _)| k).collect();
        for (key, value) in batch.items() {
            for dep in world.dependencies(key, value)? {
                if !self.data.contains(dep) && !in_batch.contains(&dep) {
                    return Err(format!(
                        "I2: {key:?} committed before its dependency {dep:?}"
                    ));
                }
            }
        }
        self.data.apply(batch);
        self.record = Some(progress);
        self.commits += 1;
        Ok(())
    }

    /// The process died. The op being run either reached the disk or not (a commit lands
    /// whole or not at all); queued ops are gone.
    pub fn crash(&mut self, rng: &mut SeededRng, world: &World) -> Result<(), String> {
        if self.running {
            if let Some(StoreOp {
                action: StoreAction::Commit { batch, progress },
                ..
            }) = self.queue.front()
            {
                if rng.chance(0.5) {
                    let (batch, progress) = (batch.clone(), *progress);
                    self.commit(&batch, progress, world)?;
                }
            }
        }
        self.queue.clear();
        self.running = false;
        self.epoch += 1;
        Ok(())
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}
