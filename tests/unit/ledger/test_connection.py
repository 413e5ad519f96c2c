"""Opening the ledger file while another process holds it."""

from __future__ import annotations

import multiprocessing
import time
from contextlib import contextmanager

import duckdb
import pytest

from ledger.connection import DatabaseBusy, SharedReadOnly, connect, run, write_connection
from ledger.tables import ensure_schema


def _hold(path, read_only, seconds, ready):
    con = duckdb.connect(str(path), read_only=read_only)
    ready.set()
    time.sleep(seconds)
    con.close()


@contextmanager
def held_by_another_process(path, read_only: bool, seconds: float = 1.0):
    """The block runs once another process opened the file (read-only or for writing); that
    process closes it `seconds` later."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold, args=(path, read_only, seconds, ready))
    p.start()
    try:
        assert ready.wait(30)
        yield
    finally:
        p.join(10)


def test_connect_waits_for_a_reader_in_another_process(tmp_path):
    path = tmp_path / "l.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
    with held_by_another_process(path, read_only=True):
        with pytest.raises(DatabaseBusy):
            connect(path, timeout=0.1)
        waits = []
        t0 = time.monotonic()
        con = connect(path, timeout=10, on_wait=waits.append)
        con.close()
        assert 0.3 < time.monotonic() - t0 < 5 and waits


def _can_write(path, answer):
    try:
        duckdb.connect(str(path)).close()
        answer.put(True)
    except duckdb.IOException:
        answer.put(False)


def writable_from_another_process(path) -> bool:
    ctx = multiprocessing.get_context("spawn")
    answer = ctx.Queue()
    p = ctx.Process(target=_can_write, args=(path, answer))
    p.start()
    p.join(30)
    return answer.get(timeout=5)


def test_shared_read_only_holds_the_file_while_any_read_lasts_and_releases_it_after(tmp_path):
    path = tmp_path / "l.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
        run(con, "INSERT INTO month_completions VALUES ('2026-10', 1, now(), 1)")
    shared = SharedReadOnly(path)
    with shared.cursor() as first:
        with shared.cursor() as second:  # overlapping reads share one attachment
            assert run(second, "SELECT month FROM month_completions") == [("2026-10",)]
        assert not writable_from_another_process(path)  # the first read still holds it
        assert run(first, "SELECT count(*) FROM month_completions") == [(1,)]
    assert writable_from_another_process(path)  # released after the last read
    with write_connection(path) as con:
        run(con, "INSERT INTO month_completions VALUES ('2026-11', 1, now(), 2)")
    with shared.cursor() as again:  # attached again: sees what was written in between
        assert run(again, "SELECT count(*) FROM month_completions") == [(2,)]


def test_shared_read_only_waits_for_a_writer_then_gives_up(tmp_path):
    path = tmp_path / "l.duckdb"
    with write_connection(path) as con:
        ensure_schema(con)
    with held_by_another_process(path, read_only=False):
        with pytest.raises(DatabaseBusy), SharedReadOnly(path, timeout=0.1).cursor():
            pass
        t0 = time.monotonic()
        with SharedReadOnly(path, timeout=10).cursor() as cur:
            assert run(cur, "SELECT count(*) FROM month_completions") == [(0,)]
        assert 0.3 < time.monotonic() - t0 < 5
