//! Nibbles::decode_compact on arbitrary bytes, and the compact round trip.
//! The property lives in `statesync_core_fuzz::compact_path`, shared with the stable corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| statesync_core_fuzz::compact_path(data));
