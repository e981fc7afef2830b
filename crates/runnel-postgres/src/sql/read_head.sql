-- The next free position: the last committed position plus one (0: the log is empty).
SELECT next_position FROM runnel_log_head WHERE id = 1
