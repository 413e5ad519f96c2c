"""Benchmark of the worker's scale-out and recovery on a real broker: restart, takeover, memory,
one worker against two.

    .venv/bin/python bench/scale_bench.py [--bootstrap HOST:PORT] [--accounts 100000] [--partitions 8]

State: N accounts with one October account-month each (2 events per account, packed per company,
as in bench/worker_bench.py's close scenario), published once the workers own their partitions,
on a fresh set of topics per run. Printed, one JSON line:
- one worker: the time to fold everything, and its RSS growth per account-month;
- restart: SIGTERM, a new process with the same app id; seconds from its start until its fold owns
  every partition with the tables recovered (`event=fold_assigned` with all partitions), and the
  changelog records it read;
- two workers (a fresh app id and topics holding the same events, in the same run): the time to
  fold everything once both own their half, as a ratio to one worker;
- takeover: kill -9 one of the two; seconds until the survivor owns every partition with the
  tables recovered, and how much of it was the recovery itself (the rest is the session timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from worker_bench import close_messages, fill, rss_kb, scrape, settings_for  # noqa: E402

from streams.settings import Settings, load_settings  # noqa: E402
from tests.support.worker_harness import WorkerProcess, worker_env  # noqa: E402

ASSIGNED = re.compile(
    r"event=fold_assigned partitions=\[([0-9, ]*)\].*recovered_records=(\d+) recovery_seconds=([\d.]+)"
)


def assignments(w: WorkerProcess) -> list[tuple[set[int], int, float]]:
    out = []
    for parts, records, secs in ASSIGNED.findall(w.log.read_text(errors="replace")):
        out.append(({int(p) for p in parts.split(",") if p.strip()}, int(records), float(secs)))
    return out


async def until_owns_all(
    w: WorkerProcess, partitions: int, after: int, timeout: float = 600
) -> tuple[float, int, float]:
    """Wait for an assignment (beyond the first `after`) covering every partition; (time, records, recovery s)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = assignments(w)[after:]
        for parts, records, secs in seen:
            if len(parts) == partitions:
                return time.perf_counter(), records, secs
        assert w.alive(), w.tail()
        assert time.monotonic() < deadline, f"no full assignment:\n{w.tail()}"
        await asyncio.sleep(0.05)


async def folding(workers: list[WorkerProcess], events: int, timeout: float = 1800) -> tuple[float, float]:
    """(time of the first folded event, time all `events` were folded), summed over `workers`."""
    deadline = time.monotonic() + timeout
    first = None
    while True:
        folded = sum(scrape(w).get("seatledger_worker_events_folded_total", 0) for w in workers)
        now = time.perf_counter()
        if first is None and folded > 0:
            first = now
        if folded >= events:
            return first or now, now
        for w in workers:
            assert w.alive(), w.tail()
        assert time.monotonic() < deadline, "timeout while folding"
        await asyncio.sleep(0.25)


def start(s: Settings, tmp: Path, app_id: str, name: str) -> WorkerProcess:
    return WorkerProcess(worker_env(s, tmp / name, app_id), tmp / f"{name}.log").start()


async def owning(w: WorkerProcess, count: int) -> None:
    """Until the worker's fold owns exactly `count` partitions (its latest assignment)."""
    while not (assignments(w) and len(assignments(w)[-1][0]) == count):
        assert w.alive(), w.tail()
        await asyncio.sleep(0.05)


async def one_worker(s: Settings, tmp: Path, accounts: int) -> dict:
    app = f"bench1-{uuid.uuid4().hex[:6]}"
    w = start(s, tmp, app, "one")
    await owning(w, s.partitions)
    rss0 = rss_kb(w.proc.pid)
    _, events = await fill(s, close_messages(accounts, seed=1))  # the events arrive once it runs
    t0, t1 = await folding([w], events)
    await asyncio.sleep(2)
    rss1 = rss_kb(w.proc.pid)
    w.stop()
    t_start = time.perf_counter()
    r = start(s, tmp, app, "restart")
    t_ready, records, rec_s = await until_owns_all(r, s.partitions, 0)
    r.stop()
    return {
        "events": events, "one_worker_fold_s": round(t1 - t0, 2), "one_worker_events_per_s": round(events / (t1 - t0)),
        "rss_growth_mb": round((rss1 - rss0) / 1024), "bytes_per_account_month": round((rss1 - rss0) * 1024 / accounts),
        "restart_s": round(t_ready - t_start, 2), "restart_recovered_records": records,
        "restart_recovery_s": round(rec_s, 2),
    }  # fmt: skip


async def two_workers(s: Settings, tmp: Path, accounts: int) -> dict:
    app = f"bench2-{uuid.uuid4().hex[:6]}"
    a = start(s, tmp, app, "a")
    await owning(a, s.partitions)
    b = start(s, tmp, app, "b")
    await owning(b, s.partitions // 2)
    await owning(a, s.partitions - s.partitions // 2)
    _, events = await fill(s, close_messages(accounts, seed=1))
    t0, t1 = await folding([a, b], events)
    n_a = len(assignments(a))
    b.kill9()
    t_kill = time.perf_counter()
    t_ready, records, rec_s = await until_owns_all(a, s.partitions, n_a)
    a.stop()
    return {
        "two_workers_fold_s": round(t1 - t0, 2), "two_workers_events_per_s": round(events / (t1 - t0)),
        "takeover_s": round(t_ready - t_kill, 2), "takeover_recovery_s": round(rec_s, 2),
        "takeover_recovered_records": records, "session_timeout_s": float(a.env["SEATLEDGER_SESSION_TIMEOUT_SECONDS"]),
    }  # fmt: skip


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap")
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args()

    from devtools import local_broker

    base = load_settings(bootstrap=args.bootstrap)
    host, port = local_broker.broker_address(base.bootstrap)
    owned = None
    if not local_broker.answers(host, port):
        port = local_broker.free_port_pair()
        owned = load_settings(bootstrap=f"127.0.0.1:{port}", data_dir=Path(tempfile.mkdtemp(prefix="bench-kafka-")))
        local_broker.start(owned)
        base = owned
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            # each run its own topics, the same events published once its workers own their share
            one = await one_worker(settings_for(base, "scale1", args.partitions), Path(tmp), args.accounts)
            two = await two_workers(settings_for(base, "scale2", args.partitions), Path(tmp), args.accounts)
        out = {"accounts": args.accounts, "account_months": args.accounts,
               "partitions": args.partitions, **one, **two,
               "two_vs_one_throughput": round(two["two_workers_events_per_s"] / one["one_worker_events_per_s"], 2)}  # fmt: skip
        print(orjson.dumps(out).decode(), flush=True)
    finally:
        if owned is not None:
            local_broker.stop(owned)


if __name__ == "__main__":
    asyncio.run(main())
