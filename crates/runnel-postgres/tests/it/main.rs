//! The PostgreSQL engine's own behaviours, beyond the conformance suite: migrations, ordering
//! across several nodes, notifications between nodes, and failures of the database connection.

#![allow(unreachable_pub)]

#[path = "../support/mod.rs"]
mod support;

mod failures;
mod helpers;
mod migrations;
mod notifications;
mod ordering;
