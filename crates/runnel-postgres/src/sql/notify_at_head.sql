-- Tells every node's listener the new last position, as take_head.sql moved it in this
-- transaction; delivered only if the transaction commits. $1: the channel, $2: the schema.
SELECT pg_notify($1, $2 || ' ' || (next_position - 1)::text)
FROM runnel_log_head
WHERE id = 1
