"""R10: the price book, effective-dated USD prices by plan and tier, read as Decimal only."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

from projections.calendar import Month
from projections.money import cents

DEFAULT_PRICES = Path(__file__).parent / "config" / "prices.example.toml"


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


class PriceBook:
    def __init__(self, prices: list[Price], source: str = "<memory>"):
        self.source = source
        self._prices = sorted(prices, key=lambda p: (p.plan, p.tier, p.effective_from))

    @classmethod
    def load(cls, path: Path | str | None = None) -> PriceBook:
        path = Path(path) if path else DEFAULT_PRICES
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PriceBookError(f"cannot read price book {path}: {exc}") from None
        if data.get("currency", "USD") != "USD":
            raise PriceBookError(f"{path}: invoices are in USD, the price book says {data.get('currency')!r}")
        prices = []
        for i, row in enumerate(data.get("price", []), 1):
            try:
                usd = row["usd"]
                if isinstance(usd, float):
                    raise PriceBookError(f'{path}: price #{i}: write amounts as strings ("4.00"), not floats')
                prices.append(
                    Price(row["plan"], row["tier"], date.fromisoformat(str(row["effective_from"])), Decimal(str(usd)))
                )
            except (KeyError, ValueError, InvalidOperation) as exc:
                if isinstance(exc, PriceBookError):
                    raise
                raise PriceBookError(f"{path}: price #{i} is invalid: {exc!r}") from None
        if not prices:
            raise PriceBookError(f"{path}: no [[price]] rows")
        return cls(prices, str(path))

    def unit_price(self, plan: str, tier: str, month: Month) -> Decimal:
        found = None
        for p in self._prices:
            if p.plan == plan and p.tier == tier and p.effective_from <= month.first_day:
                found = p
        if found is None:
            raise PriceBookError(f"no price for plan {plan!r}, tier {tier!r} in {month} in {self.source}")
        return cents(found.usd)
