-- Streams of type $1 after id $2 ('' for the first page) in byte order, at most $3.
SELECT stream_id, last_revision, created_at, updated_at
FROM runnel_streams
WHERE stream_type = $1 AND stream_id > $2
ORDER BY stream_id
LIMIT $3
