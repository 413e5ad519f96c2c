"""R10: the price book, effective-dated USD prices by plan and tier, read as Decimal only.

A price book file is validated as a whole before anything is billed with it, and refused with a
message naming the row (exit 2 in every command), never billed from in part:

- each `[[price]]` is a table with exactly `plan`, `tier`, `effective_from` and `usd`;
- the plan is one of the contract's plans, the tier one of R7's tiers;
- `usd` is a string (or an integer) holding a finite, non-negative amount with at most 2 decimals,
  below 10,000,000,000 (the ledger stores amounts as DECIMAL(12, 2));
- no two rows share (plan, tier, effective_from);
- every plan and tier has a price from the earliest `effective_from` in the book on, so that no
  month the book claims to cover lacks a price.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Protocol, get_args

from projections.calendar import Month
from projections.money import cents
from schemas.events import Plan

DEFAULT_PRICES = Path(__file__).parent / "config" / "prices.example.toml"
PLANS: Final = tuple(str(p) for p in get_args(Plan))
TIERS: Final = ("standard", "frontline")  # R7: what projections.rules.tier gives
MAX_USD: Final = Decimal("1e10")  # exclusive: DECIMAL(12, 2) in the ledger holds at most 9,999,999,999.99
ROW_KEYS: Final = ("plan", "tier", "effective_from", "usd")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # no exponent, NaN, Infinity, spaces or underscores


class UnitPrices(Protocol):
    """What decide() reads prices from: a PriceBook, or a memo in front of one."""

    def unit_price(self, plan: str, tier: str, month: Month) -> Decimal: ...


class PriceBookError(ValueError):
    """The price book file is unusable or has no price for a plan, tier and month."""


@dataclass(frozen=True, slots=True)
class Price:
    plan: str
    tier: str
    effective_from: date
    usd: Decimal


def amount_problem(usd: Decimal) -> str | None:
    """Why `usd` cannot be a price (finite, >= 0, whole cents, fits the ledger), or None."""
    if not usd.is_finite():
        return f"{usd} is not a finite amount"
    if usd < 0:
        return f"{usd} is negative"
    exponent = usd.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return f"{usd} has more than 2 decimals"
    if usd >= MAX_USD:
        return f"{usd} is not below 10,000,000,000 (the ledger's DECIMAL(12, 2))"
    return None


class PriceBook:
    def __init__(self, prices: list[Price], source: str = "<memory>"):
        self.source = source
        self._prices = sorted(prices, key=lambda p: (p.plan, p.tier, p.effective_from))
        seen: set[tuple[str, str, date]] = set()
        for p in self._prices:
            problem = amount_problem(p.usd)
            if problem is not None:
                raise PriceBookError(f"{source}: price {p.plan}/{p.tier} from {p.effective_from}: usd {problem}")
            key = (p.plan, p.tier, p.effective_from)
            if key in seen:
                raise PriceBookError(
                    f"{source}: two prices for plan {p.plan!r}, tier {p.tier!r} from {p.effective_from}"
                )
            seen.add(key)

    @classmethod
    def load(cls, path: Path | str | None = None) -> PriceBook:
        path = Path(path) if path else DEFAULT_PRICES
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PriceBookError(f"cannot read price book {path}: {exc}") from None
        if data.get("currency", "USD") != "USD":
            raise PriceBookError(f"{path}: invoices are in USD, the price book says {data.get('currency')!r}")
        rows = data.get("price", [])
        if not isinstance(rows, list):
            raise PriceBookError(f"{path}: 'price' must be an array of tables ([[price]] rows)")
        prices = [_row(path, i, row) for i, row in enumerate(rows, 1)]
        if not prices:
            raise PriceBookError(f"{path}: no [[price]] rows")
        book = cls(prices, str(path))
        book._check_coverage()
        return book

    def _check_coverage(self) -> None:
        """Every plan and tier priced from the book's earliest date on."""
        earliest = min(p.effective_from for p in self._prices)
        starts = {(p.plan, p.tier): p.effective_from for p in reversed(self._prices)}  # earliest per pair
        for plan in PLANS:
            for tier in TIERS:
                start = starts.get((plan, tier))
                if start is None or start > earliest:
                    since = f" (its first price is from {start})" if start is not None else ""
                    raise PriceBookError(
                        f"{self.source}: no price for plan {plan!r}, tier {tier!r} from {earliest}, the book's "
                        f"earliest date{since}: every plan and tier needs a price from that date on"
                    )

    def unit_price(self, plan: str, tier: str, month: Month) -> Decimal:
        found = None
        for p in self._prices:
            if p.plan == plan and p.tier == tier and p.effective_from <= month.first_day:
                found = p
        if found is None:
            raise PriceBookError(f"no price for plan {plan!r}, tier {tier!r} in {month} in {self.source}")
        return cents(found.usd)


def _row(path: Path, i: int, row: Any) -> Price:
    """The i-th [[price]] table as a Price, or a PriceBookError naming it and what is wrong."""
    where = f"{path}: price #{i}"
    if not isinstance(row, dict):
        raise PriceBookError(f"{where} must be a table with {', '.join(ROW_KEYS)}, got {type(row).__name__}")
    missing = [k for k in ROW_KEYS if k not in row]
    extra = sorted(k for k in row if k not in ROW_KEYS)
    if missing or extra:
        what = (f"lacks {', '.join(missing)}" if missing else "") + ("; " if missing and extra else "")
        raise PriceBookError(f"{where} {what}{'has unknown key(s) ' + ', '.join(extra) if extra else ''}")
    plan, tier, usd = row["plan"], row["tier"], row["usd"]
    if plan not in PLANS:
        raise PriceBookError(f"{where}: unknown plan {plan!r}; plans are {', '.join(PLANS)}")
    if tier not in TIERS:
        raise PriceBookError(f"{where}: unknown tier {tier!r}; tiers are {', '.join(TIERS)}")
    eff = row["effective_from"]
    try:
        day = eff if type(eff) is date else date.fromisoformat(eff)
    except (TypeError, ValueError):
        raise PriceBookError(f"{where}: effective_from {eff!r} is not a date YYYY-MM-DD") from None
    if isinstance(usd, float):
        raise PriceBookError(f'{where}: write amounts as strings ("4.00"), not floats')
    if type(usd) is not str and type(usd) is not int:
        raise PriceBookError(f'{where}: usd must be a string such as "4.00", got {type(usd).__name__}')
    if isinstance(usd, str) and not _PLAIN_NUMBER.fullmatch(usd):
        raise PriceBookError(f'{where}: usd {usd!r} is not a plain decimal amount such as "4.00"')
    amount = abs(Decimal(usd)) if Decimal(usd) == 0 else Decimal(usd)  # "-0.00" is 0.00
    problem = amount_problem(amount)
    if problem is not None:
        raise PriceBookError(f"{where}: usd {problem}")
    return Price(plan, tier, day, amount)
