"""`seatledger dispute`: why was this company billed so for this month, what do the rules say now,
and which events make the difference; with `--apply`, correct it through the sink.

How the report finds the events that cause a difference (per account whose latest billed version
differs from the recomputation):

1. the *late events*: the account's events, and the company's own events, that happened before the
   month ended but reached Kafka after the billed version was made. "Reached Kafka" is the archive's
   `published_at_us` column (the Kafka record timestamp of the events topic); "made" is the billed
   version's `emitted_at` (its `received_at` when that is missing);
2. the evidence that differs: events the recomputed decision cites that the billed one does not,
   and the other way round;
3. a control: the same rules the billed version recorded (its `ruleset_version`), applied to only
   the events that had reached Kafka when it was made. When that reproduces the billed version, the
   difference is explained by (1) and by a rule-set change; when it does not, the billed version is
   not what the events known then give (processing drift: `seatledger verify` looks for more).

Pure apart from the archive and DuckDB reads: the report is a function of (archive, database,
arguments), so the same inputs give a byte-identical report. Nothing in it reads the clock.
Applying computes the correction messages here; sending them is the streams layer's
(`streams.corrections`), passed in as `send`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from projections.calendar import Month, local_iso, to_us, utc_iso, zone
from projections.decide import DECISION_COLUMNS, Decision, decide_month
from projections.facts import FactSet
from projections.mau import in_report, months_needed
from projections.money import cents, total
from projections.prices import PriceBook
from projections.rulesets import RULESETS, get_ruleset
from projections.snapshots import decision_message, decision_row, dispute_applied_message
from projections.text import md_cell, md_code
from replay.archive import reader
from replay.verify import (
    VerifyError,
    archive_facts,
    diff_columns,
    has_table,
    jsonable,
    normalize,
    query,
    read_db,
)

Progress = Callable[[str, int, int | None], None]  # (step, done, total)
# (company_id, messages): publish them in order to the snapshots topic and return once they are
# acknowledged; raise DisputeError when they could not be sent (streams.corrections.send_corrections).
Send = Callable[[str, list[dict]], None]

VERSION_COLUMNS = (
    "version",
    "billable",
    "charged",
    "tier",
    "rule",
    "reason",
    "unit_price_usd",
    "ruleset_version",
    "amend_reason",
    "emitted_at",
)


class DisputeError(VerifyError):
    """Unusable inputs or a failed apply: a clear message, exit 2 (inputs) or 3 (apply)."""


# Reading ---------------------------------------------------------------------------------------


def stored_versions(db: Path | str, company_id: str, month: Month, user_id: str | None = None) -> list[dict]:
    """Every decision version DuckDB holds for the company-month (or one account), by user, version."""
    with read_db(db) as con:
        if not has_table(con, "snapshot_versions"):
            raise DisputeError(f"{db} has no snapshot_versions table (was it written by `seatledger sink`?)")
        sql = "SELECT * FROM snapshot_versions WHERE company_id = ? AND month = ?"
        params: list = [company_id, str(month)]
        if user_id:
            sql += " AND user_id = ?"
            params.append(user_id)
        return query(con, sql + " ORDER BY user_id, version", params)


def ticket_applied(db: Path | str, ticket: str) -> dict | None:
    with read_db(db) as con:
        if not has_table(con, "disputes"):
            return None
        rows = query(con, "SELECT * FROM disputes WHERE ticket = ?", [ticket])
    return rows[0] if rows else None


def made_at_us(version: dict) -> int | None:
    """When a stored version was made: its emitted_at (ISO text), else when the sink received it."""
    text = version.get("emitted_at")
    if text:
        try:
            dt = datetime.fromisoformat(str(text).replace("Z", "+00:00").replace("z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return to_us(dt)
        except ValueError:
            pass
    rec = version.get("received_at")
    if isinstance(rec, datetime):
        return to_us(rec if rec.tzinfo else rec.replace(tzinfo=UTC))
    return None


# The report ------------------------------------------------------------------------------------


@dataclass
class AccountReport:
    user_id: str
    versions: list[dict]  # stored, oldest first
    now: Decision | None
    in_report_now: bool | None = None
    differs: list[str] = field(default_factory=list)
    late_events: list[dict] = field(default_factory=list)
    evidence_added: list[dict] = field(default_factory=list)
    evidence_removed: list[dict] = field(default_factory=list)
    at_close: str = "unknown"  # reproduces_billed | differs_from_billed | unknown
    at_close_columns: list[str] = field(default_factory=list)

    @property
    def latest(self) -> dict | None:
        return self.versions[-1] if self.versions else None

    @property
    def status(self) -> str:
        if self.now is None:
            return "not_in_recomputation"
        if self.latest is None:
            return "not_billed"
        return "differs" if self.differs else "same"


@dataclass
class DisputeReport:
    company_id: str
    month: Month
    tz: ZoneInfo
    ruleset: str
    events_read: int
    accounts: list[AccountReport]
    company_late_events: list[dict]
    close_us: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[AccountReport]:
        return [a for a in self.accounts if a.status in ("differs", "not_billed")]

    # -- rendering

    def _t(self, us: int | None) -> str | None:
        return None if us is None else local_iso(us, self.tz)

    def _version(self, v: dict) -> dict:
        out = {c: v.get(c) for c in VERSION_COLUMNS}
        out["unit_price_usd"] = str(cents(v["unit_price_usd"]))
        out["billable"], out["charged"] = bool(v["billable"]), bool(v["charged"])
        out["evidence"] = orjson.loads(v["evidence"])
        out["made_at"] = self._t(made_at_us(v))
        return out

    def _decision(self, d: Decision | None) -> dict | None:
        if d is None:
            return None
        row = jsonable(normalize(d.row()))
        return {k: row[k] for k in DECISION_COLUMNS if k not in ("company_id", "user_id", "month")}

    def _event(self, e: dict) -> dict:
        return {
            "event_id": e["event_id"],
            "type": e["type"],
            "user_id": e.get("user_id"),
            "occurred_at": self._t(e["occurred_at_us"]),
            "published_at": self._t(e.get("published_at_us")),
        }

    def to_json(self) -> dict:
        billed = [a.latest for a in self.accounts if a.latest is not None]
        now = [a.now for a in self.accounts if a.now is not None]
        return {
            "company_id": self.company_id,
            "month": str(self.month),
            "timezone": self.tz.key,
            "month_starts": self._t(self.month.start_us(self.tz)),
            "month_ends": self._t(self.month.end_us(self.tz)),
            "ruleset": self.ruleset,
            "events_read": self.events_read,
            "closed_at": self._t(self.close_us),
            "summary": {
                "accounts": len(self.accounts),
                "billed_billable": sum(bool(v["billable"]) for v in billed),
                "billed_charged": sum(bool(v["charged"]) for v in billed),
                "billed_total_usd": str(_total(v["unit_price_usd"] for v in billed if v["charged"])),
                "now_billable": sum(d.billable for d in now),
                "now_charged": sum(d.charged for d in now),
                "now_total_usd": str(_total(d.unit_price_usd for d in now if d.charged)),
                "differences": len(self.changed),
            },
            "company_events_after_close": [self._event(e) for e in self.company_late_events],
            "accounts": [
                {
                    "user_id": a.user_id,
                    "status": a.status,
                    "billed": self._version(a.latest) if a.latest else None,
                    "now": self._decision(a.now),
                    "differs": a.differs,
                    "versions": [self._version(v) for v in a.versions],
                    "causes": {
                        "late_events": [self._event(e) for e in a.late_events],
                        "evidence_added": a.evidence_added,
                        "evidence_removed": a.evidence_removed,
                        "billed_rules_on_events_known_then": a.at_close,
                        "columns_unexplained": a.at_close_columns,
                    }
                    if a.status != "same"
                    else None,
                }
                for a in self.accounts
            ],
            "notes": self.notes,
        }

    def to_json_text(self) -> str:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"

    def to_markdown(self) -> str:
        j = self.to_json()
        s = j["summary"]
        out = [
            f"# Dispute report: {md_cell(self.company_id)}, {self.month}",
            "",
            f"- Billing time zone: {j['timezone']}; the month runs from {j['month_starts']} to {j['month_ends']} (exclusive).",
            f"- Rules applied now: ruleset {self.ruleset}.",
            f"- Archive: {self.events_read} event(s) of this company read (UTC months up to {self.month.next()}).",
            f"- Month closed (first billed version made): {j['closed_at'] or 'never: no billed version in the database'}.",
            f"- Billed (latest versions): {s['billed_billable']} billable, {s['billed_charged']} charged, USD {s['billed_total_usd']}.",
            f"- Rules now: {s['now_billable']} billable, {s['now_charged']} charged, USD {s['now_total_usd']}.",
            f"- Accounts: {s['accounts']}; differences: {s['differences']}.",
        ]
        out += [f"- Note: {md_cell(n)}" for n in self.notes]
        if j["company_events_after_close"]:
            out += ["", "## Company events that arrived after the close", ""]
            out += [_event_line(e) for e in j["company_events_after_close"]]
        out += ["", "## Differences"]
        diffs = [a for a in j["accounts"] if a["status"] != "same"]
        if not diffs:
            out += ["", "None: every billed decision equals what the rules give now."]
        for a in diffs:
            out += _account_detail_md(a, self.ruleset)
        out += [
            "",
            "## All accounts",
            "",
            "| user | status | billed (latest) | rules now | rule / reason now | events that explain it |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a in j["accounts"]:
            b, n = a["billed"], a["now"]
            why = "; ".join(_ev_short(e, in_table=True) for e in (n or b or {}).get("evidence", []))
            rr = f"{md_cell(n['rule'])} {md_cell(n['reason'])}" if n else "-"
            out.append(f"| {md_cell(a['user_id'])} | {a['status']} | {_state(b, True)} | {_state(n)} | {rr} | {why} |")
        return "\n".join(out) + "\n"


def _total(prices: Iterable) -> Decimal:
    return cents(total(Decimal(str(p)) for p in prices))


def _state(d: dict | None, with_version: bool = False) -> str:
    if d is None:
        return "-"
    what = "charged" if d["charged"] else ("billable, free" if d["billable"] else "not billable")
    price = f" USD {d['unit_price_usd']}" if d["charged"] else ""
    ver = f"v{d['version']}: " if with_version else ""
    return f"{ver}{what} ({md_cell(d['tier'])}){price}"


def _ev_short(e: dict, *, in_table: bool = False) -> str:
    """An evidence event: type, id as a code span, time (all escaped: stored evidence is data)."""
    return f"{md_cell(e.get('type'))} {md_code(e.get('event_id'), in_table=in_table)} {md_cell(e.get('occurred_at'))}"


def _event_line(e: dict) -> str:
    who = f" of {md_cell(e['user_id'])}" if e.get("user_id") else ""
    return (
        f"- {md_cell(e['type'])}{who} {md_code(e['event_id'])} at {md_cell(e['occurred_at'])}, "
        f"reached Kafka {md_cell(e['published_at'])}"
    )


def _account_detail_md(a: dict, ruleset: str) -> list[str]:
    b, n = a["billed"], a["now"]
    out = ["", f"### {md_cell(a['user_id'])}: {_state(b, True) if b else 'not billed'} -> now {_state(n)}", ""]
    out += [
        "| version | billable | charged | tier | rule | reason | USD | ruleset | amend reason | made at |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in a["versions"]:
        out.append(
            f"| v{v['version']} | {v['billable']} | {v['charged']} | {md_cell(v['tier'])} | {md_cell(v['rule'])} | "
            f"{md_cell(v['reason'])} | {v['unit_price_usd']} | {md_cell(v['ruleset_version'])} | "
            f"{md_cell(v['amend_reason'] or '-')} | {md_cell(v['made_at'] or '-')} |"
        )
    if n:
        out.append(
            f"| now | {n['billable']} | {n['charged']} | {md_cell(n['tier'])} | {md_cell(n['rule'])} | "
            f"{md_cell(n['reason'])} | {n['unit_price_usd']} | {md_cell(n['ruleset_version'])} | - | - |"
        )
    out.append("")
    if a["differs"]:
        out.append(f"Differs in: {', '.join(md_cell(c) for c in a['differs'])}.")
    c = a["causes"] or {}
    if c.get("late_events"):
        out.append(
            "Events of this account that happened before the month ended but arrived after the billed version was made:"
        )
        out += [_event_line(e) for e in c["late_events"]]
    if c.get("evidence_added"):
        out.append("Evidence the rules cite now that the billed version did not:")
        out += [f"- {_ev_short(e)}" for e in c["evidence_added"]]
    if c.get("evidence_removed"):
        out.append("Evidence the billed version cited that the rules no longer cite:")
        out += [f"- {_ev_short(e)}" for e in c["evidence_removed"]]
    at = c.get("billed_rules_on_events_known_then")
    if b and at == "reproduces_billed":
        changed = (
            f"; the ruleset changed from {b['ruleset_version']} to {ruleset}" if b["ruleset_version"] != ruleset else ""
        )
        out.append(
            f"Check: ruleset {b['ruleset_version']} on only the events that had arrived when v{b['version']} was made "
            f"reproduces v{b['version']} exactly, so the difference comes from the events above{changed}."
        )
    elif b and at == "differs_from_billed":
        out.append(
            f"Check: ruleset {b['ruleset_version']} on only the events that had arrived when v{b['version']} was made does "
            f"NOT reproduce v{b['version']} (differs in {', '.join(c.get('columns_unexplained') or [])}): "
            "the billed version is not what those events give; run `seatledger verify`."
        )
    elif n and not b:
        out.append("No billed version: the account was unknown to the bill (its events arrived after the close).")
    elif b and not n:
        out.append("The archive gives no decision for this account (no event of it before the month ended).")
    return out


# Computing -------------------------------------------------------------------------------------


def _decide(facts: FactSet, company_id: str, month: Month, prices: PriceBook, ruleset: str) -> dict[str, Decision]:
    ((_, _, decisions),) = decide_month(facts, month, prices, ruleset, [company_id])
    return {d.user_id: d for d in decisions}


def _evidence_ids(evidence) -> dict[str, dict]:
    items = orjson.loads(evidence) if isinstance(evidence, str) else evidence
    return {e["event_id"]: e for e in items}


def _control(accounts: list[AccountReport], root: Path, upto: Month, company_id: str, month: Month, prices) -> None:
    """Set `at_close` of each differing account: does its latest version's ruleset, applied to only
    the events that had reached Kafka when that version was made, reproduce it?

    One recomputation per (close or amendment batch, ruleset): versions of one `close_id` are
    emitted over a few milliseconds, so the batch's earliest `emitted_at` is its cut-off."""
    groups: dict[tuple[str, str], list[tuple[AccountReport, dict, int]]] = {}
    for a in accounts:
        v = a.latest
        if a.status != "differs" or v is None:  # "differs": a latest version and a decision now
            continue
        made = made_at_us(v)
        if made is None or v["ruleset_version"] not in RULESETS:
            continue
        groups.setdefault((v.get("close_id") or f"@{made}", v["ruleset_version"]), []).append((a, v, made))
    for (_, rs), members in sorted(groups.items(), key=lambda group: group[0]):
        cutoff = min(made for _, _, made in members)
        known, _ = archive_facts(root, upto, company_id=company_id, published_upto_us=cutoff)
        then = _decide(known, company_id, month, prices, rs)
        for a, v, _ in members:
            ctl = then.get(a.user_id)
            cols = diff_columns(normalize(v), normalize(ctl.row())) if ctl else ["(no decision)"]
            a.at_close = "differs_from_billed" if cols else "reproduces_billed"
            a.at_close_columns = cols


