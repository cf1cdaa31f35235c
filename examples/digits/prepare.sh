#!/usr/bin/env bash
# Create examples/digits/data/{train,validation}/*.csv (idempotent).
# Needs Debian's python3-sklearn (scripts/install-deps.sh --torch).
set -euo pipefail
cd "$(dirname "$0")"
exec /usr/bin/python3 prepare.py "$@"
