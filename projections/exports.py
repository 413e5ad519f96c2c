"""The CSV files handed to finance, one writer each, shared by the CLI and the console.

R13's billed users (`seatledger export`, the console's download) and the helpers every CSV output
goes through: `safe_cell` keeps a spreadsheet from running a cell as a formula (OWASP CSV
injection), `csv_text` writes every cell through it. Pure: strings in, text out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BILLED_USERS_HEADER = ("user_id", "tier", "rule", "reason", "unit_price_usd", "charged")


def safe_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    s = "" if value is None else str(value)
    return "'" + s if s.startswith(FORMULA_PREFIXES) else s


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with every cell through `safe_cell` (the csv module quotes separators and newlines)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([safe_cell(v) for v in r])
    return buf.getvalue()


def plain(v: Any) -> str:
    """A CSV value: booleans as true/false, None as empty."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def billed_users_csv(decisions: Iterable) -> str:
    """R13: the billed users, one row each, safe to open in a spreadsheet (decisions in user order)."""
    rows = (
        [d.user_id, d.tier, d.rule, d.reason, str(d.unit_price_usd), plain(d.charged)] for d in decisions if d.billable
    )
    return csv_text(BILLED_USERS_HEADER, rows)
