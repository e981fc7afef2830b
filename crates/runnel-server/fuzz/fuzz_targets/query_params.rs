//! Query strings through the parameter parsers of the read, list and subscribe endpoints:
//! repeated and unknown names, numbers out of range, names in filters, broken percent-encoding.
//!
//! Run with `cargo +nightly fuzz run query_params` from `crates/runnel-server`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    runnel_server::fuzzing::parse_query(query);
});
