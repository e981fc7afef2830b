-- Moves new positions above every stored one when transaction ids have fallen behind them (a
-- database restored from a logical dump starts its ids again from low numbers); changes nothing
-- otherwise. Runs in the migration's transaction, whose id is below every later one's. Returns
-- a row only when it moved them.
UPDATE runnel_log_head
SET xid_offset = (SELECT max(position) FROM runnel_events) / 65536 + 1
                 - pg_current_xact_id()::text::bigint
WHERE id = 1
  AND (SELECT max(position) FROM runnel_events) / 65536 + 1
      > pg_current_xact_id()::text::bigint + xid_offset
RETURNING xid_offset
