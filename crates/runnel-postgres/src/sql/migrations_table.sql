-- The record of applied migrations; created by `runnel migrate` before anything else.
CREATE TABLE IF NOT EXISTS runnel_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
