-- Sent after every group commit's COMMIT, outside its transaction: tells every node's listener
-- the last position readers may now see (as read_head.sql computes it), and returns it to the writer. A NOTIFY inside the
-- transaction would take PostgreSQL's database-wide notification lock and hold it through the
-- WAL flush, and commits could no longer share flushes.
-- $1: the channel, $2: the schema. The payload is '<schema> <last visible position>'.
SELECT h.last, pg_notify($1, $2 || ' ' || h.last::text)
FROM (SELECT coalesce((SELECT max(e.position) FROM runnel_events e WHERE e.position < b.horizon),
                      -1) AS last
      FROM (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + xid_offset) << 16
                     AS horizon
            FROM runnel_log_head
            WHERE id = 1) AS b) AS h
