-- The first statement of every group commit: takes the log head's row lock, which is held until
-- COMMIT, and the batch's recorded_at from the database's clock (never before the last one).
SELECT next_position,
       greatest(clock_timestamp(), last_recorded_at) AS recorded_at
FROM runnel_log_head
WHERE id = 1
FOR UPDATE
