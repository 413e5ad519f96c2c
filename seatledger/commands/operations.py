"""For operators: `topics create`, `close` (the month-close marker), `estimate` (the bill-so-far
marker) and `verify` (the ledger against a recomputation from the archive).

Exit codes (seatledger.errors): 0 done (verify: clean); 1 verify found drift, or the topics could
not be created; 2 unusable input (bad month, no archive, no database, unknown ruleset, bad price
book); 3 Kafka failed (close).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import typer

from seatledger import options
from seatledger.errors import FOUND, SERVICE, expected_errors, fail
from seatledger.progress import StepBar
from streams.settings import load_settings

VERIFY_FORMATS = ("text", "json")


def topics_create(
    bootstrap: str | None = options.BOOTSTRAP,
    partitions: int | None = typer.Option(
        None, min=1, metavar="N", help="partitions per topic (default: SEATLEDGER_PARTITIONS or 8)"
    ),
) -> None:
    """Create the events, routed, dead-letter and snapshot topics; idempotent."""
    from streams.topics import TopicError, create_topics_sync

    settings = load_settings(bootstrap=bootstrap, partitions=partitions)
    try:
        result = create_topics_sync(settings)
    except TopicError as exc:
        raise fail(str(exc), FOUND) from None
    except Exception as exc:
        raise fail(f"cannot create topics on {settings.bootstrap}: {type(exc).__name__}: {exc}", FOUND) from None
    for name, outcome in result.items():
        typer.echo(f"{outcome:8} {name} ({settings.partitions} partitions)")


def close(
    month: str = options.month(),
    bootstrap: str | None = options.BOOTSTRAP,
    close_id: str | None = typer.Option(
        None, "--close-id", metavar="ID", help="an id for this close (default: generated)"
    ),
) -> None:
    """Put a close marker for MONTH on every partition of the events topic.

    Each worker partition closes the month once markers from every source partition arrived,
    i.e. after every event published before this command; late events then become amendments.
    """
    from streams.topics import run_sync
    from streams.worker import send_close_markers

    settings = load_settings(bootstrap=bootstrap)
    try:
        cid, n = run_sync(send_close_markers(settings, month, close_id))
    except ValueError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        raise fail(f"cannot send close markers to {settings.bootstrap}: {type(exc).__name__}: {exc}", SERVICE) from None
    typer.echo(f"close {month}: markers sent to {n} partitions of {settings.topic_events} (close_id {cid})")


def estimate(
    month: str = options.month(),
    bootstrap: str | None = options.BOOTSTRAP,
    estimate_id: str | None = typer.Option(
        None, "--estimate-id", metavar="ID", help="an id for this estimate (default: generated)"
    ),
) -> None:
    """Put an estimate marker for MONTH on every partition of the events topic: the bill so far.

    Like a close, it follows every event published before it; each worker partition then emits the provisional decisions of its companies (table `estimates`, GET .../estimate). Nothing is billed or closed.
    """
    from streams.markers import send_estimate_markers
    from streams.topics import run_sync

    options.parse_month(month)
    settings = load_settings(bootstrap=bootstrap)
    try:
        eid, as_of, n = run_sync(send_estimate_markers(settings, month, estimate_id))
    except Exception as exc:
        raise fail(
            f"cannot send estimate markers to {settings.bootstrap}: {type(exc).__name__}: {exc}", SERVICE
        ) from None
    typer.echo(
        f"estimate {month}: markers sent to {n} partitions of {settings.topic_events} (estimate_id {eid}, as of {as_of})"
    )


def verify(
    month: str = options.month(),
    company: str | None = options.company("only this company_id"),
    archive: Path | None = options.ARCHIVE,
    db: Path | None = options.DB,
    data_dir: Path | None = options.DATA_DIR,
    prices: Path | None = options.PRICES,
    ruleset: str | None = options.ruleset("for accounts DuckDB lacks (default: the version the company's rows record)"),
    fmt: str = options.output_format("text", VERIFY_FORMATS),
    limit: int = typer.Option(50, "--limit", min=1, metavar="N", help="drift lines to print (text)"),
    progress: bool | None = options.progress(),
) -> None:
    """Recompute a month from the archive and compare every column of account_decisions.

    Each stored row is recomputed with the ruleset version it recorded. Reports missing rows, extra rows and differing columns; exit 1 on drift, 0 when clean, 2 on unusable input.
    """
    from replay.verify import verify_month

    options.check_format(fmt, VERIFY_FORMATS)
    m = options.parse_month(month)
    rs = options.parse_ruleset(ruleset)
    settings = load_settings(archive_root=archive, db=db, data_dir=data_dir)
    book = options.price_book(prices)
    show = progress if progress is not None else sys.stderr.isatty()
    with expected_errors(), StepBar(show) as bar:
        result = verify_month(
            settings.archive_dir, settings.db, m, company_id=company, prices=book, ruleset=rs, progress=bar
        )
    if fmt == "json":
        typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        for line in result.lines(limit):
            typer.echo(line)
    if not result.clean:
        raise typer.Exit(FOUND)


COMMANDS = {"close": close, "estimate": estimate, "verify": verify}
GROUPS = {"topics": ("The project's Kafka topics.", {"create": topics_create})}
