-- A page of $all: events from position $1 up to the last visible one (read_head.sql), at most
-- $2. The bound comes from the same statement, hence the same snapshot: every event up to it
-- is visible here, and none can appear below it later. Always one row at least; event columns
-- are NULL when the page is empty, and `last` is -1 when nothing is visible.
WITH h AS MATERIALIZED (
    -- The last visible position (-1: none), once: see read_head.sql.
    SELECT coalesce((SELECT max(e.position) FROM runnel_events e WHERE e.position < b.horizon),
                    -1) AS last
    FROM (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + xid_offset) << 16
                   AS horizon
          FROM runnel_log_head
          WHERE id = 1) AS b
)
SELECT h.last, e.position, e.stream_type, e.stream_id, e.revision, e.id, e.event_type,
       e.data_json, e.data_binary, e.content_type, e.metadata, e.recorded_at
FROM h
LEFT JOIN LATERAL (
    SELECT *
    FROM runnel_events ev
    WHERE ev.position >= $1 AND ev.position <= h.last
    ORDER BY ev.position
    LIMIT $2
) e ON true
ORDER BY e.position
