"""Reading the ledger for a page: the API's read model errors become error pages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request

from api.console.access import ConsoleError
from api.readmodel import Con, DatabaseUnavailable, Ledger, NotFound


@contextmanager
def reading(request: Request) -> Iterator[Con]:
    """A read of the ledger for the block; a 404 page for what is not there, 503 when the file is busy."""
    ledger: Ledger = request.app.state.ledger
    try:
        with ledger.connect() as con:
            yield con
    except NotFound as exc:
        raise ConsoleError(404, "Not found", str(exc)) from None
    except DatabaseUnavailable as exc:
        raise ConsoleError(503, "The ledger is unavailable", f"{exc}; retry in a few seconds") from None
