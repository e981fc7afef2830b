-- The new heads of the streams a group commit planned before the lock wrote, one row per
-- stream, stamped with the recorded_at take_head.sql set in the same transaction.
INSERT INTO runnel_streams (stream_type, stream_id, last_revision, created_at, updated_at)
SELECT s.stream_type, s.stream_id, s.last_revision, h.last_recorded_at, h.last_recorded_at
FROM (SELECT last_recorded_at FROM runnel_log_head WHERE id = 1) AS h
CROSS JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS s (stream_type, stream_id, last_revision)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET last_revision = excluded.last_revision,
    updated_at = excluded.updated_at
