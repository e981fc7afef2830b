-- Where client-chosen event ids already live, for retries and duplicate checks. $1: the ids.
SELECT id, stream_type, stream_id, revision, position
FROM runnel_events
WHERE id = ANY($1::uuid[])
