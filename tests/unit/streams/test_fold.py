"""The worker runtime without Kafka: the fold's batch steps, its changelog writes, the batch sender
and the heap trimmer, driven with fake tables and a recording sender."""

from __future__ import annotations

import asyncio

import orjson

from projections.prices import PriceBook
from projections.rulesets import CURRENT
from schemas.control import rejected_control, routed_close_marker
from streams.changelog import ChangelogWrites
from streams.fold import Fold, RoutedRecord
from streams.heap import TRIM_BUSY_INTERVAL, HeapTrimmer
from streams.metrics import WorkerMetrics
from streams.routing import home_partition
from streams.sender import BatchSender
from streams.settings import Settings
from streams.store import TableStore
from tests.support.snapshot_messages import snapshot_messages

MONTH = "2026-10"


class RecordingSender:
    """BatchSender's interface: every `send` call's records, in order."""

    def __init__(self) -> None:
        self.sent: list[list[tuple]] = []

    async def send(self, records: list[tuple]) -> list:
        if records:
            self.sent.append(list(records))
        return []


def make_fold(partitions: int = 4, sender: RecordingSender | None = None) -> tuple[Fold, RecordingSender]:
    settings = Settings(partitions=partitions, topic_routed="routed", topic_snapshots="snapshots")
    sender = sender or RecordingSender()
    fold = Fold(settings, WorkerMetrics(), TableStore("w", partitions), sender, PriceBook.load(None), CURRENT)
    return fold, sender


def company(cid: str, users: int) -> list[dict]:
    evs = [{"event_id": f"{cid}-reg", "type": "company_registered", "occurred_at": "2026-08-01T00:00:00Z",
            "company_id": cid, "timezone": "Europe/Amsterdam"}]  # fmt: skip
    for u in range(users):
        evs.append({"event_id": f"{cid}-p{u}", "type": "account_provisioned", "occurred_at": "2026-09-03T09:00:00Z",
                    "company_id": cid, "user_id": f"u{u}"})  # fmt: skip
        evs.append({"event_id": f"{cid}-l{u}", "type": "login", "occurred_at": f"2026-10-{1 + u:02d}T09:00:00Z",
                    "company_id": cid, "user_id": f"u{u}"})  # fmt: skip
    return evs


async def test_a_batch_hands_its_changelog_records_to_the_producer_once_coalesced_per_key():
    fold, sender = make_fold()
    evs = company("c1", 3)
    p = home_partition("c1", 4)
    await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(evs[:4])), RoutedRecord(p, 1, orjson.dumps(evs[4:]))])
    assert len(sender.sent) == 1  # one flush per batch
    records = sender.sent[0]
    keys = [(topic, key) for topic, _, key, _ in records]
    assert len(keys) == len(set(keys))  # the stats record: written per message, sent once
    assert {part for _, part, _, _ in records} == {p}  # the changelog partition of the routed partition
    for topic, _, key, value in records:
        table = topic.split("-")[1]
        assert orjson.loads(value) == getattr(fold.stores, table).raw[orjson.loads(key)]
    assert len(fold.writes) == 0


async def test_a_redelivered_message_folds_to_nothing_and_is_counted_once():
    fold, sender = make_fold()
    p = home_partition("c1", 4)
    rec = RoutedRecord(p, 7, orjson.dumps(company("c1", 2)))
    await fold.fold_batch([rec])
    await fold.fold_batch([rec])
    assert len(sender.sent) == 1  # the second fold changed nothing: nothing to send
    stats = fold.stores.stats.raw[str(p)]
    assert (stats["events"], stats["duplicates"], stats["off"]) == (5, 0, 7)


async def test_rejection_counts_are_counted_once_per_source_offset():
    fold, _ = make_fold()
    ctl = orjson.dumps(rejected_control(3, [(10, 2), (11, 1)]))
    await fold.fold_batch([RoutedRecord(0, 0, ctl), RoutedRecord(0, 1, ctl)])
    stats = fold.stores.stats.raw["0"]
    assert (stats["rejected"], stats["rej_off"]) == (3, {"3": 11})


