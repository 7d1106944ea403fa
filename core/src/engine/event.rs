//! What the engine tells the host: frames to send and peers to drop ([`Transmit`]), what
//! happened ([`Event`]), and why a sync cannot finish ([`EngineError`]).

use thiserror::Error;

use crate::hash::H256;
use crate::progress::Progress;
use crate::scheduler::ProcessError;

use super::store_ops::StoreFailure;

/// A peer, named by the host.
pub type PeerId = u64;

/// Something to do towards a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Send this frame.
    Frame { peer: PeerId, frame: Vec<u8> },
    /// Close the connection; the engine has already forgotten the peer.
    Disconnect {
        peer: PeerId,
        reason: DisconnectReason,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Penalty limit reached (malformed frames, garbage blobs, unknown request ids).
    Misbehaving { penalty: u32, last: String },
    /// Repeated timeouts on minimal requests: it cannot serve.
    Stalling,
    /// It speaks another protocol version.
    IncompatibleVersion { version: u64 },
    /// It sent no valid Status frame within the grace period after connecting.
    NoStatus { waited_ms: u64 },
}

/// What happened, for the host to show or act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Progress(Progress),
    /// Every item under the root is stored and the final record is written.
    Finished(Progress),
    /// No connected peer can serve `unservable` items (the first is `first`), or no peer is
    /// usable at all, and nothing else is left to do. Reported once per stall, after the
    /// peers have had time to connect.
    Stalled {
        unservable: usize,
        first: Option<H256>,
        peers: usize,
    },
    PeerDisconnected {
        peer: PeerId,
        reason: DisconnectReason,
    },
    RootSwitched {
        from: H256,
        to: H256,
    },
    /// A store write failed; nothing was half written. `resume` retries it.
    Paused(StoreFailure),
    /// Cancelled, with everything verified flushed.
    Cancelled,
    /// The sync cannot finish, and everything verified is flushed: the root commits to data
    /// that is not a valid state, or it stalled past the configured timeout.
    Failed(EngineError),
}

/// Fatal problems.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("the state under the root is invalid: {0}")]
    InvalidState(ProcessError),
    #[error("store answered op {op} with {got} results for {expected} keys")]
    LookupMismatch {
        op: u64,
        got: usize,
        expected: usize,
    },
    #[error("store answered op {op} with something else than {expected}")]
    UnexpectedResult { op: u64, expected: &'static str },
    #[error("{}", stalled_message(*.stalled_ms, *.unservable, .first, *.peers))]
    Stalled {
        stalled_ms: u64,
        unservable: usize,
        first: Option<H256>,
        peers: usize,
    },
}

fn stalled_message(
    stalled_ms: u64,
    unservable: usize,
    first: &Option<H256>,
    peers: usize,
) -> String {
    let secs = stalled_ms as f64 / 1000.0;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let connected = plural(peers, "peer", "peers");
    match first {
        Some(first) => format!(
            "stalled for {secs:.1} s: {} no connected peer can serve (the first is {first}; {connected} connected)",
            plural(unservable, "item", "items")
        ),
        None => format!("stalled for {secs:.1} s: no usable peer ({connected} connected)"),
    }
}
