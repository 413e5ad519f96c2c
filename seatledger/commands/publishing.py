"""For the teams that produce events: `schemas export` (the contract) and `publish`.

publish validates an NDJSON file of events and publishes it to Kafka. All or nothing by default:
every line is validated first, and when any is rejected nothing is sent and the command exits 1,
listing the rejected lines. With `--skip-invalid` the valid events are sent, the rejections are
still listed, and it exits 0. stdin is spooled to a temporary file so it can be read twice;
nothing holds more than one line's parsed event at a time.

Exit codes (seatledger.errors): 0 published; 1 lines rejected (nothing sent); 2 usage or
unreadable input, or an input with no event at all (empty or blank: nothing is sent); 3 Kafka failed.
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

from schemas.jsonschema import SCHEMA_DIR, write_schemas
from seatledger import options, render
from seatledger.errors import FOUND, SERVICE, USAGE, fail
from seatledger.progress import progress_bar
from streams.settings import Settings, load_settings

PROGRESS_MIN_LINES = 10_000  # show a progress bar above this many lines even when stderr is no tty


def schemas_export(
    out: Path = typer.Option(SCHEMA_DIR, metavar="DIR", help="folder for the JSON Schema files"),
    check: bool = typer.Option(False, help="exit 1 when the files on disk are stale; write nothing"),
) -> None:
    """Write one JSON Schema for the event union and one per event type."""
    stale = write_schemas(out, check=check)
    if check and stale:
        typer.echo("stale: " + ", ".join(sorted(stale)), err=True)
        raise typer.Exit(FOUND)
    typer.echo(f"{'checked' if check else 'wrote'} JSON Schema files in {out}")


def publish(
    path: str = typer.Argument(..., help="NDJSON file of events, or - for stdin"),
    pack: int = typer.Option(
        1, "--pack", min=1, metavar="N", help="up to N consecutive events of one company per message"
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="send the valid events even when some lines are rejected"
    ),
    bootstrap: str | None = options.BOOTSTRAP,
    topic: str | None = options.TOPIC,
    progress: bool | None = options.progress("default: on for a tty or large input"),
) -> None:
    """Validate every event against the contract, then publish them keyed by company_id."""
    settings = load_settings(bootstrap=bootstrap)
    with readable_input(path) as src:
        if is_blank(src):  # as the batch commands: far more likely a wrong path or a failed export
            raise fail(f"no events in {'<stdin>' if path == '-' else path}: the input is empty", USAGE)
        total = count_lines(src)
        show = progress if progress is not None else (sys.stderr.isatty() or total > PROGRESS_MIN_LINES)
        if not skip_invalid:
            refuse_invalid(src, total, show)
        try:
            summary = asyncio.run(send(settings, topic, pack, src, total, show))
        except Exception as exc:
            raise fail(f"publishing to {settings.bootstrap} failed: {type(exc).__name__}: {exc}", SERVICE) from None

    typer.echo(
        f"sent {summary.sent_events} event(s) in {summary.sent_messages} message(s) "
        f"to {topic or settings.topic_events}; rejected {len(summary.rejected)}"
    )
    if summary.rejected:
        for line in render.rejections(summary.rejected, len(summary.rejected)):
            typer.echo(line, err=True)
        if not skip_invalid:  # the file changed between the two passes
            raise typer.Exit(FOUND)


def refuse_invalid(src: Path, total: int, show: bool) -> None:
    """The validation pass: exit 1, listing the first rejected lines, when any line is invalid."""
    from streams.publisher import Rejected, check_lines, numbered_lines

    rejected: list[tuple[int, str]] = []
    n_rejected = 0
    with progress_bar(show) as bar, open(src, "rb") as f:
        task = bar.add_task("validating", total=total)
        for item in check_lines(numbered_lines(f)):
            if isinstance(item, Rejected):
                n_rejected += 1
                if len(rejected) < render.SHOW_REJECTIONS:
                    rejected.append((item.line_no, item.reason))
            bar.update(task, completed=item.line_no)
        bar.update(task, completed=total)
    if n_rejected:
        typer.echo(
            f"rejected {n_rejected} event(s); nothing was sent (use --skip-invalid to send the valid ones):", err=True
        )
        for line in render.rejections(rejected, n_rejected):
            typer.echo(line, err=True)
        raise typer.Exit(FOUND)


async def send(settings: Settings, topic: str | None, pack: int, src: Path, total: int, show: bool):
    """The publishing pass: every valid event, packed, keyed by company_id."""
    from streams.publisher import Publisher, numbered_lines

    async with Publisher(settings, topic=topic, pack=pack) as pub:
        with progress_bar(show) as bar, open(src, "rb") as f:
            task = bar.add_task("publishing", total=total)
            return await pub.send_events(numbered_lines(f), on_lines=lambda n: bar.advance(task, n))


def is_blank(path: Path) -> bool:
    """Whether a file holds nothing but whitespace (read up to its first other byte)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.strip():
                return False
    return True


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
            raise fail(f"no such file: {path}", USAGE)
        yield p
        return
    with tempfile.NamedTemporaryFile(prefix="seatledger-publish-", suffix=".ndjson", delete=False) as tmp:
        shutil.copyfileobj(click.get_binary_stream("stdin"), tmp, 1 << 20)
    try:
        yield Path(tmp.name)
    finally:
        Path(tmp.name).unlink(missing_ok=True)


COMMANDS = {"publish": publish}
GROUPS = {"schemas": ("The public event contract.", {"export": schemas_export})}
