-- Runnel's PostgreSQL schema, version 1.
--
-- Every name column is COLLATE "C": listings are ordered byte by byte (UTF-8 byte order), as
-- the embedded engine orders them, whatever the database's default collation.

-- The single row that numbers the log. A group commit takes it FOR UPDATE and holds the lock to
-- its COMMIT, so positions are assigned, and become visible, in commit order (see the crate
-- documentation).
CREATE TABLE runnel_log_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    -- The position the next event gets: the number of events written so far.
    next_position bigint NOT NULL CHECK (next_position >= 0),
    -- The recorded_at of the last group commit, so that recorded_at never goes back in position
    -- order even if the database's clock does.
    last_recorded_at timestamptz NOT NULL
);
INSERT INTO runnel_log_head (id, next_position, last_recorded_at) VALUES (1, 0, '-infinity');

-- The log: one row per event, numbered by position.
CREATE TABLE runnel_events (
    position bigint PRIMARY KEY CHECK (position >= 0),
    stream_type text COLLATE "C" NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    revision bigint NOT NULL CHECK (revision >= 0),
    id uuid NOT NULL UNIQUE,
    event_type text COLLATE "C" NOT NULL,
    -- JSON data as the client wrote it (text, not jsonb, which would reorder keys and drop
    -- whitespace); binary data as bytes with its media type. Exactly one of the two is set.
    data_json text,
    data_binary bytea,
    content_type text,
    metadata text,
    recorded_at timestamptz NOT NULL,
    UNIQUE (stream_type, stream_id, revision),
    CHECK ((data_json IS NULL) <> (data_binary IS NULL)),
    CHECK ((data_binary IS NULL) = (content_type IS NULL))
);

-- One row per stream that has events.
CREATE TABLE runnel_streams (
    stream_type text COLLATE "C" NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    last_revision bigint NOT NULL CHECK (last_revision >= 0),
    -- The recorded_at of the stream's first and last events.
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

-- How many streams each type has, kept by the group commit, so that listing types never counts.
CREATE TABLE runnel_stream_types (
    stream_type text COLLATE "C" PRIMARY KEY,
    streams bigint NOT NULL CHECK (streams > 0)
);
