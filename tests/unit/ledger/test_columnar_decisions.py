"""The columnar path of a close's decisions stores exactly what reading each message does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import duckdb
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.batch import Batch, BatchResult, Rows
from ledger.records import Item, parse_record
from ledger.tables import TABLES, ensure_schema
from ledger.versions import store_plain_decisions
from ledger.writer import write_batch
from projections.snapshots import BLOCK_COLUMNS, VERDICT_FIELDS, decision_message, encode, expand_block
from tests.unit.ledger.closes import MONTH, NEXT, TOPIC, Stream, close_msgs, dec

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
_EVIDENCE = (
    "[]",
    '[{"event_id":"e1","type":"login","occurred_at":"2026-03-02T10:00:00+01:00"}]',
    # valid, but not of the close's form (escapes, a number, spaces): the parser decides, not the regex
    orjson.dumps([{"note": 'q"b\\c\x01\u2028😀é', "n": 1}]).decode(),
    '[ {"a":"b"} ]',
    '[{"a":"\u2028 😀"}]',  # of the close's form, with characters JSON leaves unescaped
)
# what can be wrong with a decision message, each taking the per-message path somewhere
_TAMPER = st.one_of(
    st.none(),
    st.sampled_from(
        ("digest", "evidence", "evidence_signed", "price_int", "price_text", "no_tier", "plan_none", "version")
    ),
)


def _decision(
    company: int, user: int, month: str, charged: bool, evidence: int, tamper: str | None, in_report: bool | None = True
) -> dict:
    d = dataclasses.replace(dec(f"c{company}", f"u{user}", month, charged), evidence=_EVIDENCE[evidence])
    if tamper == "evidence_signed":  # not JSON (an escaped quote ends no string), its digest matching it
        d = dataclasses.replace(d, evidence='[{"a":"\\"}]')
    msg = decision_message(d, version=1, in_report=in_report, close_id="close-1", partition=company % 2)
    if tamper == "digest":
        msg["digest"] = "0" * 16
    elif tamper == "evidence":
        msg["evidence"] = "{}"
    elif tamper == "price_int":
        msg["unit_price_usd"] = 10 if charged else 0  # the field-by-field path accepts it
    elif tamper == "price_text":
        msg["unit_price_usd"] = "ten"
    elif tamper == "no_tier":
        del msg["tier"]
    elif tamper == "plan_none":
        msg["plan"] = None
    elif tamper == "version":
        msg["version"] = 2
        msg["amend_reason"] = "late_event"
    return msg


_DECISIONS = st.builds(
    _decision,
    st.integers(0, 2),
    st.integers(0, 4),
    st.sampled_from((MONTH, NEXT)),
    st.booleans(),
    st.integers(0, len(_EVIDENCE) - 1),
    _TAMPER,
    st.sampled_from((True, False, None)),
)
# a batch: messages, each a decision, a repeat of an earlier one (a duplicate or redelivery), or junk
_ENTRIES = st.one_of(_DECISIONS, st.integers(0, 50).map(lambda i: ("repeat", i)), st.just(("junk",)))
_BATCHES = st.lists(st.tuples(st.lists(_ENTRIES, max_size=8), st.booleans(), st.booleans()), min_size=1, max_size=5)


def _items(stream: Stream, entries: list, sent: list[dict], packed: bool, blocks: bool = False) -> list[Item]:
    msgs: list = []
    for e in entries:
        if isinstance(e, dict):
            sent.append(e)
            msgs.append(e)
        elif e[0] == "repeat" and sent:
            msgs.append(sent[e[1] % len(sent)])
        elif e[0] == "junk":
            msgs.append(b"{nope")
    if packed and msgs and all(isinstance(m, dict) for m in msgs):
        off = stream.next.get(0, 0)
        stream.next[0] = off + 1
        return parse_record(0, off, orjson.dumps(_as_blocks(msgs) if blocks else msgs))
    out = []
    for m in msgs:
        off = stream.next.get(0, 0)
        stream.next[0] = off + 1
        out.extend(parse_record(0, off, m if isinstance(m, bytes) else encode(m)))
    return out


def _as_blocks(msgs: list[dict]) -> list[dict]:
    """`msgs` as a close sends them: each run of messages of one company-month that a
    decision_block can stand for (version 1, the block's ids) as one block."""
    out: list[dict] = []
    for m in msgs:
        last = out[-1] if out else {}
        shared = {k: m.get(k) for k in ("format", "company_id", "month", "close_id", "partition", "emitted_at")}
        if last.get("kind") != "decision_block" or {k: last.get(k) for k in shared} != shared:
            last = {"kind": "decision_block", **shared, "verdicts": [], **{c: [] for c in BLOCK_COLUMNS}}
            out.append(last)
        verdict = {f: m[f] for f in VERDICT_FIELDS if f in m}
        verdicts, keys = list(last["verdicts"]), [orjson.dumps(v) for v in last["verdicts"]]
        i = keys.index(orjson.dumps(verdict)) if orjson.dumps(verdict) in keys else len(keys)
        if i == len(keys):
            verdicts.append(verdict)
        row = {"verdict": i} | {c: m.get(c) for c in BLOCK_COLUMNS[1:]}
        trial = {**last, "verdicts": verdicts, **{c: [*last[c], row[c]] for c in BLOCK_COLUMNS}}
        if m.get("kind") == "decision" and [list(e.items()) for e in expand_block(trial)][-1] == list(m.items()):
            out[-1] = trial
        else:  # not something a block can say (an amendment, another field): the message itself
            if not last["verdict"]:
                out.pop()
            out.append(m)
    return out


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


def _ledger() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    ensure_schema(con)
    return con


@settings(max_examples=50, deadline=None)
@given(batches=_BATCHES, invoiced=st.booleans())
def test_columnar_decisions_store_what_the_per_message_path_stores(batches, invoiced):
    """Random batches with duplicates, redeliveries, bad elements, mismatched digests and invoiced
    months: rows, versions, rejects, results and positions are the same either way."""
    cons = {True: _ledger(), False: _ledger()}
    results: dict[bool, list[BatchResult]] = {True: [], False: []}
    for columnar, con in cons.items():
        stream, sent = Stream(), []
        if invoiced:  # c0's and c1's MONTH complete and invoiced: later decisions become adjustments
            msgs, dones = close_msgs(MONTH, {0: [dec("c0", "u0"), dec("c1", "u1", charged=False)]})
            results[columnar].append(write_batch(con, stream.items(msgs + dones), topic=TOPIC, now=NOW))
        previous: list[Item] = []
        for entries, packed, resend in batches:
            items = _items(stream, entries, sent, packed)
            batch = (previous + items) if resend else items  # resend: a restart re-reading older records
            results[columnar].append(write_batch(con, batch, topic=TOPIC, now=NOW, columnar=columnar))
            previous = items
    assert results[True] == results[False]
    assert _tables(cons[True]) == _tables(cons[False])


@settings(max_examples=50, deadline=None)
@given(batches=_BATCHES, invoiced=st.booleans())
def test_decision_blocks_store_what_their_messages_store(batches, invoiced):
    """The same random batches, the packed records sent as decision_blocks where a block can say
    the messages (columnar path) or as the messages themselves (per-message path): the same
    rows, versions, rejects, results and positions."""
    cons = {True: _ledger(), False: _ledger()}
    results: dict[bool, list[BatchResult]] = {True: [], False: []}
    for blocks, con in cons.items():
        stream, sent = Stream(), []
        if invoiced:
            msgs, dones = close_msgs(MONTH, {0: [dec("c0", "u0"), dec("c1", "u1", charged=False)]})
            results[blocks].append(write_batch(con, stream.items(msgs + dones), topic=TOPIC, now=NOW))
        previous: list[Item] = []
        for entries, packed, resend in batches:
            items = _items(stream, entries, sent, packed, blocks)
            batch = (previous + items) if resend else items
            results[blocks].append(write_batch(con, batch, topic=TOPIC, now=NOW, columnar=blocks))
            previous = items
    assert results[True] == results[False]
    assert _tables(cons[True]) == _tables(cons[False])


def test_a_clean_close_batch_takes_the_columnar_path_and_anything_unusual_does_not(db):
    stream = Stream()
    items = stream.items([decision_message(dec(user=f"u{i}"), version=1, partition=0) for i in range(5)])
    batch = Batch(TOPIC, NOW, 1)
    assert store_plain_decisions(db, items, batch, BatchResult(), Rows())
    assert not store_plain_decisions(db, items + items[:1], batch, BatchResult(), Rows())  # a key twice
    tampered = stream.items([{**decision_message(dec(user="u9"), version=1), "digest": "0" * 16}])
    assert not store_plain_decisions(db, items + tampered, batch, BatchResult(), Rows())
    msgs, dones = close_msgs(MONTH, {0: [dec("c1", "u0")]})
    write_batch(db, stream.items(msgs + dones), topic=TOPIC, now=NOW)  # c1's month invoiced
    assert not store_plain_decisions(db, items, batch, BatchResult(), Rows())
