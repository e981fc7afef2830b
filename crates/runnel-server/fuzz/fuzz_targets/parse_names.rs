//! Stream types, stream ids, stream names and event types from any text: each parser must
//! accept or refuse, never panic. They see every path segment and filter value a client sends.
//!
//! Run with `cargo +nightly fuzz run parse_names` from `crates/runnel-server`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    runnel_server::fuzzing::parse_names(text);
});
