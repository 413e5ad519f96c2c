"""The one command-line program: `seatledger <job>`.

Commands stay thin: parse flags, call a function from `schemas`, `projections`, `streams` or
`replay`, print. Each group of commands lives in `seatledger/commands/<name>.py` and exposes
`register(app)`.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="seatledger",
    help="Per-seat billing as an event-sourced stream processor (Kafka + Faust in, DuckDB out).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = (
    "schemas_cmd",  # schemas export
    "kafka_cmd",  # kafka start|stop|status, topics create
    "publish_cmd",  # publish
    "generate_cmd",  # generate
    "batch_cmd",  # replay, invoice, export, mau, reconcile
    "stream_cmd",  # worker, close
    "sink_cmd",  # sink, invoice-annotate, demo
    "dispute_cmd",  # archive, dispute, verify
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"seatledger.commands.{_name}").register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