async def test_the_month_closes_on_a_partition_once_every_source_partitions_marker_arrived():
    n = 2
    fold, sender = make_fold(n)
    p = home_partition("c1", n)
    await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(company("c1", 3)))])
    sender.sent.clear()
    markers = [RoutedRecord(p, 1 + sp, orjson.dumps(routed_close_marker(MONTH, "x", sp, n))) for sp in range(n)]
    await fold.fold_batch(markers[:1])
    assert not [r for batch in sender.sent for r in batch if r[0] == "snapshots"]
    await fold.fold_batch(markers[1:])
    snaps = [r for batch in sender.sent for r in batch if r[0] == "snapshots"]
    # the company's decisions as one block, packed with its company_month into one record (a JSON
    # array, in order), then the done marker
    assert [_kinds(orjson.loads(r[3])) for r in snaps] == [["decision_block", "company_month"], "partition_done"]
    assert [m["kind"] for m in snapshot_messages(snaps[0][3])] == ["decision"] * 3 + ["company_month"]
    assert {r[1] for r in snaps} == {p}  # a company's messages on its home partition
    assert [r[2] for r in snaps] == [b"c1", str(p).encode()]
    assert fold.stores.closes.raw[f"{MONTH}\x1f{p}"]["closed"] is True
    assert fold.closer.counts.decisions == 3


def test_changelog_writes_keep_the_last_value_per_key_on_the_current_partition():
    writes = ChangelogWrites()
    kv = writes.kv({}, "t-changelog")
    writes.partition = 2
    kv.put("a", {"v": 1})
    kv.put("a", {"v": 2})
    kv.put("b", [1])
    kv.delete("b")
    assert writes.drain() == [("t-changelog", 2, b'"a"', b'{"v":2}'), ("t-changelog", 2, b'"b"', None)]
    assert writes.drain() == []


async def test_the_batch_sender_keeps_order_per_partition_and_starts_a_new_batch_when_one_is_full():
    class Batch:
        def __init__(self) -> None:
            self.items: list[tuple] = []

        def append(self, key, value, timestamp):
            if len(self.items) >= 2:
                return None
            self.items.append((key, value))
            return object()

    class Producer:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def create_batch(self) -> Batch:
            return Batch()

        async def send_batch(self, batch, topic, *, partition):
            self.sent.append((topic, partition, batch.items))
            return asyncio.get_running_loop().create_future()

    producer = Producer()
    records = [("a", 0, b"k1", b"v1"), ("b", 1, b"k2", None), ("a", 0, b"k3", b"v3"), ("a", 0, b"k4", b"v4")]
    futures = await BatchSender(producer).send(records)
    assert producer.sent == [
        ("a", 0, [(b"k1", b"v1"), (b"k3", b"v3")]),
        ("a", 0, [(b"k4", b"v4")]),
        ("b", 1, [(b"k2", None)]),
    ]
    assert len(futures) == 3


def test_the_heap_is_trimmed_once_quiet_after_work_and_at_most_every_busy_interval_while_busy():
    progress = [0.0]
    trims: list[int] = []
    trimmer = HeapTrimmer(lambda: progress[0], lambda pad: trims.append(pad) or 1)
    trimmer.tick()  # work seen (the first total), recently trimmed: wait
    assert trims == []
    trimmer.tick()  # quiet after work: trim
    assert trims == [0]
    trimmer.tick()  # quiet, nothing new: nothing
    progress[0] = 5
    trimmer.tick()  # busy, trimmed recently
    assert trims == [0]
    trimmer.last -= TRIM_BUSY_INTERVAL
    progress[0] = 6
    trimmer.tick()  # busy for a whole interval: trim anyway
    assert trims == [0, 0]


class FailingSender(RecordingSender):
    """Records what is sent; the deliveries of topic `fail` are refused by the broker."""

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail

    async def send(self, records: list[tuple]) -> list:
        await super().send(records)
        futures = []
        for topic in {r[0] for r in records}:
            fut = asyncio.get_running_loop().create_future()
            if topic == self.fail:
                fut.set_exception(RuntimeError("broker said no"))
            else:
                fut.set_result(None)
            futures.append(fut)
        return futures