def _arrived_late(row: dict, end_us: int, after_us: int | None) -> bool:
    """An event that happened before the month ended but reached Kafka after `after_us`."""
    return after_us is not None and row["occurred_at_us"] < end_us and (row["published_at_us"] or 0) > after_us


def _account(
    user_id: str,
    versions: list[dict],
    now: Decision | None,
    *,
    facts: FactSet,
    month: Month,
    rows: list[dict],
    end_us: int,
    close_us: int | None,
) -> AccountReport:
    """One account compared: its billed versions, its decision now and, when they differ, the late
    events among `rows` (the account's own) and the evidence each side cites that the other does not."""
    a = AccountReport(user_id, versions, now)
    if now is not None:
        hist = {m: facts.activity.get((now.company_id, user_id, m)) for m in months_needed(month)}
        a.in_report_now = in_report(month, hist)
    latest = a.latest
    if latest is not None and now is not None:
        a.differs = diff_columns(normalize(latest), normalize(now.row()))
    if a.status != "same":
        made = made_at_us(latest) if latest else close_us
        a.late_events = [r for r in rows if _arrived_late(r, end_us, made)]
        was = _evidence_ids(latest["evidence"]) if latest else {}
        is_ = _evidence_ids(now.evidence) if now else {}
        a.evidence_added = [e for k, e in is_.items() if k not in was]
        a.evidence_removed = [e for k, e in was.items() if k not in is_]
    return a


