"""`seatledger schemas export`: regenerate the published JSON Schema files."""

from __future__ import annotations

from pathlib import Path

import typer

from schemas.jsonschema import SCHEMA_DIR, write_schemas


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The public event contract.", no_args_is_help=True)

    @group.command("export")
    def export(
        out: Path = typer.Option(SCHEMA_DIR, help="folder for the JSON Schema files"),
        check: bool = typer.Option(False, help="exit 1 when the files on disk are stale; write nothing"),
    ) -> None:
        """Write one JSON Schema for the event union and one per event type."""
        stale = write_schemas(out, check=check)
        if check and stale:
            typer.echo("stale: " + ", ".join(sorted(stale)), err=True)
            raise typer.Exit(1)
        typer.echo(f"{'checked' if check else 'wrote'} JSON Schema files in {out}")

    app.add_typer(group, name="schemas")
