"""The price book rule, in every command that prices: --prices beats SEATLEDGER_PRICES, which
beats the shipped example book (projections/config/prices.example.toml).

The batch commands run end to end on the conftest events. dispute, verify and worker need an
archive, a database or Kafka: there the test stands in for the function the command calls and
checks the price book (or its path) that the command hands it.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from projections.calendar import Month
from projections.prices import DEFAULT_PRICES, PriceBook
from seatledger.options import price_book_path

EXAMPLE = DEFAULT_PRICES.read_text()
OCT = Month(2026, 10)


@pytest.fixture(autouse=True)
def no_prices_in_env(monkeypatch):
    monkeypatch.delenv("SEATLEDGER_PRICES", raising=False)


@pytest.fixture
def tenfold(tmp_path) -> Path:
    """A real price book with every example price times ten (advanced standard: USD 60.00)."""
    path = tmp_path / "tenfold.toml"
    path.write_text(
        EXAMPLE.replace('"8.00"', '"80.00"').replace('"6.00"', '"60.00"').replace('"4.00"', '"40.00"')
        .replace('"3.00"', '"30.00"').replace('"2.00"', '"20.00"')
    )  # fmt: skip
    assert PriceBook.load(path).unit_price("advanced", "standard", OCT) == Decimal("60.00")
    return path


@pytest.fixture
def premium_only(tmp_path) -> Path:
    """A price book without the advanced plan: pricing an advanced company fails, naming the book."""
    path = tmp_path / "premium-only.toml"
    path.write_text(
        'currency = "USD"\n'
        '[[price]]\nplan = "premium"\ntier = "standard"\neffective_from = "2020-01-01"\nusd = "4.00"\n'
        '[[price]]\nplan = "premium"\ntier = "frontline"\neffective_from = "2020-01-01"\nusd = "2.00"\n'
    )
    return path


def run(cli, monkeypatch, args, env: Path | None = None, flag: Path | None = None):
    if env is not None:
        monkeypatch.setenv("SEATLEDGER_PRICES", str(env))
    r = cli(*args, *(["--prices", flag] if flag is not None else []))
    assert r.exit_code == 0, r.stderr
    return r.stdout


# The four ways to choose, and which book wins: (env, flag) -> "example" or "tenfold".
CHOICES = [
    pytest.param(None, None, "example", id="neither: the example book"),
    pytest.param("tenfold", None, "tenfold", id="env"),
    pytest.param(None, "tenfold", "tenfold", id="flag"),
    pytest.param("tenfold", "example", "example", id="flag beats env"),
]


def books(tenfold: Path, env: str | None, flag: str | None) -> tuple[Path | None, Path | None]:
    by_name = {"tenfold": tenfold, "example": DEFAULT_PRICES, None: None}
    return by_name[env], by_name[flag]


def test_price_book_path_flag_then_env_then_example(monkeypatch, tenfold, tmp_path):
    assert price_book_path(None) == DEFAULT_PRICES
    monkeypatch.setenv("SEATLEDGER_PRICES", str(tenfold))
    assert price_book_path(None) == tenfold
    assert price_book_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"


@pytest.mark.parametrize(("env", "flag", "wins"), CHOICES)
def test_replay(cli, events, monkeypatch, tenfold, env, flag, wins):
    out = run(cli, monkeypatch, ["replay", "--events", events, "--month", "2026-10"], *books(tenfold, env, flag))
    ann = next(orjson.loads(line) for line in out.splitlines() if orjson.loads(line)["user_id"] == "ann")
    assert ann["unit_price_usd"] == {"example": "6.00", "tenfold": "60.00"}[wins]


@pytest.mark.parametrize(("env", "flag", "wins"), CHOICES)
def test_invoice(cli, events, monkeypatch, tenfold, env, flag, wins):
    args = ["invoice", "--events", events, "--month", "2026-10", "--format", "json"]
    invoices = {i["company_id"]: i for i in json.loads(run(cli, monkeypatch, args, *books(tenfold, env, flag)))}
    assert invoices["prem"]["total_usd"] == {"example": "4.00", "tenfold": "40.00"}[wins]


@pytest.mark.parametrize(("env", "flag", "wins"), CHOICES)
def test_export(cli, events, monkeypatch, tenfold, env, flag, wins):
    args = ["export", "--events", events, "--month", "2026-10", "--company", "acme"]
    rows = list(csv.DictReader(io.StringIO(run(cli, monkeypatch, args, *books(tenfold, env, flag)))))
    assert (
        next(r for r in rows if r["user_id"] == "ann")["unit_price_usd"]
        == {"example": "6.00", "tenfold": "60.00"}[wins]
    )


def test_reconcile(cli, events, monkeypatch, tenfold, premium_only):
    """reconcile prints no prices but prices every account: a book without the company's plan
    fails, and the error names the book that was used."""
    args = ["reconcile", "--events", events, "--month", "2026-10", "--company", "acme"]
    assert run(cli, monkeypatch, args).startswith("user_id")
    monkeypatch.setenv("SEATLEDGER_PRICES", str(premium_only))
    r = cli(*args)
    assert r.exit_code == 2 and "no price for plan 'advanced'" in r.stderr and str(premium_only) in r.stderr
    assert cli(*args, "--prices", tenfold).exit_code == 0  # the flag beats the environment
    monkeypatch.setenv("SEATLEDGER_PRICES", str(tenfold))
    r = cli(*args, "--prices", premium_only)
    assert r.exit_code == 2 and str(premium_only) in r.stderr


def test_mau_decides_with_the_environment_book(cli, events, monkeypatch, premium_only):
    """mau has no --prices, but it decides the month like the others, with the same book."""
    args = ["mau", "--events", events, "--month", "2026-10", "--company", "acme"]
    assert run(cli, monkeypatch, args).startswith("MAU acme 2026-10")
    monkeypatch.setenv("SEATLEDGER_PRICES", str(premium_only))
    r = cli(*args)
    assert r.exit_code == 2 and str(premium_only) in r.stderr


class Handed:
    """Stands in for replay.dispute.build_report / replay.verify.verify_month: keeps the price
    book the command hands over, then stops the command (exit 2) before it needs an archive."""

    def __init__(self):
        self.prices: PriceBook | None = None

    def __call__(self, *args, prices, **kwargs):
        from replay.verify import VerifyError

        self.prices = prices
        raise VerifyError("stopped by the test")

    def usd(self) -> str:
        assert self.prices is not None
        return str(self.prices.unit_price("advanced", "standard", OCT))


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["dispute", "--company", "acme", "--month", "2026-10"], "replay.dispute.build_report"),
        (["verify", "--month", "2026-10"], "replay.verify.verify_month"),
    ],
    ids=["dispute", "verify"],
)
@pytest.mark.parametrize(("env", "flag", "wins"), CHOICES)
def test_dispute_and_verify(cli, monkeypatch, tenfold, tmp_path, command, target, env, flag, wins):
    handed = Handed()
    monkeypatch.setattr(target, handed)
    env_book, flag_book = books(tenfold, env, flag)
    if env_book is not None:
        monkeypatch.setenv("SEATLEDGER_PRICES", str(env_book))
    args = [*command, "--archive", tmp_path, "--db", tmp_path / "db.duckdb", "--no-progress"]
    r = cli(*args, *(["--prices", flag_book] if flag_book is not None else []))
    assert r.exit_code == 2 and "stopped by the test" in r.stderr
    assert handed.usd() == {"example": "6.00", "tenfold": "60.00"}[wins]


@pytest.mark.parametrize(("env", "flag", "wins"), CHOICES)
def test_worker(cli, monkeypatch, tenfold, env, flag, wins):
    """The worker loads `settings.prices` (streams): the command puts the chosen book there."""
    seen = []
    monkeypatch.setattr("streams.worker.run_worker", lambda settings, loglevel: seen.append(settings))
    env_book, flag_book = books(tenfold, env, flag)
    if env_book is not None:
        monkeypatch.setenv("SEATLEDGER_PRICES", str(env_book))
    r = cli("worker", *(["--prices", flag_book] if flag_book is not None else []))
    assert r.exit_code == 0, r.stderr
    assert seen[0].prices == {"example": DEFAULT_PRICES, "tenfold": tenfold}[wins]
