"""The archive writer without Kafka: layout, exactly-once across restarts, compaction."""

from __future__ import annotations

import collections
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from projections.calendar import Month
from replay.archive import compaction, reader, writer
from replay.archive.compaction import compact
from replay.archive.layout import archive_glob, bucket_of, read_manifest
from replay.archive.reader import read_company_rows
from replay.archive.writer import ArchiveWriter
from replay.rows import COLUMNS
from schemas.control import close_marker

TOPIC = "t.events"


def ev(eid, kind, at, company="c-1", user="u-1", **extra):
    out = {"event_id": eid, "type": kind, "occurred_at": at, "company_id": company, **extra}
    if user is not None:
        out["user_id"] = user
    return out


def msg(*events) -> bytes:
    return orjson.dumps(events[0] if len(events) == 1 else list(events))


def stream(n_companies=5, per_company=40):
    """Deterministic messages: (partition, bytes), several companies over two UTC months."""
    out = []
    for c in range(n_companies):
        cid = f"c-{c}"
        out.append(
            (
                c % 3,
                msg(
                    ev(
                        f"{cid}-reg",
                        "company_registered",
                        "2026-09-01T00:00:00Z",
                        cid,
                        None,
                        timezone="Europe/Amsterdam",
                    )
                ),
            )
        )
        for i in range(per_company):
            day = 25 + i % 12  # 25 Sep .. 6 Oct
            at = f"2026-{9 if day <= 30 else 10:02d}-{day if day <= 30 else day - 30:02d}T12:00:00Z"
            out.append(
                (
                    c % 3,
                    msg(
                        ev(f"{cid}-e{i}", "login", at, cid, f"u-{i % 4}"),
                        ev(f"{cid}-v{i}", "visit", at, cid, f"u-{i % 4}", channel="web"),
                    ),
                )
            )
    return out


def all_rows(root):
    return duckdb.sql(f"SELECT * FROM read_parquet('{archive_glob(root)}', hive_partitioning=true)").fetchall()


def event_ids(root):
    return collections.Counter(r[0] for r in all_rows(root))


def feed(writer, msgs, offsets, flush_every=7):
    for i, (p, raw) in enumerate(msgs):
        writer.add(p, offsets[p], raw, 1_700_000_000_000_000 + i)
        offsets[p] += 1
        if i % flush_every == flush_every - 1:
            writer.flush()


def partitioned(msgs):
    """Messages with their per-partition offsets, in arrival order."""
    nxt = collections.Counter()
    out = []
    for p, raw in msgs:
        out.append((p, nxt[p], raw))
        nxt[p] += 1
    return out


def test_layout_is_hive_readable_with_rows_schema_first(tmp_path):
    w = ArchiveWriter(tmp_path, TOPIC, clock=lambda: 1_800_000_000_000_000)
    for p in range(3):
        w.open_partition(p)
    for p, off, raw in partitioned(stream()):
        w.add(p, off, raw, 1_790_000_000_000_000)
    w.flush()
    rel = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.glob("month=*/bucket=*/*.parquet"))
    assert rel and all(r.startswith(("month=2026-09/bucket=", "month=2026-10/bucket=")) for r in rel)
    b = bucket_of("c-1")
    assert any(r.startswith(f"month=2026-09/bucket={b:02d}/part-{TOPIC}-p001-") for r in rel)
    con = duckdb.connect()
    rel_ = con.sql(f"SELECT * FROM read_parquet('{archive_glob(tmp_path)}', hive_partitioning=true)")
    assert rel_.columns[: len(COLUMNS)] == list(COLUMNS)
    assert {"month", "bucket", "published_at_us", "archived_at_us"} <= set(rel_.columns)
    n = con.execute(
        f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{archive_glob(tmp_path)}', hive_partitioning=true) "
        "WHERE month = '2026-10' AND bucket = " + f"'{b:02d}'"
    ).fetchone()
    assert n[0] == n[1] > 0
    # the month directory is the UTC month of occurred_at
    bad = con.execute(
        f"SELECT count(*) FROM read_parquet('{archive_glob(tmp_path)}', hive_partitioning=true) "
        "WHERE strftime(make_timestamp(occurred_at_us), '%Y-%m') <> month"
    ).fetchone()[0]
    assert bad == 0
    assert bucket_of("c-1") == bucket_of("c-1") and 0 <= bucket_of("anything") < 16


