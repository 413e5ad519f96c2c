"""`seatledger demo` end to end on the real broker: worker and sink as subprocesses, a small month,
the close, and DuckDB's account_decisions equal to decide() over the same events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devtools.workload import iter_events
from ledger.connection import read_connection
from projections.calendar import Month
from projections.decide import DECISION_COLUMNS, decide_month
from projections.facts import fold_all
from projections.invoice import build_invoice
from projections.prices import PriceBook
from projections.snapshots import decision_row
from schemas import validate_event

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MONTH = "2026-02"


def oracle(companies: int, accounts: int, seed: int):
    events = [validate_event(e) for e in iter_events(companies, accounts, MONTH, seed=seed)]
    facts = fold_all(events)
    m = Month.parse(MONTH)
    prices = PriceBook.load()
    rows, invoices = [], {}
    cids = sorted({c for c, _ in facts.accounts} | set(facts.companies))
    for cid, cm, decs in decide_month(facts, m, prices, companies=cids):
        rows.extend(decision_row(d) for d in decs)
        invoices[cid] = build_invoice(cm, decs).subtotal_usd
    return rows, invoices


def test_demo_end_to_end(kafka_settings, tmp_path):
    from devtools.demo import DemoOptions, run_demo

    settings = kafka_settings.model_copy(update={"data_dir": tmp_path / "var", "db": tmp_path / "demo.duckdb"})
    opts = DemoOptions(companies=8, accounts=600, month=MONTH, seed=3, pack=100, timeout=240, quiet=True)
    res = run_demo(settings, opts)

    assert res.month == MONTH and res.db == (tmp_path / "demo.duckdb").resolve()
    assert res.certificate["complete"] and res.certificate["checksums_match"]
    assert res.certificate["rejected"] == 0
    want_rows, want_invoices = oracle(8, 600, 3)
    with read_connection(res.db) as con:
        cur = con.execute("SELECT * FROM account_decisions ORDER BY company_id, user_id")
        assert tuple(d[0] for d in cur.description) == DECISION_COLUMNS
        got = [dict(zip(DECISION_COLUMNS, r, strict=True)) for r in cur.fetchall()]
        assert con.execute("SELECT count(*) FROM invoices").fetchall()[0][0] == len(want_invoices)
    for r in got:
        r["unit_price_usd"] = str(r["unit_price_usd"])
    key = lambda r: (r["company_id"], r["user_id"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want_rows, key=key)
    assert {c: t for c, _, _, t in res.invoices} == want_invoices
    assert res.total_usd == sum(want_invoices.values(), Decimal("0.00"))
    # worker and sink were stopped; their logs stay under the run directory
    assert (res.run_dir / "sink.log").exists() and (res.run_dir / "worker.log").exists()
    assert "event=month_complete" in (res.run_dir / "sink.log").read_text()
