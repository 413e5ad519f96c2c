"""A company's evidence texts written at once: the close's evidence column.

The close decides a company's accounts first (streams.stored_decide gives each account's
evidence items), then writes every account's evidence text in one loop here instead of
`evidence_of` per account: the local times come from `projections.calendar.local_isos` (the same
per-(zone, UTC day) offsets from the shipped tzdata), and an event id is written between quotes
as it is when no id of the company needs JSON escaping (one check over all of them; orjson
escapes only quotes, backslashes and control characters, and `str.isprintable` is false for
every control character, lone surrogate and DEL). A company with an id that does, or with few
accounts, takes `evidence_of` per account. tests/unit/streams/test_evidence_column.py holds both
paths to the same text over hostile ids, types and instants.

Measured against Arrow compute (pyarrow 26 on this machine): its string kernels
(`binary_join_element_wise`, `replace_substring`) cost 50-130 ns per element, about what a
Python f-string costs, so an Arrow version of this column (3.1-4.6 us per account, the lists
converted in and out) was no faster than `evidence_of` per account (2.8-5.0 us) and slower than
this loop (2.1-3.5 us); see docs/performance.md, "Seventh round: the worker's close".
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson

from projections.calendar import local_isos
from projections.decide import evidence_json
from streams.stored_decide import evidence_of

COLUMN_MIN = 16  # fewer accounts: per account (the column's checks cost a few microseconds per call)


def evidence_column(accounts: list[list], tz: ZoneInfo) -> list[str]:
    """`evidence_of(items, tz)` of each account's present (ts, event_id, type) items, in order."""
    if len(accounts) < COLUMN_MIN:
        return [evidence_of(items, tz) for items in accounts]
    ids = "".join([it[1] for items in accounts for it in items if it is not None])
    if not ids.isprintable() or '"' in ids or "\\" in ids:  # an id orjson would escape: per account
        return [evidence_of(items, tz) for items in accounts]
    times = local_isos([it[0] for items in accounts for it in items if it is not None], tz)
    kinds: dict[str, str] = {}  # an event type as JSON (types are few; any may need escaping)
    out: list[str] = []
    append = out.append
    i = 0  # the next account's first time in `times`
    for items in accounts:
        n = len(items)
        if n == 2:
            a, b = items
            if a[1] != b[1]:
                ka = kinds.get(a[2]) or kinds.setdefault(a[2], _json(a[2]))
                kb = kinds.get(b[2]) or kinds.setdefault(b[2], _json(b[2]))
                append(
                    f'[{{"event_id":"{a[1]}","type":{ka},"occurred_at":"{times[i]}"}},'
                    f'{{"event_id":"{b[1]}","type":{kb},"occurred_at":"{times[i + 1]}"}}]'
                )
                i += 2
                continue
        elif n == 1:
            a = items[0]
            ka = kinds.get(a[2]) or kinds.setdefault(a[2], _json(a[2]))
            append(f'[{{"event_id":"{a[1]}","type":{ka},"occurred_at":"{times[i]}"}}]')
            i += 1
            continue
        append(evidence_json(items, tz))  # none, repeated events or more than two: the general loop
        i += sum(it is not None for it in items)
    return out


def _json(text: str) -> str:
    return orjson.dumps(text).decode()
