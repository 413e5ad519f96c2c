"""Where the fold's tables should live: Python dicts in memory (today's TableStore, with local
snapshot files for restarts) or RocksDB on local disk (rocksdict, what Faust's RocksDB store uses).

    .venv/bin/python bench/state_store_bench.py [--accounts 200000]

The state is real: bench/worker_bench.py's close workload (2 events per account, one account-month
each) folded in-process by the worker's own FoldState, then measured as (one JSON line):
- dict: the RSS of the tables as a restarted worker holds them (decoded from JSON, after the
  fold's garbage is freed and trimmed), per account-month; a lookup of every key (what the fold
  does per event);
- snapshot: writing and reading the local snapshot files (streams.local_state), bytes per
  account-month on disk;
- rocksdb (if rocksdict is installed: `pip install '.[bench]'`): writing every key (JSON bytes,
  as the changelog holds them), reopening the store (what a restart costs), a get + JSON decode of
  every key (what the fold would pay per event), RSS growth and bytes on disk per account-month.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from worker_bench import close_messages  # noqa: E402

from streams.heap import malloc_trim  # noqa: E402
from streams.local_state import LocalState  # noqa: E402
from streams.routing import home_partition  # noqa: E402
from streams.state import TABLES, FoldState, Stores  # noqa: E402
from streams.store import TableStore  # noqa: E402

MONTH = "2026-10"
PARTITIONS = 8


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def folded_state(accounts: int) -> tuple[dict[str, dict], int, int]:
    """The fold's tables after bench/worker_bench.py's close workload (2 events per account: one
    account-month each), folded in-process; (tables, account-months, events)."""
    stores = Stores()
    state = FoldState(stores, PARTITIONS)
    events = 0
    for cid, value, n in close_messages(accounts, seed=1):
        state.fold_items(orjson.loads(value), home_partition(cid.decode(), PARTITIONS))
        events += n
    tables = {name: getattr(stores, name).raw for name in TABLES}
    return tables, len(tables["accounts"]), events


def recovered(tables: dict[str, dict]) -> tuple[dict[str, dict], int]:
    """The tables as a restarted worker holds them (decoded from their JSON, as from a changelog
    or a snapshot), and the RSS they take: the fold's garbage is freed and trimmed first."""
    data = orjson.dumps(tables)
    tables.clear()
    gc.collect()
    trim = malloc_trim()
    if trim is not None:
        trim(0)
    rss0 = rss_bytes()
    again = orjson.loads(data)
    del data
    gc.collect()
    return again, rss_bytes() - rss0


def dict_figures(tables: dict[str, dict], account_months: int, rss: int) -> dict:
    keys = [(t, k) for t, d in tables.items() for k in d]
    random.Random(1).shuffle(keys)
    t0 = time.perf_counter()
    for t, k in keys:
        tables[t].get(k)
    dt = time.perf_counter() - t0
    return {"dict_bytes_per_account_month": round(rss / account_months), "dict_get_per_s": round(len(keys) / dt)}


def snapshot_figures(tables: dict[str, dict], account_months: int, tmp: Path) -> dict:
    store = TableStore("bench", PARTITIONS)
    store.load(tables)
    store.owned = set(range(PARTITIONS))
    local = LocalState(tmp, "bench", 3600)
    t0 = time.perf_counter()
    size = 0
    for p, part in store.partition_tables(range(PARTITIONS)).items():
        size += local.save(p, dict.fromkeys(part, 0), part)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in range(PARTITIONS):
        snap = local.load(p, dict.fromkeys(tables, 0))
        assert snap is not None
    t_read = time.perf_counter() - t0
    return {
        "snapshot_write_s": round(t_write, 2), "snapshot_read_s": round(t_read, 2),
        "snapshot_bytes_per_account_month": round(size / account_months),
    }  # fmt: skip


def rocksdb_figures(tables: dict[str, dict], account_months: int, tmp: Path) -> dict:
    try:
        from rocksdict import Options, Rdict, WriteBatch
    except ImportError:
        return {"rocksdb": "rocksdict not installed: pip install '.[bench]'"}
    path = str(tmp / "rocks")
    records = [(f"{t}\x1e{k}".encode(), orjson.dumps(v)) for t, d in tables.items() for k, v in d.items()]
    keys = [k for k, _ in records]
    random.Random(1).shuffle(keys)
    gc.collect()
    rss0 = rss_bytes()
    opts = Options(raw_mode=True)
    db = Rdict(path, opts)
    t0 = time.perf_counter()
    wb = WriteBatch(raw_mode=True)
    for i, (k, v) in enumerate(records):
        wb.put(k, v)
        if i % 10_000 == 9_999:
            db.write(wb)
            wb = WriteBatch(raw_mode=True)
    db.write(wb)
    db.flush()
    t_write = time.perf_counter() - t0
    db.close()
    t0 = time.perf_counter()
    db = Rdict(path, opts)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in keys:
        orjson.loads(db[k])
    t_get = time.perf_counter() - t0
    rss = rss_bytes() - rss0
    db.close()
    disk = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {
        "rocksdb_write_per_s": round(len(records) / t_write), "rocksdb_reopen_s": round(t_open, 3),
        "rocksdb_get_decode_per_s": round(len(keys) / t_get),
        "rocksdb_rss_bytes_per_account_month": round(rss / account_months),
        "rocksdb_disk_bytes_per_account_month": round(disk / account_months),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=200_000)
    args = ap.parse_args()
    built, account_months, events = folded_state(args.accounts)
    tables, rss = recovered(built)
    out: dict = {"accounts": args.accounts, "account_months": account_months, "events": events,
                 "keys": sum(len(d) for d in tables.values())}  # fmt: skip
    out.update(dict_figures(tables, account_months, rss))
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        out.update(snapshot_figures(tables, account_months, Path(tmp)))
        out.update(rocksdb_figures(tables, account_months, Path(tmp)))
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    main()
