"""For developers on one machine: `kafka start|stop|status|jars` (a local broker, devtools.
local_broker), `generate` (a realistic workload, devtools.workload) and `demo` (everything at once,
devtools.demo).

The local broker is a real single-node KRaft Kafka assembled from Maven Central jars (for machines
without Docker; see docs/running.md). Flags override SEATLEDGER_* environment settings.
Exit codes (seatledger.errors): 0 done; 1 the broker could not be started or resolved, the demo
did not finish, or `kafka status` found no broker; 2 bad arguments.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import typer

from devtools.workload import DEFAULT_HISTORY_MONTHS, Workload
from seatledger import options, render
from seatledger.errors import FOUND, expected_errors
from streams.settings import load_settings

KAFKA_DATA_DIR = options.data_dir("broker data goes to DATA_DIR/kafka (default: SEATLEDGER_DATA_DIR)")
KAFKA_VERSION = typer.Option(None, metavar="VERSION", help="Kafka version of the jars (default 4.1.2)")
DEMO_DATA_DIR = options.data_dir("where logs, worker state and the DB go (var/)")
DEMO_DB = typer.Option(
    None, "--db", metavar="FILE", help="DuckDB file (default: SEATLEDGER_DB, else DATA_DIR/demo.duckdb)"
)
_TYPE = re.compile(rb'"type":"([a-z_]+)"')


def kafka_start(
    bootstrap: str | None = options.BOOTSTRAP,
    data_dir: Path | None = KAFKA_DATA_DIR,
    kafka_version: str | None = KAFKA_VERSION,
    fresh: bool = typer.Option(False, "--fresh", help="wipe the broker's data before starting"),
) -> None:
    """Start the broker in the background; returns at once when one already answers."""
    from devtools import local_broker

    settings = load_settings(bootstrap=bootstrap, data_dir=data_dir, kafka_version=kafka_version)
    with expected_errors():
        st = local_broker.start(settings, fresh=fresh)
    if st.started_now:
        typer.echo(
            f"started Kafka {settings.kafka_version} on {st.bootstrap} in {st.seconds:.1f}s (pid {st.pid}, log {st.log})"
        )
    else:
        typer.echo(f"already running: {st.describe()}")


def kafka_stop(bootstrap: str | None = options.BOOTSTRAP, data_dir: Path | None = KAFKA_DATA_DIR) -> None:
    """Stop the broker started from this data dir (SIGTERM, SIGKILL after 30 s)."""
    from devtools import local_broker

    typer.echo(local_broker.stop(load_settings(bootstrap=bootstrap, data_dir=data_dir)))


def kafka_status(bootstrap: str | None = options.BOOTSTRAP, data_dir: Path | None = KAFKA_DATA_DIR) -> None:
    """Say whether a broker answers; exit 1 when none does."""
    from devtools import local_broker

    st = local_broker.status(load_settings(bootstrap=bootstrap, data_dir=data_dir))
    typer.echo(st.describe())
    if not st.answering:
        raise typer.Exit(FOUND)


def kafka_jars(kafka_version: str | None = KAFKA_VERSION) -> None:
    """Resolve the broker's jars with Maven into the cache (once per version) and print where."""
    from devtools import local_broker

    settings = load_settings(kafka_version=kafka_version)
    with expected_errors():
        typer.echo(local_broker.ensure_jars(settings.kafka_version))


