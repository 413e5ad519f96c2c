"""Fixtures of the CLI tests: the command line as a function, and a small events file."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

from seatledger.cli import app
from tests.support.given import World


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2 mixes stderr into stdout by default
    except TypeError:  # click >= 8.2 always separates stderr
        return CliRunner()


@pytest.fixture
def cli() -> Callable[..., Result]:
    """`cli("replay", "--events", path, ...)`: run `seatledger` in-process; stdout and stderr apart."""
    runner = _runner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def events(tmp_path):
    w = World()
    w.company("acme", tz="Europe/Amsterdam", plan="advanced").billing(
        "acme", "2026-10-01", payment_method="card", card_brand="amex", billing_country="BR"
    ).billing(
        "acme", "2026-09-02", po_number='=HYPERLINK("x")'
    )  # a rejected update applies no field, so the PO comes apart
    w.member("acme", "ann").member("acme", "bob").profile(
        "acme", "bob", "2026-09-01", hourly_paid=True, role_category="medical"
    )
    w.member("acme", "-minus").member("acme", "-2.3")  # ids may start with "-": a spreadsheet would compute
    w.invite("acme", "gus", "2026-09-02", guest_home_company_id="globex")
    w.provision("acme", "late", "2026-10-02").do("visit", "acme", "late", "2026-10-20")
    w.member("acme", "note").do("notification_view", "acme", "note", "2026-10-20")
    w.company("prem").member("prem", "p1").do("login", "prem", "p1", "2026-10-03").member("prem", "p2")
    w.company("tri").trial("tri", "2026-09-19").member("tri", "t1").do("login", "tri", "t1", "2026-10-03")
    f = tmp_path / "events.ndjson"
    lines = [json.dumps(e) for e in w.raw]
    lines.insert(3, "{not json")
    lines.insert(
        5,
        json.dumps(
            {
                "event_id": "bad",
                "type": "login",
                "occurred_at": "2026-10-02T08:00:00",
                "company_id": "acme",
                "user_id": "x",
            }
        ),
    )
    f.write_text("\n".join(lines) + "\n")
    return f
