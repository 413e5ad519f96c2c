"""Money in whole cents, rounded one way: what every price and total goes through."""

from __future__ import annotations

from decimal import Decimal

from projections.money import CENT, ZERO, cents, total


def test_cents_from_text_and_decimal():
    assert cents("4") == Decimal("4.00") and str(cents("4")) == "4.00"
    assert cents(Decimal("12.5")) == Decimal("12.50") and cents(3) == Decimal("3.00")
    assert cents(Decimal("-10.001")) == Decimal("-10.00")
    assert str(CENT) == "0.01"


def test_cents_round_half_to_even_as_the_default_context_did():
    # the rule every site used before money.py existed (Decimal.quantize under the default context)
    for text in ("0.005", "0.015", "0.025", "2.675", "-0.125", "1.2349", "99999999.995"):
        assert cents(text) == Decimal(text).quantize(Decimal("0.01"))
    assert (cents("0.005"), cents("0.015"), cents("0.025")) == (Decimal("0.00"), Decimal("0.02"), Decimal("0.02"))


def test_total_is_exact_and_zero_when_empty():
    assert str(total([])) == "0.00" and total([]) == ZERO
    assert total([Decimal("10.00"), Decimal("-2.50"), Decimal("0.01")]) == Decimal("7.51")
    assert str(total(iter([Decimal("1.10"), Decimal("2.20")]))) == "3.30"
