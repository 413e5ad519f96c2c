"""Benchmark of the worker's scale-out and recovery on a real broker: restart, takeover, memory,
one worker against two.

    .venv/bin/python bench/scale_bench.py [--bootstrap HOST:PORT] [--accounts 100000] [--partitions 8]

State: N accounts with one October account-month each (2 events per account, packed per company,
as in bench/worker_bench.py's close scenario), published once the workers own their partitions,
on a fresh set of topics per run. Printed, one JSON line:
- one worker: the time to fold everything, and its RSS growth per account-month;
- restart: SIGTERM, a new process with the same app id; seconds from its start until its fold owns
  every partition with the tables recovered (`event=fold_assigned` with all partitions), and the
  changelog records it read: cold (a fresh data dir, every changelog from its start) and from the
  stopped worker's local snapshots (streams.local_state: the snapshot, then the tail);
- two workers (a fresh app id and topics holding the same events, in the same run): the time to
  fold everything once both own their half, as a ratio to one worker;
- takeover: kill -9 one of the two; seconds until the survivor owns every partition with the
  tables recovered, and how much of it was the recovery itself (the rest is the session timeout):
  with the survivor's on-disk standbys (refreshed every --standby-refresh seconds), then cold (a
  third worker without snapshots joins, and the survivor is killed in turn).
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
    r"event=fold_assigned partitions=\[([0-9, ]*)\].*recovered_records=(\d+).*recovery_seconds=([\d.]+)"
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


def start(s: Settings, tmp: Path, app_id: str, name: str, data: str | None = None, **env: str) -> WorkerProcess:
    """A worker with its own data dir (`data`, default its name: no snapshots shared) and extra
    SEATLEDGER_* settings."""
    e = {**worker_env(s, tmp / (data or name), app_id), **{f"SEATLEDGER_{k.upper()}": v for k, v in env.items()}}
    return WorkerProcess(e, tmp / f"{name}.log").start()


SNAPSHOT_KEYS = re.compile(r"event=fold_assigned partitions=\[([0-9, ]*)\].*snapshot_keys=(\d+)")


def snapshot_keys(w: WorkerProcess) -> int:
    """Keys read from local snapshots by the worker's latest assignment."""
    found = SNAPSHOT_KEYS.findall(w.log.read_text(errors="replace"))
    return int(found[-1][1]) if found else 0


async def restart(s: Settings, tmp: Path, app: str, name: str, data: str) -> tuple[float, int, float, int]:
    """Start a worker of `app` on data dir `data`; (seconds until it owns all with the tables
    read back, changelog records read, recovery seconds, snapshot keys read). Stops it after."""
    t_start = time.perf_counter()
    r = start(s, tmp, app, name, data)
    t_ready, records, rec_s = await until_owns_all(r, s.partitions, 0)
    keys = snapshot_keys(r)
    r.stop()
    return t_ready - t_start, records, rec_s, keys


async def owning(w: WorkerProcess, count: int, timeout: float = 600) -> None:
    """Until the worker's fold owns exactly `count` partitions (its latest assignment)."""
    deadline = time.monotonic() + timeout
    while not (assignments(w) and len(assignments(w)[-1][0]) == count):
        assert w.alive(), w.tail()
        assert time.monotonic() < deadline, f"never owned {count} partitions:\n{w.tail()}"
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
    w.stop()  # a graceful stop: it snapshots its partitions to its data dir
    cold = await restart(s, tmp, app, "restart-cold", "cold")  # a fresh data dir: every changelog from the start
    warm = await restart(s, tmp, app, "restart-warm", "one")  # the stopped worker's dir: snapshots + tail
    return {
        "events": events, "one_worker_fold_s": round(t1 - t0, 2), "one_worker_events_per_s": round(events / (t1 - t0)),
        "rss_growth_mb": round((rss1 - rss0) / 1024), "bytes_per_account_month": round((rss1 - rss0) * 1024 / accounts),
        "restart_cold_s": round(cold[0], 2), "restart_cold_recovered_records": cold[1],
        "restart_cold_recovery_s": round(cold[2], 2),
        "restart_snapshot_s": round(warm[0], 2), "restart_snapshot_recovered_records": warm[1],
        "restart_snapshot_recovery_s": round(warm[2], 2), "restart_snapshot_keys": warm[3],
    }  # fmt: skip