def _notes(company_id: str, month: Month, user_id: str | None, rows: list[dict], versions: list[dict]) -> list[str]:
    notes = []
    if not rows:
        notes.append(f"the archive holds no event of {company_id} up to {month.next()}")
    if not versions:
        notes.append(
            f"the database holds no decision of {company_id} for {month}" + (f" and user {user_id}" if user_id else "")
        )
    return notes


def build_report(
    archive_root: Path | str,
    db: Path | str,
    company_id: str,
    month: Month,
    *,
    user_id: str | None = None,
    ruleset: str | None = None,
    prices: PriceBook | None = None,
    progress: Progress | None = None,
) -> DisputeReport:
    """Recompute the company-month (or one account) from the archive and compare it with every
    version DuckDB billed; see the module docstring for how differences are explained."""
    root = Path(archive_root)
    if not root.is_dir():
        raise DisputeError(f"no archive at {root}")
    rs = get_ruleset(ruleset).version
    prices = prices or PriceBook.load()
    versions = stored_versions(db, company_id, month, user_id)
    if progress:
        progress("reading the archive", 0, None)
    upto = month.next()
    rows = reader.read_company_rows(root, company_id, upto)
    facts, _ = archive_facts(root, upto, company_id=company_id)
    now = _decide(facts, company_id, month, prices, rs)
    tz = zone(facts.company(company_id).timezone_name)
    end = month.end_us(tz)
    notes = _notes(company_id, month, user_id, rows, versions)

    by_user: dict[str, list[dict]] = {}
    for v in versions:
        by_user.setdefault(v["user_id"], []).append(v)
    users = sorted(set(by_user) | ({user_id} & set(now) if user_id else set(now)))
    firsts = [made_at_us(v) for v in versions if v["version"] == 1]
    close_us = min((t for t in firsts if t is not None), default=None)
    rows_of_user: dict[str, list[dict]] = {}
    for r in rows:
        if r["company_id"] == company_id and r.get("user_id") is not None:
            rows_of_user.setdefault(r["user_id"], []).append(r)

    accounts = []
    for i, u in enumerate(users, 1):
        rows_of = rows_of_user.get(u, [])
        accounts.append(
            _account(
                u, by_user.get(u, []), now.get(u), facts=facts, month=month, rows=rows_of, end_us=end, close_us=close_us
            )
        )
        if progress is not None and (i % 500 == 0 or i == len(users)):
            progress("comparing accounts", i, len(users))
    _control(accounts, root, upto, company_id, month, prices)
    company_late = [
        r
        for r in rows
        if (r.get("user_id") is None or r["company_id"] != company_id) and _arrived_late(r, end, close_us)
    ]
    return DisputeReport(company_id, month, tz, rs, len(rows), accounts, company_late, close_us, notes)


