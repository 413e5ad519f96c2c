"""`seatledger sink`, `seatledger invoice-annotate` and `seatledger demo`.

Thin: flags override SEATLEDGER_* settings; the work is in streams/sink_consumer.py,
ledger/ and devtools/demo.py (see docs/duckdb.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import typer

from streams.settings import load_settings

BOOTSTRAP = typer.Option(None, "--bootstrap", help="host:port (default: SEATLEDGER_BOOTSTRAP or 127.0.0.1:9092)")
DB = typer.Option(None, "--db", help="DuckDB file (default: SEATLEDGER_DB or var/seatledger.duckdb)")


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def register(app: typer.Typer) -> None:
    @app.command("sink")
    def sink_command(
        db: Path | None = DB,
        bootstrap: str | None = BOOTSTRAP,
        metrics_port: int | None = typer.Option(
            None, "--metrics-port", help="Prometheus port (default 9465; 0: any free port; -1: none)"
        ),
        loglevel: str = typer.Option("INFO", "--loglevel"),
    ) -> None:
        """Store the snapshots topic in DuckDB until SIGTERM (analysts may read the file meanwhile)."""
        from streams.sink_consumer import run_sink

        _logging(loglevel)
        settings = load_settings(db=db, bootstrap=bootstrap, sink_metrics_port=metrics_port)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await run_sink(settings, stop)

        try:
            asyncio.run(main())
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None

    @app.command("invoice-annotate")
    def invoice_annotate(
        company: str = typer.Option(..., "--company", help="company_id"),
        month: str = typer.Option(..., "--month", help="YYYY-MM of the issued invoice"),
        po: str = typer.Option(..., "--po", help="the PO number to add"),
        by: str | None = typer.Option(None, "--by", help="who added it (recorded)"),
        db: Path | None = DB,
    ) -> None:
        """R11's one exception: record a PO number on an already issued invoice (no amount changes)."""
        from ledger.connection import DatabaseBusy
        from ledger.invoicing import InvoiceNotIssued, annotate_invoice
        from projections.calendar import utc_iso

        settings = load_settings(db=db)
        if not Path(settings.db).exists():
            typer.echo(f"error: no database at {settings.db}", err=True)
            raise typer.Exit(2)
        try:
            at = annotate_invoice(settings.db, company, month, po, annotated_by=by)
        except InvoiceNotIssued as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except DatabaseBusy as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None
        typer.echo(f"invoice {company} {month}: PO number {po} recorded at {utc_iso(at)}")

    @app.command("demo")
    def demo(
        companies: int = typer.Option(20, "--companies", min=1),
        accounts: int = typer.Option(3000, "--accounts", min=1),
        month: str | None = typer.Option(None, "--month", help="YYYY-MM (default: the previous calendar month)"),
        seed: int = typer.Option(7, "--seed"),
        pack: int = typer.Option(200, "--pack", min=1, help="events per Kafka message"),
        bootstrap: str | None = BOOTSTRAP,
        data_dir: Path | None = typer.Option(None, "--data-dir", help="where logs, worker state and the DB go (var/)"),
        db: Path | None = DB,
        timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait for the month to be complete"),
        stop_broker: bool = typer.Option(False, "--stop-broker", help="also stop the local broker at the end"),
        fresh: bool = typer.Option(
            True, "--fresh/--reuse", help="new topics, worker state and DB for this run (default) or reuse them"
        ),
    ) -> None:
        """Everything at once on this machine: broker, topics, worker, sink, a month of events, the
        close, and the invoices read back from DuckDB."""
        from devtools.demo import DemoError, DemoOptions, run_demo

        settings = load_settings(bootstrap=bootstrap, data_dir=data_dir, db=db)
        opts = DemoOptions(
            companies=companies, accounts=accounts, month=month, seed=seed, pack=pack, timeout=timeout,
            stop_broker=stop_broker, fresh=fresh,
        )  # fmt: skip
        try:
            run_demo(settings, opts)
        except DemoError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
