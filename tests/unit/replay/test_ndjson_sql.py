"""The SQL lane of the batch reader (replay.ndjson_sql) against the Python reader (schemas.decode):
on the same lines, the lane accepts only what Python accepts, with the same row."""

from __future__ import annotations

import duckdb
import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.workload import iter_events
from replay.events_source import LoadedEvents, _line_rows
from replay.ndjson_lines import SCHEMA, LineFiles, line_batches
from replay.ndjson_sql import lane_sql
from replay.rows import COLUMNS
from tests.support.hostile import FIELDS, HOSTILE_VALUES, Mutator

GOOD = {
    "event_id": "e-1",
    "type": "visit",
    "occurred_at": "2026-10-02T08:14:03Z",
    "company_id": "acme",
    "user_id": "u-1",
    "channel": "web",
}


def lane(tmp_path, lines: list[bytes]) -> list[tuple | None]:
    """Per line: the lane's row (COLUMNS order), or None when it leaves the line to Python."""
    path = tmp_path / "lines.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    con = duckdb.connect()
    reader = pa.RecordBatchReader.from_batches(SCHEMA, line_batches([path], LineFiles()))
    con.register("lines", reader)
    got = con.execute(
        f"SELECT type IS NOT NULL, {', '.join(COLUMNS)} FROM ({lane_sql('lines')}) ORDER BY pos"
    ).fetchall()
    con.close()
    return [tuple(r[1:]) if r[0] else None for r in got]


def python_verdict(line: bytes) -> tuple[list, list]:
    out = LoadedEvents(None, "v", "ndjson")
    rows = _line_rows(out, "f", 1, line.strip())
    return rows, out.invalid


def check_subset(tmp_path, lines: list[bytes]) -> int:
    """Assert the lane's verdict is a subset of Python's with equal rows; return how many it took."""
    taken = 0
    for line, row in zip(lines, lane(tmp_path, lines), strict=True):
        if row is None:
            continue
        taken += 1
        rows, invalid = python_verdict(line)
        assert not invalid and rows == [(0, row)], line
    return taken


def variants() -> list[bytes]:
    g = orjson.dumps(GOOD)
    by_hand = [
        g,
        g.replace(b'"web"', b'"fax"'),
        g.replace(b'"web"', b"null"),
        orjson.dumps(GOOD | {"type": "notification_view", "channel": None}),
        orjson.dumps(GOOD | {"type": "notification_view"}),
        orjson.dumps({k: v for k, v in GOOD.items() if k != "channel"}),
        orjson.dumps(GOOD | {"type": "login"}),
        orjson.dumps({k: v for k, v in GOOD.items() if k != "channel"} | {"type": "login"}),
        g[:-1] + b',"schema_version":1}',
        g[:-1] + b',"schema_version":1.0}',
        g[:-1] + b',"schema_version":"1"}',
        g[:-1] + b',"schema_version":true}',
        g[:-1] + b',"source":null}',
        g[:-1] + b',"source":"s"}',
        g[:-1] + b',"source":"\xc3\xa9t\xc3\xa9"}',
        g[:-1] + b',"source":NaN}',
        g[:-1] + b',"source":"' + b"s" * 129 + b'"}',
        g[:-1] + b',"source":"' + b"s" * 128 + b'"}',
        g[:-1] + b',"x":1}',
        g[:-1] + b",}",
        g[:-1] + b',"user_id":"u-2"}',
        g[:-1] + b',"\\u0075ser_id":"u-2"}',
        g + b" ",
        b" " + g,
        g + b"\r",
        g.replace(b":", b": ", 1),
        g.replace(b'"e-1"', b'"e\\u002d1"'),
        g.replace(b'"e-1"', b'"\xc3\xa9"'),
        g.replace(b'"e-1"', b'"a\tb"'),
        g.replace(b'"e-1"', b'"' + b"e" * 128 + b'"'),
        g.replace(b'"e-1"', b'"' + b"e" * 129 + b'"'),
        g.replace(b'"e-1"', b'""'),
        g.replace(b'"e-1"', b'" "'),
        g.replace(b'"e-1"', b"1"),
        g.replace(b'"acme"', b'"a' + b"c" * 63 + b'"'),
        g.replace(b'"acme"', b'"a' + b"c" * 64 + b'"'),
        g.replace(b'"acme"', b'"ac me"'),
        g.replace(b'"u-1"', b"5"),
        g.replace(b'"u-1"', b'{"x":"y"}'),
        g.replace(b'"u-1"', b'["u-1"]'),
        g.replace(b'"visit"', b'"Visit"'),
        g.replace(b"T08", b"t08"),
        g.replace(b"T08", b" 08"),
        g.replace(b"03Z", b"03z"),
        g.replace(b"03Z", b"03+05:45"),
        g.replace(b"03Z", b"03-23:59"),
        g.replace(b"03Z", b"03+24:00"),
        g.replace(b"03Z", b"03+05:60"),
        g.replace(b"03Z", b"03.5Z"),
        g.replace(b"03Z", b"03"),
        g.replace(b"08:14:03", b"24:00:00"),
        g.replace(b"08:14:03", b"08:60:00"),
        g.replace(b"08:14:03", b"08:14:60"),
        g.replace(b"2026-10-02", b"2026-02-29"),
        g.replace(b"2026-10-02", b"2024-02-29"),
        g.replace(b"2026-10-02", b"1999-12-31"),
        g.replace(b"2026-10-02", b"2099-12-31").replace(b"03Z", b"03-05:00"),
        g.replace(b"2026-10-02", b"2000-01-01").replace(b"03Z", b"03+09:00"),
        g.replace(b"2026", b"2\xd9\xa026"),
        b"[" + g + b"]",
        b"[" + g + b"," + g + b"]",
        b"\xef\xbb\xbf" + g,
        b"\xff" + g,
        b"",
        b"   ",
        b"null",
        b"{}",
        g[:30],
    ]
    return by_hand + [orjson.dumps(e) for e in iter_events(3, 60, "2026-10", seed=4)]