# Applying --------------------------------------------------------------------------------------


def now_iso() -> str:
    return utc_iso(datetime.now(UTC))


def amendment_messages(
    report: DisputeReport, ticket: str, requested_by: str | None, applied_at: str
) -> tuple[list[dict], dict]:
    """The `decision` amendments (one per changed account) and the `dispute_applied` message."""
    reason = f"dispute:{ticket}"
    decisions, changes = [], []
    for a in report.changed:
        if a.now is None:
            continue
        latest = a.latest
        version = latest["version"] + 1 if latest else 1
        decisions.append(
            decision_message(
                a.now,
                version=version,
                corrects_version=latest["version"] if latest else None,
                amend_reason=reason,
                in_report=a.in_report_now,
                close_id=reason,
                emitted_at=applied_at,
            )
        )
        before = None
        if latest is not None:
            before = jsonable(normalize(latest)) | {"version": latest["version"]}
            before["evidence"] = (
                latest["evidence"] if isinstance(latest["evidence"], str) else orjson.dumps(before["evidence"]).decode()
            )
        changes.append({"user_id": a.user_id, "from": before, "to": decision_row(a.now) | {"version": version}})
    applied = dispute_applied_message(
        ticket,
        report.company_id,
        str(report.month),
        requested_by=requested_by,
        applied_at=applied_at,
        changes=changes,
    )
    return decisions, applied


