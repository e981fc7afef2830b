-- The new heads of the streams a planned group commit writes, one row per stream, in the order
-- given (the writer sorts them, so that two transactions lock shared streams in one order and
-- never deadlock). Runs before insert_events.sql: a plan made stale by a concurrent commit
-- waits here for that commit's row lock, then fails on the events' unique revisions.
INSERT INTO runnel_streams (stream_type, stream_id, last_revision, created_at, updated_at)
SELECT s.stream_type, s.stream_id, s.last_revision, now(), now()
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s (stream_type, stream_id, last_revision)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET last_revision = excluded.last_revision,
    updated_at = excluded.updated_at
