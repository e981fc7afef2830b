-- A whole group commit whose appends all take their streams as they are (expected revision
-- "any"), in one statement run as its own transaction: PostgreSQL commits it, WAL flush
-- included, before it answers, and one message each way carries it. Nothing was read
-- beforehand: each stream's events are numbered here from its head as committed.
--
-- In order, as each step needs the one before: the streams' advisory locks (as lock_streams.sql
-- takes them, before the transaction has an id), then the transaction's id and first position
-- (as first_position.sql computes it), then the writes. Returns each stream's first revision in
-- the batch, and the batch's first position.
--
-- $1, $2, $3: per stream, its type, its id and how many events the batch appends to it.
-- $4 … $13: per event, its offset from the batch's first position, its stream's type and id,
-- its offset among the batch's events of that stream, then id, type, data, metadata.
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(keys.key)) AS streams
    FROM (SELECT DISTINCT hashtextextended(current_schema() || ' ' || s.stream_type || '/'
                                           || s.stream_id, 0) AS key
          FROM unnest($1::text[], $2::text[]) AS s (stream_type, stream_id)
          ORDER BY key
          OFFSET 0) AS keys
), batch_head AS MATERIALIZED (
    -- The filter on `locked` is evaluated before the row's columns are: every lock is held
    -- before pg_current_xact_id() gives the transaction its id.
    SELECT (pg_current_xact_id()::text::bigint + xid_offset) << 16 AS first_position,
           now() AS recorded_at
    FROM runnel_log_head
    WHERE id = 1 AND (SELECT streams FROM locked) >= 0
), heads AS (
    INSERT INTO runnel_streams AS s (stream_type, stream_id, last_revision, created_at, updated_at)
    SELECT w.stream_type, w.stream_id, w.events - 1, h.recorded_at, h.recorded_at
    FROM batch_head AS h
    CROSS JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS w (stream_type, stream_id, events)
    ON CONFLICT (stream_type, stream_id) DO UPDATE
    SET last_revision = s.last_revision + excluded.last_revision + 1,
        updated_at = excluded.updated_at
    RETURNING s.stream_type, s.stream_id, s.last_revision
), written AS (
    SELECT hd.stream_type, hd.stream_id, hd.last_revision - w.events + 1 AS first_revision
    FROM heads AS hd
    JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS w (stream_type, stream_id, events)
      ON hd.stream_type = w.stream_type AND hd.stream_id = w.stream_id
), counted AS (
    INSERT INTO runnel_stream_types (stream_type, streams)
    SELECT wr.stream_type, count(*)
    FROM written AS wr
    WHERE wr.first_revision = 0
    GROUP BY wr.stream_type
    ON CONFLICT (stream_type) DO UPDATE
    SET streams = runnel_stream_types.streams + excluded.streams
), inserted AS (
    INSERT INTO runnel_events (position, stream_type, stream_id, revision, id, event_type,
                               data_json, data_binary, content_type, metadata, recorded_at)
    SELECT h.first_position + e.offset_in_batch, e.stream_type, e.stream_id,
           wr.first_revision + e.offset_in_stream, e.id, e.event_type,
           e.data_json, e.data_binary, e.content_type, e.metadata, h.recorded_at
    FROM batch_head AS h
    CROSS JOIN unnest($4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::uuid[],
                      $9::text[], $10::text[], $11::bytea[], $12::text[], $13::text[])
      AS e (offset_in_batch, stream_type, stream_id, offset_in_stream, id, event_type,
            data_json, data_binary, content_type, metadata)
    JOIN written AS wr ON wr.stream_type = e.stream_type AND wr.stream_id = e.stream_id
)
SELECT wr.stream_type, wr.stream_id, wr.first_revision, h.first_position
FROM written AS wr
CROSS JOIN batch_head AS h
