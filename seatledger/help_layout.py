"""How `seatledger --help` looks: one panel per audience, and options without type labels.

Panels: Typer's `rich_help_panel`, in the order seatledger/cli.py registers the commands.

Type labels: Typer 0.27 replaced click's metavars (TEXT, INTEGER) in the Rich help with type
labels (`<str>`, `<path>`, `<int range>`) but left flags bare; the Typer we run (0.29, with its own
copy of click) labels flags too (`--strict <bool>`, even `--help <bool>`). A parameter's `metavar`
replaces its label and an empty one removes it, so our commands give every option one: none for a
flag, which takes no value; for a value the one declared with the option (YYYY-MM, HOST:PORT,
FILE, ...), else the option's name as argparse does (`--pack PACK`).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

PUBLISHING = "Publishing"
BILLING = "Billing and disputes"
SERVICES = "Streaming services"
OPERATIONS = "Operations"
TOOLING = "Local tooling"
PANELS = (PUBLISHING, BILLING, SERVICES, OPERATIONS, TOOLING)


def _metavar(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return ""
    longest = max(param.opts, key=len)
    return longest.lstrip("-").replace("-", "_").upper()


def _no_help_label(option: Any) -> Any:
    if option is not None:
        option.metavar = ""
    return option


class Command(TyperCommand):
    """A command whose options show a metavar, or nothing for a flag, instead of a type label."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "option" and param.metavar is None:
                param.metavar = _metavar(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _no_help_label(super().get_help_option(ctx))


class Group(TyperGroup):
    """A group whose --help shows as a flag."""

    def get_help_option(self, ctx: Any) -> Any:
        return _no_help_label(super().get_help_option(ctx))


def group(help: str) -> typer.Typer:
    """A group of subcommands (`kafka`, `topics`, `schemas`)."""
    return typer.Typer(cls=Group, help=help, no_args_is_help=True)
