-- The highest applied migration, NULL when none; fails if the table does not exist.
SELECT max(version) FROM runnel_schema_migrations
