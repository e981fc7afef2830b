-- The last position every reader may see (-1: none), in this statement's snapshot: the highest
-- position below the horizon, (xmin + xid_offset) << 16, where the oldest transaction still
-- running numbers its events. Every transaction with a smaller id has ended and every later one
-- gets a larger id, so nothing can ever appear at or below this position again (see the crate
-- documentation). read_all.sql, read_all_filtered.sql and notify_head.sql compute the same.
SELECT coalesce((SELECT max(e.position) FROM runnel_events e WHERE e.position < b.horizon), -1)
FROM (SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + xid_offset) << 16
               AS horizon
      FROM runnel_log_head
      WHERE id = 1) AS b
