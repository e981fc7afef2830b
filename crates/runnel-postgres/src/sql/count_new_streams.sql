-- Counts the streams a group commit created, per type. $1: one type per new stream.
INSERT INTO runnel_stream_types (stream_type, streams)
SELECT t.stream_type, count(*)
FROM unnest($1::text[]) AS t (stream_type)
GROUP BY t.stream_type
ON CONFLICT (stream_type) DO UPDATE
SET streams = runnel_stream_types.streams + excluded.streams
