"""The DuckDB ledger: its SQL models, and the writer that turns snapshot messages into rows."""
