-- Moves the log head past a group commit's events. $1: the next free position.
UPDATE runnel_log_head
SET next_position = $1,
    last_recorded_at = $2
WHERE id = 1
