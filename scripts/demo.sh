#!/usr/bin/env bash
# The one-command demo: sets up, then runs the agent on a generated sample clip
# against the local stand-in API and a local mosquitto, printing the MQTT traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
exec .venv/bin/python -m tools.demo "$@"
