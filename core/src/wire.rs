//! The wire protocol (DESIGN.md): one WebSocket binary frame is one message,
//! `code (1 byte) || RLP(payload)`, the devp2p layout without snappy.
//!
//! | code | message     | payload                                   |
//! |------|-------------|-------------------------------------------|
//! | 0x00 | Status      | `[version, networkId, headRoot]`          |
//! | 0x0d | GetNodeData | `[requestId, [hash32, …]]` (≤ 1024 hashes) |
//! | 0x0e | NodeData    | `[requestId, [blob, …]]`                  |
//!
//! Limits are checked before anything is allocated from a count the peer chose: the frame size
//! first, then item counts while iterating.

use thiserror::Error;

use crate::hash::H256;
use crate::rlp_items::{self, RlpError};

/// Protocol version spoken here.
pub const PROTOCOL_VERSION: u64 = 1;
/// Hard cap on one frame (geth's `maxMessageSize`).
pub const MAX_FRAME_BYTES: usize = 10 * 1024 * 1024;
/// Most hashes one GetNodeData may carry (geth's `maxNodeDataServe`).
pub const MAX_HASHES_PER_REQUEST: usize = 1024;
/// Most blobs one NodeData may carry.
pub const MAX_BLOBS_PER_RESPONSE: usize = MAX_HASHES_PER_REQUEST;
/// A server stops adding blobs to an answer once it holds this many bytes (geth's
/// `softResponseLimit`).
pub const SOFT_RESPONSE_BYTES: usize = 2 * 1024 * 1024;

pub const CODE_STATUS: u8 = 0x00;
pub const CODE_GET_NODE_DATA: u8 = 0x0d;
pub const CODE_NODE_DATA: u8 = 0x0e;

/// The first frame a peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub version: u64,
    pub network_id: u64,
    /// The state root the peer serves best (its head).
    pub head_root: H256,
}

/// A decoded frame. Blobs borrow from the frame so that only blobs worth keeping are copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Status(Status),
    GetNodeData { id: u64, hashes: Vec<H256> },
    NodeData { id: u64, blobs: Vec<&'a [u8]> },
}

/// Why a frame was refused. Each is a protocol error counted against the peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {got} bytes exceeds the {max}-byte limit")]
    TooLarge { got: usize, max: usize },
    #[error("unknown message code {code:#04x}")]
    UnknownCode { code: u8 },
    #[error("malformed payload: {0}")]
    Rlp(#[from] RlpError),
    #[error("{got} items exceed the limit of {max}")]
    TooManyItems { got: usize, max: usize },
    #[error("hash of {got} bytes, expected 32")]
    BadHash { got: usize },
}

