#!/usr/bin/env bash
# The code checkers, run by scripts/test.sh (and so .ci/run) before any test, and by pre-commit:
# ruff (lint and format), mypy over every package, and the layer contract (import-linter).
# Usage: bash scripts/check.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

echo "check: ruff check" >&2
"$BIN/ruff" check .
echo "check: ruff format --check" >&2
"$BIN/ruff" format --check .
echo "check: mypy" >&2
"$BIN/mypy"
echo "check: lint-imports (the layer contract in pyproject.toml)" >&2
"$BIN/lint-imports"
