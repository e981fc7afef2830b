-- The first statement of every group commit, before the transaction has an id: takes a
-- transaction-scoped advisory lock per stream it writes ($1, $2: their types and ids), in key
-- order, so that two transactions sharing streams wait for each other in one order and never
-- deadlock. The transaction gets its id (first_position.sql) only once it holds them, so of two
-- transactions that write one stream, the one that writes it first has the smaller id and the
-- lower positions: a stream's revisions grow in position order. An advisory lock needs no row,
-- so it covers a stream that does not exist yet too.
SELECT pg_advisory_xact_lock(keys.key)
FROM (SELECT DISTINCT hashtextextended(current_schema() || ' ' || s.stream_type || '/'
                                       || s.stream_id, 0) AS key
      FROM unnest($1::text[], $2::text[]) AS s (stream_type, stream_id)
      ORDER BY key
      OFFSET 0) AS keys
