"""Facts, the billing rules and decide(), invoices: pure code shared by every path.

Nothing here imports faust, aiokafka or duckdb except `ledger.sink` and `replay.facts_sql`
(the DuckDB edges); tests/unit/test_layering.py enforces it.
"""
