-- A filtered page of $all: among the next $2 events from position $1 up to the last visible
-- one (as in read_all.sql), those that match, at most $3. Positions have gaps, so the scan is
-- bounded by a number of events, not by a span of positions; it stops as soon as the page is
-- full. Each filter list ($4 stream types, $5 event types, $6 streams as 'type/id') matches
-- when it is empty or holds the event's value. Rows as in read_all.sql.
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
    FROM (SELECT *
          FROM runnel_events ev
          WHERE ev.position >= $1 AND ev.position <= h.last
          ORDER BY ev.position
          LIMIT $2) AS scanned
    WHERE (cardinality($4::text[]) = 0 OR scanned.stream_type = ANY($4::text[]))
      AND (cardinality($5::text[]) = 0 OR scanned.event_type = ANY($5::text[]))
      AND (cardinality($6::text[]) = 0
           OR scanned.stream_type || '/' || scanned.stream_id = ANY($6::text[]))
    ORDER BY scanned.position
    LIMIT $3
) e ON true
ORDER BY e.position
