#!/usr/bin/env bash
# Create examples/ddp-digits/data/{train,validation}/*.csv (idempotent): the same files
# as examples/digits/prepare.sh and examples/spot-digits/prepare.sh write (same script,
# same seed and split), here in ./data so this example's job.yaml is self-contained.
# Needs Debian's python3-sklearn (scripts/install-deps.sh --torch).
set -euo pipefail
cd "$(dirname "$0")"
exec /usr/bin/python3 ../digits/prepare.py --out "$PWD/data" "$@"
