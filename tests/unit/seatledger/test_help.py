"""`seatledger --help`: every command, in one panel per audience; options without type labels."""

from __future__ import annotations

import re

import pytest
import typer

from seatledger.cli import app
from seatledger.help_layout import PANELS

COMMANDS = {
    "Publishing": ["schemas export", "publish"],
    "Billing and disputes": ["replay", "invoice", "export", "mau", "reconcile", "invoice-annotate", "dispute"],
    "Streaming services": ["worker", "sink", "archive", "serve"],
    "Operations": ["topics create", "close", "estimate", "verify", "api-key create", "api-key list", "api-key revoke"],
    "Local tooling": ["kafka start", "kafka stop", "kafka status", "kafka jars", "generate", "demo"],
}
TYPE_LABEL = re.compile(r"<(bool|str|int|float|path|uuid|datetime)[^>]*>")


def command_paths(group=None, prefix=()) -> list[tuple[str, ...]]:
    """Every runnable command of the CLI as its words, e.g. ('kafka', 'start')."""
    group = group or typer.main.get_command(app)
    out: list[tuple[str, ...]] = []
    for name, cmd in group.commands.items():
        sub = getattr(cmd, "commands", None)
        out += command_paths(cmd, (*prefix, name)) if sub is not None else [(*prefix, name)]
    return out


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped lines


def panels(help_text: str) -> dict[str, list[str]]:
    """Panel title -> the first word of each row in it."""
    out: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if m := re.match(r"^╭─ (.+?) ─", line):
            current = out.setdefault(m.group(1), [])
        elif current is not None and (m := re.match(r"^│ (\S+)", line)):
            current.append(m.group(1))
    return out


def test_every_command_is_in_a_panel():
    assert sorted(" ".join(p) for p in command_paths()) == sorted(c for cs in COMMANDS.values() for c in cs)


def test_help_groups_the_commands_in_five_panels_by_audience(cli):
    r = cli("--help")
    assert r.exit_code == 0, r.output
    found = panels(r.stdout)
    assert [p for p in found if p not in ("Options",)] == list(PANELS) == list(COMMANDS)
    for panel, commands in COMMANDS.items():
        assert sorted(found[panel]) == sorted({c.split()[0] for c in commands}), panel
    for group, subs in (
        ("schemas", ["export"]),
        ("topics", ["create"]),
        ("api-key", ["create", "list", "revoke"]),
        ("kafka", ["start", "stop", "status", "jars"]),
    ):
        assert panels(cli(group, "--help").stdout)["Commands"] == subs


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_options_show_no_type_labels_and_flags_no_value(cli, path):
    r = cli(*path, "--help")
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.stdout
    options = [line for line in r.stdout.splitlines() if re.match(r"^│\s+(\*\s+)?--", line)]
    assert options and not [line for line in options if TYPE_LABEL.search(line)]
    assert re.search(r"│\s+--help\s+Show this message", r.stdout)


def test_flags_show_as_flags_and_values_by_name(cli):
    text = cli("replay", "--help").stdout
    assert re.search(r"--strict\s+exit 1 when", text)
    assert re.search(r"--month\s+YYYY-MM\s+billing month", text)
    assert re.search(r"--format\s+jsonl\|csv\s+jsonl or csv", text)
    assert re.search(r"--progress\s+--no-progress\s+default:", cli("publish", "--help").stdout)
    assert re.search(r"--pack\s+N \[x>=1\]\s+up to N", cli("publish", "--help").stdout)
    assert re.search(r"--po\s+PO\s+the PO number", cli("invoice-annotate", "--help").stdout)  # by its name
