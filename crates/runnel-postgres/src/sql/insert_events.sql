-- The events of a planned group commit, one array per column: $1 holds each event's offset
-- from the transaction's first position (see first_position.sql). recorded_at is the time
-- the transaction began, the same for every statement of it.
INSERT INTO runnel_events (position, stream_type, stream_id, revision, id, event_type,
                           data_json, data_binary, content_type, metadata, recorded_at)
SELECT h.first_position + e.offset_in_batch, e.stream_type, e.stream_id, e.revision, e.id,
       e.event_type, e.data_json, e.data_binary, e.content_type, e.metadata, now()
FROM (SELECT (pg_current_xact_id()::text::bigint + xid_offset) << 16 AS first_position
      FROM runnel_log_head
      WHERE id = 1) AS h
CROSS JOIN unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
                  $7::text[], $8::bytea[], $9::text[], $10::text[])
  AS e (offset_in_batch, stream_type, stream_id, revision, id, event_type,
        data_json, data_binary, content_type, metadata)
