-- The events of one group commit, one array per column. $11: the batch's recorded_at.
INSERT INTO runnel_events (position, stream_type, stream_id, revision, id, event_type,
                           data_json, data_binary, content_type, metadata, recorded_at)
SELECT e.position, e.stream_type, e.stream_id, e.revision, e.id, e.event_type,
       e.data_json, e.data_binary, e.content_type, e.metadata, $11
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
            $7::text[], $8::bytea[], $9::text[], $10::text[])
  AS e (position, stream_type, stream_id, revision, id, event_type,
        data_json, data_binary, content_type, metadata)
