#!/usr/bin/env bash
# Set up a checkout for running and testing: virtualenv, packages, Kafka broker jars.
# Idempotent and quick when done already: packages are reinstalled only when pyproject.toml
# changed; the jars are resolved with Maven once per Kafka version (~/.cache/seatledger/).
# Needs python3.11 (or PYTHON=...), and for the local broker Java 17+ and Maven. Installs Debian's
# chromium with apt-get when it is missing (the console's browser tests drive it; as root, or with
# passwordless sudo; SEATLEDGER_SKIP_CHROMIUM=1 skips this).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
VENV=".venv"

if [ ! -x "$VENV/bin/python" ]; then
  command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
  echo "setup: creating $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.seatledger-pyproject.sha256"
want="$("$VENV/bin/python" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing seatledger and its test dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
  echo "$want" > "$stamp"
fi

if [ "${SEATLEDGER_SKIP_JARS:-0}" != "1" ]; then
  command -v java >/dev/null || { echo "setup: java (17+) not found; needed for the local Kafka broker" >&2; exit 1; }
  command -v mvn >/dev/null || [ -n "$(ls -d "${XDG_CACHE_HOME:-$HOME/.cache}"/seatledger/kafka-*/.complete 2>/dev/null)" ] \
    || { echo "setup: mvn not found; needed once to fetch the Kafka broker jars" >&2; exit 1; }
  "$VENV/bin/python" -m devtools.local_broker >/dev/null
fi

if [ "${SEATLEDGER_SKIP_CHROMIUM:-0}" != "1" ] && [ ! -x "${SEATLEDGER_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ]; then APT=(apt-get); elif sudo -n true 2>/dev/null; then APT=(sudo -n apt-get); else APT=(); fi
  if [ ${#APT[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium (the console's browser tests drive it)" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${APT[@]}" install -y -q chromium >/dev/null 2>&1 || { "${APT[@]}" update -q >/dev/null && "${APT[@]}" install -y -q chromium >/dev/null; }
  else
    echo "setup: chromium not found and cannot be installed here; the console's browser tests will fail (apt-get install -y chromium)" >&2
  fi
fi
