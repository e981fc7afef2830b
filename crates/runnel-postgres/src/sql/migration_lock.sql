-- Serialises migrations of this schema, across processes, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('runnel.migrate.' || coalesce(current_schema(), '')))
