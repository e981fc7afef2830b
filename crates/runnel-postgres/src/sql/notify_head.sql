-- Tells every node's listener the new last position; delivered only if the transaction commits.
-- $1: the channel, $2: '<schema> <last position>'.
SELECT pg_notify($1, $2)
