#!/usr/bin/env bash
# The one test command: `bash scripts/test.sh [pytest arguments]`.
# Sets the checkout up (scripts/setup.sh), runs the code checkers (scripts/check.sh: ruff, mypy,
# the layer contract), then runs pytest; pytest's session fixture starts a
# local Kafka broker when none answers on SEATLEDGER_BOOTSTRAP, and stops it at the end.
# "No tests collected" (pytest exit code 5) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/check.sh

set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$rc"
