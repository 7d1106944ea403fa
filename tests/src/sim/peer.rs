//! Simulated peers: how they are connected, what they hold, and how they serve GetNodeData.

use std::collections::HashSet;
use std::sync::Arc;

pub use statesync_core::serve::ServeLimits;
use statesync_core::{MemoryStore, StoreKey, H256};

use super::faults::Faults;
use super::network::{Latency, Link};

/// Which part of the source a peer holds.
#[derive(Clone, Debug, Default)]
pub enum Holdings {
    /// Everything.
    #[default]
    Full,
    /// Each item is missing with this probability (drawn once, when the simulation starts).
    Lacking(f64),
    /// Everything but these keys.
    Without(Arc<HashSet<StoreKey>>),
}

/// Reconnecting after a disconnect or a dropped connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejoin {
    /// Delay before reconnecting: uniform in `min_ms..=max_ms`.
    pub min_ms: u64,
    pub max_ms: u64,
    /// Reconnections at most, over the whole run.
    pub max: u32,
}

/// How a peer behaves over a run.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    pub latency: Latency,
    /// Bytes per millisecond each way; `None` is unlimited.
    pub bandwidth: Option<u64>,
    pub limits: ServeLimits,
    /// Time spent looking items up, per request.
    pub serve_ms: u64,
    pub join_at: u64,
    /// Leaves for good at this time.
    pub leave_at: Option<u64>,
    pub faults: Faults,
    pub holdings: Holdings,
    pub rejoin: Option<Rejoin>,
}

impl Default for PeerSpec {
    fn default() -> Self {
        PeerSpec {
            latency: Latency::rtt(40, 10),
            bandwidth: None,
            limits: ServeLimits::default(),
            serve_ms: 1,
            join_at: 0,
            leave_at: None,
            faults: Faults::NONE,
            holdings: Holdings::Full,
            rejoin: None,
        }
    }
}

impl PeerSpec {
    /// An honest peer with a round trip of about `rtt_ms`.
    pub fn honest(rtt_ms: u64, jitter_ms: u64) -> PeerSpec {
        PeerSpec {
            latency: Latency::rtt(rtt_ms, jitter_ms),
            ..PeerSpec::default()
        }
    }

    pub fn with_faults(mut self, faults: Faults) -> PeerSpec {
        self.faults = faults;
        self
    }

    pub fn with_rejoin(mut self, min_ms: u64, max_ms: u64, max: u32) -> PeerSpec {
        self.rejoin = Some(Rejoin {
            min_ms,
            max_ms,
            max,
        });
        self
    }
}

/// A peer during the run.
#[derive(Debug)]
pub struct SimPeer {
    pub spec: PeerSpec,
    pub connected: bool,
    /// Bumped on every (re)connection: frames of an older connection are lost with it.
    pub conn: u64,
    /// Client to peer.
    pub up: Link,
    /// Peer to client.
    pub down: Link,
    pub rejoins: u32,
    /// Left for good (scheduled leave); never rejoins.
    pub gone: bool,
    /// Keys it does not hold.
    pub missing: Arc<HashSet<StoreKey>>,
    pub requests: u64,
}

impl SimPeer {
    pub fn new(spec: PeerSpec, missing: Arc<HashSet<StoreKey>>) -> SimPeer {
        SimPeer {
            spec,
            connected: false,
            conn: 0,
            up: Link::default(),
            down: Link::default(),
            rejoins: 0,
            gone: false,
            missing,
            requests: 0,
        }
    }

    /// Opens a new connection.
    pub fn connect(&mut self) {
        self.connected = true;
        self.conn += 1;
        self.up = Link::default();
        self.down = Link::default();
    }

    /// Closes the connection; whatever is on the wire is lost.
    pub fn disconnect(&mut self) {
        self.connected = false;
        self.conn += 1;
    }

    /// What an honest server holding `source` minus `missing` answers: for each hash in order,
    /// the node, else the code, else nothing; stopping at the item or byte limit.
    pub fn serve(&self, source: &MemoryStore, hashes: &[H256]) -> Vec<Vec<u8>> {
        let held = |key: StoreKey| {
            if self.missing.contains(&key) {
                None
            } else {
                source.get(key)
            }
        };
        statesync_core::serve::select(hashes, self.spec.limits, held)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }
}
