"""`seatledger publish PATH|-`: validate an NDJSON file of events and publish it to Kafka.

All or nothing by default: every line is validated first, and when any is rejected nothing is sent
and the command exits 1, listing the rejected lines. With `--skip-invalid` the valid events are
sent, the rejections are still listed, and it exits 0. stdin is spooled to a temporary file so it
can be read twice; nothing holds more than one line's parsed event at a time.

Exit codes: 0 published; 1 lines rejected (nothing sent); 2 usage or unreadable input; 3 Kafka failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import typer

from streams.settings import load_settings

PROGRESS_MIN_LINES = 10_000  # show a progress bar above this many lines even when stderr is no tty
SHOW_REJECTIONS = 20


def count_lines(path: Path) -> int:
    """Lines in a file (a last line without newline counts), read in 1 MiB chunks."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


@contextlib.contextmanager
def readable_input(path: str) -> Iterator[Path]:
    """The input as a file path; `-` spools stdin to a temporary file (deleted afterwards)."""
    if path != "-":
        p = Path(path)
        if not p.is_file():
            typer.echo(f"error: no such file: {path}", err=True)
            raise typer.Exit(2)
        yield p
        return
    with tempfile.NamedTemporaryFile(prefix="seatledger-publish-", suffix=".ndjson", delete=False) as tmp:
        shutil.copyfileobj(click.get_binary_stream("stdin"), tmp, 1 << 20)
    try:
        yield Path(tmp.name)
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def format_rejections(rejected: list[tuple[int, str]], total: int, limit: int = SHOW_REJECTIONS) -> list[str]:
    """Human lines for the rejected input lines, capped at `limit` with a count of the rest."""
    out = [f"  line {line_no}: {reason}" for line_no, reason in rejected[:limit]]
    if total > limit:
        out.append(f"  ... and {total - limit} more")
    return out


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("publish")
    def publish(
        path: str = typer.Argument(..., help="NDJSON file of events, or - for stdin"),
        pack: int = typer.Option(1, "--pack", min=1, help="up to N consecutive events of one company per message"),
        skip_invalid: bool = typer.Option(
            False, "--skip-invalid", help="send the valid events even when some lines are rejected"
        ),
        bootstrap: str | None = typer.Option(None, "--bootstrap", help="host:port (default: SEATLEDGER_BOOTSTRAP)"),
        topic: str | None = typer.Option(None, "--topic", help="default: SEATLEDGER_TOPIC_EVENTS"),
        progress: bool | None = typer.Option(
            None, "--progress/--no-progress", help="default: on for a tty or large input"
        ),
    ) -> None:
        """Validate every event against the contract, then publish them keyed by company_id."""
        from streams.publisher import Publisher, Rejected, check_lines, numbered_lines

        settings = load_settings(bootstrap=bootstrap)
        with readable_input(path) as src:
            total = count_lines(src)
            show = progress if progress is not None else (sys.stderr.isatty() or total > PROGRESS_MIN_LINES)

            if not skip_invalid:
                rejected: list[tuple[int, str]] = []
                n_rejected = 0
                with _progress(show) as bar, open(src, "rb") as f:
                    task = bar.add_task("validating", total=total)
                    for item in check_lines(numbered_lines(f)):
                        if isinstance(item, Rejected):
                            n_rejected += 1
                            if len(rejected) < SHOW_REJECTIONS:
                                rejected.append((item.line_no, item.reason))
                        bar.update(task, completed=item.line_no)
                    bar.update(task, completed=total)
                if n_rejected:
                    typer.echo(
                        f"rejected {n_rejected} event(s); nothing was sent (use --skip-invalid to send the valid ones):",
                        err=True,
                    )
                    for line in format_rejections(rejected, n_rejected):
                        typer.echo(line, err=True)
                    raise typer.Exit(1)

            async def send():
                async with Publisher(settings, topic=topic, pack=pack) as pub:
                    with _progress(show) as bar, open(src, "rb") as f:
                        task = bar.add_task("publishing", total=total)
                        return await pub.send_events(numbered_lines(f), on_lines=lambda n: bar.advance(task, n))

            try:
                summary = asyncio.run(send())
            except Exception as exc:
                typer.echo(f"error: publishing to {settings.bootstrap} failed: {type(exc).__name__}: {exc}", err=True)
                raise typer.Exit(3) from None

        typer.echo(
            f"sent {summary.sent_events} event(s) in {summary.sent_messages} message(s) "
            f"to {topic or settings.topic_events}; rejected {len(summary.rejected)}"
        )
        if summary.rejected:
            for line in format_rejections(summary.rejected, len(summary.rejected)):
                typer.echo(line, err=True)
            if not skip_invalid:  # the file changed between the two passes
                raise typer.Exit(1)
