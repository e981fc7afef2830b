//! Black-box tests of the `runnel` binary: each starts the real server on a free port with a
//! fresh data directory and talks to it over HTTP, as a user would.

mod harness;

mod all;
mod auth;
mod errors;
mod groups;
mod limits;
mod operations;
mod postgres;
mod postgres_failover;
mod postgres_tls;
mod shutdown;
mod streams;
mod subscribe;
mod tls;
mod verify;
mod webhooks;