impl Message<'_> {
    /// Decodes one frame.
    pub fn decode(frame: &[u8]) -> Result<Message<'_>, WireError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge {
                got: frame.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        let (&code, payload) = frame.split_first().ok_or(WireError::Empty)?;
        // The code first: a message of a later protocol version is unknown whatever its
        // payload, so a server can tell it from a broken frame and ignore it.
        if !matches!(code, CODE_STATUS | CODE_GET_NODE_DATA | CODE_NODE_DATA) {
            return Err(WireError::UnknownCode { code });
        }
        let body = rlp_items::exactly_one(payload)?;
        match code {
            CODE_STATUS => {
                let [version, network, head] = body.list()?.exactly::<3>()?;
                let head = head.string()?;
                Ok(Message::Status(Status {
                    version: version.u64()?,
                    network_id: network.u64()?,
                    head_root: H256::from_slice(head)
                        .ok_or(WireError::BadHash { got: head.len() })?,
                }))
            }
            CODE_GET_NODE_DATA => {
                let [id, list] = body.list()?.exactly::<2>()?;
                let mut hashes = Vec::new();
                for item in list.list()? {
                    if hashes.len() == MAX_HASHES_PER_REQUEST {
                        return Err(WireError::TooManyItems {
                            got: hashes.len() + 1,
                            max: MAX_HASHES_PER_REQUEST,
                        });
                    }
                    let bytes = item?.string()?;
                    hashes.push(
                        H256::from_slice(bytes).ok_or(WireError::BadHash { got: bytes.len() })?,
                    );
                }
                Ok(Message::GetNodeData {
                    id: id.u64()?,
                    hashes,
                })
            }
            CODE_NODE_DATA => {
                let [id, list] = body.list()?.exactly::<2>()?;
                let mut blobs = Vec::new();
                for item in list.list()? {
                    if blobs.len() == MAX_BLOBS_PER_RESPONSE {
                        return Err(WireError::TooManyItems {
                            got: blobs.len() + 1,
                            max: MAX_BLOBS_PER_RESPONSE,
                        });
                    }
                    blobs.push(item?.string()?);
                }
                Ok(Message::NodeData {
                    id: id.u64()?,
                    blobs,
                })
            }
            // Refused above; kept so the match needs no panic.
            code => Err(WireError::UnknownCode { code }),
        }
    }

    /// Encodes the message as one frame. Sized first and written once: frames are built for
    /// every request and answer, and `rlp::RlpStream` moves the payload each time it closes a
    /// list.
    pub fn encode(&self) -> Vec<u8> {
        let (code, id) = match self {
            Message::Status(_) => (CODE_STATUS, 0),
            Message::GetNodeData { id, .. } => (CODE_GET_NODE_DATA, *id),
            Message::NodeData { id, .. } => (CODE_NODE_DATA, *id),
        };
        let (id_bytes, skip) = rlp_items::uint_bytes(id);
        let id_bytes = &id_bytes[skip..];
        // The list of hashes or blobs after the id: its payload length.
        let items_len: usize = match self {
            Message::Status(_) => 0,
            Message::GetNodeData { hashes, .. } => hashes.len() * 33,
            Message::NodeData { blobs, .. } => blobs.iter().map(|b| rlp_items::string_len(b)).sum(),
        };
        let mut out;
        match self {
            Message::Status(status) => {
                let (version, vs) = rlp_items::uint_bytes(status.version);
                let (network, ns) = rlp_items::uint_bytes(status.network_id);
                let payload = rlp_items::string_len(&version[vs..])
                    + rlp_items::string_len(&network[ns..])
                    + 33;
                out = Vec::with_capacity(1 + rlp_items::header_len(payload) + payload);
                out.push(code);
                rlp_items::put_header(&mut out, true, payload);
                rlp_items::put_string(&mut out, &version[vs..]);
                rlp_items::put_string(&mut out, &network[ns..]);
                rlp_items::put_string(&mut out, &status.head_root.0);
            }
            // `[id, [item, …]]`: the same framing for requests and answers.
            Message::GetNodeData { .. } | Message::NodeData { .. } => {
                let payload =
                    rlp_items::string_len(id_bytes) + rlp_items::header_len(items_len) + items_len;
                out = Vec::with_capacity(1 + rlp_items::header_len(payload) + payload);
                out.push(code);
                rlp_items::put_header(&mut out, true, payload);
                rlp_items::put_string(&mut out, id_bytes);
                rlp_items::put_header(&mut out, true, items_len);
                match self {
                    Message::GetNodeData { hashes, .. } => {
                        for hash in hashes {
                            rlp_items::put_string(&mut out, &hash.0);
                        }
                    }
                    Message::NodeData { blobs, .. } => {
                        for blob in blobs {
                            rlp_items::put_string(&mut out, blob);
                        }
                    }
                    Message::Status(_) => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use rlp::RlpStream;

    use super::*;
    use crate::hash::keccak256;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Status(Status {
                version: PROTOCOL_VERSION,
                network_id: 1,
                head_root: keccak256(b"head"),
            }),
            Message::GetNodeData {
                id: 7,
                hashes: vec![keccak256(b"a"), keccak256(b"b")],
            },
            Message::NodeData {
                id: u64::MAX,
                blobs: vec![b"one", b"", b"three"],
            },
            Message::NodeData {
                id: 0,
                blobs: vec![],
            },
        ];
        for message in messages {
            let frame = message.encode();
            assert_eq!(Message::decode(&frame), Ok(message));
        }
    }

    #[test]
    fn encoding_matches_the_rlp_crate() {
        let blobs: Vec<Vec<u8>> = vec![
            vec![],
            vec![5],
            vec![0x80],
            vec![7; 55],
            vec![9; 56],
            vec![1; 70_000],
        ];
        let message = Message::NodeData {
            id: 300,
            blobs: blobs.iter().map(Vec::as_slice).collect(),
        };
        let mut stream = RlpStream::new_list(2);
        stream.append(&300u64);
        stream.begin_list(blobs.len());
        for blob in &blobs {
            stream.append(blob);
        }
        let mut expected = vec![CODE_NODE_DATA];
        expected.extend_from_slice(&stream.out());
        assert_eq!(message.encode(), expected);
    }

    #[test]
    fn refuses_oversized_empty_and_unknown_frames() {
        assert_eq!(Message::decode(&[]), Err(WireError::Empty));
        assert_eq!(
            Message::decode(&[0x42, 0xc0]),
            Err(WireError::UnknownCode { code: 0x42 })
        );
        // Unknown whatever its payload: a later version's message is not a broken frame.
        assert_eq!(
            Message::decode(&[0x21, 0xff, 0x00]),
            Err(WireError::UnknownCode { code: 0x21 })
        );
        let huge = vec![0u8; MAX_FRAME_BYTES + 1];
        assert_eq!(
            Message::decode(&huge),
            Err(WireError::TooLarge {
                got: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
    }

    #[test]
    fn refuses_too_many_hashes_and_bad_hash_lengths() {
        let hashes = vec![H256::ZERO; MAX_HASHES_PER_REQUEST + 1];
        let frame = Message::GetNodeData { id: 1, hashes }.encode();
        assert_eq!(
            Message::decode(&frame),
            Err(WireError::TooManyItems {
                got: MAX_HASHES_PER_REQUEST + 1,
                max: MAX_HASHES_PER_REQUEST
            })
        );
        let mut stream = RlpStream::new_list(2);
        stream.append(&1u64);
        stream.begin_list(1);
        stream.append(&[1u8, 2, 3].as_slice());
        let mut frame = vec![CODE_GET_NODE_DATA];
        frame.extend_from_slice(&stream.out());
        assert_eq!(Message::decode(&frame), Err(WireError::BadHash { got: 3 }));
    }

    #[test]
    fn refuses_truncated_and_trailing_payloads() {
        let frame = Message::NodeData {
            id: 3,
            blobs: vec![b"abcdef"],
        }
        .encode();
        assert!(matches!(
            Message::decode(&frame[..frame.len() - 2]),
            Err(WireError::Rlp(_))
        ));
        let mut long = frame.clone();
        long.push(0x01);
        assert!(matches!(Message::decode(&long), Err(WireError::Rlp(_))));
    }
}
