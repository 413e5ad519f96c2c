"""Benchmark of the web console: page render time for a company with --accounts accounts.

    .venv/bin/python bench/console_bench.py [--accounts 100000] [--requests 30]

Builds a ledger file with one complete month of one company of --accounts accounts (1 % of them
amended, a daily MAU series), written by the sink's own writer, runs `seatledger serve` on it,
logs in once and requests each page --requests times, one at a time, as the browser would (HTML
only: the stylesheet is a static file). Prints one JSON line: p50/p99 per page in ms, and the
first request of the company page, which draws its MAU chart (later ones take it from the
cache). Target: the company page, whose users table is the first page of users, under 300 ms.
No Kafka needed: pages only read the ledger.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from random import Random

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from api_bench import MONTH, decision, ledger_writer, percentile  # noqa: E402

from projections.snapshots import checksum, company_month_message, decision_message, partition_done_message  # noqa: E402
from streams.settings import load_settings  # noqa: E402
from tests.support.api_server import ApiServer, api_env, make_keys  # noqa: E402

COMPANY = "c-big"


def build_ledger(path: Path, accounts: int) -> None:
    """One complete month of one company of `accounts` decisions, 1 % amended, with daily MAU."""
    rng = Random(7)
    write = ledger_writer(path)
    every = [decision(COMPANY, i, rng) for i in range(accounts)]
    for i in range(0, accounts, 20_000):
        write([decision_message(d, version=1, partition=0, close_id="bench") for d in every[i : i + 20_000]])
    first = date.fromisoformat(f"{MONTH}-01")
    mau = [(first + timedelta(days=d), int(accounts * (0.6 + 0.01 * d))) for d in range(31)]
    invoice = {"company_id": COMPANY, "month": MONTH, "plan": "premium", "lines": [], "subtotal_usd": "0.00",
               "billable_accounts": sum(d.billable for d in every), "charged_accounts": 0, "notices": []}  # fmt: skip
    write([company_month_message(invoice, mau, close_id="bench", partition=0)])
    write([partition_done_message(MONTH, 0, 1, close_id="bench", companies=1, accounts=accounts,
                                  checksum_=checksum(every), counts={})])  # fmt: skip
    amended = [dataclasses.replace(d, billable=False, charged=False, reason="deactivated_in_month", rule="R1")
               for d in every[::100]]  # fmt: skip
    write([decision_message(d, version=2, corrects_version=1, amend_reason="late_event", partition=0) for d in amended])


def timed(c: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    r = c.get(path)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
    return ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    db = work / "console.duckdb"
    t0 = time.perf_counter()
    build_ledger(db, args.accounts)
    out: dict = {"accounts": args.accounts, "build_s": round(time.perf_counter() - t0, 1)}
    token = make_keys(work, {"reader": ("reader", None)})["reader"]
    env = api_env(load_settings(), db, work)
    env["SEATLEDGER_CONSOLE_SECURE_COOKIE"] = "false"  # plain http, and the client is no browser
    server = ApiServer(env, work / "serve.log").start()
    company = f"/companies/{COMPANY}/months/{MONTH}"
    pages = {
        "company_first_page": company,
        "company_search": company + "?q=u-0499&show=all",
        "company_billed_page_2": company + "?show=billed&after=u-000100",
        "account": company + "/accounts/u-050000",
        "month_overview": f"/months/{MONTH}",
    }
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            assert c.post("/login", data={"key": token}).status_code == 303
            time.sleep(3)  # vl-convert starts its engine when the app starts
            out["company_first_request_ms"] = round(timed(c, company), 1)  # draws the MAU chart
            for name, path in pages.items():
                times = [timed(c, path) for _ in range(args.requests)]
                out[f"{name}_p50_ms"] = round(percentile(times, 50), 1)
                out[f"{name}_p99_ms"] = round(percentile(times, 99), 1)
    finally:
        server.stop()
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