async def two_workers(s: Settings, tmp: Path, accounts: int, refresh: float) -> dict:
    """Two workers with on-disk standbys; kill -9 one (a warm takeover). Then a third worker with
    no snapshots joins, and the first is killed (a cold takeover), in the same run."""
    app = f"bench2-{uuid.uuid4().hex[:6]}"
    standby = {"standby_refresh_seconds": str(refresh)}
    a = start(s, tmp, app, "a", **standby)
    await owning(a, s.partitions)
    b = start(s, tmp, app, "b", **standby)
    await owning(b, s.partitions // 2)
    await owning(a, s.partitions - s.partitions // 2)
    _, events = await fill(s, close_messages(accounts, seed=1))
    t0, t1 = await folding([a, b], events)
    await standbys_refreshed(a, refresh)
    warm = await takeover(a, b, s.partitions)
    c = start(s, tmp, app, "c", state_snapshot_seconds="0")  # snapshots off: reads every changelog
    await owning(c, s.partitions // 2)
    await owning(a, s.partitions - s.partitions // 2)
    cold = await takeover(c, a, s.partitions)
    c.stop()
    return {
        "two_workers_fold_s": round(t1 - t0, 2), "two_workers_events_per_s": round(events / (t1 - t0)),
        "takeover_standby_s": round(warm[0], 2), "takeover_standby_recovery_s": round(warm[2], 2),
        "takeover_standby_recovered_records": warm[1], "takeover_standby_snapshot_keys": warm[3],
        "takeover_cold_s": round(cold[0], 2), "takeover_cold_recovery_s": round(cold[2], 2),
        "takeover_cold_recovered_records": cold[1],
        "session_timeout_s": float(a.env["SEATLEDGER_SESSION_TIMEOUT_SECONDS"]),
    }  # fmt: skip


async def standbys_refreshed(w: WorkerProcess, refresh: float) -> None:
    """Until a standby refresh has started and ended after now (so it covers what was folded)."""
    mark = len(w.log.read_text(errors="replace"))
    await asyncio.sleep(refresh)
    while "event=standby_refreshed" not in w.log.read_text(errors="replace")[mark:]:
        assert w.alive(), w.tail()
        await asyncio.sleep(0.2)


async def takeover(survivor: WorkerProcess, victim: WorkerProcess, partitions: int) -> tuple[float, int, float, int]:
    """kill -9 `victim`; (seconds until `survivor` owns every partition with its tables,
    changelog records read, recovery seconds, snapshot keys read)."""
    n = len(assignments(survivor))
    victim.kill9()
    t_kill = time.perf_counter()
    t_ready, records, rec_s = await until_owns_all(survivor, partitions, n)
    return t_ready - t_kill, records, rec_s, snapshot_keys(survivor)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap")
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--standby-refresh", type=float, default=5.0, help="seconds between standby refreshes")
    args = ap.parse_args()

    from devtools import local_broker

    with local_broker.session_broker(load_settings(bootstrap=args.bootstrap)) as (base, _owned):
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            # each run its own topics, the same events published once its workers own their share
            one = await one_worker(settings_for(base, "scale1", args.partitions), Path(tmp), args.accounts)
            two = await two_workers(
                settings_for(base, "scale2", args.partitions), Path(tmp), args.accounts, args.standby_refresh
            )
        out = {"accounts": args.accounts, "account_months": args.accounts,
               "partitions": args.partitions, **one, **two,
               "two_vs_one_throughput": round(two["two_workers_events_per_s"] / one["one_worker_events_per_s"], 2)}  # fmt: skip
        print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
