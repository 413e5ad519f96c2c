"""The dispute view and its apply, for the account page: `seatledger dispute --user U [--apply]`'s
own functions (replay.dispute.build_report, apply_report with streams.corrections'
send_corrections), run in a separate process.

Why a process: the report reads the ledger file with its own read-only connection
(replay.verify.read_db), and closing that connection would drop this process's POSIX lock on the
file while the API's shared attachment (ledger.connection.SharedReadOnly) still relies on it. One
worker process, started on first use, does every recomputation and apply, one at a time.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from projections.calendar import Month
from projections.prices import PriceBook
from replay.dispute import DisputeError, apply_report, build_report
from streams.corrections import send_corrections
from streams.settings import Settings

# A dispute's ticket reference, in the console's form and `seatledger dispute --apply --reference`
# (fullmatch): it names the correction in the ledger's reasons (`dispute:SUP-1234`) and outputs.
TICKET = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TICKET_RULE = "a ticket reference is 1-64 of A-Z a-z 0-9 . _ : - (e.g. SUP-1234)"

__all__ = ["DisputeError", "Disputes"]


def _report(settings: Settings, company: str, month: str, user: str) -> Any:
    prices = PriceBook.load(settings.prices) if settings.prices else None
    return build_report(settings.archive_dir, settings.db, company, Month.parse(month), user_id=user, prices=prices)


def report_json(settings: Settings, company: str, month: str, user: str) -> dict:
    """The dispute report of one account, as `seatledger dispute --user U --format json` prints it."""
    return _report(settings, company, month, user).to_json()


def apply_json(
    settings: Settings, company: str, month: str, user: str, ticket: str, requested_by: str, timeout: float
) -> dict:
    """`seatledger dispute --user U --apply --reference TICKET`: what the sink stored."""
    report = _report(settings, company, month, user)
    send = partial(send_corrections, settings)
    result = apply_report(report, send, settings.db, ticket, requested_by, timeout=timeout)
    return {
        "ticket": result.ticket,
        "already": result.already,
        "published": result.published,
        "versions": [{"user_id": v["user_id"], "version": v["version"]} for v in result.stored_versions],
        "adjustments": len(result.adjustments),
    }


class Disputes:
    """The worker process for dispute reports and applies."""

    def __init__(self, settings: Settings, timeout: float):
        self.settings = settings
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def has_archive(self) -> bool:
        return self.settings.archive_dir.is_dir()

    def _run(self, fn, *args) -> Any:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            pool = self._pool
        return pool.submit(fn, self.settings, *args).result()

    def report(self, company: str, month: str, user: str) -> dict:
        """The report's JSON; DisputeError when the archive or the database cannot be read."""
        if not self.has_archive:
            raise DisputeError(f"no event archive at {self.settings.archive_dir} (SEATLEDGER_ARCHIVE_ROOT)")
        return self._run(report_json, company, month, user)

    def apply(self, company: str, month: str, user: str, ticket: str, requested_by: str) -> dict:
        if not self.has_archive:
            raise DisputeError(f"no event archive at {self.settings.archive_dir} (SEATLEDGER_ARCHIVE_ROOT)")
        return self._run(apply_json, company, month, user, ticket, requested_by, self.timeout)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)
