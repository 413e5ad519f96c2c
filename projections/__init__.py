"""Facts, the billing rules and decide(), invoices: pure code shared by every path.

Nothing here imports an I/O library (faust, aiokafka, duckdb, pyarrow, ...): the layer contract in
pyproject.toml, checked by lint-imports, enforces it.
"""
