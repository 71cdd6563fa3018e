"""Storage: tables, the database engine, keyword-only query helpers and the Redis stores. No rules."""
