-- A filtered page of $all: matching events among positions $1 to min($2, head), at most $3.
-- Each filter list ($4 stream types, $5 event types, $6 streams as 'type/id') matches when it is
-- empty or holds the event's value. The window bounds how much one page scans. Rows as in
-- read_all.sql.
SELECT h.last, e.position, e.stream_type, e.stream_id, e.revision, e.id, e.event_type,
       e.data_json, e.data_binary, e.content_type, e.metadata, e.recorded_at
FROM (SELECT next_position - 1 AS last FROM runnel_log_head WHERE id = 1) h
LEFT JOIN LATERAL (
    SELECT *
    FROM runnel_events ev
    WHERE ev.position >= $1 AND ev.position <= least($2, h.last)
      AND (cardinality($4::text[]) = 0 OR ev.stream_type = ANY($4::text[]))
      AND (cardinality($5::text[]) = 0 OR ev.event_type = ANY($5::text[]))
      AND (cardinality($6::text[]) = 0 OR ev.stream_type || '/' || ev.stream_id = ANY($6::text[]))
    ORDER BY ev.position
    LIMIT $3
) e ON true
ORDER BY e.position
