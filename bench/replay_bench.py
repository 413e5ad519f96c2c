"""Replay benchmark: the batch path against DuckDB's raw bit_or aggregation over the same file.

    .venv/bin/python bench/replay_bench.py --accounts 1000000 --events-per-account 50 --threads 2
    .venv/bin/python bench/replay_bench.py --ndjson FILE --month 2026-10 --threads 2 --runs 3

NDJSON mode (`--ndjson FILE`, e.g. from `seatledger generate --companies 50 --accounts 20000
--month 2026-10`): per run, in the same process and run, (a) DuckDB's raw `read_json` (company_id,
user_id, occurred_at) + bit_or day-mask aggregation over the file and (b) the replay of the month
(`replay.month.run_month`, as `seatledger replay` runs it, without MAU) in a child process, so that
its peak RSS is its own; prints both times, the ratio raw / replay, the replay's split (load,
facts, decide) and its peak RSS; and in CPU seconds both sides, the replay's load against its facts
and decide, and the ceiling: the raw query's CPU over facts + decide alone, the CPU ratio the replay
would reach if reading and checking the lines cost nothing; and the floor (`NDJSON_FLOOR_SQL`):
the raw query's CPU over the least any replay of this bill must do with the file. The Parquet mode
below also prints the process's peak RSS.

Parquet mode:

1. Generates one month (October 2026) for N accounts straight into Parquet in the rows schema
   (`replay.rows.ARROW_SCHEMA`) with DuckDB SQL, never per event in Python: ~N/200 companies
   with time zones (UTC, Amsterdam, Los Angeles, Kathmandu, Sydney, ...), plans, a few trials and
   nonprofits; per account a provisioning, mostly an invite and a claim, some profile updates and
   deactivations; then activity of seven kinds, string ids like 'c-00042' and 'u-0001234'.
2. Times, in the same run and process:
   (a) raw: SELECT company_id, user_id, month, bit_or(1 << (day-1)) ... GROUP BY, UTC days;
   (b) replay: `replay.facts_sql.build_facts` (records + one activity pass in the companies'
       zones, the earliest events fetched back, + pulling per-account-month aggregates into Python) and `month_from_facts`;
   and (a') the replay's activity SQL alone, materialised in DuckDB, to split SQL from Python;
   build_facts is split into its record pass (SQL + Python records) and its activity pass (SQL +
   pulling per-account-month aggregates into Python); and (f) the floor: the least any replay must
   aggregate (the local day masks of three activity classes, then with their earliest instants),
   whose CPU ratio to (a) bounds what any replay of this bill can reach against that peer.
Prints events/s of each stage, the ratios to (a), the CPU seconds of (a) and (b) and their ratio
(steadier than wall time on a shared machine), and a digest of the decisions (sha256 of the
published rows) so that two versions of the code can be checked to bill alike. Data goes to a temporary directory under /tmp (removed
unless --keep).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

MONTH_START_US = 1_790_812_800_000_000  # 2026-10-01T00:00:00Z
DAY_US = 86_400_000_000
ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "America/Los_Angeles",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/London",
]
KINDS = [  # activity kinds with weights
    ("visit", 30),
    ("login", 15),
    ("notification_view", 15),
    ("push_notification_received", 20),
    ("email_notification_received", 10),
    ("chat_use", 8),
    ("admin_panel_use", 2),
]


def cpu_s() -> float:
    """CPU seconds of this process so far, user + system, every thread (DuckDB's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def generate(dirpath: Path, accounts: int, per_account: int, threads: int) -> tuple[Path, int]:
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    companies = max(1, accounts // 200)
    zones = "[" + ", ".join(f"'{z}'" for z in ZONES) + "]"
    kinds_arr = []
    for k, w in KINDS:
        kinds_arr += [k] * w
    kinds = "[" + ", ".join(f"'{k}'" for k in kinds_arr) + "]"
    n_kinds = len(kinds_arr)
    path = dirpath / "events.parquet"
    n_act = accounts * per_account
    con.execute(
        f"""
    COPY (
      WITH comp AS (
        SELECT i AS c, 'c-' || lpad(i::VARCHAR, 5, '0') AS company_id FROM range({companies}) t(i)
      ),
      company_events AS (
        SELECT 'cr-' || c AS event_id, 'company_registered' AS type,
               {MONTH_START_US} - 200 * {DAY_US} + c * 1000000 AS occurred_at_us, company_id, NULL::VARCHAR AS user_id,
               '{{"timezone":"' || ({zones})[1 + c % {len(ZONES)}] || '"}}' AS attrs, NULL::VARCHAR AS extras, NULL::VARCHAR AS source
        FROM comp
        UNION ALL
        SELECT 'pc-' || c, 'plan_changed', {MONTH_START_US} - 100 * {DAY_US} + c * 1000000, company_id, NULL,
               '{{"plan":"' || CASE WHEN c % 10 < 3 THEN 'advanced' WHEN c % 10 = 3 THEN 'enterprise' ELSE 'premium' END || '"}}', NULL, NULL
        FROM comp WHERE c % 10 < 4
        UNION ALL
        SELECT 'tr-' || c, 'trial_started', {MONTH_START_US} - 12 * {DAY_US} + c * 1000000, company_id, NULL, NULL, NULL, NULL
        FROM comp WHERE c % 50 = 7
        UNION ALL
        SELECT 'np-' || c, 'nonprofit_verified', {MONTH_START_US} - 50 * {DAY_US}, company_id, NULL,
               '{{"organization_type":"charity","techsoup_token":"12ab' || c || '@Org"}}', NULL, NULL
        FROM comp WHERE c % 97 = 5
      ),
      acct AS (
        SELECT a, (a // 200) AS c, 'c-' || lpad((a // 200)::VARCHAR, 5, '0') AS company_id,
               'u-' || lpad(a::VARCHAR, 7, '0') AS user_id,
               {MONTH_START_US} - 90 * {DAY_US} + (hash(a) % (100 * {DAY_US}))::BIGINT AS born
        FROM range({accounts}) t(a)
      ),
      account_events AS (
        SELECT 'ap-' || a AS event_id, 'account_provisioned' AS type, born AS occurred_at_us, company_id, user_id,
               CASE WHEN a % 20 = 0 THEN '{{"employment":"contractor"}}' END AS attrs, NULL::VARCHAR AS extras, NULL::VARCHAR AS source
        FROM acct
        UNION ALL SELECT 'iv-' || a, 'invite', born + 3600000000, company_id, user_id, NULL, NULL, NULL FROM acct WHERE a % 10 < 8
        UNION ALL SELECT 'cl-' || a, 'claim', born + 7200000000, company_id, user_id, NULL, NULL, NULL FROM acct WHERE a % 10 < 7
        UNION ALL SELECT 'pu-' || a, 'profile_update', born + 86400000000, company_id, user_id,
               '{{"hourly_paid":true,"role_category":"backstage"}}', NULL, NULL FROM acct WHERE a % 10 = 3
        UNION ALL SELECT 'dx-' || a, 'deactivate', {MONTH_START_US} + (hash(a * 3) % (31 * {DAY_US}))::BIGINT, company_id, user_id, NULL, NULL, NULL
               FROM acct WHERE a % 33 = 1
      ),
      activity AS (
        SELECT 'e-' || i AS event_id,
               ({kinds})[1 + (hash(i * 11) % {n_kinds})::INTEGER] AS type,
               {MONTH_START_US} + (hash(i * 7) % (31 * {DAY_US}))::BIGINT AS occurred_at_us,
               'c-' || lpad(((i % {accounts}) // 200)::VARCHAR, 5, '0') AS company_id,
               'u-' || lpad((i % {accounts})::VARCHAR, 7, '0') AS user_id,
               NULL::VARCHAR AS attrs, NULL::VARCHAR AS extras, NULL::VARCHAR AS source
        FROM range({n_act}) t(i)
      )
      SELECT * FROM company_events UNION ALL SELECT * FROM account_events UNION ALL SELECT * FROM activity
    ) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)
    """
    )
    total = con.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    return path, total


RAW_SQL = """
    CREATE OR REPLACE TEMP TABLE raw_facts AS
    SELECT company_id, user_id, date_trunc('month', d) AS month, bit_or(1::UINTEGER << (day(d) - 1)::UINTEGER) AS days
    FROM (SELECT company_id, user_id, make_timestamp(occurred_at_us)::DATE AS d FROM read_parquet('{path}'))
    GROUP BY ALL
"""


RAW_NDJSON_SQL = """
    CREATE OR REPLACE TEMP TABLE raw_facts AS
    SELECT company_id, user_id, date_trunc('month', d) AS month, bit_or(1::UINTEGER << (day(d) - 1)::UINTEGER) AS days
    FROM (SELECT company_id, user_id, occurred_at::DATE AS d
          FROM read_json('{path}', format='newline_delimited',
                         columns={{'company_id': 'VARCHAR', 'user_id': 'VARCHAR', 'occurred_at': 'TIMESTAMP'}}))
    GROUP BY ALL
"""

# The NDJSON floor: what any replay of this bill must do with the file at the least, and less
# (UTC days, no zone, no check of a line against the contract, any copy of a duplicate kept): read
# the five fields it cannot do without, drop repeated (company_id, event_id) pairs, and aggregate
# the day masks of the three activity classes with their earliest instants.
NDJSON_FLOOR_SQL = """
    CREATE OR REPLACE TEMP TABLE floor_facts AS
    WITH ev AS (
        SELECT DISTINCT ON (company_id, event_id) company_id, user_id, type, occurred_at
        FROM read_json('{path}', format='newline_delimited',
                       columns={{'event_id': 'VARCHAR', 'type': 'VARCHAR', 'company_id': 'VARCHAR',
                                 'user_id': 'VARCHAR', 'occurred_at': 'TIMESTAMPTZ'}})
    ), a AS (
        SELECT company_id, user_id, epoch_us(occurred_at) AS ts, {kind_bits} AS k, occurred_at::DATE AS d
        FROM ev WHERE type IN ({kinds})
    )
    SELECT company_id, user_id, year(d) AS y, month(d) AS m, {aggs}
    FROM a GROUP BY ALL
"""


def ndjson_floor_sql(path: str) -> str:
    from replay.facts_sql import _CLASSES, ACTIVITY_EVENTS, _kind_bits, _sql_list

    aggs = ", ".join(
        f"bit_or(((k >> {i}) & 1)::UINTEGER << (day(d) - 1)::UINTEGER) AS {c}_days, "
        f"min(CASE WHEN k & {1 << i} <> 0 THEN ts END) AS {c}_t"
        for i, (c, _) in enumerate(_CLASSES)
    )
    return NDJSON_FLOOR_SQL.format(path=path, kind_bits=_kind_bits("type"), kinds=_sql_list(ACTIVITY_EVENTS), aggs=aggs)


# The replay in a child process: prints its timings and peak RSS as JSON on the last line.
REPLAY_CHILD = """
import json, resource, sys, time
import duckdb
from replay.month import run_month
try:  # the connection `seatledger replay` opens (memory-bounded), where the code has one
    from replay.duck import batch_connection
except ImportError:
    batch_connection = duckdb.connect
con = batch_connection()
con.execute("SET threads={threads}")
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
import replay.month as month
load_cpu = [0.0]
read = month.load_events
def timed_read(*args, **kwargs):  # the load's CPU seconds: the rest is facts and decide
    c0 = cpu()
    out = read(*args, **kwargs)
    load_cpu[0] = cpu() - c0
    return out
month.load_events = timed_read
t, c = time.perf_counter(), cpu()
res = run_month(sys.argv[1], sys.argv[2], with_mau=False, con=con, progress=False)
total, total_cpu = time.perf_counter() - t, cpu() - c
import hashlib
h = hashlib.sha256()
for d in res.decisions:
    h.update(repr(tuple(d.row().values())).encode())
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps(dict(res.timings, total_s=total, decisions=len(res.decisions), rows=res.loaded.rows,
                      digest=h.hexdigest()[:16], maxrss_mb=ru.ru_maxrss / 1024, cpu_s=total_cpu,
                      load_cpu_s=load_cpu[0])))
"""


def _cpu() -> float:
    """CPU seconds of this process so far, every thread (DuckDB's included)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def ndjson_main(path: str, month: str, threads: int, runs: int) -> None:
    """NDJSON mode: the replay against DuckDB's raw read_json + bit_or over the same file, same run."""
    import json
    import subprocess
    import sys

    size = Path(path).stat().st_size
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    (events,) = con.execute(
        f"SELECT count(*) FROM read_json('{path}', format='newline_delimited', columns={{'type': 'VARCHAR'}})"
    ).fetchone()
    print(f"{path}: {events:,} lines, {size / 1e6:.0f} MB; month {month}; threads {threads}")
    raws, replays, ratios, cpu_ratios, ceilings, floors_ = [], [], [], [], [], []
    child = {}
    for run in range(runs):
        t0, c0 = time.perf_counter(), _cpu()
        con.execute(RAW_NDJSON_SQL.format(path=path))
        raw, raw_cpu = time.perf_counter() - t0, _cpu() - c0
        c0 = _cpu()
        con.execute(ndjson_floor_sql(path))
        floors_.append(raw_cpu / (_cpu() - c0))
        out = subprocess.run(
            [sys.executable, "-c", REPLAY_CHILD.format(threads=threads), path, month],
            check=True,
            capture_output=True,
            text=True,
        )
        child = json.loads(out.stdout.strip().splitlines()[-1])
        rep = child["total_s"]
        raws.append(raw)
        replays.append(rep)
        ratios.append(raw / rep)
        cpu_ratios.append(raw_cpu / child["cpu_s"])
        rest_cpu = child["cpu_s"] - child["load_cpu_s"]
        ceilings.append(raw_cpu / rest_cpu)
        print(
            f"run {run + 1}: raw read_json + bit_or {raw:.2f}s | replay {rep:.2f}s (load {child['load_s']:.2f}s, "
            f"facts {child['facts_s']:.2f}s, decide {child['decide_s']:.2f}s) = {raw / rep:.1%} of raw | "
            f"replay peak RSS {child['maxrss_mb']:,.0f} MB | {child['decisions']:,} decisions, digest {child['digest']} | "
            f"CPU raw {raw_cpu:.2f}s, replay {child['cpu_s']:.2f}s = {raw_cpu / child['cpu_s']:.1%} "
            f"(load {child['load_cpu_s']:.2f}s, facts + decide {rest_cpu:.2f}s)",
            flush=True,
        )
    raw, rep = statistics.median(raws), statistics.median(replays)
    print()
    print(f"events: {events:,}   runs: {runs} (medians)")
    print(f"(a) raw read_json + bit_or aggregation   {raw:7.2f}s  {events / raw / 1e6:6.2f} M events/s")
    print(f"(b) replay (seatledger replay's path)    {rep:7.2f}s  {events / rep / 1e6:6.2f} M events/s")
    print(f"ratio raw / replay: {statistics.median(ratios):.1%} (goal >= 50%)")
    print(
        f"ratio of CPU seconds, raw / replay: {statistics.median(cpu_ratios):.1%} (steadier than wall time on a shared machine)"
    )
    print(
        f"ceiling with a free load, raw CPU / (facts + decide CPU): {statistics.median(ceilings):.1%} "
        "(the CPU ratio if reading and checking the lines cost nothing)"
    )
    print(
        f"floor, raw CPU / the floor's CPU: {statistics.median(floors_):.1%} (read five fields, drop repeated ids, "
        "three classes' day masks and earliest instants, in UTC and without checking a line: "
        "no replay of this bill can beat it)"
    )
    print(f"replay peak RSS: {child['maxrss_mb']:,.0f} MB")


def floors(con: duckdb.DuckDBPyConnection, view: str, zones: dict[str, str]) -> tuple[float, float]:
    """CPU seconds of the least any replay must aggregate, materialised, nothing else: (the local
    day masks of the three activity classes, in the companies' zones; the same with each class's
    earliest instant, which the evidence needs). The raw peer has one class and UTC days."""
    from replay.facts_sql import activity_parts, activity_sql

    join, offset, where = activity_parts(con, view, zones, None)
    out = []
    for earliest in (False, True):
        c0 = cpu_s()
        con.execute(
            "CREATE OR REPLACE TEMP TABLE floor_facts AS " + activity_sql(view, join, offset, where, earliest=earliest)
        )
        out.append(cpu_s() - c0)
    con.execute("DROP TABLE floor_facts")
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ndjson", default=None, help="NDJSON mode: replay this file against raw read_json")
    ap.add_argument("--month", default="2026-10", help="the month to replay (NDJSON mode)")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--events-per-account", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="reuse or keep data here (default: a fresh dir under /tmp)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.ndjson:
        ndjson_main(args.ndjson, args.month, args.threads, args.runs)
        return

    from projections.calendar import Month
    from projections.collector import no_gc
    from projections.prices import PriceBook
    from replay.facts_sql import (
        _activity_query,
        _as_view,
        _load_activity,
        _load_records,
    )
    from replay.month import month_from_facts

    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="seatledger-bench-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "events.parquet"
    t = time.perf_counter()
    if path.exists():
        total = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
        print(f"reusing {path}: {total:,} events")
    else:
        path, total = generate(workdir, args.accounts, args.events_per_account, args.threads)
        print(
            f"generated {total:,} events in {time.perf_counter() - t:.1f}s -> {path} ({path.stat().st_size / 1e6:.0f} MB)"
        )

    con = duckdb.connect()
    con.execute(f"SET threads={args.threads}")
    con.execute(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{path}')")
    month = Month(2026, 10)
    prices = PriceBook.load()
    raw_t, sql_t, facts_t, decide_t, rec_t, act_t = [], [], [], [], [], []
    raw_cpu: list[float] = []  # the peer's CPU seconds, every DuckDB thread
    floor_cpu: list[tuple[float, float]] = []  # CPU seconds of the two floors (see `floors`)
    facts_cpu: list[float] = []  # CPU seconds of this process (DuckDB's threads included)
    decide_cpu: list[float] = []
    digest = ""
    n_dec = 0
    for run in range(args.runs):
        t0, c0 = time.perf_counter(), cpu_s()
        con.execute(RAW_SQL.format(path=path))
        raw_t.append(time.perf_counter() - t0)
        raw_cpu.append(cpu_s() - c0)

        # the replay's activity pass alone, materialised in DuckDB (what SQL costs without Python)
        view = _as_view(con, "ev")
        facts0 = _load_records(con, view, None)
        zones = {cid: cf.timezone_name for cid, cf in facts0.companies.items() if cf.records}
        t0 = time.perf_counter()
        con.execute("CREATE OR REPLACE TEMP TABLE act_facts AS " + _activity_query(con, view, zones, None))
        sql_t.append(time.perf_counter() - t0)
        floor_cpu.append(floors(con, view, zones))

        # build_facts(con, "ev"), in its two passes so that each is timed
        # (build_facts pauses the cyclic GC around both passes; so does this split)
        t0, c0 = time.perf_counter(), cpu_s()
        view = _as_view(con, "ev")
        with no_gc():
            facts = _load_records(con, view, None)
            tr = time.perf_counter()
            _load_activity(
                con, view, facts, {cid: cf.timezone_name for cid, cf in facts.companies.items() if cf.records}, None
            )
        t1, c1 = time.perf_counter(), cpu_s()
        rec_t.append(tr - t0)
        act_t.append(t1 - tr)
        res = month_from_facts(facts, month, prices=prices, with_mau=False)
        t2, c2 = time.perf_counter(), cpu_s()
        facts_cpu.append(c1 - c0)
        decide_cpu.append(c2 - c1)
        facts_t.append(t1 - t0)
        decide_t.append(t2 - t1)
        n_dec = len(res.decisions)
        h = hashlib.sha256()
        for d in res.decisions:
            h.update(repr(tuple(d.row().values())).encode())
        digest = h.hexdigest()[:16]
        print(
            f"run {run + 1}: raw {raw_t[-1]:.2f}s | replay activity SQL {sql_t[-1]:.2f}s | "
            f"build_facts {facts_t[-1]:.2f}s (records {rec_t[-1]:.2f}s, activity {act_t[-1]:.2f}s) | "
            f"decide {decide_t[-1]:.2f}s ({n_dec:,} decisions, digest {digest}) | "
            f"CPU: raw {raw_cpu[-1]:.2f}s, build_facts {facts_cpu[-1]:.2f}s, decide {decide_cpu[-1]:.2f}s "
            f"= {raw_cpu[-1] / (facts_cpu[-1] + decide_cpu[-1]):.1%} of raw | load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        del facts, res

    raw, sql, fb, dec, rec, act = (statistics.median(x) for x in (raw_t, sql_t, facts_t, decide_t, rec_t, act_t))
    print()
    print(f"events: {total:,}   accounts decided: {n_dec:,}   threads: {args.threads}   runs: {args.runs} (medians)")
    print(f"(a)  raw bit_or aggregation            {raw:7.2f}s  {total / raw / 1e6:6.1f} M events/s")
    print(
        f"(a') replay activity SQL (in DuckDB)   {sql:7.2f}s  {total / sql / 1e6:6.1f} M events/s  = {raw / sql:6.1%} of raw"
    )
    print(
        f"(b1) build_facts (SQL + to Python)     {fb:7.2f}s  {total / fb / 1e6:6.1f} M events/s  = {raw / fb:6.1%} of raw"
    )
    print(f"       records pass                    {rec:7.2f}s")
    print(
        f"       activity pass (SQL + pull)      {act:7.2f}s  (activity SQL alone {sql:.2f}s, pull into Python ~{max(act - sql, 0):.2f}s)"
    )
    print(f"(b2) month_from_facts ({n_dec:,} accounts)   {dec:7.2f}s  {n_dec / dec / 1e3:6.1f} k accounts/s")
    print(
        f"(b)  replay = facts + decide           {fb + dec:7.2f}s  {total / (fb + dec) / 1e6:6.1f} M events/s  = {raw / (fb + dec):6.1%} of raw"
    )
    print(f"split of the replay: facts {fb / (fb + dec):.0%}, decide {dec / (fb + dec):.0%}")
    rc, fc, dc = (statistics.median(x) for x in (raw_cpu, facts_cpu, decide_cpu))
    print(
        f"CPU seconds (medians): raw {rc:.2f}s, build_facts {fc:.2f}s, decide {dc:.2f}s; "
        f"ratio raw / replay {rc / (fc + dc):.1%} (steadier than wall time on a shared machine)"
    )
    f0, f1 = (statistics.median(f[i] for f in floor_cpu) for i in (0, 1))
    print(
        f"floor, CPU seconds (medians): the local day masks of the three classes alone {f0:.2f}s "
        f"= {rc / f0:.1%} of raw; with each class's earliest instant {f1:.2f}s = {rc / f1:.1%} of raw "
        "(no replay that bills by the companies' local months with evidence can beat the second ratio)"
    )
    print(f"decisions digest: {digest}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    if not args.keep and not args.dir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
