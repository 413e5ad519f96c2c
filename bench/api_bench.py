"""Benchmark of `seatledger serve`: ingestion over HTTP against `seatledger publish`, and read latency.

    .venv/bin/python bench/api_bench.py [--bootstrap 127.0.0.1:9092] [--events 200000] [--batch 1000]
        [--accounts 100000] [--requests 200] [--partitions 4]

Starts a local broker (devtools.local_broker) on a free port unless --bootstrap answers.
1. ingest: a generated workload (devtools.workload) written as NDJSON, then, on fresh topics each,
   - POSTed to `seatledger serve` in batches of --batch events by one client, one request at a time
     (each answered after Kafka acknowledged it), and by two clients at once;
   - sent by `seatledger publish FILE` (one event per message, its default) and `--pack 500`,
     timed as a user sees it: the whole command, start to exit.
   Events/s of each, and the ratio HTTP / publish.
2. reads: a ledger file with one complete month of --accounts accounts (half in one large company,
   the rest in companies of 1,000), 1 % of them amended, and an estimate of every account, written by
   the sink's own writer; then --requests sequential requests per route over HTTP (keep-alive),
   latency p50/p99 per route as the client sees it.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from random import Random

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from devtools.workload import iter_events  # noqa: E402
from ledger.connection import write_connection  # noqa: E402
from ledger.records import parse_record  # noqa: E402
from ledger.tables import ensure_schema  # noqa: E402
from ledger.writer import write_batch  # noqa: E402
from projections.decide import Decision  # noqa: E402
from projections.estimate import AccountEstimate  # noqa: E402
from projections.snapshots import (  # noqa: E402
    checksum,
    company_month_message,
    decision_message,
    encode,
    estimate_message,
    partition_done_message,
)
from streams.settings import Settings, load_settings  # noqa: E402
from streams.topics import create_topics_sync  # noqa: E402
from tests.support.api_server import ApiServer, api_env, make_keys  # noqa: E402

MONTH = "2026-10"
BIG = "c-big"


def fresh_topics(base: Settings, name: str, partitions: int) -> Settings:
    stem = f"bench.api.{name}.{uuid.uuid4().hex[:6]}"
    s = base.model_copy(
        update={f"topic_{t}": f"{stem}.{t}" for t in ("events", "routed", "dlq", "snapshots")}
        | {"partitions": partitions}
    )
    create_topics_sync(s)
    return s


# Ingestion ------------------------------------------------------------------------------------


def workload(path: Path, events: int) -> int:
    accounts = max(100, events // 45)  # the workload makes ~40-60 events per account-month
    n = 0
    with open(path, "wb") as f:
        for e in iter_events(companies=max(2, accounts // 500), accounts=accounts, month=MONTH, seed=1):
            f.write(orjson.dumps(e) + b"\n")
            n += 1
            if n >= events:
                break
    return n


def post_all(url: str, token: str, lines: list[bytes], batch: int, clients: int) -> float:
    """Seconds to POST every line in batches, `clients` at once (each its own connection)."""
    chunks = [b"\n".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    errors: list[str] = []

    def run(part: list[bytes]) -> None:
        with httpx.Client(timeout=120) as c:
            for body in part:
                r = c.post(url + "/v1/events", content=body, headers=headers)
                if r.status_code != 200 or r.json()["rejected"]:
                    errors.append(r.text[:300])

    threads = [threading.Thread(target=run, args=(chunks[k::clients],)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    return elapsed


def publish_cli(settings: Settings, src: Path, *extra: str) -> float:
    env = api_env(settings, Path("none.duckdb"), Path(tempfile.mkdtemp()))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "seatledger.cli", "publish", str(src), *extra], env=env, cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return elapsed


def scenario_ingest(base: Settings, events: int, batch: int, partitions: int, work: Path) -> dict:
    src = work / "events.ndjson"
    n = workload(src, events)
    lines = src.read_bytes().splitlines()
    tokens = make_keys(work, {"bench": ("publisher", None)})
    out: dict = {"scenario": "ingest", "events": n, "batch": batch}
    for clients in (1, 2):
        topics = fresh_topics(base, f"http{clients}", partitions)
        server = ApiServer(api_env(topics, work / "none.duckdb", work), work / f"api-{clients}.log").start()
        try:
            out[f"http_{clients}_client_events_per_s"] = round(
                n / post_all(server.url, tokens["bench"], lines, batch, clients)
            )
        finally:
            server.stop()
    out["publish_events_per_s"] = round(n / publish_cli(fresh_topics(base, "pub", partitions), src))
    out["publish_pack500_events_per_s"] = round(
        n / publish_cli(fresh_topics(base, "pub500", partitions), src, "--pack", "500")
    )
    out["ratio_http_to_publish"] = round(out["http_1_client_events_per_s"] / out["publish_events_per_s"], 2)
    out["ratio_http_to_publish_pack500"] = round(
        out["http_1_client_events_per_s"] / out["publish_pack500_events_per_s"], 2
    )
    return out


# Reads ----------------------------------------------------------------------------------------


def companies_of(accounts: int) -> dict[str, int]:
    """Half the accounts in one large company, the rest in companies of 1,000."""
    big = accounts // 2
    out = {BIG: big}
    rest = accounts - big
    for i in range(0, rest, 1000):
        out[f"c-{i // 1000:04d}"] = min(1000, rest - i)
    return out


def decision(company: str, i: int, rng: Random) -> Decision:
    billable = rng.random() < 0.7
    return Decision(
        company, f"u-{i:06d}", MONTH, billable, billable, "frontline" if i % 5 == 0 else "standard", "R2",
        "active_full_month" if billable else "no_billing_activity",
        orjson.dumps([{"event_id": f"e-{company}-{i}", "type": "login", "occurred_at": "2026-10-03T09:00:00+02:00"}]).decode(),
        Decimal("4.00") if billable else Decimal("0.00"), "2026.11", "premium",
    )  # fmt: skip


def ledger_writer(path: Path) -> Callable[[list[dict]], None]:
    """A new ledger file at `path` and a function that stores snapshot messages in it as the sink
    does (its writer, one transaction per call), as if read one after another from one partition."""
    offset = 0

    def write(msgs: list[dict]) -> None:
        nonlocal offset
        items = []
        for m in msgs:
            items.extend(parse_record(0, offset, encode(m)))
            offset += 1
        with write_connection(path, timeout=60) as con:
            write_batch(con, items, topic="bench")

    with write_connection(path) as con:
        ensure_schema(con)
    return write


def build_ledger(path: Path, accounts: int) -> dict[str, int]:
    """One complete month of `accounts` decisions, 1 % amended, and an estimate of every account."""
    rng = Random(7)
    layout = companies_of(accounts)
    write = ledger_writer(path)
    every: list[Decision] = []
    for company, n in layout.items():
        ds = [decision(company, i, rng) for i in range(n)]
        every += ds
        invoice = {"company_id": company, "month": MONTH, "plan": "premium", "lines": [], "subtotal_usd": "0.00",
                   "billable_accounts": 0, "charged_accounts": 0, "notices": []}  # fmt: skip
        msgs = [decision_message(d, version=1, partition=0, close_id="bench") for d in ds]
        write([*msgs, company_month_message(invoice, [], close_id="bench", partition=0)])
    done = partition_done_message(MONTH, 0, 1, close_id="bench", companies=len(layout), accounts=len(every),
                                  checksum_=checksum(every), counts={})  # fmt: skip
    write([done])
    amended = [dataclasses.replace(d, billable=False, charged=False, reason="deactivated_in_month", rule="R1",
                                   unit_price_usd=Decimal("0.00")) for d in every[:: 100]]  # fmt: skip
    write([decision_message(d, version=2, corrects_version=1, amend_reason="late_event", partition=0) for d in amended])
    estimate_rows = []
    for d in every:
        status = ("on_track", "billable_so_far") if d.billable else ("at_risk", "awaiting_billing_activity")
        est = AccountEstimate(d, *status)
        estimate_rows.append(estimate_message(est, estimate_id="bench", as_of="2026-10-20T12:00:00Z"))
    for i in range(0, len(estimate_rows), 20_000):
        write(estimate_rows[i : i + 20_000])
    write([_company_estimate(c, n) for c, n in layout.items()])
    return layout


def _company_estimate(company: str, n: int) -> dict:
    invoice = {"company_id": company, "month": MONTH, "plan": "premium", "lines": [], "billable_accounts": 0,
               "charged_accounts": 0, "free_reason": None, "subtotal_usd": "0.00", "notices": [],
               "qualifies_for_invoice_payment": False}  # fmt: skip
    return {"kind": "company_estimate", "format": 1, "provisional": True, "company_id": company, "month": MONTH,
            "estimate_id": "bench", "as_of": "2026-10-20T12:00:00Z", "accounts": n,
            "counts": {"on_track": 0, "at_risk": 0, "not_billed": 0}, "invoice": invoice}  # fmt: skip


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def scenario_reads(base: Settings, accounts: int, requests: int, work: Path) -> dict:
    db = work / "reads.duckdb"
    t0 = time.perf_counter()
    layout = build_ledger(db, accounts)
    build_s = time.perf_counter() - t0
    tokens = make_keys(work, {"reader": ("reader", None)})
    server = ApiServer(api_env(base, db, work), work / "api-reads.log").start()
    rng = Random(3)
    small = [c for c in layout if c != BIG]
    routes = {
        "month_invoices": lambda: f"/v1/months/{MONTH}/invoices",
        "company_invoice": lambda: f"/v1/companies/{rng.choice(small)}/months/{MONTH}/invoice",
        "accounts_page_small_company": lambda: f"/v1/companies/{rng.choice(small)}/months/{MONTH}/accounts?limit=100",
        "accounts_page_big_company": lambda: f"/v1/companies/{BIG}/months/{MONTH}/accounts?limit=100&billable=true",
        "account": lambda: f"/v1/companies/{BIG}/months/{MONTH}/accounts/u-{rng.randrange(layout[BIG]):06d}",
        "estimate_page_big_company": lambda: f"/v1/companies/{BIG}/months/{MONTH}/estimate?limit=100&status=at_risk",
    }
    out: dict = {"scenario": "reads", "accounts": accounts, "companies": len(layout), "build_s": round(build_s, 1)}
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens['reader']}"}, timeout=60
        ) as c:
            c.get(routes["month_invoices"]())  # warm up: the key's argon2 check happens once
            for name, path in routes.items():
                times = []
                for _ in range(requests):
                    t = time.perf_counter()
                    r = c.get(path())
                    times.append((time.perf_counter() - t) * 1000)
                    if r.status_code not in (200, 404):
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
                out[f"{name}_p50_ms"] = round(percentile(times, 50), 1)
                out[f"{name}_p99_ms"] = round(percentile(times, 99), 1)
    finally:
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--events", type=int, default=200_000, help="events to ingest (0: skip)")
    ap.add_argument("--batch", type=int, default=1000, help="events per HTTP request")
    ap.add_argument("--accounts", type=int, default=100_000, help="accounts of the month read back (0: skip)")
    ap.add_argument("--requests", type=int, default=200, help="requests per read route")
    args = ap.parse_args()

    from devtools import local_broker

    with local_broker.session_broker(load_settings(bootstrap=args.bootstrap)) as (base, _owned):
        work = Path(tempfile.mkdtemp(prefix="bench-api-"))
        if args.events:
            print(
                orjson.dumps(scenario_ingest(base, args.events, args.batch, args.partitions, work)).decode(), flush=True
            )
        if args.accounts:
            base_topics = fresh_topics(base, "reads", args.partitions)
            print(orjson.dumps(scenario_reads(base_topics, args.accounts, args.requests, work)).decode(), flush=True)


if __name__ == "__main__":
    main()
