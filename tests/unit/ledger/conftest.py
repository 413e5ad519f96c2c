"""The ledger's tests write to a real DuckDB file in tmp."""

from __future__ import annotations

import duckdb
import pytest

from ledger.tables import ensure_schema


@pytest.fixture
def db(tmp_path):
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"))
    ensure_schema(con)
    yield con
    con.close()