ACCOUNT = {k: v for k, v in GOOD.items() if k != "channel"} | {"type": "profile_update"}


def account_variants() -> list[bytes]:
    """Account kinds: each field of each form, at and past its edges, null, absent, misplaced."""
    a = ACCOUNT
    out = [orjson.dumps(a | {"type": kind}) for kind in ("claim", "deactivate", "reactivate", "invite")]
    out += [
        orjson.dumps(a | {"type": "account_provisioned", "employment": e}) for e in ("employee", "other", "x", None)
    ]
    out += [
        orjson.dumps(a | {"type": "account_provisioned"}),
        orjson.dumps(a | {"type": "account_provisioned", "x": 1}),
    ]
    out += [
        orjson.dumps(a | {"type": "invite", "guest_home_company_id": g})
        for g in ("c-1", None, "", "a" * 64, "a" * 65, "a b", 5)
    ]
    for field, values in {
        "employment": ("contractor", "volunteer", "Employee", None, 1),
        "away_from_desk_pct": (0, 7, 50, 99, 100, 101, -1, 5.0, True, "5", None, 2**63),
        "hourly_paid": (True, False, None, 0, "true"),
        "has_email": (True, False, None, 1),
        "role_category": ("medical", "backstage", "nurse", None),
    }.items():
        out += [orjson.dumps(a | {field: v}) for v in values]
    out += [
        orjson.dumps(
            a | {"employment": "employee", "has_email": True, "away_from_desk_pct": 80, "role_category": None}
        ),
        orjson.dumps(a | {"type": "claim", "employment": "employee"}),  # a field of another kind: an extra
        orjson.dumps(a | {"type": "invite", "channel": "web"}),
        orjson.dumps(a | {"type": "visit", "channel": "web", "hourly_paid": True}),
        orjson.dumps(a | {"type": "deactivate", "user_id": None}),
        orjson.dumps({k: v for k, v in a.items() if k != "user_id"} | {"type": "claim"}),
        orjson.dumps(a | {"away_from_desk_pct": 5}).replace(b":5", b":-0"),
        orjson.dumps(a | {"away_from_desk_pct": 5}).replace(b":5", b":05"),
        orjson.dumps(a | {"away_from_desk_pct": 5}).replace(b":5", b":5e0"),
        orjson.dumps(a | {"hourly_paid": True})[:-1] + b',"hourly_paid":false}',
    ]
    return out


def test_the_lane_accepts_a_subset_of_what_python_accepts_with_equal_rows(tmp_path):
    lines = variants() + account_variants()
    taken = check_subset(tmp_path, lines)
    assert taken > 100  # the workload's activity events go through the lane


def test_the_lane_takes_plain_account_events_with_their_attrs(tmp_path):
    lines = [
        orjson.dumps(ACCOUNT | {"type": "account_provisioned", "employment": "contractor"}),
        orjson.dumps(ACCOUNT | {"hourly_paid": False, "employment": "other", "away_from_desk_pct": 100}),
        orjson.dumps(ACCOUNT | {"employment": None}),  # null reads as absent in DuckDB: Python's
        orjson.dumps(ACCOUNT | {"type": "invite", "guest_home_company_id": "other-co"}),
        orjson.dumps(ACCOUNT | {"type": "claim", "source": "sso"}),
    ]
    rows = lane(tmp_path, lines)
    assert [r[5] if r else "python" for r in rows] == [
        '{"employment":"contractor"}',
        '{"away_from_desk_pct":100,"employment":"other","hourly_paid":false}',
        "python",
        '{"guest_home_company_id":"other-co"}',
        None,
    ]
    assert check_subset(tmp_path, lines) == 4


