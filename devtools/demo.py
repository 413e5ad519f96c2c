"""`seatledger demo`: the whole pipeline on one machine, end to end, in a minute or two.

1. a Kafka broker: the one answering at SEATLEDGER_BOOTSTRAP, else a local one
   (devtools.local_broker; left running afterwards unless --stop-broker);
2. this run's topics (fresh names per run, so old demo events never mix in) and the DuckDB file;
3. `seatledger worker`, `seatledger sink` and `seatledger archive` as subprocesses, logs and the
   event archive under DATA_DIR/demo/<run>/;
4. a realistic month from devtools.workload (default: 20 companies, 3000 accounts, the previous
   calendar month, fixed seed), validated and published packed (streams.publisher);
5. `seatledger close --month M`, then a wait until DuckDB shows the month complete;
6. the archive caught up; the invoices read back from DuckDB, the DB's path, a query and a dispute
   report to try; worker, sink and archive stopped;
7. with `console`: `seatledger serve` left running on the run's database, archive and keys, and
   the output ends with the console's URL and a one-time admin key (devtools.demo_console).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson

from devtools.demo_console import DemoConsole, start_console
from ledger.connection import DatabaseBusy, read_connection
from projections import money
from streams.settings import Settings

STOP_TIMEOUT_S = 30.0


class DemoError(RuntimeError):
    """The demo could not finish; the message says where to look."""


@dataclass
class DemoOptions:
    companies: int = 20
    accounts: int = 3000
    month: str | None = None  # default: the previous calendar month
    seed: int = 7
    pack: int = 200
    timeout: float = 300.0
    stop_broker: bool = False
    fresh: bool = True
    quiet: bool = False
    console: bool = False  # leave the web console running at the end (devtools.demo_console)
    extra_events: list[dict] = field(default_factory=list)  # published after the workload (tests' probes)


@dataclass
class DemoResult:
    month: str
    db: Path
    run_dir: Path
    events: int
    messages: int
    seconds: dict[str, float] = field(default_factory=dict)
    invoices: list[tuple] = field(default_factory=list)  # (company, billable, charged, total_usd)
    certificate: dict = field(default_factory=dict)
    console: DemoConsole | None = None

    @property
    def total_usd(self) -> Decimal:
        return money.total(r[3] for r in self.invoices)


def previous_month(today: date | None = None) -> str:
    today = today or datetime.now(UTC).date()
    y, m = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{y:04d}-{m:02d}"


def demo_settings(settings: Settings, run: str, run_dir: Path, db: Path) -> Settings:
    """The run's own topics, worker group and state; the user's broker and data dir otherwise."""
    stem = f"seatledger.demo-{run}"
    return settings.model_copy(
        update={
            "topic_events": f"{stem}.events",
            "topic_routed": f"{stem}.routed",
            "topic_dlq": f"{stem}.dlq",
            "topic_snapshots": f"{stem}.snapshots",
            "worker_app_id": f"seatledger-demo-{run}",
            "db": db,
        }
    )


def child_env(settings: Settings, run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEATLEDGER_")}
    env.update(
        SEATLEDGER_BOOTSTRAP=settings.bootstrap,
        SEATLEDGER_TOPIC_EVENTS=settings.topic_events,
        SEATLEDGER_TOPIC_ROUTED=settings.topic_routed,
        SEATLEDGER_TOPIC_DLQ=settings.topic_dlq,
        SEATLEDGER_TOPIC_SNAPSHOTS=settings.topic_snapshots,
        SEATLEDGER_PARTITIONS=str(settings.partitions),
        SEATLEDGER_REPLICATION_FACTOR=str(settings.replication_factor),
        SEATLEDGER_DATA_DIR=str(run_dir),
        SEATLEDGER_DB=str(settings.db),
        SEATLEDGER_WORKER_APP_ID=settings.worker_app_id,
        SEATLEDGER_WORKER_METRICS_PORT="0",  # any free port: several workers may run on this machine
        SEATLEDGER_SINK_METRICS_PORT="0",
        SEATLEDGER_ARCHIVE_METRICS_PORT="0",
        SEATLEDGER_SECURITY_PROTOCOL=settings.security_protocol,
    )
    for name in (
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "prices",
    ):
        val = settings.secret(name)
        if val is not None:
            env[f"SEATLEDGER_{name.upper()}"] = str(val)
    return env


def seatledger_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "seatledger.cli", *args]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise DemoError(f"{self.name} exited with code {self.proc.returncode}; log {self.log}:\n{self.tail()}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_child(name: str, args: list[str], env: dict, run_dir: Path) -> Child:
    log = run_dir / f"{name}.log"
    fp = open(log, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(args, env=env, stdout=fp, stderr=subprocess.STDOUT, start_new_session=True)
    fp.close()
    return Child(name, proc, log)


REGROUP_EVENTS = 50_000


def event_lines(opts: DemoOptions, month: str, regroup: int = REGROUP_EVENTS) -> Iterator[tuple[int, bytes]]:
    """The workload's events as NDJSON lines. The generator interleaves companies (arrival order),
    which leaves the packer nothing to pack; so every `regroup` events are stably sorted by company:
    each company's own order is kept (that is all Kafka keeps anyway, per key), and a message
    then carries up to `pack` events."""
    from devtools.workload import iter_events

    n = 0
    chunk: list[dict] = []

    def flush() -> Iterator[tuple[int, bytes]]:
        nonlocal n
        chunk.sort(key=lambda ev: ev.get("company_id") or "")
        for ev in chunk:
            n += 1
            yield n, orjson.dumps(ev)
        chunk.clear()

    for ev in iter_events(opts.companies, opts.accounts, month, seed=opts.seed):
        chunk.append(ev)
        if len(chunk) >= regroup:
            yield from flush()
    yield from flush()
    chunk.extend(opts.extra_events)
    yield from flush()


async def publish(settings: Settings, opts: DemoOptions, month: str):
    from streams.publisher import Publisher

    async with Publisher(settings, pack=opts.pack) as pub:
        return await pub.send_events(event_lines(opts, month))


def month_complete(db: Path, month: str) -> bool:
    if not db.exists():
        return False
    try:
        with read_connection(db, timeout=5) as con:
            rows = con.execute("SELECT complete FROM month_closes WHERE month = ?", [month]).fetchall()
    except (DatabaseBusy, Exception):
        return False
    return bool(rows and rows[0][0])


async def _end_offsets(settings: Settings) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata for every topic
        parts = consumer.partitions_for_topic(settings.topic_events) or set()
        ends = await consumer.end_offsets([TopicPartition(settings.topic_events, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


def wait_for_archive(settings: Settings, root: Path, timeout: float) -> bool:
    """Until the archive's manifests reach the end of every events partition (all durable)."""
    from replay.archive.layout import read_manifest

    ends = asyncio.run(_end_offsets(settings))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        behind = [
            p for p, end in ends.items()
            if end > 0 and ((m := read_manifest(root, settings.topic_events, p)) is None or m.next_offset < end)
        ]  # fmt: skip
        if not behind:
            return True
        time.sleep(0.5)
    return False


