"""The long-running services, each until SIGTERM: `worker` (events to decisions, streams/worker.py),
`sink` (decisions into DuckDB, streams/sink_consumer.py) and `archive` (events into Parquet,
streams/archive_consumer.py). Flags override the SEATLEDGER_* settings (see docs/streaming.md).

Exit codes (seatledger.errors): 0 stopped; 3 Kafka or the sink failed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import typer

from seatledger import options
from seatledger.errors import SERVICE, fail
from streams.settings import Settings, load_settings

WORKER_DATA_DIR = options.data_dir("worker state under DATA_DIR/worker")


def worker(
    bootstrap: str | None = options.BOOTSTRAP,
    partitions: int | None = typer.Option(None, min=1, metavar="N", help="partitions of the events/routed topics"),
    data_dir: Path | None = WORKER_DATA_DIR,
    prices: Path | None = options.PRICES,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", metavar="PORT", help="Prometheus port (0: any free)"
    ),
    app_id: str | None = typer.Option(
        None, "--app-id", metavar="ID", help="prefix of the worker's consumer groups and changelog topics"
    ),
    auto_close: bool = typer.Option(
        False, "--auto-close", help="close each month automatically once it ended in every zone, plus a grace period"
    ),
    grace_hours: float | None = typer.Option(
        None,
        "--grace-hours",
        min=0,
        metavar="HOURS",
        help="grace period of --auto-close (default 72; SEATLEDGER_AUTO_CLOSE_GRACE_HOURS)",
    ),
    estimate_every: float | None = typer.Option(
        None,
        "--estimate-every",
        min=0,
        metavar="MINUTES",
        help="ask for the bill so far of the current month this often (default 60; 0: never)",
    ),
    loglevel: str = options.LOGLEVEL,
) -> None:
    """Run the streaming worker until SIGTERM: route, validate, fold, close months, amend, estimate."""
    from streams.autoclose import DEFAULT_GRACE_HOURS
    from streams.worker import run_worker

    if auto_close and grace_hours is None:
        grace_hours = DEFAULT_GRACE_HOURS
    settings = load_settings(
        bootstrap=bootstrap, partitions=partitions, data_dir=data_dir, prices=options.price_book_path(prices),
        worker_metrics_port=metrics_port, worker_app_id=app_id, auto_close_grace_hours=grace_hours,
        estimate_every_minutes=estimate_every,
    )  # fmt: skip
    run_worker(settings, loglevel=loglevel.upper())


def sink(
    db: Path | None = options.DB,
    bootstrap: str | None = options.BOOTSTRAP,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", metavar="PORT", help="Prometheus port (default 9465; 0: any free port; -1: none)"
    ),
    loglevel: str = options.LOGLEVEL,
) -> None:
    """Store the snapshots topic in DuckDB until SIGTERM (analysts may read the file meanwhile)."""
    from streams.sink_consumer import run_sink

    logging.basicConfig(
        level=loglevel.upper(),
        stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings(db=db, bootstrap=bootstrap, sink_metrics_port=metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(settings, stop)

    try:
        asyncio.run(main())
    except RuntimeError as exc:
        raise fail(str(exc), SERVICE) from None


def archive(
    bootstrap: str | None = options.BOOTSTRAP,
    archive: Path | None = options.ARCHIVE,
    data_dir: Path | None = options.DATA_DIR,
    topic: str | None = options.TOPIC,
    flush_seconds: float = typer.Option(
        2.0, "--flush-seconds", min=0.05, metavar="SECONDS", help="make buffered events durable this often"
    ),
    flush_events: int = typer.Option(
        50_000, "--flush-events", min=1, metavar="N", help="... or when this many are buffered"
    ),
    compact_threshold: int = typer.Option(
        64,
        "--compact-threshold",
        min=0,
        metavar="N",
        help="compact a directory once it holds this many files (0: never)",
    ),
    compact_now: bool = typer.Option(
        False, "--compact", help="merge the small files of every directory once, then exit"
    ),
) -> None:
    """Archive every accepted event of the events topic as Parquet, until SIGTERM.

    Layout: ARCHIVE/month=YYYY-MM/bucket=NN/*.parquet (UTC month of occurred_at, company bucket); rejected events under ARCHIVE/rejected/ with their reason. Restart-safe: resumes exactly where the last durable flush ended (consumer group seatledger-archive).
    """
    settings = load_settings(bootstrap=bootstrap, archive_root=archive, data_dir=data_dir, topic_events=topic)
    if compact_now:
        compact_archive(settings)
    else:
        archive_until_stopped(settings, flush_seconds, flush_events, compact_threshold)


def compact_archive(settings: Settings) -> None:
    """archive --compact: merge the small files of every directory once."""
    from replay.archive.compaction import compact

    done = compact(settings.archive_dir)
    for c in done:
        typer.echo(f"compacted {c.dir}: {c.inputs} files -> {c.output} ({c.rows} rows)")
    typer.echo(f"{len(done)} directories compacted in {settings.archive_dir}")


def archive_until_stopped(settings: Settings, flush_seconds: float, flush_events: int, compact_threshold: int) -> None:
    """The archive consumer until SIGTERM, then what it did, on stderr."""
    from streams.archive_consumer import run_archive

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    typer.echo(f"archiving {settings.topic_events} from {settings.bootstrap} into {settings.archive_dir}", err=True)
    try:
        stats = asyncio.run(
            run_archive(
                settings, flush_seconds=flush_seconds, flush_events=flush_events, compact_threshold=compact_threshold
            )
        )
    except Exception as exc:
        raise fail(f"archive failed: {type(exc).__name__}: {exc}", SERVICE) from None
    typer.echo(
        f"stopped: {stats.messages} messages, {stats.events} events archived, {stats.rejected} rejected, "
        f"{stats.skipped} already archived, {stats.flushes} flushes, {stats.compactions} compactions",
        err=True,
    )


COMMANDS = {"worker": worker, "sink": sink, "archive": archive}
