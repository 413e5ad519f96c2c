"""Opening the ledger's DuckDB file, which only one process may hold read-write at a time.

Connections are short: the sink opens the file, writes one batch and closes it, so analysts and
commands can open it read-only between batches. Both sides wait (with backoff) while the other
holds the lock, and give up with DatabaseBusy after a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")

MAX_RETRY_DELAY_S = 0.25  # the longest pause between two attempts to open a locked file


class DatabaseBusy(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole timeout."""


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Execute and fetch everything: DuckDB 2 refuses new work while a result is unfinished."""
    return con.execute(sql, params or []).fetchall()


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _waiting(attempt: Callable[[], T], path: Path | str, timeout: float, on_wait: Callable[[float], None] | None) -> T:
    """`attempt()`, retried with backoff while another process holds the file's lock."""
    start = time.monotonic()
    delay = 0.005
    while True:
        try:
            result = attempt()
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if waited >= timeout:
                raise DatabaseBusy(f"{path} is locked by another process (waited {waited:.1f}s): {exc}") from exc
            time.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(delay * 2, MAX_RETRY_DELAY_S)
            continue
        waited = time.monotonic() - start
        if on_wait is not None and waited > 0.001:
            on_wait(waited)
        return result


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
    return _waiting(lambda: duckdb.connect(str(path), read_only=read_only), path, timeout, on_wait)


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


class SharedReadOnly:
    """The file read-only for many short reads at once in one process (a service's requests).

    Each read gets a cursor on one in-memory DuckDB database the file is attached to (READ_ONLY) as
    its default catalog; the file is attached by the first of overlapping reads and detached when
    the last one ends, so between reads the sink can write, as with `read_connection`, without the
    ~30 ms of opening a database per read (attaching costs ~5 ms). One attachment per process on
    purpose: POSIX file locks belong to the process, so a second attachment detaching (another
    in-memory database of the same process) would drop the lock the first still relies on.
    """

    ALIAS = "ledger_file"

    def __init__(self, path: Path | str, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self._db = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._readers = 0

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor reading the file for the `with` block (waits while a writer holds it)."""
        with self._lock:
            if self._readers == 0:
                quoted = str(self.path).replace("'", "''")
                _waiting(
                    lambda: run(self._db, f"ATTACH '{quoted}' AS {self.ALIAS} (READ_ONLY)"),
                    self.path,
                    self.timeout,
                    None,
                )
            self._readers += 1
        cur = self._db.cursor()
        try:
            run(cur, f"USE {self.ALIAS}")
            yield cur
        finally:
            cur.close()
            with self._lock:
                self._readers -= 1
                if self._readers == 0:
                    run(self._db, f"DETACH {self.ALIAS}")
