"""A ledger DuckDB file built from events without Kafka: what a close, its amendments, a dispute and
an estimate put on the snapshots topic, stored by the sink's own writer (ledger.writer.write_batch).

    lf = LedgerFile(tmp_path / "ledger.duckdb")
    lf.close_month(world, "2026-10")                       # decisions, company months, partition_done
    lf.amend(world_with_late_event, "2026-10", "late_event")
    lf.estimate(world, "2026-12", "2026-12-10T12:00:00Z")  # a provisional run
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from ledger.connection import read_connection, run, write_connection
from ledger.records import Item, parse_record
from ledger.tables import ensure_schema
from ledger.writer import write_batch
from projections.calendar import Month, to_us
from projections.decide import Decision, decide_company
from projections.estimate import estimate_company
from projections.invoice import build_invoice
from projections.snapshots import (
    checksum,
    company_month_message,
    decision_message,
    dispute_applied_message,
    encode,
    estimate_messages,
    partition_done_message,
)
from tests.support.given import PRICES, World

TOPIC = "seatledger.snapshots"


def db_rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """`sql`'s rows from the ledger file as a reader gets them (waiting while the sink writes);
    none while the file or the queried table does not exist yet."""
    if not db.exists():
        return []
    with read_connection(db) as con:
        try:
            return con.execute(sql, params or []).fetchall()
        except duckdb.CatalogException:
            return []


def decide_all(world: World, month: str) -> dict[str, tuple]:
    """company -> (CompanyMonth, decisions) for every company of the world's events."""
    facts = world.facts()
    m = Month.parse(month)
    out = {}
    for cid in sorted(facts.companies):
        accounts = {u: a for (c, u), a in facts.accounts.items() if c == cid}
        activity = {u: a for (c, u, mo), a in facts.activity.items() if c == cid and mo == m}
        out[cid] = decide_company(cid, m, facts.company(cid), accounts, activity, PRICES)
    return out


class LedgerFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.versions: dict[tuple[str, str, str], tuple[int, str]] = {}  # key -> (version, digest) sent
        with write_connection(self.path) as con:
            ensure_schema(con)

    def write(self, messages: list[dict]) -> None:
        items: list[Item] = []
        for m in messages:
            items.extend(parse_record(0, self.offset, encode(m)))
            self.offset += 1
        with write_connection(self.path) as con:
            write_batch(con, items, topic=TOPIC)

    def close_month(self, world: World, month: str, close_id: str | None = None) -> list[Decision]:
        """What a one-partition worker's close emits for every company of `world`."""
        close_id = close_id or f"close-{month}"
        msgs, every = [], []
        for cid, (cm, decisions) in decide_all(world, month).items():
            for d in decisions:
                msg = decision_message(d, version=1, in_report=True, close_id=close_id, partition=0)
                self.versions[(cid, d.user_id, month)] = (1, msg["digest"])
                msgs.append(msg)
            msgs.append(
                company_month_message(build_invoice(cm, decisions).to_json(), [], close_id=close_id, partition=0)
            )
            every.extend(decisions)
        done = partition_done_message(
            month, 0, 1, close_id=close_id, companies=len({d.company_id for d in every}), accounts=len(every),
            checksum_=checksum(every), counts={"events_counted": len(world.raw), "rejected": 0,
                                               "duplicates_ignored": 0, "late_since_close": 0},
        )  # fmt: skip
        self.write([*msgs, done])
        return every

    def amend(self, world: World, month: str, reason: str) -> list[Decision]:
        """Re-decide `month` and send a new version of every decision that changed, like the worker
        (late_event) or the dispute tool (dispute:TICKET) does; the dispute record too."""
        changed, msgs = [], []
        for cid, (_cm, decisions) in decide_all(world, month).items():
            for d in decisions:
                prev = self.versions.get((cid, d.user_id, month))
                msg = decision_message(
                    d, version=prev[0] + 1 if prev else 1, corrects_version=prev[0] if prev else None,
                    amend_reason=reason, in_report=True, close_id=reason, partition=0,
                )  # fmt: skip
                if prev is not None and prev[1] == msg["digest"]:
                    continue
                self.versions[(cid, d.user_id, month)] = (msg["version"], msg["digest"])
                msgs.append(msg)
                changed.append(d)
        if reason.startswith("dispute:") and changed:
            msgs.append(
                dispute_applied_message(
                    reason.split(":", 1)[1],
                    changed[0].company_id,
                    month,
                    requested_by="support",
                    applied_at="2026-12-02T10:00:00Z",
                    changes=[{"user_id": d.user_id} for d in changed],
                )  # fmt: skip
            )
        self.write(msgs)
        return changed

    def estimate(self, world: World, month: str, as_of: str, estimate_id: str | None = None) -> list[dict]:
        """An estimate run of `month` over the world's events that happened before `as_of`."""
        known = World()
        known.raw = [e for e in world.raw if to_us(datetime.fromisoformat(e["occurred_at"])) < _us(as_of)]
        msgs = []
        for _cid, (cm, decisions) in decide_all(known, month).items():
            est = estimate_company(cm, decisions, _us(as_of))
            msgs.extend(estimate_messages(est, estimate_id=estimate_id or f"est-{as_of}", as_of=as_of, partition=0))
        self.write(msgs)
        return msgs

    def annotate(self, company: str, month: str, po: str) -> None:
        from ledger.invoicing import annotate_invoice

        annotate_invoice(self.path, company, month, po, annotated_by="finance")

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with read_connection(self.path) as con:
            return run(con, sql, params)