def test_the_lane_agrees_with_python_on_mutated_messages(tmp_path):
    stream = iter(Mutator(list(iter_events(3, 40, "2026-10", seed=5)), seed=11))
    lines = [m for m in (next(stream) for _ in range(3000)) if b"\n" not in m]
    check_subset(tmp_path, lines)


def test_the_lane_takes_the_common_activity_and_account_lines(tmp_path):
    lines = [orjson.dumps(e) for e in iter_events(3, 60, "2026-10", seed=4)]
    common = ("visit", "login", "chat_use", "account_provisioned", "invite", "claim", "profile_update")
    fast = [e for e in iter_events(3, 60, "2026-10", seed=4) if e["type"] in common]
    taken = check_subset(tmp_path, lines)
    assert taken >= len(fast)


_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES), st.text(max_size=70), st.integers(), st.none(), st.booleans(), st.integers(-2, 102)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FIELDS), _values), max_size=3),
    st.sampled_from(
        ["visit", "login", "notification_view", "account_provisioned", "invite", "profile_update", "claim"]
    ),
)
def test_the_lane_never_accepts_what_python_refuses_on_fuzzed_fields(tmp_path_factory, changes, kind):
    ev = dict(GOOD if kind in ("visit", "login", "notification_view") else ACCOUNT, type=kind)
    for name, value in changes:
        ev[name] = value
    try:
        line = orjson.dumps(ev)
    except TypeError:
        return
    check_subset(tmp_path_factory.mktemp("fuzz"), [line])


# The whole reader against the sequential Python reading it replaced -----------------------------


def sequential(path, lines: list[bytes]) -> tuple:
    """What the reader gave before DuckDB read the lines: each line through `_line_rows` in order,
    the first row of a (company_id, event_id) kept, later ones counted as duplicates or conflicts."""
    out = LoadedEvents(None, "v", "ndjson")
    first: dict[tuple, tuple] = {}
    rows, conflicts, duplicates, nonblank = [], [], 0, 0
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        nonblank += 1
        for _, row in _line_rows(out, str(path), n, text):
            key = (row[3], row[0])
            if key not in first:
                first[key] = row[1:]
                rows.append(row)
            elif first[key] == row[1:]:
                duplicates += 1
            else:
                conflicts.append((row[3], row[0], n))
    return sorted(rows, key=repr), duplicates, conflicts, [str(i) for i in out.invalid], nonblank


def _line_pool() -> list[bytes]:
    base = [GOOD | {"event_id": f"e-{i}", "user_id": f"u-{i % 3}"} for i in range(4)]
    pool = []
    for ev in base:
        pool.append(orjson.dumps(ev))  # the SQL lane
        pool.append(orjson.dumps(ev).replace(b":", b": "))  # the same event through Python
        pool.append(orjson.dumps(ev | {"occurred_at": "2026-10-05T08:00:00Z"}))  # a conflict, SQL lane
        pool.append(orjson.dumps(ev | {"channel": "mobile"}).replace(b",", b" ,"))  # a conflict, Python
        pool.append(orjson.dumps(ev | {"company_id": "other"}))  # another tenant's event, same id
    pool.append(orjson.dumps([base[0], base[1] | {"event_id": "e-9"}]))  # a pack
    pool.append(orjson.dumps(GOOD | {"type": "account_provisioned", "event_id": "a-1"}) + b"  ")
    pool += [b"", b"  ", b"{not json", b"[]", orjson.dumps(GOOD | {"occurred_at": "1999-01-01T00:00:00Z"})]
    return pool


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(_line_pool()) - 1), min_size=1, max_size=25))
def test_the_reader_equals_the_sequential_python_reading(tmp_path_factory, picks):
    pool = _line_pool()
    lines = [pool[i] for i in picks]
    path = tmp_path_factory.mktemp("reader") / "in.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    con = duckdb.connect()
    from replay.events_source import load_ndjson

    got = load_ndjson(con, [path])
    rows = sorted(con.execute(f"SELECT {', '.join(COLUMNS)} FROM {got.view}").fetchall(), key=repr)
    conflicts = [(c.company_id, c.event_id, c.line) for c in got.conflicts]
    assert (rows, got.duplicates, conflicts, [str(i) for i in got.invalid], got.lines) == sequential(path, lines)
    assert got.rows == len(rows)
