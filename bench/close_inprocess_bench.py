"""The month close and the sink's writes in-process, no Kafka: CPU seconds of each side.

    .venv/bin/python bench/close_inprocess_bench.py [--accounts 100000] [--batch 5000] [--pack 1] [--profile close|sink]
        [--columnar 1] [--blocks 1] [--db-threads 1] [--sql-times 1]

Folds bench/worker_bench.py's close workload (2 events per account, 2,000 accounts per company)
into a `FoldState`, runs `Closer.close` on every partition, then hands the emitted records to
the sink's own steps as `seatledger sink` would: `parse_record` per Kafka record and
`write_batch` per batch of `--batch` messages, on a DuckDB file opened and closed per batch.
`--profile` prints the cProfile of one side (docs/performance.md, "Month close to DuckDB");
`--columnar 0` stores every decision through the per-message path (`write_batch(columnar=False)`);
`--blocks 0` has the close send one `decision` message per account instead of `decision_block`s.
`--sql-times 1` prints the wall seconds of each SQL statement the sink ran (summed over batches,
the most costly first), with opening the file and closing it (which checkpoints what is left).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

from bench.worker_bench import MONTH, close_messages  # noqa: E402
from ledger.connection import connect, read_connection  # noqa: E402
from ledger.records import Item, parse_record  # noqa: E402
from ledger.tables import ensure_schema  # noqa: E402
from ledger.writer import write_batch  # noqa: E402
from projections.collector import no_gc  # noqa: E402
from projections.prices import PriceBook  # noqa: E402
from streams.close import Closer, packed  # noqa: E402
from streams.fold import homed  # noqa: E402
from streams.routing import home_partition  # noqa: E402
from streams.state import FoldState, Stores  # noqa: E402

PARTITIONS = 4
Record = tuple[bytes, bytes, int]  # key, value, partition


def folded(accounts: int) -> FoldState:
    state = FoldState(Stores(), PARTITIONS)
    for cid, value, _ in close_messages(accounts, seed=1):
        state.fold_items(orjson.loads(value), home_partition(cid.decode(), PARTITIONS))
    return state


def close_all(state: FoldState, pack: bool, blocks: bool = True) -> list[Record]:
    """Every partition's close, as records of the snapshots topic (homed and packed as
    streams.fold.Fold.emit does, with the collector paused as there, or one per message)."""
    closer = Closer(state, PriceBook.load(None), blocks=blocks)
    out: list[Record] = []
    for p in range(PARTITIONS):
        for sp in range(PARTITIONS):
            month = closer.on_marker({"month": MONTH, "partitions": PARTITIONS, "source_partition": sp}, p)
            if month:
                with no_gc():
                    records = homed(closer.close(p, month), PARTITIONS)
                    out.extend((k, v, q) for k, v, q, _ in packed(records)) if pack else out.extend(records)
    return out


Times = defaultdict[str, float]  # SQL statement -> wall seconds


class TimedConnection:
    """A DuckDB connection that adds each statement's wall time to `times` (`--sql-times`)."""

    def __init__(self, con, times: Times):
        self._con = con
        self._times = times

    def execute(self, sql, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            self._times[" ".join(str(sql).split())[:100]] += time.perf_counter() - t0

    def close(self) -> None:
        t0 = time.perf_counter()
        self._con.close()
        self._times["(close the file)"] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._con, name)


def sink_all(
    records: list[Record], db: Path, batch: int, columnar: bool = True, threads: int = 1, times: Times | None = None
) -> int:
    """parse_record + write_batch as the sink does; the number of messages stored or rejected."""
    offsets = [0] * PARTITIONS
    items: list[Item] = []
    n = 0
    con = connect(db)
    ensure_schema(con)
    con.close()
    buffered = 0  # messages, as the sink counts them (a decision_block: its accounts)
    for _, value, p in records:
        parsed = parse_record(p, offsets[p], value)
        items.extend(parsed)
        buffered += sum(it.count for it in parsed)
        offsets[p] += 1
        if buffered >= batch:
            n += _write(db, items, columnar, threads, times)
            items, buffered = [], 0
    if items:
        n += _write(db, items, columnar, threads, times)
    return n


def _write(db: Path, items: list[Item], columnar: bool, threads: int, times: Times | None) -> int:
    t0 = time.perf_counter()
    con: Any = connect(db)
    if times is not None:
        times["(open the file)"] += time.perf_counter() - t0
        con = TimedConnection(con, times)
    try:
        con.execute(f"SET threads = {threads}")  # as `seatledger sink` does (sink_db_threads)
        res = write_batch(con, items, topic="bench", columnar=columnar)
    finally:
        con.close()
    return res.messages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--profile", choices=("close", "sink"))
    ap.add_argument("--columnar", type=int, default=1, help="0: every decision through the per-message path")
    ap.add_argument("--db-threads", type=int, default=1, help="DuckDB threads of the sink's write connection")
    ap.add_argument("--blocks", type=int, default=1, help="0: a close's decisions one message each, not in blocks")
    ap.add_argument(
        "--pack", type=int, default=1, help="1: records packed as the worker sends them; 0: one per message"
    )
    ap.add_argument("--sql-times", type=int, default=0, help="1: print each SQL statement's wall seconds in the sink")
    args = ap.parse_args()
    times: Times | None = defaultdict(float) if args.sql_times else None
    state = folded(args.accounts)
    prof = cProfile.Profile()
    c0 = time.process_time()
    if args.profile == "close":
        prof.enable()
    records = close_all(state, bool(args.pack), bool(args.blocks))
    prof.disable()
    close_cpu = time.process_time() - c0
    with tempfile.TemporaryDirectory(prefix="close-bench-") as tmp:
        db = Path(tmp) / "ledger.duckdb"
        s0 = time.process_time()
        if args.profile == "sink":
            prof.enable()
        messages = sink_all(records, db, args.batch, bool(args.columnar), args.db_threads, times)
        prof.disable()
        sink_cpu = time.process_time() - s0
        with read_connection(db) as con:
            complete = con.execute("SELECT complete FROM month_closes WHERE month = ?", [MONTH]).fetchall()
            stored = con.execute("SELECT count(*) FROM account_decisions WHERE month = ?", [MONTH]).fetchall()
    print(
        orjson.dumps(
            {
                "accounts": args.accounts, "records": len(records), "messages": messages,
                "close_cpu_s": round(close_cpu, 2), "sink_cpu_s": round(sink_cpu, 2),
                "sink_rows_per_cpu_s": round(stored[0][0] / sink_cpu), "complete": complete == [(True,)],
            }
        ).decode()
    )  # fmt: skip
    if times is not None:
        for sql, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
            print(f"{seconds:8.3f} s  {sql}")
    if args.profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
