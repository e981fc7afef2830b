-- A group commit whose appends all take their streams as they are (expected revision "any"),
-- after first_position.sql in the same transaction. Nothing was read beforehand: each stream's
-- events are numbered here from its head as committed, whose row this statement locks (in the
-- order given: the writer sorts the streams) until COMMIT. Returns each stream's first
-- revision in the batch.
--
-- $1, $2, $3: per stream, its type, its id and how many events the batch appends to it.
-- $4 … $13: per event, its offset from the batch's first position, its stream's type and id,
-- its offset among the batch's events of that stream, then id, type, data, metadata.
WITH batch_head AS (
    SELECT runnel_first_position() AS first_position, now() AS recorded_at
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
SELECT wr.stream_type, wr.stream_id, wr.first_revision FROM written AS wr
