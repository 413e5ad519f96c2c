"""Local snapshots of the fold's tables (streams.local_state): written whole, used only when they
can stand for a prefix of the changelogs."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import orjson
import pytest

from streams.local_state import LocalState
from streams.sender import BatchSender
from streams.state import SEP, TABLES
from streams.store import TableStore, written_to

ENDS = dict.fromkeys(TABLES, 10)
OFFSETS = dict.fromkeys(TABLES, 7)


def tables(**data: dict) -> dict[str, dict]:
    return {t: dict(data.get(t, {})) for t in TABLES}


@pytest.fixture
def local(tmp_path):
    return LocalState(tmp_path, "app", max_age_seconds=3600, writer="w1")


def test_a_saved_snapshot_reads_back_with_its_offsets_and_keys(local):
    local.save(3, OFFSETS, tables(companies={"c1": {"zone": "UTC"}}))
    snap = local.load(3, ENDS)
    assert snap is not None
    assert snap.partition == 3 and snap.offsets == OFFSETS
    assert snap.tables["companies"] == {"c1": {"zone": "UTC"}} and snap.keys() == 1


def test_no_file_means_no_snapshot(local):
    assert local.load(0, ENDS) is None


def test_a_snapshot_past_the_changelogs_end_is_not_used(local):
    """The topic was deleted and created again: the snapshot no longer stands for its prefix."""
    local.save(1, {**OFFSETS, "activity": 11}, tables())
    assert local.load(1, ENDS) is None


def test_a_snapshot_older_than_the_maximum_age_is_not_used(tmp_path):
    """A tombstone written after it may have been cleaned from the compacted changelog."""
    old = LocalState(tmp_path, "app", max_age_seconds=3600)
    old.save(1, OFFSETS, tables())
    doc = orjson.loads(old.path(1).read_bytes())
    doc["written_at"] = time.time() - 3601
    old.path(1).write_bytes(orjson.dumps(doc))
    assert old.load(1, ENDS) is None


def test_a_snapshot_of_another_app_or_partition_or_tables_is_not_used(local, tmp_path):
    LocalState(tmp_path, "other", 3600).save(2, OFFSETS, tables())
    (local.directory).mkdir(parents=True, exist_ok=True)
    (local.path(2)).write_bytes((tmp_path / "other" / "partition-2.json").read_bytes())
    assert local.load(2, ENDS) is None
    local.save(4, OFFSETS, tables())
    local.path(5).write_bytes(local.path(4).read_bytes())
    assert local.load(5, ENDS) is None
    assert local.load(4, {**ENDS, "new_table": 0}) is None


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"format": 1}', b"\xff\xfe", b'{"format":1,"partition":"x"}'])
def test_an_unreadable_snapshot_is_ignored_not_fatal(local, content):
    local.directory.mkdir(parents=True)
    local.path(0).write_bytes(content)
    assert local.load(0, ENDS) is None


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_file(local):
    local.save(0, OFFSETS, tables(companies={"a": 1}))
    local.save(0, dict.fromkeys(TABLES, 9), tables(companies={"b": 2}))
    snap = local.load(0, ENDS)
    assert snap is not None and snap.tables["companies"] == {"b": 2} and snap.offsets["companies"] == 9
    assert [p.name for p in local.directory.iterdir()] == ["partition-0.json"]


def test_the_store_splits_its_keys_by_routed_partition_and_loads_them_back():
    store = TableStore("app", 4)
    store.raw["companies"]["c1"] = {"z": 1}
    store.raw["accounts"][f"c1{SEP}u1"] = [1]
    store.raw["stats"]["2"] = {"n": 1}
    store.raw["closes"][f"2026-10{SEP}3"] = {"closed": True}
    by_p = store.partition_tables(range(4))
    home = store.partition_of("companies", "c1")
    assert by_p[home]["companies"] == {"c1": {"z": 1}} and by_p[home]["accounts"] == {f"c1{SEP}u1": [1]}
    assert by_p[2]["stats"] == {"2": {"n": 1}} and by_p[3]["closes"] == {f"2026-10{SEP}3": {"closed": True}}
    again = TableStore("app", 4)
    for p in range(4):
        again.load(by_p[p])
    assert again.raw == store.raw


def test_a_snapshot_names_where_its_keys_were_read_to_or_this_workers_last_acknowledged_write():
    """Never the changelog's current end: after a rebalance it includes the new owner's writes."""
    store = TableStore("app", 4)
    store.recovered_to = {(t, 1): 5 for t in TABLES}
    acknowledged = {(store.changelog("accounts"), 1): 9, (store.changelog("activity"), 1): 3}
    offsets = written_to(store, 1, acknowledged)
    assert offsets == {**dict.fromkeys(TABLES, 5), "accounts": 9}
    assert written_to(store, 2, acknowledged) is None, "a partition not recovered here has no prefix to name"
    store.drop([1])
    assert written_to(store, 1, acknowledged) is None


async def test_the_sender_keeps_the_offset_after_each_acknowledged_batch():
    sender = BatchSender()
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    done.set_result(SimpleNamespace(offset=40))
    sender._delivered("t", 2, 10, done)
    failed: asyncio.Future = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("refused"))
    sender._delivered("t", 2, 100, failed)
    older: asyncio.Future = asyncio.get_running_loop().create_future()
    older.set_result(SimpleNamespace(offset=10))
    sender._delivered("t", 2, 5, older)
    assert sender.next_offsets == {("t", 2): 50}
