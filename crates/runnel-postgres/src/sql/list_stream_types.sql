-- Stream types after $1 ('' for the first page) in byte order, at most $2.
SELECT stream_type, streams
FROM runnel_stream_types
WHERE stream_type > $1
ORDER BY stream_type
LIMIT $2
