-- PostgreSQL used as an event store, in the Message DB style: one table, a unique revision per
-- stream, and a write function that takes a per-stream advisory lock, checks the expected
-- version and numbers the new messages after the stream's last one.

CREATE TABLE messages (
    global_position bigserial PRIMARY KEY,
    stream_name text NOT NULL,
    position bigint NOT NULL,
    type text NOT NULL,
    data jsonb,
    metadata jsonb,
    id uuid NOT NULL UNIQUE,
    time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_name, position)
);

-- Appends _count copies of _data to _stream atomically; _expected (NULL: any) must equal the
-- stream's last position (-1: no stream). Returns the last position written.
CREATE FUNCTION write_messages(
    _stream text, _type text, _data jsonb, _count int, _expected bigint DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    _version bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(_stream));
    SELECT coalesce(max(position), -1) INTO _version FROM messages WHERE stream_name = _stream;
    IF _expected IS NOT NULL AND _expected <> _version THEN
        RAISE EXCEPTION 'wrong expected version % for stream % (current %)',
            _expected, _stream, _version;
    END IF;
    INSERT INTO messages (stream_name, position, type, data, id)
        SELECT _stream, _version + g, _type, _data, gen_random_uuid()
        FROM generate_series(1, _count) AS g;
    RETURN _version + _count;
END
$$;
