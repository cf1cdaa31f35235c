#!/usr/bin/env bash
# One command to see Trainyard work: install dependencies, build, prepare the
# digits data set and run the example training job, following its logs.
# Exits with the training run's exit code.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh --torch
scripts/build.sh
examples/digits/prepare.sh
exec build/trainyard run examples/digits/job.yaml --follow "$@"
