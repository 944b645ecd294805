"""Storage: tables, migrations, repositories and the audit chain, on SQLite or PostgreSQL."""
