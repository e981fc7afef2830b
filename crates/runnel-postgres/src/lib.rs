//! Runnel's PostgreSQL engine: any number of stateless Runnel nodes sharing one database, with
//! the same semantics as the embedded engine (the same conformance suite proves it).
//!
//! # Positions in commit order, without gaps
//!
//! A reader follows `$all` by position: it reads from `p`, then from past the last event it got.
//! That only works if no event can later appear below a position a reader has passed. Sequences
//! do not give this: a transaction that took position 10 may commit after one that took 11, and
//! a reader that saw 11 skips 10 forever.
//!
//! Here every group commit takes the lock on the single row of `runnel_log_head` (by updating
//! it, or with `SELECT … FOR UPDATE`), assigns its events the positions from `next_position` on,
//! inserts them, advances `next_position`, and commits. The row lock is held until COMMIT, so the next
//! transaction, on this node or any other, gets the row (and its next positions) only after the
//! previous one has committed and become visible. Hence:
//!
//! - positions are assigned in commit order and are gapless (a transaction that rolls back
//!   gives its positions back along with the lock);
//! - when a reader's snapshot holds position `p`, it holds every position below `p` too;
//! - `read_all` reads the head and the events in one statement, hence one snapshot, and never
//!   returns anything past that head, so `next: None` means "everything up to `head`".
//!
//! The price is that commits to one database are serialised, each with its own WAL flush (the
//! lock is released only after the flush). Group commit pays it back: each node batches all
//! appends queued while the previous transaction ran into the next one, so the lock is taken
//! once per batch, not once per append, and one WAL flush serves the whole batch. The lock is
//! held only while the database executes the batch's writes and flushes them, not across a
//! round trip to the node, and never for the time an HTTP request takes. A node that stops in
//! the middle of a transaction cannot hold the lock for long: its writer session has
//! `idle_in_transaction_session_timeout`, and the other nodes' writers wait at most
//! `lock_timeout` before failing an append as unavailable.
//!
//! # Group commit
//!
//! One writer task per node takes everything queued (up to `max_batch_events` and
//! `max_batch_bytes`) and commits it as one transaction. When every append expects "any"
//! revision, that is one pipelined round trip (`BEGIN`, the head lock, one statement that
//! numbers each stream's events from its committed head and inserts them, `NOTIFY`, `COMMIT`).
//! Otherwise it is two: the reads the checks need (stream heads, client-chosen ids), outside
//! any transaction; then `BEGIN`, the head lock, the inserts, `NOTIFY` and `COMMIT`. The expected-revision and
//! duplicate-id checks run in this process against what was read plus what earlier appends of
//! the batch wrote, so a failed check rejects that append alone. If another commit wrote to the
//! batch's streams in between (or a batch of "any" appends carries an id already stored), a
//! unique constraint refuses the batch and it is planned again with the reads under the lock. An append is answered only after COMMIT returns. A retry of
//! an append (same ids, in order, same stream) is answered with the original outcome. After a
//! commit that answered several appends, the next batch waits up to half a commit's time (at
//! most 2 ms) for those clients' next appends, so that clients waiting for their answers share
//! one WAL flush instead of taking turns.
//!
//! # Following the head
//!
//! Each commit sends `NOTIFY runnel_head` with its last position; every node's head follower
//! listens on a dedicated connection and moves its [`runnel_core::HeadWatch`]. Notifications
//! are hints: on every (re)connect and once per `head_poll_interval_ms` the follower reads the
//! head from the table, so a lost notification costs latency, never an event.
//!
//! # Failures
//!
//! Every wait is bounded: connecting (`connect_timeout_ms`), waiting for a pooled connection
//! (`pool_wait_timeout_ms`), each statement and lock wait on the server (`statement_timeout_ms`)
//! and each answer on the client (a little longer). When the database is out of reach, appends
//! and reads fail with [`runnel_core::StoreError::Unavailable`] and `ready()` says so; the pool,
//! the writer and the follower reconnect by themselves when it is back. An append whose COMMIT
//! was interrupted has an unknown outcome and is reported as unavailable, never as a success;
//! retrying it with the same event ids gives the right answer either way.
//!
//! # Schema
//!
//! Versioned migrations in `migrations/*.sql`, applied by [`migrate`]; [`PostgresStore::open`]
//! refuses a schema that is missing or at another version. Queries live in `src/sql/*.sql`.
//! The tables go in the first schema of the connection's `search_path`, so several Runnel
//! deployments can share a database in separate schemas (`?options=-csearch_path%3Drunnel`).
//!
//! # TLS
//!
//! Every connection uses TLS as the URL's `sslmode` says, with libpq's meanings, over rustls
//! (aws-lc-rs); `verify-ca` and `verify-full` check the server's certificate against
//! [`PostgresConfig::ca_cert`] (or the URL's `sslrootcert`, or the system's roots). A
//! certificate that does not pass fails the connection with a message that says so.
//!
//! # Why tokio-postgres and deadpool
//!
//! tokio-postgres pipelines the statements of a transaction on one connection (the writer's
//! round trips depend on it), exposes notifications from the connection directly, and,
//! with deadpool's small pool on top, compiles in a fraction of sqlx's time. Queries are
//! plain prepared statements; nothing needs compile-time checking against a live database.

mod batch;
mod config;
mod connect;
mod error;
mod head;
mod metrics;
mod migrate;
mod rows;
mod store;
mod tls;
mod writer;

pub use config::{PostgresConfig, redact_url};
pub use error::PostgresError;
pub use metrics::COMMIT_BUCKETS_MICROS;
pub use migrate::{MigrationReport, SCHEMA_VERSION, migrate, migrate_with};
pub use store::PostgresStore;