def _us(text: str) -> int:
    return to_us(datetime.fromisoformat(text))


def sample_world() -> World:
    """Three companies over October and November 2026, with every kind of outcome the API shows."""
    w = World()
    w.company("acme", tz="Europe/Amsterdam", plan="premium")
    w.billing("acme", "2026-01-01", payment_method="card", card_brand="visa", billing_country="NL", po_number="PO-1")
    for u in ("ann", "bob", "dan", "eve"):
        w.member("acme", u)
    w.provision("acme", "cat", "2026-10-05")  # created mid-month
    for u, day in (("ann", "2026-10-03"), ("dan", "2026-10-04"), ("eve", "2026-10-06")):
        w.do("login", "acme", u, day)
    w.do("notification_view", "acme", "bob", "2026-10-07")  # notification only
    w.company("globex", plan="advanced")
    for u in ("g1", "g2", "g3"):
        w.member("globex", u)
    w.company("initech", plan="enterprise").member("initech", "i1")
    for u, day in (("ann", "2026-11-03"), ("dan", "2026-11-04"), ("cat", "2026-11-05"), ("eve", "2026-11-08")):
        w.do("visit", "acme", u, day)
    return w


def sample_ledger(path: Path) -> tuple[LedgerFile, World]:
    """October closed, amended late (dan and eve deactivated for a day, sent after the close) and
    disputed (bob), November closed carrying the adjustments, a PO number added to October's
    invoice, and an estimate of December as of 10 December."""
    w = sample_world()
    lf = LedgerFile(path)
    lf.close_month(w, "2026-10")
    w.deactivate("acme", "dan", "2026-10-20").reactivate("acme", "dan", "2026-10-21")
    w.deactivate("acme", "eve", "2026-10-25").reactivate("acme", "eve", "2026-10-26")
    lf.amend(w, "2026-10", "late_event")
    w.do("login", "acme", "bob", "2026-10-08")
    lf.amend(w, "2026-10", "dispute:SUP-1")
    lf.close_month(w, "2026-11")
    lf.annotate("acme", "2026-10", "PO-ADDED")
    w.do("login", "acme", "ann", "2026-12-02").do("login", "acme", "eve", "2026-12-15")
    lf.estimate(w, "2026-12", "2026-12-10T12:00:00+00:00", estimate_id="est-dec")
    return lf, w
