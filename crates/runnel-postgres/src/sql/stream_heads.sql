-- The current heads of the streams a group commit writes to. $1, $2: their types and ids.
SELECT s.stream_type, s.stream_id, s.last_revision
FROM runnel_streams s
JOIN unnest($1::text[], $2::text[]) AS wanted (stream_type, stream_id)
  ON s.stream_type = wanted.stream_type AND s.stream_id = wanted.stream_id
