"""`seatledger verify`: recompute a month from the archive and compare it with what DuckDB bills.

Every column of `account_decisions` (the latest version of each account-month, columns =
`projections.decide.DECISION_COLUMNS`) is compared with a recomputation from the archived events,
using the rule-set version each row recorded. Drift is one of: a row the archive says should exist
but DuckDB lacks (`missing`), a row DuckDB has that the archive does not produce (`extra`), or a row
whose columns differ (`differs`).

Also the shared pieces of the dispute tool: reading DuckDB read-only while the sink may hold its
lock, normalising stored rows for comparison, and recomputing a company-month from the archive
(facts by `replay.facts_sql.build_facts`, equal to the reference fold, then `decide_month`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from projections.calendar import Month
from projections.decide import DECISION_COLUMNS, decide_month
from projections.facts import FactSet
from projections.money import cents
from projections.prices import PriceBook
from projections.rulesets import RULESETS, get_ruleset
from projections.text import escape_text
from replay.archive import reader
from replay.rows import COLUMNS


class VerifyError(Exception):
    """The inputs are unusable (no archive, no database, unknown month): exit 2, not drift."""


# DuckDB, read-only and briefly ----------------------------------------------------------------


@contextlib.contextmanager
def read_db(path: Path | str, timeout: float = 30.0) -> Iterator:
    """A read-only connection held only for the block (the sink's `read_connection`, which waits
    while the sink writes a batch); an unusable file becomes a VerifyError."""
    from ledger.connection import DatabaseBusy, read_connection

    path = Path(path)
    if not path.exists():
        raise VerifyError(f"no DuckDB file at {path}")
    try:
        cm = read_connection(path, timeout=timeout)
        con = cm.__enter__()
    except DatabaseBusy as exc:
        raise VerifyError(str(exc)) from None
    except Exception as exc:
        raise VerifyError(f"cannot open {path} read-only: {exc}") from None
    try:
        yield con
    finally:
        cm.__exit__(None, None, None)


def query(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def has_table(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0]) or bool(
        con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchone()[0]
    )


# Comparing decisions ---------------------------------------------------------------------------


def normalize(values: dict) -> dict:
    """A decision's DECISION_COLUMNS in one comparable form, from a Decision row or a DuckDB row."""
    out = {}
    for c in DECISION_COLUMNS:
        v = values[c]
        if c in ("billable", "charged"):
            v = bool(v)
        elif c == "unit_price_usd":
            v = cents(v)
        elif c == "evidence":
            v = orjson.loads(v) if isinstance(v, str | bytes) else v
        else:
            v = str(v)
        out[c] = v
    return out


def diff_columns(a: dict, b: dict) -> list[str]:
    """The DECISION_COLUMNS on which two normalised decisions differ."""
    return [c for c in DECISION_COLUMNS if a[c] != b[c]]


def jsonable(values: dict) -> dict:
    out = dict(values)
    if "unit_price_usd" in out:
        out["unit_price_usd"] = str(out["unit_price_usd"])
    return out


# Recomputing from the archive -----------------------------------------------------------------


def archive_facts(
    root: Path | str,
    upto: Month,
    *,
    company_id: str | None = None,
    published_upto_us: int | None = None,
) -> tuple[FactSet, int]:
    """(facts, events read) of the archived events in UTC months up to `upto` (one company's, with
    the guest invites naming it; only those that had reached Kafka by `published_upto_us`), built
    by DuckDB with `replay.facts_sql.build_facts`, which equals the reference `fold_all`."""
    import duckdb

    from replay.facts_sql import build_facts

    sql = reader.rows_sql(root, upto, company_id=company_id, published_upto_us=published_upto_us)
    if sql is None:
        return FactSet(), 0
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TEMP VIEW archive_events AS SELECT {', '.join(COLUMNS)} FROM ({sql})")
        (n,) = con.execute("SELECT count(*) FROM archive_events").fetchall()[0]
        facts = build_facts(con, "archive_events", [company_id] if company_id is not None else None)
    finally:
        con.close()
    return facts, n


# verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    kind: str  # missing | extra | differs
    company_id: str
    user_id: str
    columns: tuple[str, ...] = ()
    stored: dict | None = None
    recomputed: dict | None = None

    def line(self) -> str:
        who = escape_text(f"{self.company_id}/{self.user_id}")
        if self.kind == "missing":
            r = self.recomputed or {}
            return f"missing  {who}: the archive gives {_short(r.get('rule'))}/{_short(r.get('reason'))} billable={r.get('billable')}, DuckDB has no row"
        if self.kind == "extra":
            s = self.stored or {}
            return f"extra    {who}: DuckDB has {_short(s.get('rule'))}/{_short(s.get('reason'))} billable={s.get('billable')}, the archive gives no decision"
        stored, recomputed = self.stored or {}, self.recomputed or {}  # both set on a "differs"
        parts = [f"{c}: stored {_short(stored[c])} != recomputed {_short(recomputed[c])}" for c in self.columns]
        return f"differs  {who}: " + "; ".join(parts)


def _short(v) -> str:
    """A value for a drift line: one line of printable text (stored values are data), at most 160 characters."""
    text = escape_text(orjson.dumps(v, default=str).decode() if not isinstance(v, str) else v)
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class VerifyResult:
    month: str
    company_id: str | None
    stored: int = 0
    recomputed: int = 0
    companies: int = 0
    events: int = 0
    drift: list[Drift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drift

    def to_json(self) -> dict:
        return {
            "month": self.month,
            "company_id": self.company_id,
            "stored_rows": self.stored,
            "recomputed_rows": self.recomputed,
            "companies": self.companies,
            "events_read": self.events,
            "clean": self.clean,
            "drift": [
                {
                    "kind": d.kind,
                    "company_id": d.company_id,
                    "user_id": d.user_id,
                    "columns": list(d.columns),
                    "stored": jsonable(d.stored) if d.stored else None,
                    "recomputed": jsonable(d.recomputed) if d.recomputed else None,
                }
                for d in self.drift
            ],
            "notes": self.notes,
        }

    def lines(self, limit: int = 50) -> list[str]:
        scope = f"company {escape_text(self.company_id)}, " if self.company_id else ""
        head = (
            f"verify {scope}month {self.month}: {self.stored} stored row(s), {self.recomputed} recomputed from "
            f"{self.events} archived event(s) of {self.companies} company(ies)"
        )
        out = [head, *(f"note: {escape_text(n)}" for n in self.notes)]
        if self.clean:
            out.append("clean: every stored decision equals the recomputation")
            return out
        counts = {k: sum(d.kind == k for d in self.drift) for k in ("missing", "extra", "differs")}
        out.append("DRIFT: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        out.extend(d.line() for d in self.drift[:limit])
        if len(self.drift) > limit:
            out.append(f"... and {len(self.drift) - limit} more (use --format json for all)")
        return out


def stored_decisions(con, month: Month, company_id: str | None) -> list[dict]:
    if not has_table(con, "account_decisions"):
        raise VerifyError("the database has no account_decisions view (was it written by `seatledger sink`?)")
    sql = "SELECT * FROM account_decisions WHERE month = ?"
    params: list = [str(month)]
    if company_id:
        sql += " AND company_id = ?"
        params.append(company_id)
    return query(con, sql + " ORDER BY company_id, user_id", params)


def verify_month(
    archive_root: Path | str,
    db: Path | str,
    month: Month,
    *,
    company_id: str | None = None,
    prices: PriceBook | None = None,
    ruleset: str | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> VerifyResult:
    """Compare `account_decisions` of `month` with a recomputation from the archive.

    Each stored row is recomputed under the rule-set version it recorded; a company's rows the
    database lacks are recomputed under the version its other rows recorded (or `ruleset`, default
    the current one)."""
    root = Path(archive_root)
    if not root.is_dir():
        raise VerifyError(f"no archive at {root}")
    prices = prices or PriceBook.load()
    with read_db(db) as con:
        stored = stored_decisions(con, month, company_id)
    result = VerifyResult(str(month), company_id, stored=len(stored))
    if not stored:
        result.notes.append(
            f"DuckDB holds no complete decisions for {month}" + (f" of {company_id}" if company_id else "")
        )
    if progress:
        progress("recomputing from the archive", 0, None)
    facts, result.events = archive_facts(root, month.next(), company_id=company_id)
    by_company: dict[str, dict[str, dict]] = {}
    for r in stored:
        by_company.setdefault(r["company_id"], {})[r["user_id"]] = r
    with_facts = {cid for cid, _ in facts.accounts} | {cid for cid, _, _ in facts.activity}
    companies = sorted(set(by_company) | ({company_id} if company_id else with_facts))
    plans = _plans(companies, by_company, ruleset, result.notes)
    for i, (plan, recomputed) in enumerate(_recompute(facts, month, prices, plans), 1):
        if progress and (i % 100 == 0 or i == len(companies)):
            progress("comparing companies", i, len(companies))
        _compare(result, plan, by_company.get(plan.company_id, {}), recomputed)
    return result


@dataclass(frozen=True)
class _Plan:
    """The rule-set versions one company is recomputed under."""

    company_id: str
    fallback: str  # for the rows DuckDB lacks (and rows naming an unknown version)
    rulesets: tuple[str, ...]  # every known version needed, sorted


def _plans(
    companies: list[str], by_company: dict[str, dict[str, dict]], ruleset: str | None, notes: list[str]
) -> list[_Plan]:
    """A plan per company; a stored version that is no known rule set is noted and not recomputed."""
    default = get_ruleset(ruleset).version
    plans: list[_Plan] = []
    for cid in companies:
        versions = {r["ruleset_version"] for r in by_company.get(cid, {}).values()}
        fallback = next(iter(versions)) if len(versions) == 1 and ruleset is None else default
        known: list[str] = []
        for v in sorted(versions | {fallback}):
            if v in RULESETS:
                known.append(v)
            else:
                notes.append(f"{cid}: stored rows name unknown ruleset {v!r}; compared under {default}")
        plans.append(_Plan(cid, fallback, tuple(known)))
    return plans


def _recompute(
    facts: FactSet, month: Month, prices: PriceBook, plans: list[_Plan]
) -> Iterator[tuple[_Plan, dict[str, dict[str, dict]]]]:
    """Per plan, in order: ruleset -> user -> normalised recomputed decision.

    One `decide_month` pass per rule set over the companies that need it; the passes advance in
    step with `plans` (each yields its companies in plan order), so one company is held at a time."""
    needs: dict[str, list[str]] = {}
    for plan in plans:
        for v in plan.rulesets:
            needs.setdefault(v, []).append(plan.company_id)
    passes = {v: decide_month(facts, month, prices, v, cids) for v, cids in needs.items()}
    for plan in plans:
        recomputed: dict[str, dict[str, dict]] = {}
        for v in plan.rulesets:
            cid, _, decisions = next(passes[v])
            assert cid == plan.company_id, (cid, plan.company_id)  # the passes follow the plans' order
            recomputed[v] = {d.user_id: normalize(d.row()) for d in decisions}
        yield plan, recomputed


def _compare(result: VerifyResult, plan: _Plan, rows_of: dict[str, dict], recomputed: dict[str, dict]) -> None:
    """Add one company's counts and drift (missing, extra, differing rows) to `result`."""
    cid = plan.company_id
    base = recomputed.get(plan.fallback, {})
    result.recomputed += len(base)
    if base or rows_of:
        result.companies += 1
    for uid in sorted(set(rows_of) | set(base)):
        s = rows_of.get(uid)
        if s is None:
            result.drift.append(Drift("missing", cid, uid, recomputed=base[uid]))
            continue
        sn = normalize(s)
        rc = recomputed.get(s["ruleset_version"], base).get(uid)
        if rc is None:
            result.drift.append(Drift("extra", cid, uid, stored=sn))
            continue
        cols = diff_columns(sn, rc)
        if cols:
            result.drift.append(Drift("differs", cid, uid, tuple(cols), sn, rc))
