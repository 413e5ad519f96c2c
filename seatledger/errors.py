"""Exit codes, and which expected errors end a command with which code and message.

Every command exits 0 when done, and otherwise:
  1 FOUND    the command ran and found a problem: invalid or conflicting events (`replay --strict`), rejected
             lines (`publish`), drift (`verify`), no issued invoice, a broker or topics that could
             not be set up, a demo that did not finish;
  2 USAGE    unusable input: a missing file, an input without a single valid event, a bad month or
             format, an unknown company or ruleset, an unusable price book, no archive or database;
  3 SERVICE  Kafka, the sink or the database failed.
An expected error prints one line, `error: <message>`, on stderr and no traceback; anything else
is a bug and keeps its traceback. The commands that talk to Kafka (publish, close, archive, topics
create) also turn a failing broker into a message with its address.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import typer

FOUND = 1
USAGE = 2
SERVICE = 3


@cache
def exit_codes() -> tuple[tuple[type[BaseException], int], ...]:
    """The expected errors and their exit codes, most specific first.

    Imported on first use, that is when an error happened: a command that succeeds does not pay
    for importing the packages it did not use.
    """
    from devtools.demo import DemoError
    from devtools.local_broker import BrokerError
    from ledger.connection import DatabaseBusy
    from ledger.invoicing import InvoiceNotIssued
    from projections.prices import PriceBookError
    from projections.rulesets import UnknownRuleset
    from replay.events_source import SourceError
    from replay.month import UnknownCompany
    from replay.verify import VerifyError

    return (
        (SourceError, USAGE),
        (PriceBookError, USAGE),
        (UnknownCompany, USAGE),
        (UnknownRuleset, USAGE),
        (VerifyError, USAGE),  # and DisputeError, a VerifyError: no archive, no database, no such month
        (OSError, USAGE),  # a file to read or write
        (InvoiceNotIssued, FOUND),
        (BrokerError, FOUND),
        (DemoError, FOUND),
        (DatabaseBusy, SERVICE),
    )


def exit_code(exc: BaseException) -> int | None:
    """The exit code of an expected error; None for anything else."""
    return next((code for kind, code in exit_codes() if isinstance(exc, kind)), None)


def message(exc: BaseException) -> str:
    """The one-line text of an expected error."""
    if isinstance(exc, KeyError) and exc.args:  # UnknownRuleset: str() of a KeyError adds quotes
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


def fail(text: str, code: int = USAGE) -> typer.Exit:
    """Print `error: <text>` on stderr; the exit to raise."""
    typer.echo(f"error: {text}", err=True)
    return typer.Exit(code)


@contextmanager
def expected_errors(code: int | None = None) -> Iterator[None]:
    """Turn the expected errors raised inside into their message and exit code (or `code`, when
    given: e.g. a DisputeError while publishing is a service failure, not bad input)."""
    try:
        yield
    except Exception as exc:
        known = exit_code(exc)
        if known is None:
            raise
        raise fail(message(exc), code if code is not None else known) from None
