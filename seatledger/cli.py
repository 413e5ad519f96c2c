"""The one command-line program: `seatledger <job>`.

Commands stay thin: parse flags, call a function from `schemas`, `projections`, `ledger`,
`replay`, `streams` or `devtools`, print. They live in seatledger/commands/, one module per job
(see COMMAND_MODULES), each with COMMANDS (name -> function) and, for subcommand groups, GROUPS
(name -> (help, {name -> function})). The options they share are in seatledger/options.py, the
exit codes in seatledger/errors.py, the output formats in seatledger/render.py.
"""

from __future__ import annotations

from types import ModuleType

import typer

from seatledger import help_layout
from seatledger.commands import billing, disputes, keys, operations, publishing, services, serving, tooling

app = typer.Typer(
    name="seatledger",
    help="Per-seat billing as an event-sourced stream processor (Kafka + Faust in, DuckDB out).",
    cls=help_layout.Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# In `seatledger --help` order: one panel per audience.
COMMAND_MODULES: tuple[tuple[str, ModuleType], ...] = (
    (help_layout.PUBLISHING, publishing),  # schemas export, publish
    (help_layout.BILLING, billing),  # replay, invoice, export, mau, reconcile, invoice-annotate
    (help_layout.BILLING, disputes),  # dispute
    (help_layout.SERVICES, services),  # worker, sink, archive
    (help_layout.SERVICES, serving),  # serve (the HTTP API)
    (help_layout.OPERATIONS, operations),  # topics create, close, estimate, verify
    (help_layout.OPERATIONS, keys),  # api-key create|list|revoke
    (help_layout.TOOLING, tooling),  # kafka start|stop|status|jars, generate, demo
)


def register(app: typer.Typer, panel: str, module: ModuleType) -> None:
    """Add a module's command groups, then its commands, to `app` under `panel`."""
    for name, (group_help, commands) in getattr(module, "GROUPS", {}).items():
        group = help_layout.group(group_help)
        for sub, fn in commands.items():
            group.command(sub, cls=help_layout.Command)(fn)
        app.add_typer(group, name=name, rich_help_panel=panel)
    for name, fn in module.COMMANDS.items():
        app.command(name, cls=help_layout.Command, rich_help_panel=panel)(fn)


for _panel, _module in COMMAND_MODULES:
    register(app, _panel, _module)


if __name__ == "__main__":  # pragma: no cover
    app()
