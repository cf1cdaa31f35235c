#!/usr/bin/env bash
# Create examples/spot-digits/data/{train,validation}/*.csv (idempotent): the same
# files as examples/digits/prepare.sh writes (same seed and split), made by the
# same script, here in ./data so this example's job.yaml is self-contained.
# Needs Debian's python3-sklearn (scripts/install-deps.sh --torch).
set -euo pipefail
cd "$(dirname "$0")"
exec /usr/bin/python3 ../digits/prepare.py --out "$PWD/data" "$@"
