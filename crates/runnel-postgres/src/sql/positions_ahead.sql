-- Whether a stored position lies at or above where the next transaction would number its
-- events: transaction ids behind the log (see check_positions).
SELECT coalesce((SELECT max(position) FROM runnel_events), -1)
       >= ((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + xid_offset) << 16)
FROM runnel_log_head
WHERE id = 1
