-- Where a filtered read that did not fill its page stopped scanning: the position of the $3-th
-- event from $1, if there is one at or below $2 (the last visible position that read used).
-- No row: the scan reached $2.
SELECT position
FROM runnel_events
WHERE position >= $1 AND position <= $2
ORDER BY position
OFFSET $3::bigint - 1
LIMIT 1
