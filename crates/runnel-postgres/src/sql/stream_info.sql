SELECT last_revision, created_at, updated_at
FROM runnel_streams
WHERE stream_type = $1 AND stream_id = $2
