//! TrieNode::decode on arbitrary bytes; what decodes must round-trip.
//! The property lives in `statesync_core_fuzz::node_decode`, shared with the stable corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| statesync_core_fuzz::node_decode(data));
