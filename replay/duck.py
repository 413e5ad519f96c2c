"""The batch path's DuckDB connection: memory bounded, spilling to a private temporary directory.

The events of a run live in DuckDB (`replay.events_source`), not in Python; with DuckDB's default
limit (80 % of the machine's memory) a large input would grow the process until the machine
swaps. With a limit, DuckDB writes what does not fit (the rows table, big aggregations) to a
temporary directory of its own, removed when the process ends, so the resident memory follows
the state (facts and decisions), not the input. `SEATLEDGER_REPLAY_MEMORY` sets the limit
(DuckDB's syntax, e.g. "4GB").
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import duckdb

DEFAULT_MEMORY_LIMIT = "2GB"


def batch_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the batch path's memory limit and spill directory."""
    con = duckdb.connect()
    spill = tempfile.mkdtemp(prefix="seatledger-duckdb-")
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
    con.execute(f"SET temp_directory = '{_quoted(spill)}'")
    limit = os.environ.get("SEATLEDGER_REPLAY_MEMORY", DEFAULT_MEMORY_LIMIT)
    con.execute(f"SET memory_limit = '{_quoted(limit)}'")
    return con


def _quoted(text: str) -> str:
    return text.replace("'", "''")


__all__ = ["batch_connection", "DEFAULT_MEMORY_LIMIT"]
