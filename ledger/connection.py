"""Opening the ledger's DuckDB file, which only one process may hold read-write at a time.

Connections are short: the sink opens the file, writes one batch and closes it, so analysts and
commands can open it read-only between batches. Both sides wait (with backoff) while the other
holds the lock, and give up with DatabaseBusy after a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb


class DatabaseBusy(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole timeout."""


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Execute and fetch everything: DuckDB 2 refuses new work while a result is unfinished."""
    return con.execute(sql, params or []).fetchall()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    timeout: float = 10.0,
    on_wait: Callable[[float], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying with backoff while another process holds its lock.

    `on_wait(seconds_waited)` is called once if a wait was needed. Raises DatabaseBusy after
    `timeout` seconds (0: one attempt).
    """
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= timeout:
                raise DatabaseBusy(f"{path} is locked by another process (waited {waited:.1f}s): {exc}") from exc
            time.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(delay * 2, 0.25)
            continue
        waited = time.monotonic() - start
        if on_wait is not None and waited > 0.001:
            on_wait(waited)
        return con


@contextmanager
def read_connection(path: Path | str, timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """For analysts and commands: a read-only connection held only for the `with` block.

    Waits while the sink is writing a batch (usually well under a second). Keep the block short:
    while it is open the sink cannot write and buffers in memory.
    """
    con = connect(path, read_only=True, timeout=timeout)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def write_connection(
    path: Path | str, timeout: float = 10.0, on_wait: Callable[[float], None] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection (the file and its folder created if missing) for the `with` block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = connect(path, timeout=timeout, on_wait=on_wait)
    try:
        yield con
    finally:
        con.close()
