"""Snapshot-topic records in: Kafka values -> Items -> checked values and the rows they become.

Nothing here touches the database. A record that cannot be read is not an error for the sink: it
becomes a `sink_rejects` row (with its bytes), so one bad message neither stops nor is lost.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ledger.batch import Batch
from ledger.tables import arrow_schema
from projections.calendar import Month
from projections.decide import DECISION_COLUMNS, Decision
from projections.estimate import STATUSES
from projections.money import cents
from projections.prices import MAX_USD
from projections.snapshots import (
    BLOCK_COLUMNS,
    KINDS,
    VERDICT_FIELDS,
    DecisionEncoder,
    decision_from_row,
    digest,
    expand_block,
)
from schemas.decode import deeper_than as _deeper_than

_STR_COLUMNS = ("company_id", "user_id", "month", "tier", "rule", "reason", "evidence", "ruleset_version")


@dataclass(slots=True)
class Item:
    """One snapshot message (an element of a Kafka record) with where it came from.

    `msg` is the decoded JSON object, or None with `error` set when the record could not be read.
    A Kafka record holding a JSON array yields one Item per element (same offset, `index` 0, 1, ...).
    `plain`: `plain_decision` accepted it (the writer's columnar path takes only those messages).
    `count`: the messages it stands for (a `decision_block`'s accounts; `expanded` gives them).
    """

    kafka_partition: int
    kafka_offset: int
    msg: dict | None
    index: int = 0
    error: str | None = None
    raw: bytes | None = None
    plain: bool = False
    count: int = 1


def parse_record(partition: int, offset: int, value: bytes | None) -> list[Item]:
    """A Kafka record's value -> Items: a JSON object, or a JSON array of objects (packed).

    An element is readable only when every field the writer stores has the type and range of its
    DuckDB column (`shape_problem`): a malformed message becomes an unreadable Item (a
    `sink_rejects` row) here, so it can never fail the batch's transaction and stop the sink.
    Never raises."""
    if value is None:
        return [Item(partition, offset, None, 0, "empty record (no value)", None)]
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [Item(partition, offset, None, 0, f"not JSON: {exc}", value)]
    elems = obj if isinstance(obj, list) else [obj]
    shallow: bool | None = None  # few brackets in the record: no element can nest too deep (counted once needed)
    out = []
    for i, el in enumerate(elems):
        if type(el) is dict and plain_decision(el):
            out.append(Item(partition, offset, el, i, plain=True))  # what shape_problem accepts, in one pass
            continue
        if type(el) is dict and el.get("kind") == "decision_block":  # its depth check skips its columns:
            out.append(_checked_item(partition, offset, i, el, True, value))  # cheaper than counting brackets
            continue
        if shallow is None:
            shallow = value.count(b"{") + value.count(b"[") <= MAX_DEPTH
        out.append(_checked_item(partition, offset, i, el, not shallow, value))
    return out


def _checked_item(partition: int, offset: int, i: int, el: Any, check_depth: bool, record: bytes) -> Item:
    """Element `i` of a record, read by `shape_problem`: its Item, or an unreadable Item naming why."""
    try:
        problem = shape_problem(el, check_depth=check_depth)
    except Exception as exc:  # a bug in the checks: the element is unreadable, the sink goes on
        problem = f"cannot be checked: {type(exc).__name__}: {exc}"
    if problem is None:
        return Item(partition, offset, el, i, count=len(el["user_id"]) if el["kind"] == "decision_block" else 1)
    if problem == "is not a JSON object":
        problem = f"element {i} {problem}"
    return Item(partition, offset, None, i, problem, _element_bytes(el, record))


def expanded(items: list[Item]) -> list[Item]:
    """`items` with each `decision_block` replaced by the `decision` messages it stands for
    (projections.snapshots.expand_block), each read as `parse_record` reads an element: what the
    writer's per-message path stores, rejecting a bad account alone."""
    out: list[Item] = []
    for it in items:
        if it.msg is None or it.msg["kind"] != "decision_block":
            out.append(it)
            continue
        record = _element_bytes(it.msg, b"")
        for i, el in enumerate(expand_block(it.msg)):
            if plain_decision(el):
                out.append(Item(it.kafka_partition, it.kafka_offset, el, i, plain=True))
            else:
                out.append(_checked_item(it.kafka_partition, it.kafka_offset, i, el, True, record))
    return out


def _element_bytes(el: Any, record: bytes) -> bytes:
    """What sink_rejects keeps of an unreadable element: its JSON, else the whole record."""
    try:
        return orjson.dumps(el)
    except (TypeError, orjson.JSONEncodeError):  # nested too deep to encode again
        return record


# The shape of each kind: field -> what the DuckDB column can hold ("?" allows null or absence).
# Decision columns (projections.decide.DECISION_COLUMNS) are checked by `decision_of`.
_SHAPES: dict[str, dict[str, str]] = {
    "decision": {
        "digest": "str", "plan": "str?", "version": "int32?", "amend_reason": "str?", "in_report": "bool?",
        "close_id": "str?", "partition": "int32?", "emitted_at": "str?",
    },
    "decision_block": {
        "company_id": "str", "month": "str", "verdicts": "list", "verdict": "list", "user_id": "list",
        "evidence": "list", "in_report": "list", "digest": "list", "close_id": "str?", "partition": "int32?",
        "emitted_at": "str?",
    },
    "company_month": {
        "company_id": "str", "month": "str", "invoice": "dict", "mau": "list?", "version": "int32?",
        "close_id": "str?", "partition": "int32?", "emitted_at": "str?",
    },
    "partition_done": {
        "month": "str", "partition": "int32", "partitions": "int32", "close_id": "str?", "companies": "int32?",
        "accounts": "int32?", "checksum": "str", "counts": "dict?", "emitted_at": "str?",
    },
    "dispute_applied": {
        "ticket": "str", "company_id": "str", "month": "str", "requested_by": "str?", "applied_at": "str?",
        "changes": "list?",
    },
    "estimate": {
        "plan": "str?", "status": "str", "status_reason": "str", "estimate_id": "str", "as_of": "str",
        "partition": "int32?", "emitted_at": "str?",
    },
    "company_estimate": {
        "company_id": "str", "month": "str", "estimate_id": "str", "as_of": "str", "accounts": "int32?",
        "counts": "dict?", "invoice": "dict", "partition": "int32?", "emitted_at": "str?",
    },
}  # fmt: skip
_INVOICE_SHAPE = {
    "plan": "str?", "free_reason": "str?", "po_number": "str?", "payment_method": "str?", "card_brand": "str?",
    "billing_country": "str?", "lines": "list?", "notices": "list?", "subtotal_usd": "money?",
}  # fmt: skip
_LINE_SHAPE = {"plan": "str", "tier": "str", "count": "int32", "unit_price_usd": "money"}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
MAX_DEPTH = 32
_VALID_MONTHS: set[str] = set()  # month strings Month.parse accepted (checked once each)


def shape_problem(el: Any, *, check_depth: bool = True) -> str | None:
    """Why a snapshot-topic element cannot be stored, or None when it can."""
    if not isinstance(el, dict):
        return "is not a JSON object"
    kind = el.get("kind")
    if type(kind) is not str or kind not in KINDS:
        return f"unknown kind {kind!r}" if type(kind) is str and len(kind) <= 80 else "unknown kind"
    if check_depth and (_block_deeper(el) if kind == "decision_block" else _deeper_than(el, MAX_DEPTH)):
        return f"nests more than {MAX_DEPTH} levels"
    problem = _fields_problem(el, _SHAPES[kind])
    if problem is None and "month" in el and not (type(el["month"]) is str and el["month"] in _VALID_MONTHS):
        try:
            Month.parse(el["month"])
        except ValueError as exc:
            problem = f"month: {exc}"
        else:
            if len(_VALID_MONTHS) < 1200:  # every month the contract allows fits
                _VALID_MONTHS.add(el["month"])
    if problem is None and kind == "decision_block":
        problem = _block_problem(el)
    if problem is None and kind in ("company_month", "company_estimate"):
        problem = _company_month_problem(el)
    if problem is None and kind == "partition_done":
        counts = el.get("counts") or {}
        problem = _fields_problem(counts, dict.fromkeys(counts, "int64?"), "counts.")
    return problem


_NESTED = frozenset({dict, list})  # the only types orjson decodes to besides scalars
_OPTIONAL_STR = ("plan", "amend_reason", "close_id", "emitted_at")
_INT32_MIN, _INT32_MAX = _INT_RANGES["int32"]


def plain_decision(el: dict) -> bool:
    """The common decision message, checked in one pass (most of a close's messages): every value
    a scalar (so nothing nests), each field of `_SHAPES["decision"]` of its type and range, the
    month one `Month.parse` accepted before. True implies `shape_problem(el) is None`; False says
    nothing (the caller asks `shape_problem`, which names the problem)."""
    g = el.get
    month = g("month")
    if g("kind") != "decision" or type(g("digest")) is not str or type(month) is not str or month not in _VALID_MONTHS:
        return False
    for name in _OPTIONAL_STR:
        v = g(name)
        if v is not None and type(v) is not str:
            return False
    for name in ("version", "partition"):
        v = g(name)
        if v is not None and not (type(v) is int and _INT32_MIN <= v <= _INT32_MAX):
            return False
    v = g("in_report")
    if v is not None and type(v) is not bool:
        return False
    return _NESTED.isdisjoint(map(type, el.values()))


def _company_month_problem(el: dict) -> str | None:
    invoice = el["invoice"]
    problem = _fields_problem(invoice, _INVOICE_SHAPE, "invoice.")
    for i, line in enumerate(invoice.get("lines") or []):
        problem = problem or (
            _fields_problem(line, _LINE_SHAPE, f"invoice.lines[{i}].")
            if isinstance(line, dict)
            else f"invoice.lines[{i}] is not an object"
        )
    if problem is None and any(type(n) is not str for n in invoice.get("notices") or []):
        problem = "invoice.notices must be strings"
    for i, pair in enumerate(el.get("mau") or []):
        if problem is None and not _mau_pair(pair):
            problem = f"mau[{i}] must be [YYYY-MM-DD, count]"
    return problem


def _block_deeper(el: dict) -> bool:
    """`_deeper_than(el, MAX_DEPTH)` for a decision_block without walking its columns of scalars
    (its evidence texts hold brackets, so counting a record's brackets does not clear it)."""
    for v in el.values():
        if type(v) is list and _NESTED.isdisjoint(map(type, v)):
            continue
        if type(v) in _NESTED and _deeper_than(v, MAX_DEPTH - 1):
            return True
    return False


def _block_problem(el: dict) -> str | None:
    """What a decision_block needs to stand for its decision messages (`expand_block`): columns of
    one length, verdicts as objects, each index one of them. Each account's values are checked as
    its message's (`block_columns`, else `expanded` and the per-message checks)."""
    n = len(el["verdict"])
    if n == 0:
        return "has no accounts"
    for name in BLOCK_COLUMNS[1:]:
        if len(el[name]) != n:
            return f"{name} has {len(el[name])} values, verdict has {n}"
    verdicts = el["verdicts"]
    if not verdicts or set(map(type, verdicts)) != _DICT_ONLY:
        return "verdicts must be an array of objects"
    if set(map(type, el["verdict"])) != _INT_ONLY or not 0 <= min(el["verdict"]) <= max(el["verdict"]) < len(verdicts):
        return f"verdict must hold indices into verdicts (0 to {len(verdicts) - 1})"
    return None


_INT_ONLY = {int}


def _mau_pair(pair: Any) -> bool:
    if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or _value_problem(pair[1], "int32"):
        return False
    try:
        date.fromisoformat(pair[0])
    except ValueError:
        return False
    return True


def _fields_problem(obj: dict, shape: dict[str, str], prefix: str = "") -> str | None:
    for name, want in shape.items():
        problem = _value_problem(obj.get(name), want)
        if problem is not None:
            return f"{prefix}{name} {problem}"
    return None


def _value_problem(v: Any, want: str) -> str | None:
    """Why `v` does not fit `want` (str, int32, int64, bool, money, dict, list; "?": or null)."""
    if want.endswith("?"):
        if v is None:
            return None
        want = want[:-1]
    if want == "str":
        return None if type(v) is str else "must be a string"
    if want == "bool":
        return None if type(v) is bool else "must be true or false"
    if want in _INT_RANGES:
        lo, hi = _INT_RANGES[want]
        return None if type(v) is int and lo <= v <= hi else f"must be an integer from {lo} to {hi}"
    if want == "money":
        try:
            ok = type(v) in (str, int) and abs(Decimal(v)) < MAX_USD
        except (ArithmeticError, ValueError):
            ok = False
        return None if ok else "must be an amount below 10,000,000,000 (a string such as '4.00')"
    if want == "dict":
        return None if type(v) is dict else "must be an object"
    return None if type(v) is list else "must be an array"  # "list"


def message(it: Item) -> dict:
    """The decoded message of an Item that was read (the writer routes unreadable ones to rejects)."""
    if it.msg is None:
        raise ValueError(f"record {it.kafka_partition}:{it.kafka_offset} was not readable: {it.error}")
    return it.msg


def reject_row(it: Item, error: str, batch: Batch) -> dict:
    """The `sink_rejects` row keeping an unreadable record and why."""
    raw = it.raw if it.raw is not None else (orjson.dumps(it.msg) if it.msg is not None else None)
    return {
        "topic": batch.topic,
        "kafka_partition": it.kafka_partition,
        "kafka_offset": it.kafka_offset,
        "error": error,
        "raw": raw.decode("utf-8", "replace") if raw is not None else None,
        "received_at": batch.now,
    }


def provenance(it: Item, batch: Batch) -> dict:
    """The columns saying where a stored message came from and when it arrived."""
    return {
        "received_at": batch.now,
        "batch_id": batch.batch_id,
        "kafka_partition": it.kafka_partition,
        "kafka_offset": it.kafka_offset,
    }


def int_or_none(v: Any) -> int | None:
    return None if v is None else int(v)


# Decisions -----------------------------------------------------------------------------------


def decision_of(msg: dict, encoder: DecisionEncoder | None = None) -> tuple[Decision, bool]:
    """A decision message's published values as a Decision, and whether its digest matches them.

    Raises ValueError on a malformed message. The digest is projections.snapshots.digest of the
    decision read back with projections.snapshots.decision_from_row (price rounded to cents), so
    the sink checks exactly what the emitter fingerprinted.
    """
    d = _plain_decision_values(msg)
    if d is None:
        d = _checked_decision_values(msg)
    return d, (encoder.digest(d) if encoder is not None else digest(d)) == msg["digest"]


_PRICES: dict[str, Decimal] = {}  # price text -> its value in cents, for the texts seen (few)


def _price(text: str) -> Decimal | None:
    """`cents(text)` when it is in range (cached), else None."""
    p = _PRICES.get(text)
    if p is None:
        try:
            p = cents(text)
            if not abs(p) < MAX_USD:
                return None
        except ArithmeticError:  # not a number, NaN: the checked path names it
            return None
        if len(_PRICES) < 10_000:
            _PRICES[text] = p
    return p


def _plain_decision_values(msg: dict) -> Decision | None:
    """`_checked_decision_values(msg)` for the common message (every column of its type, the price
    a text, the evidence an array of objects), with fewer steps; None for anything else (then the
    checked path raises with the reason). The same Decision: decision_from_row's values."""
    try:
        cid, uid, month, billable, charged, tier, rule, reason, evidence, price, rsv = map(
            msg.__getitem__, DECISION_COLUMNS
        )
        msg["digest"]
    except KeyError:
        return None
    if not (type(cid) is str and type(uid) is str and type(month) is str and type(tier) is str
            and type(rule) is str and type(reason) is str and type(evidence) is str and type(rsv) is str
            and type(billable) is bool and type(charged) is bool and type(price) is str):  # fmt: skip
        return None
    usd = _price(price)
    if usd is None or not _evidence_ok(evidence):
        return None
    plan = msg.get("plan")
    return Decision(cid, uid, month, billable, charged, tier, rule, reason, evidence, usd, rsv, str(plan or ""))


def _evidence_ok(text: str) -> bool:
    """The evidence text is a JSON array of objects (what `_checked_decision_values` requires)."""
    try:
        ev = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return type(ev) is list and set(map(type, ev)) <= _DICT_ONLY


# A JSON array of flat objects whose keys and values are strings without escapes: what a close's
# evidence texts are. A text of this form is a JSON array of objects (`_evidence_ok`), whatever its
# characters: outside the quotes only brackets, braces, colons and commas; inside, any character
# but the quote, the backslash and the control characters JSON forbids there.
_STRING = r'"[^"\\\x00-\x1f]*"'
_PAIR = f"{_STRING}:{_STRING}"
_OBJECT = rf"\{{(?:{_PAIR}(?:,{_PAIR})*)?\}}"
EVIDENCE_FORM = rf"\A\[(?:{_OBJECT}(?:,{_OBJECT})*)?\]\z"


def evidence_column_ok(evidence: pa.Array) -> bool:
    """`all(map(_evidence_ok, evidence))`, vectorised: the texts of `EVIDENCE_FORM` pass in one
    regex pass over the column (RE2, in Arrow); only the others are parsed, by `_evidence_ok`,
    which stays the authority (so the regex can only spare work, never decide otherwise)."""
    fits = pc.match_substring_regex(evidence, EVIDENCE_FORM)
    if pc.all(fits).as_py():
        return True
    return all(map(_evidence_ok, evidence.filter(pc.invert(fits)).to_pylist()))


_DICT_ONLY = {dict}


class DecisionColumns(NamedTuple):
    """A batch's plain decision messages as columns: `_plain_decision_values` of each, by column
    (`unit_price_usd` in cents, `plan` as the Decision's), and the digest each message carries;
    Arrow arrays of the snapshot_versions column types (what the writer inserts)."""

    company_id: pa.Array
    user_id: pa.Array
    month: pa.Array
    billable: pa.Array
    charged: pa.Array
    tier: pa.Array
    rule: pa.Array
    reason: pa.Array
    evidence: pa.Array
    unit_price_usd: pa.Array
    ruleset_version: pa.Array
    plan: pa.Array
    digest: pa.Array


_DECISION_FIELDS = (*DECISION_COLUMNS, "digest")


def version_type(column: str) -> pa.DataType:
    """The Arrow type of a snapshot_versions column (ledger/sql/snapshot_versions.sql)."""
    return arrow_schema("snapshot_versions").field(column).type


def _as_columns(values: Sequence[Any]) -> DecisionColumns:
    """DecisionColumns of lists (or arrays already built), in DecisionColumns' order."""
    return DecisionColumns(
        *(
            v if isinstance(v, pa.Array) else pa.array(v, version_type(name))
            for name, v in zip(DecisionColumns._fields, values, strict=True)
        )
    )


def decision_columns(msgs: list[dict], encoder: DecisionEncoder) -> DecisionColumns | None:
    """`decision_of` of every message at once, by column, when each is the common case and its
    digest matches: the columns; else None (the caller takes the per-message path, which names
    each problem). The checks of `_plain_decision_values`, a column at a time."""
    try:
        cid, uid, month, billable, charged, tier, rule, reason, evidence, price, rsv, digests = (
            list(map(operator.itemgetter(name), msgs)) for name in _DECISION_FIELDS
        )
    except KeyError:  # a field missing
        return None
    str_columns = (cid, uid, month, tier, rule, reason, evidence, rsv, price, digests)
    if not (all(_only(str, c) for c in str_columns) and _only(bool, billable) and _only(bool, charged)):
        return None
    prices = {text: cents_ for text in set(price) if (cents_ := _price(text)) is not None}
    evidence_array = pa.array(evidence, pa.string())
    if len(prices) < len(set(price)) or not evidence_column_ok(evidence_array):
        return None
    plan = [str(m.get("plan") or "") for m in msgs]
    groups: dict[tuple, list[int]] = {}  # the messages of one verdict share the digest's pieces
    for i, key in enumerate(zip(cid, month, billable, charged, tier, rule, reason, price, rsv, plan, strict=True)):
        groups.setdefault(key, []).append(i)
    for (c, mo, b, ch, t, r, rs, p, v, pl), idx in groups.items():
        template = Decision(c, uid[idx[0]], mo, b, ch, t, r, rs, evidence[idx[0]], prices[p], v, pl)
        if encoder.digests(template, [evidence[i] for i in idx], [uid[i] for i in idx]) != [digests[i] for i in idx]:
            return None
    usd = [prices[text] for text in price]
    return _as_columns(
        (cid, uid, month, billable, charged, tier, rule, reason, evidence_array, usd, rsv, plan, digests)
    )


class BlockColumns(NamedTuple):
    """The decision columns of a run of decision_blocks, and which block each row comes from."""

    columns: DecisionColumns
    block: pa.Array  # int32: the row's block, an index into the run


def block_columns(blocks: list[dict], encoder: DecisionEncoder) -> BlockColumns | None:
    """`decision_columns` of the messages some decision_blocks stand for (`expand_block`), read
    from their columns: each verdict checked once (`_plain_decision_values` of its fields), each
    account's user id, evidence, in_report and digest by column. None when any check fails: the
    caller then reads `expanded(...)` message by message, which names each problem.

    The Arrow columns are built once for the run: a verdict's values (its block's company and
    month among them) become its accounts' by one `take` per column from an array of one value
    per verdict, the evidence is checked in one pass (`evidence_column_ok`)."""
    uid: list[str] = []
    evidence: list[str] = []
    digests: list[str] = []
    which: list[int] = []  # each row's verdict, an index into `templates`
    rows_block: list[int] = []
    templates: list[Decision] = []
    for b, block in enumerate(blocks):
        ts = _checked_block(block, encoder)
        if ts is None:
            return None
        n, base = len(block["verdict"]), len(templates)
        templates.extend(ts)
        which.extend([base] * n if len(ts) == 1 else [base + v for v in block["verdict"]])
        rows_block.extend([b] * n)
        uid.extend(block["user_id"])
        evidence.extend(block["evidence"])
        digests.extend(block["digest"])
    evidence_array = pa.array(evidence, pa.string())
    if not evidence_column_ok(evidence_array):
        return None
    rows = pa.array(which, pa.int32())

    def column(name: str) -> pa.Array:
        return pa.array([getattr(t, name) for t in templates], version_type(name)).take(rows)

    columns = _as_columns((
        column("company_id"), uid, column("month"), column("billable"), column("charged"), column("tier"),
        column("rule"), column("reason"), evidence_array, column("unit_price_usd"), column("ruleset_version"),
        column("plan"), digests,
    ))  # fmt: skip
    return BlockColumns(columns, pa.array(rows_block, pa.int32()))


def _checked_block(block: dict, encoder: DecisionEncoder) -> list[Decision] | None:
    """A block's verdicts as Decisions (`_verdict_templates`) when its columns hold values of
    their types and each account's digest matches; else None. (The evidence is checked by column.)"""
    verdicts, idx = block["verdicts"], block["verdict"]
    uid, evidence, in_report, digests = block["user_id"], block["evidence"], block["in_report"], block["digest"]
    if not (_only(str, uid) and _only(str, evidence) and _only(str, digests) and set(map(type, in_report)) <= _REPORT):
        return None
    templates = _verdict_templates(block)
    if templates is None:
        return None
    if len(templates) == 1:
        return templates if encoder.digests(templates[0], evidence, uid) == digests else None
    groups: list[list[int]] = [[] for _ in verdicts]
    for i, v in enumerate(idx):
        groups[v].append(i)
    for t, rows in zip(templates, groups, strict=True):
        if rows and encoder.digests(t, [evidence[i] for i in rows], [uid[i] for i in rows]) != [
            digests[i] for i in rows
        ]:
            return None
    return templates


def _verdict_templates(block: dict) -> list[Decision] | None:
    """Each verdict of a block as the Decision `_plain_decision_values` reads (user and evidence
    left empty), or None when one is not the common case."""
    shared = {"company_id": block["company_id"], "month": block["month"], "user_id": "", "evidence": "[]", "digest": ""}
    templates = []
    for v in block["verdicts"]:
        plan = v.get("plan")
        t = _plain_decision_values({**{f: v[f] for f in VERDICT_FIELDS if f in v}, **shared})
        if t is None or not (plan is None or type(plan) is str):
            return None
        templates.append(t)
    return templates


_REPORT = {bool, type(None)}


def _only(type_: type, column: Sequence[Any]) -> bool:
    """Every value of the column is exactly of `type_` (not a subclass: bool is not an int here)."""
    return set(map(type, column)) <= {type_}


def _checked_decision_values(msg: dict) -> Decision:
    """Every check of decision_of, one by one (raises ValueError naming the first that fails)."""
    try:
        row = {c: msg[c] for c in (*DECISION_COLUMNS, "digest")}
    except KeyError as exc:
        raise ValueError(f"decision message lacks {exc.args[0]}") from None
    for c in _STR_COLUMNS:
        if not isinstance(row[c], str):
            raise ValueError(f"{c} must be a string")
    try:
        evidence = orjson.loads(row["evidence"])
    except orjson.JSONDecodeError:
        evidence = None
    if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
        raise ValueError("evidence must be a JSON array of objects (as text)")
    if not isinstance(row["billable"], bool) or not isinstance(row["charged"], bool):
        raise ValueError("billable and charged must be booleans")
    d = decision_from_row(row, plan=str(msg.get("plan") or ""))
    if abs(d.unit_price_usd) >= MAX_USD:
        raise ValueError(f"unit_price_usd out of range: {row['unit_price_usd']!r}")
    return d


# Company months ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompanyMonthRecord:
    """A company_month message's values: the close's invoice JSON and its daily MAU series."""

    company_id: str
    month: str
    invoice: dict
    mau: list[tuple[date, int]]
    mau_json: list  # as sent: [[day, mau], ...]
    content_digest: str


def content_digest(invoice: dict, mau: list) -> str:
    """What makes two company_month messages the same version: invoice JSON and MAU series."""
    body = orjson.dumps({"invoice": invoice, "mau": mau}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:16]


def company_month_of(msg: dict) -> CompanyMonthRecord:
    """Raises (KeyError, ValueError, TypeError) on a malformed message."""
    invoice = msg["invoice"]
    company, month = str(msg["company_id"]), str(msg["month"])
    if not isinstance(invoice, dict):
        raise ValueError("invoice must be an object")
    mau_json = msg.get("mau") or []
    mau = [(date.fromisoformat(d), int(n)) for d, n in mau_json]
    return CompanyMonthRecord(company, month, invoice, mau, mau_json, content_digest(invoice, mau_json))


# Partition reports and disputes --------------------------------------------------------------


def partition_report_row(it: Item, batch: Batch) -> dict:
    """The `partition_reports` row of a partition_done message (raises if malformed)."""
    msg = message(it)
    counts = msg.get("counts") or {}
    return {
        "month": str(msg["month"]),
        "partition": int(msg["partition"]),
        "partitions": int(msg["partitions"]),
        "close_id": msg.get("close_id"),
        "companies": int(msg.get("companies") or 0),
        "accounts": int(msg.get("accounts") or 0),
        "checksum": str(msg["checksum"]),
        "events_counted": int_or_none(counts.get("events_counted")),
        "rejected": int_or_none(counts.get("rejected")),
        "duplicates_ignored": int_or_none(counts.get("duplicates_ignored")),
        "late_since_close": int_or_none(counts.get("late_since_close")),
        "counts": orjson.dumps(counts).decode(),
        "emitted_at": msg.get("emitted_at"),
        **provenance(it, batch),
    }


def dispute_row(it: Item, batch: Batch) -> dict:
    """The `disputes` row of a dispute_applied message (raises if malformed)."""
    msg = message(it)
    ticket = msg["ticket"]
    if not isinstance(ticket, str) or not ticket:
        raise ValueError("ticket must be a non-empty string")
    return {
        "ticket": ticket,
        "company_id": str(msg["company_id"]),
        "month": str(msg["month"]),
        "requested_by": msg.get("requested_by"),
        "applied_at": msg.get("applied_at"),
        "changes": orjson.dumps(msg.get("changes") or []).decode(),
        "received_at": batch.now,
        "batch_id": batch.batch_id,
    }


# Estimates (provisional) -------------------------------------------------------------------------


def as_of_of(msg: dict) -> datetime:
    """An estimate message's as-of time: RFC 3339 with an offset (raises ValueError otherwise)."""
    as_of = datetime.fromisoformat(str(msg["as_of"]))
    if as_of.tzinfo is None:
        raise ValueError(f"as_of {msg['as_of']!r} has no UTC offset")
    return as_of


def estimate_row(it: Item, batch: Batch) -> dict:
    """The `estimates` row of an `estimate` message (raises if malformed)."""
    msg = message(it)
    d, _ = decision_of({**msg, "digest": ""})  # the published columns, checked like a decision's
    if msg.get("status") not in STATUSES:
        raise ValueError(f"unknown status {msg.get('status')!r}")
    return {
        **d.row(),
        "plan": d.plan,
        "status": msg["status"],
        "status_reason": str(msg["status_reason"]),
        "estimate_id": str(msg["estimate_id"]),
        "as_of": as_of_of(msg),
        "partition": int_or_none(msg.get("partition")),
        "emitted_at": msg.get("emitted_at"),
        "received_at": batch.now,
        "batch_id": batch.batch_id,
    }


def estimate_invoice_row(it: Item, batch: Batch) -> dict:
    """The `estimate_invoices` row of a `company_estimate` message (raises if malformed)."""
    msg = message(it)
    invoice = msg["invoice"]
    if not isinstance(invoice, dict):
        raise ValueError("invoice must be an object")
    counts = msg["counts"]
    return {
        "company_id": str(msg["company_id"]),
        "month": str(msg["month"]),
        "estimate_id": str(msg["estimate_id"]),
        "as_of": as_of_of(msg),
        "accounts": int(msg["accounts"]),
        **{status: int(counts[status]) for status in STATUSES},
        "plan": invoice.get("plan"),
        "billable_accounts": int(invoice["billable_accounts"]),
        "charged_accounts": int(invoice["charged_accounts"]),
        "subtotal_usd": Decimal(str(invoice["subtotal_usd"])),
        "free_reason": invoice.get("free_reason"),
        "invoice": orjson.dumps(invoice).decode(),
        "partition": int_or_none(msg.get("partition")),
        "emitted_at": msg.get("emitted_at"),
        "received_at": batch.now,
        "batch_id": batch.batch_id,
    }
