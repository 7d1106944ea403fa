//! The simulated network: a virtual-time event queue and per-connection links with latency,
//! jitter and bandwidth.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use statesync_core::rng::SeededRng;

/// One-way delay of a message: `base_ms` plus a uniform draw in `0..=jitter_ms`, per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    pub base_ms: u64,
    pub jitter_ms: u64,
}

impl Latency {
    pub const ZERO: Latency = Latency {
        base_ms: 0,
        jitter_ms: 0,
    };

    pub const fn new(base_ms: u64, jitter_ms: u64) -> Latency {
        Latency { base_ms, jitter_ms }
    }

    /// A link whose round trip is about `rtt_ms` (half of it each way), with jitter.
    pub const fn rtt(rtt_ms: u64, jitter_ms: u64) -> Latency {
        Latency {
            base_ms: rtt_ms / 2,
            jitter_ms,
        }
    }

    pub fn sample(&self, rng: &mut SeededRng) -> u64 {
        self.base_ms + rng.below(self.jitter_ms + 1)
    }
}

/// One direction of a connection. A WebSocket runs over TCP, so messages arrive in the order
/// they were sent: jitter stretches gaps but never reorders. Bandwidth serialises messages
/// one after the other.
#[derive(Clone, Copy, Debug, Default)]
pub struct Link {
    /// When the sender finishes putting the previous message on the wire.
    free_at: u64,
    /// Arrival time of the previous message.
    last_arrival: u64,
}

impl Link {
    /// The arrival time of a `bytes`-long message sent at `now`.
    pub fn transit(
        &mut self,
        now: u64,
        bytes: usize,
        latency: Latency,
        bytes_per_ms: Option<u64>,
        rng: &mut SeededRng,
    ) -> u64 {
        let start = now.max(self.free_at);
        let serialise = bytes_per_ms.map_or(0, |bw| (bytes as u64).div_ceil(bw.max(1)));
        self.free_at = start + serialise;
        let arrival = (self.free_at + latency.sample(rng)).max(self.last_arrival);
        self.last_arrival = arrival;
        arrival
    }
}

/// Something that happens at a virtual time.
#[derive(Debug)]
pub enum Payload {
    /// A peer connects (its first join, or a rejoin after a backoff).
    PeerJoin { peer: usize },
    /// A peer leaves for good, as its schedule says.
    PeerLeave { peer: usize },
    /// A peer's connection breaks in the middle of a request (a fault).
    PeerDrop { peer: usize, conn: u64 },
    /// A frame reaches a peer over connection `conn`.
    ToPeer {
        peer: usize,
        conn: u64,
        frame: Vec<u8>,
    },
    /// A frame from a peer reaches the client over connection `conn`.
    ToEngine {
        peer: usize,
        conn: u64,
        frame: Vec<u8>,
    },
    /// The store finished the operation it was running in store epoch `epoch`.
    StoreDone { epoch: u64 },
    /// The user moves the target root.
    SwitchRoot,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    payload: Payload,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl Ord for Scheduled {
    // Reversed: the heap pops the earliest time, then the earliest scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Events ordered by `(time, sequence)`: ties run in the order they were scheduled.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, at: u64, payload: Payload) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            payload,
        });
    }

    pub fn next_time(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.at)
    }

    pub fn pop(&mut self) -> Option<(u64, Payload)> {
        self.heap.pop().map(|s| (s.at, s.payload))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Whether an event matching `pred` is still queued.
    pub fn any(&self, pred: impl Fn(&Payload) -> bool) -> bool {
        self.heap.iter().any(|s| pred(&s.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_pops_by_time_then_by_insertion() {
        let mut queue = EventQueue::default();
        queue.push(5, Payload::SwitchRoot);
        queue.push(1, Payload::PeerJoin { peer: 1 });
        queue.push(1, Payload::PeerJoin { peer: 2 });
        let order: Vec<(u64, String)> = std::iter::from_fn(|| queue.pop())
            .map(|(t, p)| (t, format!("{p:?}")))
            .collect();
        assert_eq!(order[0], (1, "PeerJoin { peer: 1 }".to_string()));
        assert_eq!(order[1], (1, "PeerJoin { peer: 2 }".to_string()));
        assert_eq!(order[2].0, 5);
    }

    #[test]
    fn a_link_keeps_order_and_serialises_by_bandwidth() {
        let mut rng = SeededRng::new(1);
        let mut link = Link::default();
        let latency = Latency::new(10, 50);
        let mut last = 0;
        for _ in 0..100 {
            let at = link.transit(0, 1000, latency, Some(100), &mut rng);
            assert!(at >= last);
            last = at;
        }
        // 100 messages of 10 ms each on the wire: the last leaves at 1000 ms.
        assert!(last >= 1010, "{last}");
    }
}
