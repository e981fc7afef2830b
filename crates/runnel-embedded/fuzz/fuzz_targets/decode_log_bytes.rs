//! Feeds arbitrary bytes to every decoder of the log format. Any panic is a bug: the decoders
//! read files that a crash, a disk or a person may have damaged.
//!
//! Run with `cargo fuzz run decode_log_bytes` from `crates/runnel-embedded` (nightly toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    runnel_embedded::fuzzing::decode_everything(bytes);
});
