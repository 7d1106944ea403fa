//! A Scheduler over a small fixed state, driven by arbitrary operations and blobs.
//! The property lives in `statesync_core_fuzz::process`, shared with the stable corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| statesync_core_fuzz::process(data));
