"""The price book is validated as a whole: each defect refused with a message naming the row (the
commands turn it into exit 2: tests/unit/seatledger/test_hostile_cli.py)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from projections.calendar import Month
from projections.prices import DEFAULT_PRICES, PriceBook, PriceBookError

EXAMPLE = DEFAULT_PRICES.read_text()
ROW = '[[price]]\nplan = "{plan}"\ntier = "{tier}"\neffective_from = {day}\nusd = {usd}\n'


def book(tmp_path: Path, *rows: str, head: str = 'currency = "USD"\n') -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(head + "".join(rows))
    return path


def full(day: str = '"2020-01-01"', usd: str = '"4.00"') -> list[str]:
    """A row for every plan and tier."""
    return [
        ROW.format(plan=p, tier=t, day=day, usd=usd)
        for p in ("premium", "advanced", "enterprise")
        for t in ("standard", "frontline")
    ]


def refused(tmp_path: Path, *rows: str, head: str = 'currency = "USD"\n') -> str:
    path = book(tmp_path, *rows, head=head)
    with pytest.raises(PriceBookError) as exc:
        PriceBook.load(path)
    assert str(path) in str(exc.value)
    return str(exc.value).removeprefix(f"{path}: ")


def test_the_example_book_and_a_complete_book_load():
    assert PriceBook.load(DEFAULT_PRICES).unit_price("advanced", "standard", Month(2026, 10)) == Decimal("6.00")


def test_a_complete_book_loads(tmp_path):
    path = book(tmp_path, *full(usd='"0"'), ROW.format(plan="premium", tier="standard", day="2026-11-01", usd=7))
    prices = PriceBook.load(path)
    assert prices.unit_price("premium", "standard", Month(2026, 11)) == Decimal("7.00")
    assert prices.unit_price("enterprise", "frontline", Month(2026, 11)) == Decimal("0.00")


@pytest.mark.parametrize(
    ("usd", "reason"),
    [
        ('"-8.00"', "usd -8.00 is negative"),
        ('"NaN"', "usd 'NaN' is not a plain decimal amount such as \"4.00\""),
        ('"sNaN"', "usd 'sNaN' is not a plain decimal amount such as \"4.00\""),
        ('"Infinity"', "usd 'Infinity' is not a plain decimal amount such as \"4.00\""),
        ('"1e3"', "usd '1e3' is not a plain decimal amount such as \"4.00\""),
        ('"4,00"', "usd '4,00' is not a plain decimal amount such as \"4.00\""),
        ('"4.005"', "usd 4.005 has more than 2 decimals"),
        ('"10000000000.00"', "usd 10000000000.00 is not below 10,000,000,000 (the ledger's DECIMAL(12, 2))"),
        ("4.0", 'write amounts as strings ("4.00"), not floats'),
        ("true", 'usd must be a string such as "4.00", got bool'),
        ("[4]", 'usd must be a string such as "4.00", got list'),
    ],
)
def test_each_bad_amount_is_refused_naming_the_row(tmp_path, usd, reason):
    rows = full()
    rows[2] = ROW.format(plan="advanced", tier="standard", day='"2020-01-01"', usd=usd)
    assert refused(tmp_path, *rows) == f"price #3: {reason}"


def test_the_largest_amount_the_ledger_holds_is_accepted(tmp_path):
    prices = PriceBook.load(book(tmp_path, *full(usd='"9999999999.99"')))
    assert prices.unit_price("premium", "standard", Month(2026, 10)) == Decimal("9999999999.99")


def test_a_row_that_is_not_a_table_is_refused(tmp_path):
    assert refused(tmp_path, head='currency = "USD"\nprice = ["premium"]\n') == (
        "price #1 must be a table with plan, tier, effective_from, usd, got str"
    )
    assert refused(tmp_path, head='currency = "USD"\nprice = "premium"\n') == (
        "'price' must be an array of tables ([[price]] rows)"
    )


def test_missing_unknown_keys_plans_tiers_and_dates_are_refused(tmp_path):
    base = full()
    assert refused(tmp_path, '[[price]]\nplan = "premium"\ntier = "standard"\nusd = "4"\n', *base) == (
        "price #1 lacks effective_from"
    )
    assert refused(
        tmp_path, *base, ROW.format(plan="premium", tier="standard", day="2021-01-01", usd='"4"') + "prise = 1\n"
    ) == ("price #7 has unknown key(s) prise")
    assert refused(tmp_path, *base, ROW.format(plan="gold", tier="standard", day="2021-01-01", usd='"4"')) == (
        "price #7: unknown plan 'gold'; plans are premium, advanced, enterprise"
    )
    assert refused(tmp_path, *base, ROW.format(plan="premium", tier="vip", day="2021-01-01", usd='"4"')) == (
        "price #7: unknown tier 'vip'; tiers are standard, frontline"
    )
    assert refused(tmp_path, *base, ROW.format(plan="premium", tier="standard", day='"2021-13-01"', usd='"4"')) == (
        "price #7: effective_from '2021-13-01' is not a date YYYY-MM-DD"
    )


def test_two_prices_for_one_plan_tier_and_date_are_refused(tmp_path):
    dup = ROW.format(plan="premium", tier="frontline", day='"2020-01-01"', usd='"3.00"')
    assert refused(tmp_path, *full(), dup) == "two prices for plan 'premium', tier 'frontline' from 2020-01-01"


def test_every_plan_and_tier_is_priced_from_the_earliest_date(tmp_path):
    rows = full(day='"2021-01-01"')
    rows[5] = ROW.format(plan="enterprise", tier="frontline", day='"2022-01-01"', usd='"4"')
    assert refused(tmp_path, *rows) == (
        "no price for plan 'enterprise', tier 'frontline' from 2021-01-01, the book's earliest date (its first "
        "price is from 2022-01-01): every plan and tier needs a price from that date on"
    )
    assert refused(tmp_path, *rows[:4]).startswith("no price for plan 'enterprise', tier 'standard' from 2021-01-01")


def test_not_toml_and_not_usd_are_refused(tmp_path):
    assert "cannot read price book" in refused(tmp_path, "[[price]\n")
    assert refused(tmp_path, *full(), head='currency = "EUR"\n') == "invoices are in USD, the price book says 'EUR'"


def test_a_minus_zero_price_is_zero(tmp_path):
    prices = PriceBook.load(book(tmp_path, *full(usd='"-0.00"')))
    assert str(prices.unit_price("premium", "standard", Month(2026, 10))) == "0.00"
