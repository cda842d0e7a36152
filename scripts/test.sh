#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up, then pytest (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
