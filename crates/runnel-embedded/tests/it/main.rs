//! Integration tests of the embedded engine: durability across reopen, recovery from injected
//! faults and crash images, corruption, and a real kill -9 loop.

mod common;
mod corruption;
mod crash;
mod durability;
mod faults;
mod tailing;
