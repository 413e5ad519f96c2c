"""Opening the ledger file while another process holds it."""

from __future__ import annotations

import multiprocessing
import time

import duckdb
import pytest

from ledger.connection import DatabaseBusy, attached, connect, run, write_connection
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


def _hold_for_writing(path, seconds, ready):
    con = duckdb.connect(str(path))
    ready.set()
    time.sleep(seconds)
    con.close()


def test_attached_reads_the_file_only_inside_the_block_and_waits_for_a_writer(tmp_path):
    path = tmp_path / "l.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
        run(con, "INSERT INTO month_completions VALUES ('2026-10', 1, now(), 1)")
    mem = duckdb.connect(":memory:")
    for _ in range(2):  # the same in-memory connection, attached again
        with attached(mem, path):
            assert run(mem, "SELECT month FROM month_completions") == [("2026-10",)]
        with write_connection(path, timeout=0) as con:  # released: a writer gets it at once
            run(con, "SELECT 1")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_for_writing, args=(path, 1.0, ready))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(DatabaseBusy), attached(mem, path, timeout=0.1):
            pass
        t0 = time.monotonic()
        with attached(mem, path, timeout=10):
            assert run(mem, "SELECT count(*) FROM month_completions") == [(1,)]
        assert 0.3 < time.monotonic() - t0 < 5
    finally:
        p.join(10)