def read_summary(db: Path, month: str) -> tuple[list[tuple], dict]:
    with read_connection(db) as con:
        invoices = con.execute(
            "SELECT company_id, billable_accounts, charged_accounts, total_usd FROM invoices WHERE month = ? "
            "ORDER BY company_id",
            [month],
        ).fetchall()
        cur = con.execute("SELECT * FROM close_certificates WHERE month = ?", [month])
        names = [d[0] for d in cur.description]
        row = cur.fetchall()
    return invoices, dict(zip(names, row[0], strict=True)) if row else {}


def print_summary(res: DemoResult, children: list[Child]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Invoices for {res.month} (read back from DuckDB)", show_footer=True)
    billable = sum(r[1] for r in res.invoices)
    charged = sum(r[2] for r in res.invoices)
    table.add_column("company", footer="total")
    table.add_column("billable", justify="right", footer=str(billable))
    table.add_column("charged", justify="right", footer=str(charged))
    table.add_column("total USD", justify="right", footer=f"{res.total_usd:,.2f}")
    idle = 0
    for company, b, c, total in res.invoices:
        if not b and not total:
            idle += 1  # e.g. guests' home companies that never registered: invoices of nothing
            continue
        table.add_row(company, str(b), str(c), f"{total:,.2f}")
    console.print(table)
    if idle:
        console.print(f"(and {idle} invoices with nothing billable, not listed: SELECT * FROM invoices)")
    cert = res.certificate
    if cert:
        console.print(
            f"close certificate: events counted {cert.get('events_counted')}, rejected {cert.get('rejected')}, "
            f"changing no fact {cert.get('duplicates_ignored')}, decisions {cert.get('decisions')}, "
            f"checksums match: {cert.get('checksums_match')}"
        )
    console.print(
        f"published {res.events} events in {res.messages} messages; timings: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in res.seconds.items())
    )
    console.print(f"DuckDB file: [bold]{res.db}[/bold]   logs: {', '.join(str(c.log) for c in children)}")
    console.print("Try (while a sink runs, hold read connections briefly):")
    console.print(
        f"  python -c \"import duckdb; c = duckdb.connect('{res.db}', read_only=True); "
        f"print(c.sql(\\\"SELECT rule, reason, count(*) FROM account_decisions WHERE month = '{res.month}' "
        f'GROUP BY ALL ORDER BY 3 DESC\\")); c.close()"'
    )
    console.print(f'  duckdb -readonly {res.db} "SELECT * FROM billable_users LIMIT 10"   (DuckDB CLI, if installed)')
    if res.invoices:
        company = max(res.invoices, key=lambda r: r[1])[0]
        console.print("Why was each person billed (support's dispute report, from the event archive):")
        console.print(
            f"  seatledger dispute --company {company} --month {res.month} "
            f"--archive {res.run_dir / 'archive'} --db {res.db}"
        )


def _say(opts: DemoOptions, text: str) -> None:
    if not opts.quiet:
        print(text, flush=True)


# The archive keeps every accepted event in Parquet: disputes and verify read it later.
SERVICES = ("worker", "sink", "archive")


def run_demo(settings: Settings, opts: DemoOptions) -> DemoResult:
    """The steps of the module docstring; worker, sink and archive are stopped whatever happens."""
    import logging

    from streams.topics import create_topics_sync

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # leader-election retries right after topic creation
    month = opts.month or previous_month()
    run = datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    run_dir = (Path(settings.data_dir) / "demo" / run).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    db = demo_db(settings, opts.fresh)
    s = demo_settings(settings, run, run_dir, db)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    started_broker = ensure_broker(settings, opts)
    timings["broker"] = time.monotonic() - t0

    children: list[Child] = []
    try:
        create_topics_sync(s)
        env = child_env(s, run_dir)
        for name in SERVICES:  # one by one: those started are stopped if the next one fails
            children.append(start_child(name, seatledger_cmd(name), env, run_dir))
        _say(
            opts,
            f"worker, sink and archive started (logs in {run_dir}); publishing {opts.companies} companies, "
            f"{opts.accounts} accounts, month {month} ...",
        )
        t = time.monotonic()
        summary = asyncio.run(publish(s, opts, month))
        timings["publish"] = time.monotonic() - t
        if summary.rejected:
            raise DemoError(
                f"the generator produced {len(summary.rejected)} invalid events, e.g. {summary.rejected[:3]}"
            )
        for c in children:
            c.check_alive()
        t = time.monotonic()
        close_month(month, env, opts)
        wait_until_complete(db, month, children, opts.timeout)
        timings["close_to_complete"] = time.monotonic() - t
        t = time.monotonic()
        if not wait_for_archive(s, run_dir / "archive", opts.timeout):
            _say(opts, "warning: the archive has not caught up with the events topic; disputes may miss events")
        timings["archive"] = time.monotonic() - t
        invoices, cert = read_summary(db, month)
        res = DemoResult(month, db, run_dir, summary.sent_events, summary.sent_messages, timings, invoices, cert)
        timings["total"] = time.monotonic() - t0
        if not opts.quiet:
            print_summary(res, children)
    finally:
        stop_all(children, settings, opts, started_broker)
    if opts.console:
        res.console = start_console(seatledger_cmd("serve"), env, run_dir, month)
        _say(opts, console_lines(res.console))
    return res


def console_lines(console: DemoConsole) -> str:
    """The demo's last lines: where the month is in a browser, and the key to log in with."""
    return (
        f"The web console runs in the background (seatledger serve, pid {console.pid}, log {console.log}; "
        f"stop it with: kill {console.pid}). Open the month and log in with the key below, shown only once:\n"
        f"  {console.url}\n"
        f"  {console.key}"
    )


def demo_db(settings: Settings, fresh: bool) -> Path:
    """The run's DuckDB file: --db or SEATLEDGER_DB when given (never overwritten when fresh),
    else DATA_DIR/demo.duckdb (replaced when fresh)."""
    explicit_db = "db" in settings.model_fields_set or "SEATLEDGER_DB" in os.environ
    db = Path(settings.db if explicit_db else Path(settings.data_dir) / "demo.duckdb").resolve()
    if fresh and db.exists():
        if explicit_db:
            raise DemoError(f"{db} exists: pass another --db, or --reuse to add this run to it")
        db.unlink()
        for extra in (db.with_name(db.name + ".wal"),):
            extra.unlink(missing_ok=True)
    return db


def ensure_broker(settings: Settings, opts: DemoOptions) -> bool:
    """Start a local broker unless one answers at the bootstrap address; True when started."""
    from devtools import local_broker

    host, port = local_broker.broker_address(settings.bootstrap)
    if local_broker.answers(host, port):
        return False
    _say(opts, f"starting a local Kafka broker on {host}:{port} (first time: resolves jars with Maven) ...")
    try:
        local_broker.start(settings)
    except Exception as exc:
        raise DemoError(f"cannot start the local broker: {exc}") from None
    return True


def close_month(month: str, env: dict[str, str], opts: DemoOptions) -> None:
    """`seatledger close --month M` in the run's environment."""
    close = subprocess.run(
        seatledger_cmd("close", "--month", month), env=env, capture_output=True, text=True, timeout=120
    )
    if close.returncode != 0:
        raise DemoError(f"seatledger close --month {month} failed: {close.stderr.strip() or close.stdout.strip()}")
    _say(opts, close.stdout.strip())


def wait_until_complete(db: Path, month: str, children: list[Child], timeout: float) -> None:
    """Until DuckDB shows the month complete; DemoError (with the logs' tails) when a child dies
    or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not month_complete(db, month):
        for c in children:
            c.check_alive()
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.log} (last lines)\n{c.tail()}" for c in children)
            raise DemoError(f"month {month} not complete in DuckDB ({db}) after {timeout:.0f}s; see the logs:\n{tails}")
        time.sleep(0.5)


def stop_all(children: list[Child], settings: Settings, opts: DemoOptions, started_broker: bool) -> None:
    """Stop the children (last started first); the broker too when we started it and were asked to."""
    from devtools import local_broker

    for c in reversed(children):
        c.stop()
    if opts.stop_broker and started_broker:
        local_broker.stop(settings)
    elif started_broker:
        host, port = local_broker.broker_address(settings.bootstrap)
        _say(opts, f"the broker keeps running on {host}:{port} (seatledger kafka stop, or --stop-broker next time)")


def remove_run(res: DemoResult) -> None:
    """Delete a run's logs and worker state (tests)."""
    shutil.rmtree(res.run_dir, ignore_errors=True)
