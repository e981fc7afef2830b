-- The first write of a group commit planned before the lock: takes the log head's row lock
-- (held until COMMIT; waiting for it re-reads the row as the previous holder committed it),
-- moves the head past the batch's $1 events, and stamps the batch's recorded_at from the
-- database's clock (never before the last one). Returns the batch's first position.
UPDATE runnel_log_head
SET next_position = next_position + $1,
    last_recorded_at = greatest(clock_timestamp(), last_recorded_at)
WHERE id = 1
RETURNING next_position - $1 AS first_position
