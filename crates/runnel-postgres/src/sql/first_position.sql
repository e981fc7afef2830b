-- The first statement of every group commit after its streams' locks: gives the transaction its
-- id and returns the position of its first event, (xid + xid_offset) << 16, one more for each
-- further event (up to 65,536). The id is fixed for the transaction's life, so every later
-- statement of it (insert_events.sql, append_any.sql) computes the same first position.
SELECT (pg_current_xact_id()::text::bigint + xid_offset) << 16
FROM runnel_log_head
WHERE id = 1
