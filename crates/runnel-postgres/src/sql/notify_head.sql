-- Sent after every group commit's COMMIT, outside its transaction: tells every node's listener
-- the last position readers may now see, and returns it to the writer. A NOTIFY inside the
-- transaction would take PostgreSQL's database-wide notification lock and hold it through the
-- WAL flush, and commits could no longer share flushes.
-- $1: the channel, $2: the schema. The payload is '<schema> <last visible position>'.
SELECT h.last, pg_notify($1, $2 || ' ' || h.last::text)
FROM (SELECT runnel_visible_head() AS last) AS h
