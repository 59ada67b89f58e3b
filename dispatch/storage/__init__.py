"""PostgreSQL adapters: embedded server, pool, migrations and repositories."""