def generate(
    companies: int = typer.Option(..., "--companies", min=1, metavar="N", help="number of companies (tenants)"),
    accounts: int = typer.Option(
        ..., "--accounts", min=1, metavar="N", help="total accounts, spread skewed over the companies (each gets >= 1)"
    ),
    month: str = typer.Option(..., "--month", metavar="YYYY-MM", help="first generated month, YYYY-MM"),
    months: int = typer.Option(1, "--months", min=1, metavar="N", help="number of generated calendar months"),
    seed: int = typer.Option(0, "--seed", metavar="N", help="random seed: same arguments and seed, same bytes"),
    out: str | None = typer.Option(
        None, "--out", "-o", metavar="FILE", help="NDJSON file to write; '-' or none: stdout"
    ),
    history_months: int = typer.Option(
        DEFAULT_HISTORY_MONTHS,
        "--history-months",
        min=0,
        metavar="N",
        help="months before --month where companies register and most accounts are created",
    ),
    activity: float = typer.Option(
        1.0,
        "--activity",
        min=0.0,
        metavar="SCALE",
        help="scale of activity events per active account-day (1.0: ~40-60/account/month)",
    ),
    stats: bool = typer.Option(False, "--stats", help="print counts per event type, rate and size to stderr"),
) -> None:
    """Write NDJSON events covering every event kind, in arrival order (a few late and duplicate)."""
    if accounts < companies:
        raise typer.BadParameter("--accounts must be >= --companies (every company has at least one account)")
    try:
        wl = Workload(companies, accounts, month, months, seed, history_months, activity)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    counts: Counter = Counter()
    t0 = time.perf_counter()
    n, size = write_workload(wl, out, counts if stats else None)
    elapsed = time.perf_counter() - t0
    if stats:
        for line in render.event_counts(counts, n, elapsed, accounts, size):
            typer.echo(line, err=True)


def write_workload(wl: Workload, out: str | None, counts: Counter | None) -> tuple[int, int | None]:
    """The events to stdout (`out` None or '-') or a file; (events written, file size or None)."""
    if out is None or out == "-":
        sys.stdout.flush()
        n = _write(wl, sys.stdout.buffer, counts)
        sys.stdout.buffer.flush()
        return n, None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb", buffering=1 << 20) as fp:
        n = _write(wl, fp, counts)
    return n, path.stat().st_size


def _write(wl: Workload, fp: BinaryIO, counts: Counter | None) -> int:
    """Write the events; with `counts`, count them per type on the way (slower, for --stats)."""
    if counts is None:
        return wl.write(fp)
    n = 0
    for block in wl.ndjson_blocks():
        fp.write(block)
        found = _TYPE.findall(block)
        counts.update(found)
        n += len(found)
    return n


def demo(
    companies: int = typer.Option(20, "--companies", min=1, metavar="N"),
    accounts: int = typer.Option(3000, "--accounts", min=1, metavar="N"),
    month: str | None = options.month("YYYY-MM (default: the previous calendar month)", required=False),
    seed: int = typer.Option(7, "--seed", metavar="N"),
    pack: int = typer.Option(200, "--pack", min=1, metavar="N", help="events per Kafka message"),
    bootstrap: str | None = options.BOOTSTRAP,
    data_dir: Path | None = DEMO_DATA_DIR,
    db: Path | None = DEMO_DB,
    timeout: float = typer.Option(
        300.0, "--timeout", metavar="SECONDS", help="seconds to wait for the month to be complete"
    ),
    stop_broker: bool = typer.Option(False, "--stop-broker", help="also stop the local broker at the end"),
    fresh: bool = typer.Option(
        True, "--fresh/--reuse", help="new topics, worker state and DB for this run (default) or reuse them"
    ),
    console: bool = typer.Option(
        True, "--console/--no-console", help="leave the web console running at the end, with a one-time key"
    ),
) -> None:
    """Everything at once on this machine: broker, topics, worker, sink, a month of events, the close, the invoices read back from DuckDB, and the web console's URL with a one-time key."""
    from devtools.demo import DemoOptions, run_demo

    if month is not None:
        options.parse_month(month)  # exit 2 before a broker is started for a month that cannot be
    settings = load_settings(bootstrap=bootstrap, data_dir=data_dir, db=db)
    opts = DemoOptions(
        companies=companies, accounts=accounts, month=month, seed=seed, pack=pack, timeout=timeout,
        stop_broker=stop_broker, fresh=fresh, console=console,
    )  # fmt: skip
    with expected_errors():
        run_demo(settings, opts)


COMMANDS = {"generate": generate, "demo": demo}
GROUPS = {
    "kafka": (
        "A local single-node Kafka broker (no Docker needed).",
        {"start": kafka_start, "stop": kafka_stop, "status": kafka_status, "jars": kafka_jars},
    )
}
