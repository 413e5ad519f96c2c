"""The messages on `seatledger.snapshots`: what the month projector emits and the sink stores.

Seven kinds, all JSON objects keyed by company (the done marker by partition):

- `decision`: one account-month decision, versioned. Version 1 is the close; every later version
  is an amendment that names the version it corrects and why (`late_event`, `dispute:TICKET`).
- `decision_block`: many version-1 decisions of one company-month in one message (what a close
  sends): each verdict's fields once, then per account its verdict's index, user id, evidence,
  in_report and digest. It stands for exactly the `decision` messages `expand_block` gives.
- `company_month`: the company's invoice for the month as computed at close (lines, PO number,
  payment profile, notices) and its daily reports MAU.
- `partition_done`: a partition finished the month: counts and the checksum of its decisions.
- `dispute_applied`: the dispute tool corrected a company-month (the amendments themselves are
  `decision` messages with amend_reason `dispute:TICKET`).
- `estimate` and `company_estimate`: the bill so far (projections.estimate), provisional. One
  `estimate` per account, then one `company_estimate` with the estimated invoice, all of one run
  named by its `estimate_id` and `as_of`. The sink keeps them apart from billed data.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter

import orjson

from projections.decide import DECISION_COLUMNS, Decision
from projections.estimate import AccountEstimate, CompanyEstimate
from projections.money import cents

SNAPSHOT_FORMAT = 1
KINDS = (
    "decision",
    "decision_block",
    "company_month",
    "partition_done",
    "dispute_applied",
    "estimate",
    "company_estimate",
)


def decision_row(d: Decision) -> dict:
    row = d.row()
    row["unit_price_usd"] = str(d.unit_price_usd)
    return row


def decision_from_row(row: dict, plan: str = "") -> Decision:
    vals = {c: row[c] for c in DECISION_COLUMNS}
    vals["unit_price_usd"] = cents(vals["unit_price_usd"])
    vals["billable"] = bool(vals["billable"])
    vals["charged"] = bool(vals["charged"])
    return Decision(**vals, plan=plan or row.get("plan", ""))


def row_digest(row: dict) -> str:
    return hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def digest(d: Decision) -> str:
    """A short fingerprint of the published values: an amendment is due when it changes."""
    return row_digest(decision_row(d))


def checksum_of_digests(digests) -> str:
    """Order-independent checksum of a set of decision digests (sha256 of the sorted digests).

    The sorted digests are joined and hashed in one update (the same bytes as one update each):
    a close passes every digest of its partition, and an update per digest was ~1 us each."""
    return hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()


def checksum(decisions) -> str:
    """Order-independent checksum of a set of decision rows."""
    return checksum_of_digests(digest(d) for d in decisions)


def decision_message(
    d: Decision,
    *,
    version: int,
    corrects_version: int | None = None,
    amend_reason: str | None = None,
    in_report: bool | None = None,
    close_id: str = "",
    partition: int | None = None,
    emitted_at: str | None = None,
) -> dict:
    row = decision_row(d)
    return {
        "kind": "decision",
        "format": SNAPSHOT_FORMAT,
        **row,
        "plan": d.plan,
        "version": version,
        "corrects_version": corrects_version,
        "amend_reason": amend_reason,
        "in_report": in_report,
        "digest": row_digest(row),
        "close_id": close_id,
        "partition": partition,
        "emitted_at": emitted_at,
    }


# DecisionEncoder.pieces, encoded once per verdict: the digest's head as a sha256 state that has read
# it, the digest's middle, and the message's head, middle and the part after the evidence.
Pieces = tuple["hashlib._Hash", bytes, bytes, bytes, bytes]


def _fingerprint(digest_head: hashlib._Hash, ev: bytes, digest_mid: bytes, uid: bytes) -> str:
    """The digest of one decision from its verdict's pieces and its encoded evidence and user id.
    `digest_head` has hashed the verdict's head already: a copy of it costs less than a new sha256
    (OpenSSL 3 sets a new one up per call), and this runs once per account of a close."""
    h = digest_head.copy()
    h.update(b"".join((ev, digest_mid, uid, b"}")))
    return h.hexdigest()[:16]


class DecisionEncoder:
    """`decision_message(...)` as JSON bytes and its digest, for the many decisions of a close.

    The same bytes as `orjson.dumps(decision_message(...))` and the same digest as
    `row_digest(decision_row(d))` (tests/unit/projections/test_snapshot_encoder.py), built from
    pieces: what every decision of one verdict shares is encoded once, per account only the user
    id, the evidence and the version fields are. Building the dicts was most of a close's cost
    after `decide`.
    """

    __slots__ = ("_tail", "_shared", "_firsts")

    def __init__(self, *, close_id: str = "", partition: int | None = None, emitted_at: str | None = None):
        self._tail = b',"close_id":%s,"partition":%s,"emitted_at":%s}' % (
            _dumps(close_id),
            _dumps(partition),
            _dumps(emitted_at),
        )
        self._shared: dict[tuple, Pieces] = {}
        # version 1 of a close (no correction, no reason): the fields after `plan` up to the digest
        self._firsts = {
            r: b'1,"corrects_version":null,"amend_reason":null,"in_report":%s,"digest":"' % _dumps(r)
            for r in (True, False, None)
        }

    def pieces(self, d: Decision) -> Pieces:
        """What every decision with the values of `d` but its user and evidence shares, encoded:
        for `encode_with`."""
        key = (d.company_id, d.month, d.billable, d.charged, d.tier, d.rule, d.reason, str(d.unit_price_usd),
               d.ruleset_version, d.plan)  # fmt: skip
        p = self._shared.get(key)
        if p is None:
            price = _dumps(str(d.unit_price_usd))
            # the digest's row, keys sorted: billable charged company_id evidence month reason rule
            # ruleset_version tier unit_price_usd user_id
            digest_head = b'{"billable":%s,"charged":%s,"company_id":%s,"evidence":' % (
                _dumps(d.billable),
                _dumps(d.charged),
                _dumps(d.company_id),
            )
            digest_mid = b',"month":%s,"reason":%s,"rule":%s,"ruleset_version":%s,"tier":%s,"unit_price_usd":%s,"user_id":' % (
                _dumps(d.month), _dumps(d.reason), _dumps(d.rule), _dumps(d.ruleset_version), _dumps(d.tier), price
            )  # fmt: skip
            # the message, in decision_message's order
            msg_head = b'{"kind":"decision","format":%d,"company_id":%s,"user_id":' % (
                SNAPSHOT_FORMAT,
                _dumps(d.company_id),
            )
            msg_mid = b',"month":%s,"billable":%s,"charged":%s,"tier":%s,"rule":%s,"reason":%s,"evidence":' % (
                _dumps(d.month), _dumps(d.billable), _dumps(d.charged), _dumps(d.tier), _dumps(d.rule), _dumps(d.reason)
            )  # fmt: skip
            msg_after = b',"unit_price_usd":%s,"ruleset_version":%s,"plan":%s,"version":' % (
                price,
                _dumps(d.ruleset_version),
                _dumps(d.plan),
            )
            p = self._shared[key] = (hashlib.sha256(digest_head), digest_mid, msg_head, msg_mid, msg_after)
        return p

    def digest(self, d: Decision) -> str:
        """`digest(d)`, from the shared pieces (what the sink checks every decision with)."""
        digest_head, digest_mid, _, _, _ = self.pieces(d)
        return _fingerprint(digest_head, _dumps(d.evidence), digest_mid, _dumps(d.user_id))

    def digests(self, d: Decision, evidence: Sequence[str], user_ids: Sequence[str]) -> list[str]:
        """`digest(d)` with each (evidence, user id) pair in place of d's own, from d's shared pieces:
        the sink's columnar check of many decisions of one verdict (ledger.records). `_fingerprint`
        per account, each step run over the whole column in C (`map` over the hash type's own
        methods) rather than a Python call per account: the sink recomputes every digest of a close."""
        if len(evidence) != len(user_ids):
            raise ValueError(f"{len(evidence)} evidence texts for {len(user_ids)} user ids")
        head, mid = self.pieces(d)[:2]
        hash_type = type(head)
        hashes = list(map(hash_type.copy, repeat(head, len(evidence))))
        rests = map(b"".join, zip(map(_dumps, evidence), repeat(mid), map(_dumps, user_ids), repeat(b"}")))
        deque(map(hash_type.update, hashes, rests), maxlen=0)  # consumed for the updates alone
        return list(map(_SHORT, map(hash_type.hexdigest, hashes)))

    def encode(
        self,
        d: Decision,
        *,
        version: int,
        corrects_version: int | None,
        amend_reason: str | None,
        in_report: bool | None,
    ) -> tuple[bytes, str]:
        """(the message's JSON bytes, its digest)."""
        return self.encode_with(
            self.pieces(d), d.user_id, d.evidence,
            version=version, corrects_version=corrects_version, amend_reason=amend_reason, in_report=in_report,
        )  # fmt: skip

    def encode_with(
        self,
        pieces: Pieces,
        user_id: str,
        evidence: str,
        *,
        version: int,
        corrects_version: int | None,
        amend_reason: str | None,
        in_report: bool | None,
    ) -> tuple[bytes, str]:
        """`encode` of the decision with the values of `pieces` (`self.pieces(d)`), `user_id` and
        `evidence`: a close that knows which accounts share their verdict needs no `Decision`."""
        if version == 1 and corrects_version is None and amend_reason is None:
            return self.encode_first(pieces, user_id, evidence, in_report)
        fields = b'%d,"corrects_version":%s,"amend_reason":%s,"in_report":%s,"digest":"' % (
            version, _dumps(corrects_version), _dumps(amend_reason), _dumps(in_report)
        )  # fmt: skip
        return self._joined(pieces, _dumps(user_id), _dumps(evidence), fields)

    def encode_first(self, pieces: Pieces, user_id: str, evidence: str, in_report: bool | None) -> tuple[bytes, str]:
        """`encode_with` of a version 1 without a correction or a reason (what a close emits),
        with positional arguments: it runs once per account."""
        return self._joined(pieces, _dumps(user_id), _dumps(evidence), self._firsts[in_report])

    def _joined(self, pieces: Pieces, uid: bytes, ev: bytes, fields: bytes) -> tuple[bytes, str]:
        digest_head, digest_mid, msg_head, msg_mid, msg_after = pieces
        dg = _fingerprint(digest_head, ev, digest_mid, uid)
        return b"".join((msg_head, uid, msg_mid, ev, msg_after, fields, dg.encode(), b'"', self._tail)), dg


_dumps = orjson.dumps
_SHORT = itemgetter(slice(None, 16))  # a digest: the first 16 hex digits of the sha256 (_fingerprint)


# A close's version-1 decisions of one company-month, as one message ----------------------------

# The fields of a verdict (what the decisions of a `decision_block` may share), in message order.
VERDICT_FIELDS = ("billable", "charged", "tier", "rule", "reason", "unit_price_usd", "ruleset_version", "plan")
# A block's columns: one value per account.
BLOCK_COLUMNS = ("verdict", "user_id", "evidence", "in_report", "digest")
_BEFORE_EVIDENCE = VERDICT_FIELDS[:5]  # decision_message's order: these, evidence, then the rest
_AFTER_EVIDENCE = VERDICT_FIELDS[5:]


def expand_block(block: dict) -> list[dict]:
    """The `decision` messages a `decision_block` stands for, in order: account i's version 1,
    with the block's company, month, close id, partition and emission time, the fields of
    `verdicts[verdict[i]]` and its own user id, evidence, in_report and digest.

    The block's structure (lists of one length, indices into `verdicts`) is the reader's to check
    first (ledger.records.shape_problem); the messages are then checked like any other."""
    verdicts, cid, month, fmt = block["verdicts"], block["company_id"], block["month"], block.get("format")
    ids = {
        "close_id": block.get("close_id"),
        "partition": block.get("partition"),
        "emitted_at": block.get("emitted_at"),
    }
    out = []
    for v, uid, ev, in_report, dg in zip(*(block[c] for c in BLOCK_COLUMNS), strict=True):
        verdict = verdicts[v]
        msg = {"kind": "decision", "format": fmt, "company_id": cid, "user_id": uid, "month": month}
        msg.update((f, verdict[f]) for f in _BEFORE_EVIDENCE if f in verdict)
        msg["evidence"] = ev
        msg.update((f, verdict[f]) for f in _AFTER_EVIDENCE if f in verdict)
        msg.update(version=1, corrects_version=None, amend_reason=None, in_report=in_report, digest=dg, **ids)
        out.append(msg)
    return out


class DecisionBlocks:
    """A close's version-1 decisions of one company-month as `decision_block` messages (JSON bytes,
    each about `limit` bytes at most), in `add` order: `expand_block` of them gives the messages
    `DecisionEncoder.encode_first` would give one by one (tests/unit/projections/test_decision_blocks.py).

    The sink reads a block by column instead of a JSON object per account: the verdict's fields
    are checked and its digest pieces built once, and per account there are four short values."""

    __slots__ = ("_head", "_tail", "_limit", "_index", "_verdicts", "_rows", "_size", "blocks")

    def __init__(self, encoder: DecisionEncoder, company_id: str, month: str, limit: int):
        self._tail = encoder._tail  # the encoder's close id, partition and emission time
        self._head = b'{"kind":"decision_block","format":%d,"company_id":%s,"month":%s,"verdicts":[' % (
            SNAPSHOT_FORMAT, _dumps(company_id), _dumps(month)
        )  # fmt: skip
        self._limit = limit
        self._index: dict[Pieces, int] = {}  # a verdict's pieces -> its index in this block
        self._verdicts: list[bytes] = []
        self._rows: tuple[list[int], list[bytes], list[bytes], list[bool | None], list[str]] = ([], [], [], [], [])
        self._size = 0
        self.blocks: list[bytes] = []

    def add(self, pieces: Pieces, verdict: Decision, user_id: str, evidence: str, in_report: bool | None) -> str:
        """Add one account's decision (`pieces`: `encoder.pieces(verdict)`); returns its digest."""
        return self.add_many([(pieces, verdict, user_id, evidence, in_report)])[0]

    def add_many(self, decisions: Iterable[tuple[Pieces, Decision, str, str, bool | None]]) -> list[str]:
        """`add` of each (pieces, verdict, user id, evidence, in_report), in order; their digests.
        A close adds a company's accounts at once: one call, and `_fingerprint` written out in the
        loop (the calls were a third of the cost of adding an account)."""
        out: list[str] = []
        for pieces, verdict, user_id, evidence, in_report in decisions:
            uid, ev = _dumps(user_id), _dumps(evidence)
            h = pieces[0].copy()  # _fingerprint
            h.update(b"".join((ev, pieces[1], uid, b"}")))
            dg = h.hexdigest()[:16]
            i = self._index.get(pieces)
            if i is None:
                i = self._index[pieces] = len(self._verdicts)
                row = {**decision_row(verdict), "plan": verdict.plan}  # decision_message's values
                self._verdicts.append(_dumps({f: row[f] for f in VERDICT_FIELDS}))
            verdicts, uids, evs, reports, digests = self._rows
            verdicts.append(i)
            uids.append(uid)
            evs.append(ev)
            reports.append(in_report)
            digests.append(dg)
            out.append(dg)
            self._size += len(uid) + len(ev) + 32
            if self._size >= self._limit:
                self._flush()
        return out

    def done(self) -> list[bytes]:
        """Every block, the last one closed."""
        self._flush()
        return self.blocks

    def _flush(self) -> None:
        verdicts, uids, evs, reports, digests = self._rows
        if not verdicts:
            return
        self.blocks.append(
            b"".join((
                self._head, b",".join(self._verdicts), b'],"verdict":', _dumps(verdicts),
                b',"user_id":[', b",".join(uids), b'],"evidence":[', b",".join(evs),
                b'],"in_report":', _dumps(reports), b',"digest":', _dumps(digests), self._tail,
            ))
        )  # fmt: skip
        self._index, self._verdicts, self._rows, self._size = {}, [], ([], [], [], [], []), 0


def company_month_message(
    invoice_json: dict,
    mau: list[tuple],
    *,
    version: int = 1,
    close_id: str = "",
    partition: int | None = None,
    emitted_at: str | None = None,
) -> dict:
    return {
        "kind": "company_month",
        "format": SNAPSHOT_FORMAT,
        "company_id": invoice_json["company_id"],
        "month": invoice_json["month"],
        "version": version,
        "invoice": invoice_json,
        "mau": [[d.isoformat(), n] for d, n in mau],
        "close_id": close_id,
        "partition": partition,
        "emitted_at": emitted_at,
    }


def partition_done_message(
    month: str,
    partition: int,
    partitions: int,
    *,
    close_id: str,
    companies: int,
    accounts: int,
    checksum_: str,
    counts: dict,
    emitted_at: str | None = None,
) -> dict:
    return {
        "kind": "partition_done",
        "format": SNAPSHOT_FORMAT,
        "month": month,
        "partition": partition,
        "partitions": partitions,
        "close_id": close_id,
        "companies": companies,
        "accounts": accounts,
        "checksum": checksum_,
        "counts": counts,  # events_counted, rejected, duplicates_ignored, late_since_close
        "emitted_at": emitted_at,
    }


def dispute_applied_message(
    ticket: str, company_id: str, month: str, *, requested_by: str | None, applied_at: str, changes: list[dict]
) -> dict:
    """Produced by the dispute tool, stored once per ticket. `changes`: one object per changed
    account, e.g. {user_id, from, to}: stored as sent."""
    return {
        "kind": "dispute_applied",
        "format": SNAPSHOT_FORMAT,
        "ticket": ticket,
        "company_id": company_id,
        "month": month,
        "requested_by": requested_by,
        "applied_at": applied_at,
        "changes": changes,
    }


def estimate_message(
    est: AccountEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> dict:
    """One account's provisional decision in an estimate run (`as_of`: RFC 3339, the run's time)."""
    return {
        "kind": "estimate",
        "format": SNAPSHOT_FORMAT,
        "provisional": True,
        **decision_row(est.decision),
        "plan": est.decision.plan,
        "status": est.status,
        "status_reason": est.status_reason,
        "estimate_id": estimate_id,
        "as_of": as_of,
        "partition": partition,
        "emitted_at": emitted_at,
    }


def company_estimate_message(
    est: CompanyEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> dict:
    """A company's estimated invoice and status counts; sent after its accounts' `estimate`s."""
    return {
        "kind": "company_estimate",
        "format": SNAPSHOT_FORMAT,
        "provisional": True,
        "company_id": est.company_id,
        "month": est.month,
        "estimate_id": estimate_id,
        "as_of": as_of,
        "accounts": len(est.accounts),
        "counts": est.counts(),
        "invoice": est.invoice.to_json(),
        "partition": partition,
        "emitted_at": emitted_at,
    }


def estimate_messages(
    est: CompanyEstimate, *, estimate_id: str, as_of: str, partition: int | None = None, emitted_at: str | None = None
) -> list[dict]:
    """Every message of one company's estimate, in the order the sink needs: accounts, then company."""
    out = [
        estimate_message(a, estimate_id=estimate_id, as_of=as_of, partition=partition, emitted_at=emitted_at)
        for a in est.accounts
    ]
    out.append(
        company_estimate_message(est, estimate_id=estimate_id, as_of=as_of, partition=partition, emitted_at=emitted_at)
    )
    return out


def encode(msg: dict) -> bytes:
    return orjson.dumps(msg)


def decode(raw: bytes) -> dict:
    return orjson.loads(raw)
