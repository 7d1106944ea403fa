//! serve::answer on any frame a client could send: a server never panics and answers only
//! what was asked, within the limits.
//! The property lives in `statesync_core_fuzz::serve_answer`, shared with the stable corpus replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| statesync_core_fuzz::serve_answer(data));