@dataclass
class ApplyResult:
    ticket: str
    already: dict | None = None  # the disputes row when the ticket was applied before
    published: int = 0
    stored_versions: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)


def wait_for_ticket(db: Path | str, ticket: str, timeout: float, poll: float = 0.5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            row = ticket_applied(db, ticket)
        except VerifyError:
            row = None  # the file is being created or locked for longer than read_db waits
        if row is not None:
            return row
        if time.monotonic() > deadline:
            raise DisputeError(
                f"published the correction for ticket {ticket}, but the sink has not recorded it in {db} within "
                f"{timeout:.0f}s. Is `seatledger sink` running against this database? The messages stay on the "
                "snapshots topic; the sink will store them when it runs (run this command again to check: it "
                "reports an applied ticket and publishes nothing twice)."
            )
        time.sleep(poll)


def apply_report(
    report: DisputeReport,
    send: Send,
    db: Path | str,
    ticket: str,
    requested_by: str | None = None,
    *,
    timeout: float = 120.0,
) -> ApplyResult:
    """Correct the report's differences once per ticket: `send` the amendments and the dispute record
    (no Kafka here, the caller's sender does it), wait for the sink to record the ticket in `db`,
    and read back what it stored. A ticket already applied publishes nothing."""
    result = ApplyResult(ticket)
    prior = ticket_applied(db, ticket)
    if prior is not None:
        result.already = prior
        return result
    decisions, applied = amendment_messages(report, ticket, requested_by, now_iso())
    if not applied["changes"]:
        return result
    send(report.company_id, [*decisions, applied])
    result.published = len(decisions) + 1
    wait_for_ticket(db, ticket, timeout)
    reason = f"dispute:{ticket}"
    with read_db(db) as con:
        result.stored_versions = query(
            con,
            "SELECT * FROM snapshot_versions WHERE company_id = ? AND month = ? AND amend_reason = ? ORDER BY user_id, version",
            [report.company_id, str(report.month), reason],
        )
        if has_table(con, "invoice_adjustments"):
            result.adjustments = query(
                con,
                "SELECT * FROM invoice_adjustments WHERE company_id = ? AND reason = ? ORDER BY user_id, new_version",
                [report.company_id, reason],
            )
    return result