def test_controls_skipped_rejections_kept_with_reason(tmp_path):
    w = ArchiveWriter(tmp_path, TOPIC)
    w.open_partition(0)
    w.add(0, 0, orjson.dumps(close_marker("2026-10", "close-1", 3)))  # what `seatledger close` sends
    w.add(0, 1, msg(ev("a", "login", "2026-10-02T00:00:00Z"), ev("b", "login", "not a time")))
    w.add(0, 2, b"{nope")
    w.add(0, 3, msg(ev("c", "warp", "2026-10-02T00:00:00Z")))
    res = w.flush()
    assert res.positions == {0: 4} and res.events == 1 and res.rejected == 3
    assert event_ids(tmp_path) == {"a": 1}
    rej = reader.read_rejected(tmp_path)
    assert [(r["offset"], r["index"]) for r in rej] == [(1, 1), (2, 0), (3, 0)]
    assert "occurred_at" in rej[0]["reason"] and "not valid JSON" in rej[1]["reason"] and "warp" in rej[2]["reason"]
    assert orjson.loads(rej[0]["raw"])["event_id"] == "b" and rej[1]["raw"] == "{nope"
    m = read_manifest(tmp_path, TOPIC, 0)
    assert (m.next_offset, m.seq, m.events, m.rejected, m.controls) == (4, 1, 1, 3, 1)
    # the rejected files are outside the events glob
    assert len(all_rows(tmp_path)) == 1


def test_restart_resumes_at_manifest_and_skips_what_is_durable(tmp_path):
    msgs = partitioned(stream())
    w = ArchiveWriter(tmp_path, TOPIC)
    for p in range(3):
        assert w.open_partition(p) == 0
    half = len(msgs) // 2
    for p, off, raw in msgs[:half]:
        w.add(p, off, raw)
    w.flush()
    # a crash: more messages buffered, never flushed
    for p, off, raw in msgs[half : half + 10]:
        w.add(p, off, raw)
    del w
    w2 = ArchiveWriter(tmp_path, TOPIC)
    starts = {p: w2.open_partition(p) for p in range(3)}
    # Kafka redelivers from its (older) committed offset: everything from 0 again
    skipped = sum(not w2.add(p, off, raw) for p, off, raw in msgs)
    w2.flush()
    assert skipped == sum(starts.values()) == half
    expected = collections.Counter()
    for _, _, raw in msgs:
        for e in orjson.loads(raw) if raw.startswith(b"[") else [orjson.loads(raw)]:
            expected[e["event_id"]] += 1
    assert event_ids(tmp_path) == expected


def test_crash_between_data_files_and_manifest_leaves_no_duplicates(tmp_path, monkeypatch):
    msgs = partitioned(stream())
    w = ArchiveWriter(tmp_path, TOPIC)
    for p in range(3):
        w.open_partition(p)
    for p, off, raw in msgs[:30]:
        w.add(p, off, raw)
    w.flush()
    for p, off, raw in msgs[30:60]:
        w.add(p, off, raw)

    def boom(*a, **k):
        raise OSError("power cut before the manifest")

    monkeypatch.setattr(writer, "write_json_durably", boom)
    with pytest.raises(OSError):
        w.flush()  # data files of partition 0 are in place, its manifest is not
    monkeypatch.undo()
    # a tmp file left by a crash mid-write is cleaned too
    stray = next(tmp_path.glob("month=*/bucket=*")) / f"part-{TOPIC}-p002-0000000009.parquet.tmp"
    stray.write_bytes(b"partial")
    w2 = ArchiveWriter(tmp_path, TOPIC)
    for p in range(3):
        w2.open_partition(p)
    assert not stray.exists()
    for p, off, raw in msgs:
        w2.add(p, off, raw)
    w2.flush()
    c = event_ids(tmp_path)
    assert set(c.values()) == {1} and len(c) == sum(
        len(orjson.loads(r)) if r.startswith(b"[") else 1 for _, _, r in msgs
    )


