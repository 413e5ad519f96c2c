"""`seatledger generate`: write a realistic, deterministic workload as NDJSON (see devtools.workload)."""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import typer

from devtools.workload import DEFAULT_HISTORY_MONTHS, Workload

_TYPE = re.compile(rb'"type":"([a-z_]+)"')


def _write(wl: Workload, fp: BinaryIO, counts: Counter | None) -> int:
    if counts is None:
        return wl.write(fp)
    n = 0
    for block in wl.ndjson_blocks():
        fp.write(block)
        found = _TYPE.findall(block)
        counts.update(found)
        n += len(found)
    return n


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        companies: int = typer.Option(..., "--companies", min=1, help="number of companies (tenants)"),
        accounts: int = typer.Option(
            ..., "--accounts", min=1, help="total accounts, spread skewed over the companies (each gets >= 1)"
        ),
        month: str = typer.Option(..., "--month", help="first generated month, YYYY-MM"),
        months: int = typer.Option(1, "--months", min=1, help="number of generated calendar months"),
        seed: int = typer.Option(0, "--seed", help="random seed: same arguments and seed, same bytes"),
        out: str | None = typer.Option(None, "--out", "-o", help="NDJSON file to write; '-' or none: stdout"),
        history_months: int = typer.Option(
            DEFAULT_HISTORY_MONTHS,
            "--history-months",
            min=0,
            help="months before --month where companies register and most accounts are created",
        ),
        activity: float = typer.Option(
            1.0,
            "--activity",
            min=0.0,
            help="scale of activity events per active account-day (1.0: ~40-60/account/month)",
        ),
        stats: bool = typer.Option(False, "--stats", help="print counts per event type, rate and size to stderr"),
    ) -> None:
        """Write NDJSON events covering every event kind, in arrival order (a few late and duplicate)."""
        if accounts < companies:
            raise typer.BadParameter("--accounts must be >= --companies (every company has at least one account)")
        try:
            wl = Workload(companies, accounts, month, months, seed, history_months, activity)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        counts: Counter = Counter()
        t0 = time.perf_counter()
        if out is None or out == "-":
            sys.stdout.flush()
            n = _write(wl, sys.stdout.buffer, counts if stats else None)
            sys.stdout.buffer.flush()
            size = None
        else:
            path = Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb", buffering=1 << 20) as fp:
                n = _write(wl, fp, counts if stats else None)
            size = path.stat().st_size
        elapsed = time.perf_counter() - t0
        if stats:
            width = max(len(k) for k in counts) if counts else 0
            for kind in sorted(counts):
                typer.echo(f"{kind.decode():<{width}}  {counts[kind]:>12,}", err=True)
            rate = n / elapsed if elapsed > 0 else float("inf")
            extra = f", {size / 1e6:,.1f} MB" if size is not None else ""
            typer.echo(
                f"{'total':<{width}}  {n:>12,} events in {elapsed:.2f}s ({rate:,.0f}/s), "
                f"{n / accounts:.1f} per account{extra}",
                err=True,
            )
