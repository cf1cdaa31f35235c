#!/usr/bin/env bash
# Runs the three Trainyard benchmarks and prints a summary table.
#   bench/run.sh [quick]      (quick: fewer jobs / shorter load points)
# Builds build-bench/trainyard (Release) and build-bench/describe_load unless TRAINYARD_BIN /
# DESCRIBE_LOAD point elsewhere. Uses the pyenv `python3` (boto3 1.43, moto_server).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
PY="${PYTHON:-python3}"
N=30; T=5; MEMN=10000
if [[ "${1:-}" == quick ]]; then N=10; T=2; MEMN=2000; fi

if [[ -z "${TRAINYARD_BIN:-}" ]]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$BUILD" -j2 trainyard >/dev/null
  export TRAINYARD_BIN="$BUILD/trainyard"
fi
if [[ -z "${DESCRIBE_LOAD:-}" ]]; then
  mkdir -p "$BUILD"
  export DESCRIBE_LOAD="$BUILD/describe_load"
  if [[ ! -x "$DESCRIBE_LOAD" || "$ROOT/bench/describe_load.cc" -nt "$DESCRIBE_LOAD" ]]; then
    g++ -std=c++20 -O2 -I"$ROOT/src" "$ROOT/bench/describe_load.cc" "$ROOT/src/common/sigv4.cc" \
      "$ROOT/src/common/crypto.cc" "$ROOT/src/common/clock.cc" -o "$DESCRIBE_LOAD" -lcrypto -pthread
  fi
fi

OUT="$(mktemp -d)"
echo "== $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); binary $TRAINYARD_BIN"
# (a) twice: polling every 20 ms (the tight loop steals a core on a 2-core box and inflates the
# start itself), then the tight loop the brief asked for.
echo; echo "== (a) start overhead, poll every 20 ms"; "$PY" "$ROOT/bench/start_overhead.py" -n "$N" --poll-sleep 0.02 | tee "$OUT/a"
echo; echo "== (a') start overhead, tight poll loop"; "$PY" "$ROOT/bench/start_overhead.py" -n "$N" --poll-sleep 0 --linger 0 | sed 's/^RESULT start_overhead/RESULT start_overhead(tight-poll)/' | tee -a "$OUT/a"
echo; echo "== (b) describe throughput";  "$PY" "$ROOT/bench/describe_throughput.py" -t "$T" | tee "$OUT/b"
echo; echo "== (c) memory";               "$PY" "$ROOT/bench/memory.py" -n "$MEMN" | tee "$OUT/c"

echo; echo "== summary"
grep -h '^RESULT ' "$OUT/a" "$OUT/b" "$OUT/c" | sed 's/^RESULT /  /'
rm -rf "$OUT"
