"""Database backends: Django's own, subclassed (Django's docs, "Subclassing the built-in database
backends"), so that what a connection needs to serve the join path lives with the connection
and not in the app: SQLite's pragmas, its writers' lock and its checkpointer thread; on both,
`fetch_one`, which runs one prepared statement with as little as is safe between it and the
database. settings.py names them in ENGINE whatever DATABASE_URL's scheme."""
