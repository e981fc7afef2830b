-- A page of $all: events from position $1 up to the head, at most $2. The head comes from the
-- same statement, hence the same snapshot: every event up to it is visible here. Always one
-- row at least; event columns are NULL when the page is empty, and `last` is -1 when the log is.
SELECT h.last, e.position, e.stream_type, e.stream_id, e.revision, e.id, e.event_type,
       e.data_json, e.data_binary, e.content_type, e.metadata, e.recorded_at
FROM (SELECT next_position - 1 AS last FROM runnel_log_head WHERE id = 1) h
LEFT JOIN LATERAL (
    SELECT *
    FROM runnel_events ev
    WHERE ev.position >= $1 AND ev.position <= h.last
    ORDER BY ev.position
    LIMIT $2
) e ON true
ORDER BY e.position
