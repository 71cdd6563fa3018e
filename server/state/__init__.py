"""Storage: tables, the database engine, keyword-only query helpers, Redis stores. No rules."""
