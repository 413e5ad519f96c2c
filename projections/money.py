"""Money: USD amounts are Decimal, kept in whole cents, rounded one way everywhere.

Every amount the system bills or compares goes through here, so a price read from a file, a
message or a DuckDB row ends up with the same two decimals and the same rounding rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
# The decimal module's default context rounding, which every amount was rounded with before this
# module existed (implicitly); written out so a changed context cannot change a bill.
ROUNDING = ROUND_HALF_EVEN
ZERO = Decimal("0.00")


def cents(amount: Decimal | str | int) -> Decimal:
    """`amount` (a Decimal, or its text as JSON and TOML carry it) rounded to whole cents."""
    return Decimal(str(amount)).quantize(CENT, rounding=ROUNDING)


def total(amounts: Iterable[Decimal]) -> Decimal:
    """The exact sum, "0.00" when there is nothing to add (sums of cent amounts need no rounding)."""
    return sum(amounts, ZERO)
