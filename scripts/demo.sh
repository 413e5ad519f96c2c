#!/usr/bin/env bash
# The main job in one command: `bash scripts/demo.sh [seatledger demo options]`.
# Sets the checkout up (scripts/setup.sh: venv, packages, Kafka jars), then runs `seatledger demo`:
# a local Kafka broker (started if none answers), topics, worker and sink, a realistic generated
# month published and closed, and the invoices read back from DuckDB.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
exec .venv/bin/seatledger demo "$@"
