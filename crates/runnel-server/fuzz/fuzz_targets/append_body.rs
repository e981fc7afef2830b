//! The body of `POST /streams/{type}/{id}/events` as the server parses it: JSON with error
//! paths, then each event's validation (names, payload, base64, content type, nesting depth).
//!
//! Run with `cargo +nightly fuzz run append_body` from `crates/runnel-server`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    runnel_server::fuzzing::parse_append_body(bytes);
});