async def _close_company(fold: Fold, n: int) -> None:
    p = home_partition("c1", n)
    await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(company("c1", 2)))])
    markers = [RoutedRecord(p, 1 + sp, orjson.dumps(routed_close_marker(MONTH, "x", sp, n))) for sp in range(n)]
    await fold.fold_batch(markers)


async def test_a_refused_snapshot_fails_the_batch_before_its_changelog_records_are_sent():
    n = 2
    fold, sender = make_fold(n, FailingSender("snapshots"))
    try:
        await _close_company(fold, n)
    except RuntimeError as exc:
        assert "broker said no" in str(exc)
    else:
        raise AssertionError("the batch should have failed")
    last = sender.sent[-1]
    assert {r[0] for r in last} == {"snapshots"}  # the close's changelog records were never sent


async def test_a_refused_changelog_record_fails_the_batch():
    fold, _ = make_fold(2, FailingSender("w-stats-changelog"))
    p = home_partition("c1", 2)
    try:
        await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(company("c1", 1)))])
    except RuntimeError:
        pass
    else:
        raise AssertionError("the batch should have failed")


def test_every_key_belongs_to_its_companys_home_partition_and_drop_forgets_exactly_those():
    store = TableStore("w", 4)
    pa, pb = home_partition("a", 4), home_partition("b", 4)
    assert pa != pb
    store.owned = {pa, pb}
    store.raw["accounts"].update({"a\x1fu1": [1], "b\x1fu1": [2]})
    store.raw["activity"]["a\x1fu1\x1f2026-10"] = [0]
    store.raw["closes"][f"2026-10\x1f{pb}"] = {"closed": True}
    store.raw["stats"][str(pa)] = {"events": 1}
    assert store.partition_of("closes", f"2026-10\x1f{pb}") == pb
    assert store.drop({pa}) == 3
    assert store.raw["accounts"] == {"b\x1fu1": [2]}
    assert store.raw["activity"] == {} and store.raw["stats"] == {}
    assert store.owned == {pb}


def test_a_changelog_record_sets_or_deletes_its_key():
    store = TableStore("w", 4)
    store.apply("companies", b'"c1"', b'{"r":[]}')
    assert store.raw["companies"] == {"c1": {"r": []}}
    store.apply("companies", b'"c1"', None)
    assert store.raw["companies"] == {}


def _ev(eid: str, kind: str, at: str, **extra) -> dict:
    return {"event_id": eid, "type": kind, "occurred_at": at, "company_id": "c1", **extra}


def _history() -> list[dict]:
    evs = [_ev("reg", "company_registered", "2026-04-01T00:00:00Z", timezone="UTC")]
    for u in ("u1", "u2"):
        evs.append(_ev(f"p-{u}", "account_provisioned", "2026-04-02T09:00:00Z", user_id=u))
    for m in range(6, 11):
        evs.append(_ev(f"l-u1-{m}", "login", f"2026-{m:02d}-10T09:00:00Z", user_id="u1"))
    return evs


async def _close(fold: Fold, month: str, offset: int) -> None:
    await fold.fold_batch([RoutedRecord(0, offset, orjson.dumps(routed_close_marker(month, month, 0, 1)))])


async def _closed_through_october(sender: RecordingSender) -> Fold:
    fold, _ = make_fold(1, sender)
    await fold.fold_batch([RoutedRecord(0, 0, orjson.dumps(_history()))])
    for i, month in enumerate(("2026-06", "2026-07", "2026-08", "2026-09", "2026-10")):
        await _close(fold, month, 1 + i)
    return fold


def _sent(sender: RecordingSender, topic: str) -> list[tuple]:
    return [r for batch in sender.sent for r in batch if r[0] == topic]


def _kinds(value: dict | list) -> str | list[str]:
    return [m["kind"] for m in value] if isinstance(value, list) else value["kind"]


def _messages(sender: RecordingSender, topic: str) -> list[dict]:
    """The messages sent to `topic`, each element of a packed record (a JSON array) on its own, a
    decision_block as its decisions."""
    return [m for r in _sent(sender, topic) for m in snapshot_messages(r[3])]


