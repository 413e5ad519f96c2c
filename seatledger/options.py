"""The options several commands share, and what their values mean.

A flag overrides its SEATLEDGER_* environment variable (streams.settings), which overrides the
built-in default. The price book follows the same rule everywhere it is read: `price_book_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from projections.calendar import Month
from projections.prices import DEFAULT_PRICES, PriceBook
from projections.rulesets import get_ruleset
from seatledger.errors import expected_errors, fail
from streams.settings import load_settings

BOOTSTRAP = typer.Option(
    None,
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers (default: SEATLEDGER_BOOTSTRAP or 127.0.0.1:9092)",
)
DB = typer.Option(
    None, "--db", metavar="FILE", help="DuckDB file the sink writes (default: SEATLEDGER_DB or var/seatledger.duckdb)"
)
ARCHIVE = typer.Option(
    None, "--archive", metavar="DIR", help="archive root (default: SEATLEDGER_ARCHIVE_ROOT or DATA_DIR/archive)"
)
PRICES = typer.Option(
    None,
    "--prices",
    metavar="FILE",
    help="price book TOML (default: SEATLEDGER_PRICES, else the shipped EXAMPLE prices)",
)
EVENTS = typer.Option(
    ..., "--events", metavar="PATH", help="NDJSON file ('-' for stdin), directory of NDJSON, or Parquet file/archive"
)
TOPIC = typer.Option(None, "--topic", metavar="TOPIC", help="default: SEATLEDGER_TOPIC_EVENTS")
LOGLEVEL = typer.Option("INFO", "--loglevel", metavar="LEVEL")


def data_dir(help: str = "default: SEATLEDGER_DATA_DIR") -> Any:
    return typer.Option(None, "--data-dir", metavar="DIR", help=help)


DATA_DIR = data_dir()


def month(help: str = "YYYY-MM", required: bool = True) -> Any:
    return typer.Option(... if required else None, "--month", metavar="YYYY-MM", help=help)


def company(help: str | None = None, required: bool = False) -> Any:
    return typer.Option(... if required else None, "--company", metavar="COMPANY", help=help)


def ruleset(help: str = "rule-set version (default: current)") -> Any:
    return typer.Option(None, "--ruleset", metavar="VERSION", help=help)


def output_format(default: str, choices: Sequence[str]) -> Any:
    return typer.Option(default, "--format", metavar="|".join(choices), help=_one_of(choices))


def progress(help: str = "default: on when stderr is a terminal") -> Any:
    return typer.Option(None, "--progress/--no-progress", help=help)


def check_format(value: str, choices: Sequence[str]) -> None:
    """Exit 2 unless --format is one of `choices`."""
    if value not in choices:
        raise fail(f"unknown --format {value!r}; use {_one_of(choices)}")


def _one_of(choices: Sequence[str]) -> str:
    return ", ".join(choices[:-1]) + " or " + choices[-1]


def parse_month(text: str) -> Month:
    """The --month value as a Month; exit 2 with the parser's message when it is not YYYY-MM."""
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise fail(str(exc)) from None


def parse_ruleset(version: str | None) -> str | None:
    """A known rule-set version (None: the current one); exit 2 for an unknown one."""
    with expected_errors():
        return get_ruleset(version).version if version else None


def price_book_path(flag: Path | None) -> Path:
    """The price book to bill with: --prices, else SEATLEDGER_PRICES, else the shipped example."""
    return load_settings(prices=flag).prices or DEFAULT_PRICES


def price_book(flag: Path | None) -> PriceBook:
    """The price book of `price_book_path`, loaded; exit 2 when it is unusable."""
    with expected_errors():
        return PriceBook.load(price_book_path(flag))
