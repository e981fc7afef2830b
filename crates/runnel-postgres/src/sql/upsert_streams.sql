-- The new heads of the streams a group commit wrote, one row per stream. $4: recorded_at.
INSERT INTO runnel_streams (stream_type, stream_id, last_revision, created_at, updated_at)
SELECT s.stream_type, s.stream_id, s.last_revision, $4, $4
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS s (stream_type, stream_id, last_revision)
ON CONFLICT (stream_type, stream_id) DO UPDATE
SET last_revision = excluded.last_revision,
    updated_at = excluded.updated_at
