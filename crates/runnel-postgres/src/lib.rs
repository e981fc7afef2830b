//! Runnel's PostgreSQL engine: any number of stateless Runnel nodes sharing one database, with
//! the same semantics as the embedded engine (the same conformance suite proves it).
//!
//! # Positions that no reader can skip
//!
//! A reader follows `$all` by position: it reads from `p`, then from past the last event it got.
//! That only works if no event can later appear below a position a reader has passed. A plain
//! sequence does not give this: a transaction that took position 10 may commit after one that
//! took 11, and a reader that saw 11 skips 10 forever (the Marten / Message DB problem).
//!
//! Schema version 1 numbered the log under one row lock held to COMMIT: gapless, but every
//! commit to the database waited for the previous one's WAL flush, so commits could never share
//! a flush, and nodes took turns instead of adding capacity. From version 2 on:
//!
//! - **A transaction numbers its events from its own id.** Its first event gets
//!   `(xid + xid_offset) << 16`, the next one more, up to 2^16 events per transaction
//!   (`sql/first_position.sql`); `xid` is the 64-bit transaction id (`pg_current_xact_id()`),
//!   which only grows. Transactions on every node commit side by side, holding no lock but
//!   those of the streams they write, and PostgreSQL flushes their commits together.
//! - **Streams are locked before the id is taken.** A transaction takes an advisory lock per
//!   stream it writes (in key order, so no two deadlock) before anything gives it an id, so of
//!   two transactions that write one stream, the first to write it has the lower positions: a
//!   stream's revisions grow in position order.
//! - **Readers stop below the horizon.** The horizon is where the oldest transaction still
//!   running would number its events: `(xmin + xid_offset) << 16`, with `xmin` from the reading
//!   statement's own snapshot (`pg_snapshot_xmin(pg_current_snapshot())`). Every transaction with
//!   a smaller id has committed or rolled back, and every transaction still to come gets a larger
//!   id, so the events below the horizon are final: none can appear there later. `read_all`
//!   returns nothing past the last position below it (`sql/read_head.sql`), in the same
//!   statement and snapshot as the events, and that position is the head it reports.
//!
//! Hence a reader that has seen position `p` never later sees a new event below `p`, on any node.
//! Positions are strictly increasing in the order events become visible, and have gaps: between
//! transactions (each takes 2^16 positions) and where one rolled back. They are as large as
//! transaction ids make them (a database that has run 10^9 transactions hands out positions near
//! 2^46), and client code must treat them as 64-bit numbers.
//!
//! The costs: an event becomes visible only once every older transaction in the database cluster
//! has ended, not only Runnel's. A Runnel transaction lasts one round trip; a transaction of
//! another application on the same cluster that holds a transaction id for minutes holds `$all`
//! readers back for as long (never appends, never stream reads). Give Runnel a cluster of its
//! own, or keep the others' write transactions short (`idle_in_transaction_session_timeout`).
//! Appends are answered only once readers can see them (so that `$all` reads your own writes on
//! every node), waiting at most `visibility_wait_ms` for an older transaction before answering
//! anyway, with a warning: they are durable by then.
//!
//! `xid_offset` keeps new positions above old ones when transaction ids do not: the migration to
//! version 2 sets it above the gapless positions of version 1, and a database restored from a
//! logical dump (whose ids start again from low numbers) is refused at open until `runnel
//! migrate` lifts it.
//!
//! # Group commit
//!
//! Each node runs `writer_connections` lanes (one by default); each takes everything queued (up
//! to `max_batch_events`, `max_batch_bytes` and 256 streams) and commits it as one transaction,
//! while further lanes, if any, gather and commit the next batches, and every other node commits
//! its own. When every append expects "any" revision, a commit is one statement that is its own
//! transaction (the streams' locks, the first position, each stream's events numbered from its
//! committed head and inserted), followed in the same round trip by the `NOTIFY`: one message
//! each way. Otherwise it is two round trips: the reads the checks need (stream heads,
//! client-chosen ids), outside any transaction; then `BEGIN`, the streams' locks, the first
//! position, the stream heads, the inserts, `COMMIT` and `NOTIFY`. The expected-revision and
//! duplicate-id checks run in this process against what was read plus what earlier appends of
//! the batch wrote, so a failed check rejects that append alone. If another commit wrote to the
//! batch's streams in between (or a batch of "any" appends carries an id already stored), a
//! unique constraint refuses the batch and it is planned again with its streams locked before
//! the reads. An append is answered only after COMMIT returns. A retry of an append (same ids,
//! in order, same stream) is answered with the original outcome. After a commit that answered
//! several appends, the lane's next batch waits up to half a commit's time (at most 2 ms) for
//! those clients' next appends, so that clients waiting for their answers share commits instead
//! of splitting into ever smaller ones.
//!
//! # Following the head
//!
//! After each commit, outside its transaction, the writer sends `NOTIFY runnel_head` with the
//! last visible position (a NOTIFY inside the transaction would take PostgreSQL's database-wide
//! notification lock through the WAL flush and serialise commits again); every node's head
//! follower listens on a dedicated connection and moves its [`runnel_core::HeadWatch`].
//! Notifications are hints: on every (re)connect and once per `head_poll_interval_ms` the
//! follower reads the head from the table (every 10 ms while this node has commits waiting to
//! become visible), so a lost notification costs latency, never an event.
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

pub use config::{MAX_EVENTS_PER_TRANSACTION, MAX_WRITER_CONNECTIONS, PostgresConfig, redact_url};
pub use error::PostgresError;
pub use metrics::COMMIT_BUCKETS_MICROS;
pub use migrate::{MigrationReport, SCHEMA_VERSION, migrate, migrate_with};
pub use store::PostgresStore;
