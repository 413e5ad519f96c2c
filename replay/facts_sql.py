"""The batch path's fact builder: DuckDB computes, from event rows, the facts `fold_all` computes.

`build_facts(con, rows)` returns a `FactSet` equal to `projections.facts.fold_all(events)` for the
same events (a differential test and a property test hold it to that). Per-event work stays in
SQL: activity is aggregated in ONE vectorised pass per (company, user, local month) into day
bitmasks (bit_or) and the earliest instant of each class (min), whose events are then fetched
back; only those per-account-month aggregates, and the few account/company records, are pulled
into Python.

One of the two DuckDB edges of `projections` (the other is the sink); the rules never see DuckDB.

Exactness notes
- Local dates: each event's instant plus its company's UTC offset at that instant, integer
  microseconds, no float. The offsets come from Python's zoneinfo: for every zone, the transitions
  within the data's time range; a CASE chain when they are few (a month or a year of data), an
  ASOF join when there are many (a multi-year archive).
- Earliest evidence is ordered by (occurred_at_us, event_id, type) as in `facts._min`. The
  aggregation keeps only the earliest instant of each class (an integer `min`); the events at
  those instants are then fetched back by a semi-join on the instant and the least (event_id,
  type) kept per class (`evidence_sql`). Exact, ties in one microsecond included, and cheaper
  than carrying a struct `arg_min` (plus the two smallest instants, to find its arbitrary picks
  among ties) through the aggregation of every event: see docs/performance.md.
- Records (account and company kinds) are read in input order (DuckDB preserves insertion order
  of a plain scan) and deduplicated by event_id, the first occurrence winning, like
  `facts._merge_records`. The time-ordered mins (first_seen, first_own) take every row, as the
  fold's min-merges do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import orjson
import pyarrow as pa

from projections.calendar import Month, zone
from projections.collector import no_gc
from projections.facts import (
    ACCOUNT_EVENTS,
    BILLING_ACTIVITY,
    COMPANY_EVENTS,
    DERIVED_TRIAL_PREFIX,
    DERIVED_TRIAL_SOURCE,
    NOTIFICATION_ACTIVITY,
    REPORTING_ACTIVITY,
    RULE_FIELDS,
    AccountFacts,
    CompanyFacts,
    Evidence,
    FactSet,
    MonthActivity,
    Record,
    guest_key,
)
from schemas.events import EARLIEST, LATEST

ACTIVITY_EVENTS = tuple(sorted(BILLING_ACTIVITY | REPORTING_ACTIVITY | NOTIFICATION_ACTIVITY))
RECORD_EVENTS = tuple(sorted(ACCOUNT_EVENTS | COMPANY_EVENTS))
DAY_US = 86_400_000_000
MAX_CASE_TRANSITIONS = 12  # above this many offset changes in the data's range, use an ASOF join
_CLASSES = (("b", BILLING_ACTIVITY), ("r", REPORTING_ACTIVITY), ("n", NOTIFICATION_ACTIVITY))
_VIEW = "_sl_rows"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _as_view(con, rows, name: str = _VIEW) -> str:
    """Make `rows` (a relation, an Arrow table or a table/view name) queryable under `name`."""
    if isinstance(rows, str):
        con.execute(f'CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM "{rows}"')
    elif isinstance(rows, (pa.Table, pa.RecordBatchReader)):
        con.register(name + "_arrow", rows)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_arrow")
    else:  # a DuckDBPyRelation
        rows.create_view(name, replace=True)
    return name


# Time zones: offsets as exact integer microseconds ---------------------------------------------


def _offset_us(tz, us: int) -> int:
    dt = datetime.fromtimestamp(us // 1_000_000, tz=UTC).astimezone(tz)
    off = dt.utcoffset() or timedelta(0)
    return (off.days * 86_400 + off.seconds) * 1_000_000


# Offsets are probed every TRANSITION_STEP_S and a change is bisected to the second. Exact when two
# transitions of a zone are never closer than the step: in tzdata 2026f between 2000 and 2100 the
# closest pair is 6.96 days apart (America/Boa_Vista, Asia/Gaza, ...; tests/unit/replay pins it).
TRANSITION_STEP_S = 3 * 86_400
_YEAR_S = {y: int(datetime(y, 1, 1, tzinfo=UTC).timestamp()) for y in range(EARLIEST.year - 1, LATEST.year + 2)}


@lru_cache(maxsize=4096)
def year_transitions(zone_name: str, year: int) -> tuple[tuple[int, int], ...]:
    """(instant_us, offset_us from then on) of every offset change of the zone in UTC year `year`
    (its first instant excluded, the next year's first included). A fixed cost per zone and year,
    computed once per process."""
    tz = zone(zone_name)
    t, end = _YEAR_S[year], _YEAR_S[year + 1]
    cur = _offset_us(tz, t * 1_000_000)
    out = []
    while t < end:
        nxt = min(t + TRANSITION_STEP_S, end)
        off = _offset_us(tz, nxt * 1_000_000)
        if off == cur:
            t = nxt
            continue
        a, b = t, nxt  # offset(a) == cur, offset(b) != cur: find the first second with a new one
        while b - a > 1:
            mid = (a + b) // 2
            if _offset_us(tz, mid * 1_000_000) == cur:
                a = mid
            else:
                b = mid
        cur = _offset_us(tz, b * 1_000_000)
        out.append((b * 1_000_000, cur))
        t = b
    return tuple(out)


def zone_segments(zone_name: str, lo_us: int, hi_us: int) -> list[tuple[int, int]]:
    """[(from_us, offset_us)] covering [lo_us, hi_us]: the offset in force from each instant on.

    The first segment starts at -inf (represented by the minimum int64), with the offset a day
    before lo_us. The transitions come from `year_transitions` of the years the range touches,
    clamped to the contract's years, so the cost depends on the zones in a run, never on how far
    apart its dates are."""
    tz = zone(zone_name)
    lo_s = max(lo_us // 1_000_000 - 86_400, _YEAR_S[EARLIEST.year - 1])
    hi_s = min(hi_us // 1_000_000 + 86_400, _YEAR_S[LATEST.year + 1] - 1)
    segs = [(-(2**63), _offset_us(tz, lo_s * 1_000_000))]
    first_year = datetime.fromtimestamp(lo_s, tz=UTC).year
    last_year = datetime.fromtimestamp(max(hi_s, lo_s), tz=UTC).year
    for year in range(first_year, last_year + 1):
        segs += [(t, off) for t, off in year_transitions(zone_name, year) if lo_s * 1_000_000 < t <= hi_s * 1_000_000]
    return segs


def _years(lo_us: int, hi_us: int) -> range:
    """The UTC years of [lo_us - 1 day, hi_us + 1 day], within the contract's years (and one either side)."""
    lo = datetime.fromtimestamp(max(lo_us // 1_000_000 - 86_400, _YEAR_S[EARLIEST.year - 1]), tz=UTC).year
    hi = datetime.fromtimestamp(min(hi_us // 1_000_000 + 86_400, _YEAR_S[LATEST.year + 1] - 1), tz=UTC).year
    return range(lo, max(lo, hi) + 1)


def years_segments(zone_name: str, years: list[int]) -> list[tuple[int, int]]:
    """[(from_us, offset_us)] exact for every instant of the UTC `years` (sorted): each year's
    transitions, and where a year does not follow the previous one, its first instant's offset.
    Instants between the years are not covered exactly (no row lies there)."""
    tz = zone(zone_name)
    segs: list[tuple[int, int]] = []
    prev = None
    for year in years:
        if prev is None or year != prev + 1:
            start = _YEAR_S[year] * 1_000_000
            segs.append((-(2**63) if prev is None else start, _offset_us(tz, start)))
        segs += year_transitions(zone_name, year)
        prev = year
    return segs


# Records ---------------------------------------------------------------------------------------


def _record(event_id: str, kind: str, ts: int, attrs_json: str | None, source: str | None) -> Record:
    data = orjson.loads(attrs_json) if attrs_json else {}
    names = RULE_FIELDS.get(kind, ())
    fields = {k: data[k] for k in names if k in data}
    if kind == "trial_started" and source is not None:
        fields["source"] = source
    return Record(ts, event_id, kind, tuple(sorted(fields.items())))


def records_sql(view: str, companies: list[str] | None) -> str:
    """The account and company records of `companies` (all when None) in input order, with every
    invite that names a guest's home company (it may be one of `companies`, R5)."""
    where = f"type IN ({_sql_list(RECORD_EVENTS)})"
    if companies is not None:
        where += (
            f" AND (company_id IN ({_sql_list(companies)})"
            " OR (type = 'invite' AND attrs LIKE '%guest_home_company_id%'))"
        )
    return (
        f"SELECT event_id, type, occurred_at_us, company_id, user_id, attrs, extras, source FROM {view} WHERE {where}"
    )


def _load_records(con, view: str, companies: list[str] | None) -> FactSet:
    # One loop over every record row, its lookups bound to locals: a hot path (millions of rows),
    # kept in one piece rather than split into per-kind calls.
    facts = FactSet()
    tbl = con.sql(records_sql(view, companies)).to_arrow_table()
    wanted = set(companies) if companies is not None else None
    cols = [tbl.column(i).to_pylist() for i in range(tbl.num_columns)]
    comps, accs = facts.companies, facts.accounts
    company_events = COMPANY_EVENTS
    cf: CompanyFacts | None
    for eid, kind, ts, cid, uid, attrs, extras, source in zip(*cols, strict=True):
        ev = (ts, eid, kind)
        if kind in company_events:
            if kind == "trial_started" and source == DERIVED_TRIAL_SOURCE:
                # R5: a derived trial reaches the home company as a guest-invite candidate.
                invite_id = eid[len(DERIVED_TRIAL_PREFIX) :]
                guest_of = (orjson.loads(extras) if extras else {}).get("guest_of", "")
                cf = comps.setdefault(cid, CompanyFacts())
                gk = guest_key(guest_of, invite_id)
                if gk not in cf.guest_invites:
                    cf.guest_invites[gk] = Record(ts, invite_id, "invite", (("company_id", guest_of),))
                continue
            if wanted is not None and cid not in wanted:
                continue
            cf = comps.setdefault(cid, CompanyFacts())
            fo = cf.first_own
            if fo is None or ev < fo:
                cf.first_own = ev
            if eid not in cf.records:
                cf.records[eid] = _record(eid, kind, ts, attrs, source)
            continue
        # account kinds
        if kind == "invite" and attrs:
            home = orjson.loads(attrs).get("guest_home_company_id")
            if home and home != cid and (wanted is None or home in wanted):
                hf = comps.setdefault(home, CompanyFacts())
                gk = guest_key(cid, eid)
                if gk not in hf.guest_invites:
                    hf.guest_invites[gk] = Record(ts, eid, "invite", (("company_id", cid),))
        if wanted is not None and cid not in wanted:
            continue
        cf = comps.get(cid)
        if cf is None:
            cf = comps[cid] = CompanyFacts()
        fo = cf.first_own
        if fo is None or ev < fo:
            cf.first_own = ev
        key = (cid, uid)
        af = accs.get(key)
        if af is None:
            af = accs[key] = AccountFacts({}, ev)
        else:
            fs = af.first_seen
            if fs is None or ev < fs:
                af.first_seen = ev
        recs = af.records
        if eid not in recs:
            # account kinds carry no `source`; without attrs the record has no fields
            recs[eid] = _record(eid, kind, ts, attrs, source) if attrs else Record(ts, eid, kind, ())
    return facts


# Activity --------------------------------------------------------------------------------------


def _offset_sql(con, zones: dict[str, str], view: str, where: str) -> tuple[str, str]:
    """(join clause, offset expression) giving each activity row its company's UTC offset."""
    non_utc = {c: z for c, z in zones.items() if z != "UTC"}
    if not non_utc:
        return "", "0::BIGINT"
    spans = con.sql(
        f"SELECT e.company_id, min(e.occurred_at_us), max(e.occurred_at_us) FROM {view} WHERE {where} GROUP BY ALL"
    ).fetchall()
    years: dict[str, set[int]] = {}  # per zone: the UTC years its companies' activity spans
    for cid, lo, hi in spans:
        z = non_utc.get(cid)
        if z is not None:
            years.setdefault(z, set()).update(_years(lo, hi))
    if not years:
        return "", "0::BIGINT"
    segs = {z: years_segments(z, sorted(ys)) for z, ys in sorted(years.items())}
    non_utc = {c: z for c, z in non_utc.items() if z in segs}  # companies with activity here
    k = max(len(s) for s in segs.values())
    if k - 1 <= MAX_CASE_TRANSITIONS:
        names = ["company_id", "o0"] + [x for i in range(1, k) for x in (f"t{i}", f"o{i}")]
        rows = []
        for cid, z in sorted(non_utc.items()):
            s = segs[z] + [(2**63 - 1, segs[z][-1][1])] * (k - len(segs[z]))
            rows.append([cid, s[0][1]] + [x for i in range(1, k) for x in (s[i][0], s[i][1])])
        arrays = [pa.array([r[j] for r in rows], type=pa.string() if j == 0 else pa.int64()) for j in range(len(names))]
        con.register("_sl_tz_arrow", pa.Table.from_arrays(arrays, names=names))
        con.execute("CREATE OR REPLACE TEMP TABLE _sl_tz AS SELECT * FROM _sl_tz_arrow")
        con.unregister("_sl_tz_arrow")
        if k == 1:
            expr = "coalesce(z.o0, 0)"
        else:
            whens = " ".join(f"WHEN e.occurred_at_us < z.t{i} THEN z.o{i - 1}" for i in range(1, k))
            expr = f"coalesce(CASE {whens} ELSE z.o{k - 1} END, 0)"
        return "LEFT JOIN _sl_tz z ON e.company_id = z.company_id", expr
    # Many transitions (a long archive): an ASOF join on (zone, instant).
    zone_ids = {z: i for i, z in enumerate(sorted(segs))}
    cz = pa.table(
        {
            "company_id": pa.array(sorted(non_utc), pa.string()),
            "zone_id": pa.array([zone_ids[non_utc[c]] for c in sorted(non_utc)], pa.int32()),
        }
    )
    zid, frm, off = [], [], []
    for z, s in segs.items():
        for f, o in s:
            zid.append(zone_ids[z])
            frm.append(f)
            off.append(o)
    tr = pa.table(
        {"zone_id": pa.array(zid, pa.int32()), "from_us": pa.array(frm, pa.int64()), "off": pa.array(off, pa.int64())}
    )
    con.register("_sl_cz_arrow", cz)
    con.register("_sl_tr_arrow", tr)
    con.execute("CREATE OR REPLACE TEMP TABLE _sl_cz AS SELECT * FROM _sl_cz_arrow")
    con.execute("CREATE OR REPLACE TEMP TABLE _sl_tr AS SELECT * FROM _sl_tr_arrow")
    con.unregister("_sl_cz_arrow")
    con.unregister("_sl_tr_arrow")
    join = (
        "LEFT JOIN _sl_cz cz ON e.company_id = cz.company_id "
        "ASOF LEFT JOIN _sl_tr z ON cz.zone_id = z.zone_id AND e.occurred_at_us >= z.from_us"
    )
    return join, "coalesce(z.off, 0)"


def activity_sql(view: str, join: str, offset: str, where: str, *, earliest: bool = True) -> str:
    """One pass: per (company, user, local month) three day bitmasks and the earliest instant of
    each class. `k` packs the classes of a kind: 1 billing (R2), 2 reporting (R14), 4 notification.
    `earliest=False`: the bitmasks alone (bench/replay_bench.py measures that floor)."""
    aggs = []
    for i, (c, _) in enumerate(_CLASSES):
        aggs.append(f"bit_or(((k >> {i}) & 1)::UINTEGER << (day(d) - 1)::UINTEGER) AS {c}_days")
        if earliest:
            aggs.append(f"min(CASE WHEN k & {1 << i} <> 0 THEN ts END) AS {c}_t")
    return f"""
        SELECT company_id, user_id, year(d)::INTEGER AS y, month(d)::INTEGER AS m, {", ".join(aggs)}
        FROM (
            SELECT e.company_id, e.user_id, e.occurred_at_us AS ts, {_kind_bits("e.type")} AS k,
                   make_timestamp(e.occurred_at_us + {offset})::DATE AS d
            FROM {view} e {join}
            WHERE {where}
        )
        GROUP BY company_id, user_id, y, m
    """


def _kind_bits(type_col: str) -> str:
    """The classes of an activity kind as bits (see `activity_sql`)."""
    cases = []
    for kind in ACTIVITY_EVENTS:
        bits = (kind in BILLING_ACTIVITY) | (kind in REPORTING_ACTIVITY) << 1 | (kind in NOTIFICATION_ACTIVITY) << 2
        cases.append(f"WHEN '{kind}' THEN {bits}")
    return f"CASE {type_col} {' '.join(cases)} END"


def evidence_sql(view: str, aggs: str, where: str) -> str:
    """`aggs` (the rows of `activity_sql`) with the earliest event of each class: the least
    (event_id, type) among the class's events at its earliest instant, as `facts._min` orders.

    The events are fetched back by a semi-join on the instant alone (one integer: cheaper to probe
    than the strings; another account's event in the same microsecond is dropped by the join on
    the account), then kept per class. Exact, ties included: no arbitrary pick as in `arg_min`."""
    ev = {c: f"min({{'i': x.event_id, 't': x.type}}) FILTER (WHERE x.k & {1 << i} <> 0 AND x.ts = a.{c}_t)"
          for i, (c, _) in enumerate(_CLASSES)}  # fmt: skip
    keep = ", ".join(f"a.{c}_days, a.{c}_t" for c, _ in _CLASSES)
    flat = ", ".join(f"{c}_days, {c}_t, {c}_ev.i AS {c}_i, {c}_ev.t AS {c}_k" for c, _ in _CLASSES)
    instants = " UNION ALL ".join(f"SELECT {c}_t AS t FROM {aggs}" for c, _ in _CLASSES)
    return f"""
        WITH instants AS (SELECT DISTINCT t FROM ({instants}) WHERE t IS NOT NULL),
        found AS (
            SELECT e.company_id, e.user_id, e.occurred_at_us AS ts, e.event_id, e.type, {_kind_bits("e.type")} AS k
            FROM {view} e SEMI JOIN instants ON e.occurred_at_us = instants.t
            WHERE {where}
        )
        SELECT company_id, user_id, y, m, {flat} FROM (
            SELECT a.company_id, a.user_id, a.y, a.m, {keep}, {", ".join(f"{v} AS {c}_ev" for c, v in ev.items())}
            FROM {aggs} a LEFT JOIN found x
              ON a.company_id = x.company_id AND a.user_id = x.user_id AND x.ts IN (a.b_t, a.r_t, a.n_t)
            GROUP BY ALL
        )
    """


_AGGS = "_sl_activity"


def activity_parts(con, view: str, zones: dict[str, str], companies: list[str] | None) -> tuple[str, str, str]:
    """(join, offset, where) of `activity_sql` over `companies` (all when None): registers the
    zone offset tables in `con`."""
    where = f"e.type IN ({_sql_list(ACTIVITY_EVENTS)})"
    if companies is not None:
        where += f" AND e.company_id IN ({_sql_list(companies)})"
    join, offset = _offset_sql(con, zones, f"{view} e", where)
    return join, offset, where


def _activity_query(con, view: str, zones: dict[str, str], companies: list[str] | None) -> str:
    """The activity pass of `companies` (all when None) as flat primitive columns (structs convert
    to Python dicts slowly). Materialises `activity_sql` in `con` (as `_AGGS`, dropped by the
    caller; a row per account-month) and registers the zone offset tables."""
    join, offset, where = activity_parts(con, view, zones, companies)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_AGGS} AS {activity_sql(view, join, offset, where)}")
    return evidence_sql(view, _AGGS, where)


def _earliest(col: dict[str, list], c: str) -> list[Evidence | None]:
    """The earliest evidence of class `c` per row: (ts, event_id, type) or None."""
    return [
        None if e is None or t is None else (t, e, k)
        for e, t, k in zip(col[f"{c}_i"], col[f"{c}_t"], col[f"{c}_k"], strict=True)
    ]


def _load_activity(con, view: str, facts: FactSet, zones: dict[str, str], companies: list[str] | None) -> None:
    # One loop over every (company, user, local month) row, its lookups bound to locals: a hot path
    # (a row per active account-month), kept in one piece.
    tbl = con.sql(_activity_query(con, view, zones, companies)).to_arrow_table()
    con.execute(f"DROP TABLE IF EXISTS {_AGGS}")
    n = tbl.num_rows
    if n == 0:
        return
    col = {name: tbl.column(name).to_pylist() for name in tbl.column_names}
    del tbl
    cids, uids, ys, ms = col["company_id"], col["user_id"], col["y"], col["m"]
    months: dict[tuple[int, int], Month] = {}
    accounts = facts.accounts
    companies_f = facts.companies
    activity = facts.activity
    fb, fr, fn = (_earliest(col, c) for c, _ in _CLASSES)
    bd, rd, nd = (col[f"{c}_days"] for c, _ in _CLASSES)
    del col
    for cid, uid, y, m, b, r, x, bdays, rdays, ndays in zip(cids, uids, ys, ms, fb, fr, fn, bd, rd, nd, strict=True):
        mo = months.get((y, m))
        if mo is None:
            mo = months[(y, m)] = Month(y, m)
        activity[(cid, uid, mo)] = MonthActivity(bdays or 0, rdays or 0, ndays or 0, b, r, x)
        first = b
        if r is not None and (first is None or r < first):
            first = r
        if x is not None and (first is None or x < first):
            first = x
        key = (cid, uid)
        af = accounts.get(key)
        if af is None:
            accounts[key] = AccountFacts({}, first)
        else:
            fs = af.first_seen  # `first` is set (a row has an activity event); None never lowers, as in facts._min
            if fs is None or (first is not None and first < fs):
                af.first_seen = first
        cf = companies_f.get(cid)
        if cf is None:
            companies_f[cid] = CompanyFacts({}, first)
        else:
            fo = cf.first_own
            if fo is None or (first is not None and first < fo):
                cf.first_own = first


def build_facts(con, rows, companies: Iterable[str] | None = None) -> FactSet:
    """The `FactSet` of event rows (schema `replay.rows.ARROW_SCHEMA`), computed in DuckDB.

    `rows`: a DuckDB relation, an Arrow table, or the name of a table or view in `con`.
    `companies`: restrict to these companies (their events, and guest invites naming them as home).
    Equal to `fold_all` of the same events (restricted to `companies` when given).
    """
    comp_list = sorted(set(companies)) if companies is not None else None
    view = _as_view(con, rows)
    with no_gc():
        facts = _load_records(con, view, comp_list)
        zones = {cid: cf.timezone_name for cid, cf in facts.companies.items() if cf.records}
        _load_activity(con, view, facts, zones, comp_list)
    return facts


def merge_factsets(*sets: FactSet) -> FactSet:
    """Merge FactSets with the facts' own merges (what combining two partial folds gives)."""
    out = FactSet()
    for fs in sets:
        for cid, cf in fs.companies.items():
            out.merge_company(cid, cf)
        for key, af in fs.accounts.items():
            out.merge_account(key, af)
        for month_key, act in fs.activity.items():
            out.merge_activity(month_key, act)
    return out


__all__ = [
    "build_facts",
    "merge_factsets",
    "zone_segments",
    "activity_sql",
    "ACTIVITY_EVENTS",
    "RECORD_EVENTS",
]
