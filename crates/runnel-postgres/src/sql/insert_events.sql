-- The events of a group commit planned before the lock, one array per column, after
-- take_head.sql in the same transaction: $1 holds each event's offset from the batch's first
-- position, which is the head as this transaction moved it minus $11, the number of events.
INSERT INTO runnel_events (position, stream_type, stream_id, revision, id, event_type,
                           data_json, data_binary, content_type, metadata, recorded_at)
SELECT h.first_position + e.offset_in_batch, e.stream_type, e.stream_id, e.revision, e.id,
       e.event_type, e.data_json, e.data_binary, e.content_type, e.metadata, h.recorded_at
FROM (SELECT next_position - $11 AS first_position, last_recorded_at AS recorded_at
      FROM runnel_log_head
      WHERE id = 1) AS h
CROSS JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
                  $7::text[], $8::bytea[], $9::text[], $10::text[])
  AS e (offset_in_batch, stream_type, stream_id, revision, id, event_type,
        data_json, data_binary, content_type, metadata)
