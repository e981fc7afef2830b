-- What a store checks about the database before it uses it.
SELECT current_schema(), current_setting('server_encoding')
