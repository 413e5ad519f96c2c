"""`seatledger archive`, `seatledger dispute` and `seatledger verify`.

archive: the events topic into the Parquet archive, until SIGTERM (or `--compact`: merge small files
once and exit). dispute: recompute a company-month from the archive, compare it with every billed
version, explain the differences; `--apply` corrects them through the sink. verify: recompute a
month and compare every column of `account_decisions`; exit 1 on drift.

Exit codes: 0 done (verify: clean); 1 verify found drift; 2 unusable input (no archive, no
database, bad month, unknown ruleset); 3 Kafka or the sink failed (dispute --apply).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from streams.settings import load_settings

BOOTSTRAP = typer.Option(None, "--bootstrap", help="host:port (default: SEATLEDGER_BOOTSTRAP)")
ARCHIVE = typer.Option(None, "--archive", help="archive root (default: SEATLEDGER_ARCHIVE_ROOT or DATA_DIR/archive)")
DB = typer.Option(None, "--db", help="DuckDB file the sink writes (default: SEATLEDGER_DB)")
DATA_DIR = typer.Option(None, "--data-dir", help="default: SEATLEDGER_DATA_DIR")
PRICES = typer.Option(
    None,
    "--prices",
    help="price book TOML, the one the worker bills with (default: SEATLEDGER_PRICES, else the example prices)",
)


def _month(text: str):
    from projections.calendar import Month

    try:
        return Month.parse(text)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _prices(path: Path | None):
    from projections.prices import PriceBook, PriceBookError

    try:
        return PriceBook.load(path)
    except PriceBookError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _ruleset(version: str | None) -> str | None:
    from projections.rulesets import UnknownRuleset, get_ruleset

    try:
        return get_ruleset(version).version if version else None
    except UnknownRuleset as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from None


class _Bar:
    """A rich progress bar on stderr, one task per step; silent when disabled."""

    def __init__(self, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not enabled, transient=True,
        )  # fmt: skip
        self.tasks: dict[str, int] = {}

    def __call__(self, step: str, done: int, total: int | None) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)


def register(app: typer.Typer) -> None:
    @app.command("archive")
    def archive_cmd(
        bootstrap: str | None = BOOTSTRAP,
        archive: Path | None = ARCHIVE,
        data_dir: Path | None = DATA_DIR,
        topic: str | None = typer.Option(None, "--topic", help="default: SEATLEDGER_TOPIC_EVENTS"),
        flush_seconds: float = typer.Option(
            2.0, "--flush-seconds", min=0.05, help="make buffered events durable this often"
        ),
        flush_events: int = typer.Option(50_000, "--flush-events", min=1, help="... or when this many are buffered"),
        compact_threshold: int = typer.Option(
            64, "--compact-threshold", min=0, help="compact a directory once it holds this many files (0: never)"
        ),
        compact_now: bool = typer.Option(
            False, "--compact", help="merge the small files of every directory once, then exit"
        ),
    ) -> None:
        """Archive every accepted event of the events topic as Parquet, until SIGTERM.

        Layout: ARCHIVE/month=YYYY-MM/bucket=NN/*.parquet (UTC month of occurred_at, company bucket); rejected events under ARCHIVE/rejected/ with their reason. Restart-safe: resumes exactly where the last durable flush ended (consumer group seatledger-archive).
        """
        settings = load_settings(bootstrap=bootstrap, archive_root=archive, data_dir=data_dir, topic_events=topic)
        if compact_now:
            from replay.archive.compaction import compact

            done = compact(settings.archive_dir)
            for c in done:
                typer.echo(f"compacted {c.dir}: {c.inputs} files -> {c.output} ({c.rows} rows)")
            typer.echo(f"{len(done)} directories compacted in {settings.archive_dir}")
            return
        import asyncio
        import logging

        from streams.archive_consumer import run_archive

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
        typer.echo(f"archiving {settings.topic_events} from {settings.bootstrap} into {settings.archive_dir}", err=True)
        try:
            stats = asyncio.run(
                run_archive(
                    settings,
                    flush_seconds=flush_seconds,
                    flush_events=flush_events,
                    compact_threshold=compact_threshold,
                )
            )
        except Exception as exc:
            typer.echo(f"error: archive failed: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(3) from None
        typer.echo(
            f"stopped: {stats.messages} messages, {stats.events} events archived, {stats.rejected} rejected, "
            f"{stats.skipped} already archived, {stats.flushes} flushes, {stats.compactions} compactions",
            err=True,
        )

    @app.command("dispute")
    def dispute_cmd(
        company: str = typer.Option(..., "--company", help="company_id"),
        month: str = typer.Option(..., "--month", help="YYYY-MM, in the company's time zone"),
        user: str | None = typer.Option(None, "--user", help="only this user_id"),
        fmt: str = typer.Option("md", "--format", help="md or json"),
        archive: Path | None = ARCHIVE,
        db: Path | None = DB,
        data_dir: Path | None = DATA_DIR,
        ruleset: str | None = typer.Option(
            None, "--ruleset", help="rule-set version to recompute with (default: current)"
        ),
        prices: Path | None = PRICES,
        apply: bool = typer.Option(False, "--apply", help="publish the corrections (needs --reference)"),
        reference: str | None = typer.Option(None, "--reference", help="the dispute ticket, e.g. SUP-1234"),
        requested_by: str | None = typer.Option(None, "--requested-by", help="who asked for the correction"),
        bootstrap: str | None = BOOTSTRAP,
        timeout: float = typer.Option(120.0, "--timeout", help="seconds to wait for the sink to record the ticket"),
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="default: on when stderr is a terminal"
        ),
    ) -> None:
        """Recompute a company-month from the archive and explain every difference with what was billed.

        Prints, per account: the billed decision (latest version; every version where they differ), what the rules say now, rule, reason and the events that explain it; for each difference the events that cause it (late arrivals, changed evidence). Same archive and database: byte-identical report.

        With --apply --reference TICKET: publish one amendment per changed account and a dispute record; the sink versions them and books adjustments on the next invoice, issued invoices stay as they are. Applying a ticket twice changes nothing.
        """
        from functools import partial

        from replay.dispute import DisputeError, apply_report, build_report
        from streams.corrections import send_corrections

        if fmt not in ("md", "json"):
            typer.echo("error: --format must be md or json", err=True)
            raise typer.Exit(2)
        if apply and not reference:
            typer.echo("error: --apply needs --reference TICKET", err=True)
            raise typer.Exit(2)
        m = _month(month)
        rs = _ruleset(ruleset)
        settings = load_settings(bootstrap=bootstrap, archive_root=archive, db=db, data_dir=data_dir)
        book = _prices(prices or getattr(settings, "prices", None))
        show = progress if progress is not None else sys.stderr.isatty()
        try:
            with _Bar(show) as bar:
                report = build_report(
                    settings.archive_dir, settings.db, company, m, user_id=user, ruleset=rs, prices=book, progress=bar
                )
        except DisputeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(report.to_markdown() if fmt == "md" else report.to_json_text(), nl=False)
        if not apply:
            return
        out = (lambda s: typer.echo(s, err=True)) if fmt == "json" else typer.echo
        try:
            send = partial(send_corrections, settings)
            result = apply_report(report, send, settings.db, reference, requested_by, timeout=timeout)
        except DisputeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None
        if result.already is not None:
            out(
                f"ticket {reference} was already applied (at {result.already.get('applied_at')}, by "
                f"{result.already.get('requested_by') or 'unknown'}); nothing published"
            )
            return
        if not result.published:
            out(f"ticket {reference}: no differences, nothing to apply")
            return
        out(f"\n## Applied ticket {reference}\n")
        out(f"published {result.published - 1} amendment(s) and the dispute record; the sink stored:")
        for v in result.stored_versions:
            out(
                f"- {v['user_id']}: v{v['version']} (corrects v{v['corrects_version']}): "
                f"{'charged' if v['charged'] else 'not charged'}, {v['rule']} {v['reason']}, USD {v['unit_price_usd']}"
            )
        for a in result.adjustments:
            applied = a.get("applied_to_invoice_month") or "the next invoice"
            out(f"- adjustment {a['user_id']}: USD {a['amount_usd']} on {applied}")
        if not result.adjustments:
            out("- no invoice adjustment (no charged amount changed, or the month was not invoiced yet)")

    @app.command("verify")
    def verify_cmd(
        month: str = typer.Option(..., "--month", help="YYYY-MM"),
        company: str | None = typer.Option(None, "--company", help="only this company_id"),
        archive: Path | None = ARCHIVE,
        db: Path | None = DB,
        data_dir: Path | None = DATA_DIR,
        prices: Path | None = PRICES,
        ruleset: str | None = typer.Option(
            None, "--ruleset", help="for accounts DuckDB lacks (default: the version the company's rows record)"
        ),
        fmt: str = typer.Option("text", "--format", help="text or json"),
        limit: int = typer.Option(50, "--limit", min=1, help="drift lines to print (text)"),
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="default: on when stderr is a terminal"
        ),
    ) -> None:
        """Recompute a month from the archive and compare every column of account_decisions.

        Each stored row is recomputed with the ruleset version it recorded. Reports missing rows, extra rows and differing columns; exit 1 on drift, 0 when clean, 2 on unusable input.
        """
        from replay.verify import VerifyError, verify_month

        if fmt not in ("text", "json"):
            typer.echo("error: --format must be text or json", err=True)
            raise typer.Exit(2)
        m = _month(month)
        rs = _ruleset(ruleset)
        settings = load_settings(archive_root=archive, db=db, data_dir=data_dir)
        book = _prices(prices or getattr(settings, "prices", None))
        show = progress if progress is not None else sys.stderr.isatty()
        try:
            with _Bar(show) as bar:
                result = verify_month(
                    settings.archive_dir, settings.db, m, company_id=company, prices=book, ruleset=rs, progress=bar
                )
        except VerifyError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if fmt == "json":
            import orjson

            typer.echo(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
        else:
            for line in result.lines(limit):
                typer.echo(line)
        if not result.clean:
            raise typer.Exit(1)
