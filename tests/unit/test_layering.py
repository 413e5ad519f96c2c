"""The import direction of design.md: schemas <- projections <- streams, replay.

The rules stay pure: nothing in `schemas` or the rule modules may import faust, aiokafka or
duckdb, so they run in milliseconds and mean the same in every path.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = {"faust", "aiokafka", "duckdb", "mode"}
PURE_PROJECTIONS = ["calendar", "facts", "rules", "decide", "rulesets", "prices", "invoice", "mau", "snapshots", "rows"]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_contract_imports_no_io_library_and_nothing_of_ours_but_itself():
    for path in (ROOT / "schemas").glob("*.py"):
        roots = imported_roots(path)
        assert not roots & IO_LIBRARIES, path
        assert not roots & {"projections", "streams", "replay", "seatledger"}, path


def test_the_rules_are_pure():
    for name in PURE_PROJECTIONS:
        roots = imported_roots(ROOT / "projections" / f"{name}.py")
        assert not roots & IO_LIBRARIES, name
        assert not roots & {"streams", "replay", "seatledger"}, name


def test_projections_never_import_the_edges_that_depend_on_them():
    for path in (ROOT / "projections").glob("*.py"):
        assert not imported_roots(path) & {"streams", "replay", "seatledger"}, path
