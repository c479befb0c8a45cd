#!/bin/sh
# Run minirun's whole test suite (as root: the tests run real containers).
# Extra arguments go to pytest, e.g. scripts/test.sh -k lifecycle.
set -eu
cd "$(dirname "$0")/.."
VENV=${MINIRUN_VENV:-/opt/minirun/venv}
exec "$VENV/bin/python" -m pytest -q tests "$@"
