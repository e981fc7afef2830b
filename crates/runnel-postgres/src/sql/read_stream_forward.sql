-- A page of one stream, forward from revision $3, at most $4 events. One row with NULL event
-- columns when the stream exists but the page is empty; no row when the stream does not exist.
SELECT s.last_revision, e.revision, e.position, e.id, e.event_type,
       e.data_json, e.data_binary, e.content_type, e.metadata, e.recorded_at
FROM runnel_streams s
LEFT JOIN LATERAL (
    SELECT *
    FROM runnel_events ev
    WHERE ev.stream_type = s.stream_type AND ev.stream_id = s.stream_id AND ev.revision >= $3
    ORDER BY ev.revision
    LIMIT $4
) e ON true
WHERE s.stream_type = $1 AND s.stream_id = $2
ORDER BY e.revision
