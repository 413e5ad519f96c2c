"""Benchmark of `seatledger worker` on a real broker: ingestion, month close, memory.

    .venv/bin/python bench/worker_bench.py [--bootstrap 127.0.0.1:9092] [--single 200000]
        [--packed 2000000] [--close-accounts 200000] [--complete-accounts 100000 1000000] [--partitions 4]

Starts a local broker (devtools.local_broker) on a free port unless --bootstrap answers. For each
scenario it creates fresh topics, pre-fills the events topic, then
1. drains it with a bare aiokafka consumer (the ceiling: fetch only, no parsing), and
2. runs `seatledger worker` as a subprocess and times, from the first message the router reads
   until every event is folded (metrics endpoint), so the figure is "to committed facts" up to
   the producer flush of the changelog records (done before each offset commit).
Scenarios: `single` (one event per message), `packed` (~500 events of one company per message),
`close` (2 events per account - provisioned last month, one login this month - then
`close --month`: time from the markers to the last partition_done; RSS delta of the worker
process over the ingestion divided by account-months), and `--complete-accounts N ...` (the same
events, a worker and a sink as subprocesses: `seatledger close` to `month_closes.complete` in
DuckDB, with the CPU seconds both processes (and the broker, when the bench started it) spent
meanwhile and the sink's transactions: how
many, the largest and the longest, which a reader of the file may wait for; docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from streams.settings import Settings, load_settings  # noqa: E402
from streams.topics import create_topics_sync  # noqa: E402
from tests.support.worker_harness import TopicReader, WorkerProcess, done_for, worker_env  # noqa: E402

MONTH = "2026-10"


def settings_for(base: Settings, name: str, partitions: int) -> Settings:
    stem = f"bench.{name}.{uuid.uuid4().hex[:6]}"
    s = base.model_copy(
        update={
            "topic_events": f"{stem}.events",
            "topic_routed": f"{stem}.routed",
            "topic_dlq": f"{stem}.dlq",
            "topic_snapshots": f"{stem}.snapshots",
            "partitions": partitions,
        }
    )
    create_topics_sync(s)
    return s


async def fill(settings: Settings, messages) -> tuple[int, int]:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), linger_ms=20, max_batch_size=1 << 20, max_request_size=4 << 20,
        enable_idempotence=True,
    )  # fmt: skip
    await producer.start()
    n_msgs = n_events = 0
    try:
        futs = []
        for key, value, events in messages:
            futs.append(await producer.send(settings.topic_events, value, key=key))
            n_msgs += 1
            n_events += events
            if len(futs) >= 20000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return n_msgs, n_events


def workload_messages(events_wanted: int, pack: int):
    """Events of devtools.workload, one per message or packed per company (<= pack)."""
    from devtools.workload import iter_events

    accounts = max(50, events_wanted // 90)
    companies = max(4, accounts // 1500)
    buf: dict[str, list[bytes]] = {}
    for n, e in enumerate(iter_events(companies, accounts, MONTH, seed=1), start=1):
        enc = orjson.dumps(e)
        if pack == 1:
            yield e["company_id"].encode(), enc, 1
        else:
            b = buf.setdefault(e["company_id"], [])
            b.append(enc)
            if len(b) >= pack:
                yield e["company_id"].encode(), b"[" + b",".join(b) + b"]", len(b)
                buf[e["company_id"]] = []
        if n >= events_wanted:
            break
    for cid, b in buf.items():
        if b:
            yield cid.encode(), b"[" + b",".join(b) + b"]", len(b)


def close_messages(accounts: int, per_company: int = 2000, pack: int = 500, seed: int | None = None):
    """2 events per account (provisioned in September, one login in October), packed per company.
    Event ids are random, or drawn from `seed` (the same events twice)."""
    ids = random.Random(seed) if seed is not None else None
    companies = (accounts + per_company - 1) // per_company
    for c in range(companies):
        cid = f"c-{c:05d}"
        evs = [{"event_id": new_id(ids), "type": "company_registered", "occurred_at": "2026-08-01T00:00:00Z",
                "company_id": cid, "timezone": "Europe/Amsterdam"}]  # fmt: skip
        n = min(per_company, accounts - c * per_company)
        for u in range(n):
            uid = f"u-{u:07d}"
            evs.append({"event_id": new_id(ids), "type": "account_provisioned",
                        "occurred_at": "2026-09-03T09:00:00Z", "company_id": cid, "user_id": uid})  # fmt: skip
            evs.append({"event_id": new_id(ids), "type": "login",
                        "occurred_at": f"2026-10-{1 + u % 28:02d}T09:00:00Z", "company_id": cid, "user_id": uid})  # fmt: skip
        for i in range(0, len(evs), pack):
            chunk = evs[i : i + pack]
            yield cid.encode(), orjson.dumps(chunk), len(chunk)


def new_id(rng: random.Random | None) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4) if rng else uuid.uuid4())


async def bare_drain(settings: Settings, total_msgs: int) -> float:
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20, fetch_max_bytes=16 << 20,
    )  # fmt: skip
    await consumer.start()
    try:
        parts = [TopicPartition(settings.topic_events, p) for p in range(settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        t0 = time.perf_counter()
        n = 0
        while n < total_msgs:
            batch = await consumer.getmany(timeout_ms=500, max_records=50000)
            for recs in batch.values():
                n += len(recs)
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


def scrape(w: WorkerProcess) -> dict[str, float]:
    ports = re.findall(r"metrics_listening host=\S+ port=(\d+)", w.log.read_text(errors="replace"))
    if not ports:
        return {}
    try:
        txt = urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for line in txt.splitlines():
        if line.startswith("seatledger_worker_") and not line.startswith("#"):
            name, _, val = line.rpartition(" ")
            out[name] = float(val)
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(w: WorkerProcess) -> int:
    return w.proc.pid


async def run_worker_until_folded(settings: Settings, total_events: int, tmp: Path, timeout: float = 900):
    w = WorkerProcess(worker_env(settings, tmp / "data"), tmp / "worker.log").start()
    try:
        while "event=worker_started" not in w.log.read_text(errors="replace"):
            assert w.alive(), w.tail()
            await asyncio.sleep(0.05)
        rss0 = rss_kb(worker_pid(w))
        t_first = None
        t_deadline = time.monotonic() + timeout
        while True:
            m = scrape(w)
            now = time.perf_counter()
            if t_first is None and m.get("seatledger_worker_messages_in_total", 0) > 0:
                t_first = now
            if m.get("seatledger_worker_events_folded_total", 0) >= total_events:
                break
            assert w.alive(), w.tail()
            assert time.monotonic() < t_deadline, f"timeout; metrics {m}"
            await asyncio.sleep(0.25)  # scraping takes the worker's GIL: not too often
        return w, now - (t_first or now), rss0
    except BaseException:
        w.stop()
        raise


async def scenario_ingest(base: Settings, name: str, events: int, pack: int, partitions: int) -> dict:
    s = settings_for(base, name, partitions)
    t0 = time.perf_counter()
    n_msgs, n_events = await fill(s, workload_messages(events, pack))
    fill_s = time.perf_counter() - t0
    bare_s = await bare_drain(s, n_msgs)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        w, secs, _ = await run_worker_until_folded(s, n_events, Path(tmp))
        w.stop()
    derived = 0  # derived trials are folded too, but are few; the rate counts published events only
    return {
        "scenario": name, "messages": n_msgs, "events": n_events, "fill_s": round(fill_s, 2),
        "bare_consumer_s": round(bare_s, 2), "bare_events_per_s": round(n_events / bare_s),
        "worker_s": round(secs, 2), "worker_events_per_s": round(n_events / secs),
        "ratio_vs_bare": round(bare_s / secs, 3), "derived_ignored": derived,
    }  # fmt: skip


async def scenario_close(base: Settings, accounts: int, partitions: int) -> dict:
    from streams.worker import send_close_markers

    s = settings_for(base, "close", partitions)
    n_msgs, n_events = await fill(s, close_messages(accounts))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        w, ingest_s, rss0 = await run_worker_until_folded(s, n_events, Path(tmp))
        try:
            await asyncio.sleep(2)  # let the changelog flush settle before reading RSS
            rss1 = rss_kb(worker_pid(w))
            async with TopicReader(s, s.topic_snapshots) as reader:
                t0 = time.perf_counter()
                await send_close_markers(s, MONTH)
                until = done_for(MONTH, partitions)
                while True:
                    await reader.poll(500)
                    # partition_done markers are single records (JSON objects); packed records are arrays
                    tail = [
                        v for r in reader.records[-(partitions * 4) :] if isinstance(v := orjson.loads(r.value), dict)
                    ]
                    if until(tail) or until(reader.values() if len(reader.records) > accounts else []):
                        break
                    assert w.alive(), w.tail()
                close_s = time.perf_counter() - t0
                decisions = sum(1 for m in reader.values() if m.get("kind") == "decision")
            rss2 = rss_kb(worker_pid(w))
        finally:
            w.stop()
    return {
        "scenario": "close", "accounts": accounts, "events": n_events, "ingest_s": round(ingest_s, 2),
        "ingest_events_per_s": round(n_events / ingest_s), "close_s": round(close_s, 2),
        "decisions": decisions, "close_accounts_per_s": round(accounts / close_s),
        "extrapolated_close_1M_s": round(close_s * 1_000_000 / accounts, 1),
        "rss_before_mb": round(rss0 / 1024), "rss_after_ingest_mb": round(rss1 / 1024),
        "rss_after_close_mb": round(rss2 / 1024),
        "bytes_per_account_month": round((rss1 - rss0) * 1024 / accounts),
    }  # fmt: skip


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat): comparable on a loaded machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_times(path: Path, pattern: str) -> int:
    return len(re.findall(pattern, path.read_text(errors="replace"))) if path.exists() else 0


async def scenario_close_to_complete(base: Settings, accounts: int, partitions: int, timeout: float = 1800) -> dict:
    """`seatledger close` to DuckDB `month_closes.complete`: a worker and a sink as subprocesses,
    the command run as a user runs it; the clock stops when the sink logs `month_complete` (logged
    right after the transaction that wrote the month_completions row), checked in DuckDB after."""
    from ledger.connection import read_connection

    s = settings_for(base, "closedb", partitions)
    t_fill = time.perf_counter()
    _, n_events = await fill(s, close_messages(accounts))
    fill_s = time.perf_counter() - t_fill
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmpd = Path(tmp)
        db, sink_log = tmpd / "ledger.duckdb", tmpd / "sink.log"
        w, ingest_s, _ = await run_worker_until_folded(s, n_events, tmpd, timeout=timeout)
        env = {**worker_env(s, tmpd / "data"), "SEATLEDGER_DB": str(db), "SEATLEDGER_SINK_METRICS_PORT": "-1"}
        with open(sink_log, "ab") as out:
            sink = subprocess.Popen(
                [sys.executable, "-m", "seatledger.cli", "sink"], env=env, stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, start_new_session=True,
            )  # fmt: skip
        try:
            while "event=sink_started" not in (sink_log.read_text(errors="replace") if sink_log.exists() else ""):
                assert sink.poll() is None, sink_log.read_text(errors="replace")[-3000:]
                await asyncio.sleep(0.1)
            assert w.proc is not None
            from devtools import local_broker

            broker = local_broker.status(base).pid  # None: a broker this bench did not start
            cpu0 = (cpu_s(w.proc.pid), cpu_s(sink.pid), cpu_s(broker) if broker else 0.0)
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "seatledger.cli", "close", "--month", MONTH]
            subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
            closed_s = None
            while log_times(sink_log, f"event=month_complete month={MONTH}") == 0:
                if closed_s is None and log_times(w.log, f"event=close_done month={MONTH}") >= partitions:
                    closed_s = time.perf_counter() - t0
                assert w.alive() and sink.poll() is None, w.tail() + sink_log.read_text(errors="replace")[-3000:]
                assert time.perf_counter() - t0 < timeout, "timeout waiting for month_complete"
                await asyncio.sleep(0.1)
            complete_s = time.perf_counter() - t0
            worker_cpu, sink_cpu = cpu_s(w.proc.pid) - cpu0[0], cpu_s(sink.pid) - cpu0[1]
            broker_cpu = round(cpu_s(broker) - cpu0[2], 2) if broker else None
            batches = sink_batches(sink_log)
        finally:
            sink.terminate()
            sink.wait(120)
            w.stop()
        with read_connection(db) as con:
            complete = con.execute("SELECT complete FROM month_closes WHERE month = ?", [MONTH]).fetchall()
            found = con.execute("SELECT count(*) FROM account_decisions WHERE month = ?", [MONTH]).fetchone()
            rows = found[0] if found else 0
    assert complete == [(True,)] and rows == accounts, (complete, rows)
    return {
        "scenario": "close_to_complete", "accounts": accounts, "events": n_events, "fill_s": round(fill_s, 1),
        "ingest_s": round(ingest_s, 1), "worker_closed_s": round(closed_s or complete_s, 2),
        "close_to_complete_s": round(complete_s, 2), "accounts_per_s": round(accounts / complete_s),
        "worker_cpu_s": round(worker_cpu, 2), "sink_cpu_s": round(sink_cpu, 2), "broker_cpu_s": broker_cpu,
        "sink_batches": len(batches), "sink_batch_max_messages": max((m for m, _ in batches), default=0),
        "sink_batch_max_s": max((t for _, t in batches), default=0.0), "load_average": round(os.getloadavg()[0], 1),
    }  # fmt: skip


def sink_batches(path: Path) -> list[tuple[int, float]]:
    """(messages, seconds) of each transaction the sink logged: how long a reader may wait for the file."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return [
        (int(m), float(t)) for m, t in re.findall(r"event=batch_written .*?messages=(\d+) .*?seconds=([\d.]+)", text)
    ]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--single", type=int, default=200_000, help="events, one per message (0: skip)")
    ap.add_argument("--packed", type=int, default=1_000_000, help="events, ~500 per message (0: skip)")
    ap.add_argument("--close-accounts", type=int, default=200_000, help="accounts for the close (0: skip)")
    ap.add_argument(
        "--complete-accounts", type=int, nargs="*", default=[],
        help="accounts for `seatledger close` to DuckDB month_closes.complete, worker and sink running (e.g. 100000 1000000)",
    )  # fmt: skip
    args = ap.parse_args()

    from devtools import local_broker

    with local_broker.session_broker(load_settings(bootstrap=args.bootstrap)) as (base, _owned):
        results = []
        if args.single:
            results.append(await scenario_ingest(base, "single", args.single, 1, args.partitions))
            print(orjson.dumps(results[-1]).decode(), flush=True)
        if args.packed:
            results.append(await scenario_ingest(base, "packed", args.packed, 500, args.partitions))
            print(orjson.dumps(results[-1]).decode(), flush=True)
        if args.close_accounts:
            results.append(await scenario_close(base, args.close_accounts, args.partitions))
            print(orjson.dumps(results[-1]).decode(), flush=True)
        for n in args.complete_accounts:
            results.append(await scenario_close_to_complete(base, n, args.partitions))
            print(orjson.dumps(results[-1]).decode(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