async def test_closing_a_month_drops_the_facts_of_months_past_the_late_window_with_tombstones():
    sender = RecordingSender()
    fold = await _closed_through_october(sender)
    months = sorted({k.split("\x1f")[2] for k in fold.stores.activity.raw})
    assert months == ["2026-08", "2026-09", "2026-10"]  # 3-month window after the October close
    tombstones = {orjson.loads(k) for t, _, k, v in _sent(sender, "w-activity-changelog") if v is None}
    assert tombstones == {"c1\x1fu1\x1f2026-06", "c1\x1fu1\x1f2026-07"}
    assert not [k for k in fold.stores.emitted.raw if k.split("\x1f")[1] <= "2026-07"]
    assert fold.state.retired_through(0) == "2026-07"
    assert fold.stores.accounts.get("c1\x1fu2") is not None  # lifecycle records stay


async def test_a_late_event_past_the_window_goes_to_the_late_record_and_changes_nothing():
    sender = RecordingSender()
    fold = await _closed_through_october(sender)
    before = dict(fold.stores.activity.raw)
    sender.sent.clear()
    late = _ev("late-u2-jun", "login", "2026-06-15T09:00:00Z", user_id="u2")
    await fold.fold_batch([RoutedRecord(0, 9, orjson.dumps([late]))])
    assert fold.stores.activity.raw == before
    assert _sent(sender, "snapshots") == []  # no amendment of a retired month
    (dlq,) = _sent(sender, "seatledger.events.dlq")
    record = orjson.loads(dlq[3])
    assert record["reason_class"] == "late_past_window" and "2026-06" in record["error"]
    assert record["original"] == late


async def test_a_late_event_inside_the_window_is_amended_exactly_once():
    sender = RecordingSender()
    fold = await _closed_through_october(sender)
    sender.sent.clear()
    late = RoutedRecord(0, 9, orjson.dumps([_ev("late-u2-sep", "login", "2026-09-15T09:00:00Z", user_id="u2")]))
    await fold.fold_batch([late])
    amended = _messages(sender, "snapshots")
    decisions = [m for m in amended if m["kind"] == "decision"]
    assert [(m["user_id"], m["month"], m["version"]) for m in decisions] == [("u2", "2026-09", 2)]
    assert decisions[0]["billable"] is True
    sender.sent.clear()
    await fold.fold_batch([late._replace(offset=10)])  # the same event again: nothing
    assert _sent(sender, "snapshots") == [] and _sent(sender, "seatledger.events.dlq") == []


async def test_an_estimate_marker_from_every_source_emits_the_partitions_bill_so_far_once():
    from schemas.control import routed_estimate_marker

    n = 2
    fold, sender = make_fold(n)
    p = home_partition("c1", n)
    await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(company("c1", 3)))])
    sender.sent.clear()
    marker = [routed_estimate_marker(MONTH, "e1", "2026-10-20T00:00:00Z", sp, n) for sp in range(n)]
    await fold.fold_batch([RoutedRecord(p, 1, orjson.dumps(marker[0]))])
    assert _sent(sender, "snapshots") == []  # not every source partition's marker yet
    await fold.fold_batch([RoutedRecord(p, 2, orjson.dumps(marker[1])), RoutedRecord(p, 3, orjson.dumps(marker[1]))])
    msgs = _messages(sender, "snapshots")
    assert [m["kind"] for m in msgs] == ["estimate"] * 3 + ["company_estimate"]
    assert all(m["provisional"] and m["estimate_id"] == "e1" for m in msgs)
    # u0..u2 logged in on Oct 1..3, provisioned in September: billable so far
    assert {(m["user_id"], m["status"]) for m in msgs[:3]} == {(f"u{i}", "on_track") for i in range(3)}
    assert fold.stores.closes.raw == {}  # nothing closed


async def test_a_malformed_control_message_is_skipped_and_the_partition_goes_on():
    fold, sender = make_fold(2)
    p = home_partition("c1", 2)
    bad = {"seatledger_control": "close_month", "month": "2026-13", "partitions": 2, "source_partition": 0}
    await fold.fold_batch([RoutedRecord(p, 0, orjson.dumps(bad)), RoutedRecord(p, 1, orjson.dumps(company("c1", 1)))])
    assert fold.stores.accounts.get("c1\x1fu0") is not None
    assert fold.metrics.fold_errors._value.get() == 1
