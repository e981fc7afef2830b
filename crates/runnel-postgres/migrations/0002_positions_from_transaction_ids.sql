-- Runnel's PostgreSQL schema, version 2: positions from transaction ids.
--
-- Version 1 numbered the log under one row lock held to COMMIT, so every commit to the database
-- waited for the previous one's WAL flush. From version 2 on, a transaction numbers its events
-- from its own transaction id (first position = (xid + xid_offset) << 16, one more per event),
-- commits run side by side and share WAL flushes, and readers stop below the oldest
-- transaction still running, so none of them can skip an event that commits late (see the
-- crate documentation).
ALTER TABLE runnel_log_head
    DROP COLUMN next_position,
    DROP COLUMN last_recorded_at,
    -- Added to every transaction id before it becomes a position: lifts new positions above
    -- those written before (by version 1, or in a database restored from a logical dump, whose
    -- transaction ids start again from low numbers).
    ADD COLUMN xid_offset bigint NOT NULL DEFAULT 0 CHECK (xid_offset >= 0);

-- Every transaction after this one has a larger id than this one, so with this offset its
-- first position lies above every position written so far.
UPDATE runnel_log_head
SET xid_offset = greatest(
    0,
    coalesce((SELECT max(position) FROM runnel_events) >> 16, -1) + 1
        - pg_current_xact_id()::text::bigint)
WHERE id = 1;