def test_compaction_keeps_rows_exactly_and_only_committed_files(tmp_path):
    msgs = partitioned(stream())
    w = ArchiveWriter(tmp_path, TOPIC)
    for p in range(3):
        w.open_partition(p)
    for i, (p, off, raw) in enumerate(msgs):
        w.add(p, off, raw, 1_790_000_000_000_000 + i)
        if i % 5 == 4:
            w.flush()
    w.flush()
    before = sorted(all_rows(tmp_path))
    files_before = len(list(tmp_path.glob("month=*/bucket=*/*.parquet")))
    # an uncommitted file (seq above the manifest) must not be merged
    d = next(tmp_path.glob("month=*/bucket=*"))
    uncommitted = d / f"part-{TOPIC}-p000-9999999999.parquet"
    pq.write_table(pq.read_table(next(d.glob("part-*.parquet"))), uncommitted)
    done = compact(tmp_path)
    assert done and all(c.inputs >= 2 for c in done)
    assert uncommitted.exists()
    uncommitted.unlink()
    after = sorted(all_rows(tmp_path))
    assert after == before
    files_after = len(list(tmp_path.glob("month=*/bucket=*/*.parquet")))
    assert files_after < files_before
    assert all(len(list(d.glob("*.parquet"))) == 1 for d in tmp_path.glob("month=*/bucket=*"))
    assert not list(tmp_path.glob("_manifest/compact-*.json"))
    # a compacted directory is compacted again with new files, still row-exact
    w2 = ArchiveWriter(tmp_path, TOPIC)
    for p in range(3):
        w2.open_partition(p)
    w2.add(0, 10_000, msg(ev("late-1", "login", "2026-10-03T00:00:00Z", "c-0", "u-1")))
    w2.flush()
    compact(tmp_path)
    assert event_ids(tmp_path)["late-1"] == 1 and len(all_rows(tmp_path)) == len(before) + 1


def test_interrupted_compaction_rolls_forward_or_back(tmp_path, monkeypatch):
    w = ArchiveWriter(tmp_path, TOPIC)
    w.open_partition(0)
    for i in range(6):
        w.add(0, i, msg(ev(f"e{i}", "login", "2026-10-03T00:00:00Z")))
        w.flush()
    before = sorted(all_rows(tmp_path))
    real_unlink = Path.unlink
    calls = {"n": 0}

    def crash_after_first_delete(self, *a, **k):
        real_unlink(self, *a, **k)
        if self.name.startswith("part-"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("kill -9")

    monkeypatch.setattr(Path, "unlink", crash_after_first_delete)
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path)
    monkeypatch.undo()
    assert list(tmp_path.glob("_manifest/compact-*.json"))  # the journal says what to finish
    assert sorted(set(all_rows(tmp_path))) == before  # readers dedupe meanwhile
    compaction.recover_compactions(tmp_path)
    assert sorted(all_rows(tmp_path)) == before
    assert len(list(tmp_path.glob("month=*/bucket=*/*.parquet"))) == 1

    # roll back: journal written, output not yet renamed into place
    for i in range(6, 9):
        w.add(0, i, msg(ev(f"e{i}", "login", "2026-10-03T00:00:00Z")))
        w.flush()
    before = sorted(all_rows(tmp_path))
    monkeypatch.setattr(compaction.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        compact(tmp_path)
    monkeypatch.undo()
    assert compact(tmp_path, min_files=99) == []  # recovery alone
    assert not list(tmp_path.glob("month=*/bucket=*/*.tmp"))
    assert sorted(all_rows(tmp_path)) == before


def test_company_read_dedups_filters_and_brings_guest_invites(tmp_path):
    w = ArchiveWriter(tmp_path, TOPIC)
    w.open_partition(0)
    rows = [
        ev("r", "company_registered", "2026-09-01T00:00:00Z", "c-1", None, timezone="Pacific/Auckland"),
        ev("a", "login", "2026-09-30T12:30:00Z", "c-1"),  # 1 Oct in Auckland, UTC September
        ev("a", "login", "2026-09-30T12:30:00Z", "c-1"),  # sent twice
        ev("x", "login", "2026-10-02T00:00:00Z", "c-2"),
        ev("g", "invite", "2026-10-02T00:00:00Z", "c-2", "u-9", guest_home_company_id="c-1"),
        ev("late", "login", "2026-12-02T00:00:00Z", "c-1"),
    ]
    for i, r in enumerate(rows):
        w.add(0, i, msg(r), 1_000 + i)
    w.flush()
    got = read_company_rows(tmp_path, "c-1", Month(2026, 11))
    assert [r["event_id"] for r in got] == ["r", "a", "g"]
    assert got[1]["published_at_us"] == 1_001  # the first delivery is the one kept
    assert [r["event_id"] for r in reader.read_all_rows(tmp_path, Month(2026, 10))] == ["r", "a", "g", "x"]
