"""Opening the ledger file while another process holds it."""

from __future__ import annotations

import multiprocessing
import time

import duckdb
import pytest

from ledger.connection import DatabaseBusy, connect, write_connection
from ledger.tables import ensure_schema


def _hold_open(path, seconds, ready):
    con = duckdb.connect(str(path), read_only=True)
    ready.set()
    time.sleep(seconds)
    con.close()


def test_connect_waits_for_a_reader_in_another_process(tmp_path):
    path = tmp_path / "l.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_open, args=(path, 1.0, ready))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(DatabaseBusy):
            connect(path, timeout=0.1)
        waits = []
        t0 = time.monotonic()
        con = connect(path, timeout=10, on_wait=waits.append)
        con.close()
        assert 0.3 < time.monotonic() - t0 < 5 and waits
    finally:
        p.join(10)
