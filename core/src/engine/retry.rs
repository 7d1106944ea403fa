//! Items to ask again: those a failed or partial answer left behind, each with the peers known
//! to lack it, and the ones no usable peer has, parked until a peer joins or a retry timer.

use std::collections::VecDeque;

use crate::hash::{DigestSet, H256};
use crate::store::StoreKey;

use super::PeerId;

/// An item to ask of a peer, or to ask again of another.
#[derive(Clone, Debug)]
pub(super) struct Retry {
    pub key: StoreKey,
    /// Peers that answered without it: they do not have it.
    pub lacking: Vec<PeerId>,
}

impl Retry {
    pub fn new(key: StoreKey) -> Retry {
        Retry {
            key,
            lacking: Vec::new(),
        }
    }

    pub fn hash(&self) -> H256 {
        self.key.hash
    }
}

/// The retry queue and the parked, unservable items.
#[derive(Debug, Default)]
pub(super) struct Retries {
    queue: VecDeque<Retry>,
    unservable: Vec<Retry>,
}

impl Retries {
    /// Items waiting to be asked again.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Items no usable peer could serve.
    pub fn unservable(&self) -> usize {
        self.unservable.len()
    }

    pub fn first_unservable(&self) -> Option<H256> {
        self.unservable.first().map(Retry::hash)
    }

    /// Queues `tasks` again, except those in `elsewhere` (still asked of another peer).
    pub fn requeue(&mut self, tasks: Vec<Retry>, elsewhere: &DigestSet) {
        self.queue
            .extend(tasks.into_iter().filter(|t| !elsewhere.contains(&t.hash())));
    }

    /// Up to `n` queued tasks for `peer`, oldest first, skipping those it lacks. Tasks no
    /// longer `wanted` are dropped; tasks every `usable` peer lacks are parked. Returns the
    /// tasks, and whether any was parked.
    pub fn take_for(
        &mut self,
        peer: PeerId,
        n: usize,
        usable: &[PeerId],
        wanted: impl Fn(StoreKey) -> bool,
    ) -> (Vec<Retry>, bool) {
        let mut tasks = Vec::new();
        let mut parked = false;
        let mut keep = VecDeque::with_capacity(self.queue.len());
        while let Some(retry) = self.queue.pop_front() {
            if tasks.len() >= n {
                keep.push_back(retry);
                continue;
            }
            if !wanted(retry.key) {
                continue; // someone else delivered it meanwhile
            }
            if usable.iter().all(|p| retry.lacking.contains(p)) {
                self.unservable.push(retry);
                parked = true;
                continue;
            }
            if retry.lacking.contains(&peer) {
                keep.push_back(retry);
            } else {
                tasks.push(retry);
            }
        }
        self.queue = keep;
        (tasks, parked)
    }

    /// Offers the parked items to every peer again: a peer became usable (`forget_lacking`
    /// false: it is not among those that lack them), or the retry timer fired (the peers
    /// that lacked them may have them by now).
    pub fn release_unservable(&mut self, forget_lacking: bool) {
        for mut parked in self.unservable.drain(..) {
            if forget_lacking {
                parked.lacking.clear();
            }
            self.queue.push_back(parked);
        }
    }

    /// Forgets everything (a root switch: the new root's scheduler hands out its own).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.unservable.clear();
    }

    /// Every retry, queued or parked.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Retry> {
        self.queue.iter_mut().chain(self.unservable.iter_mut())
    }
}
