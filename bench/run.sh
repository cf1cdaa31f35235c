#!/usr/bin/env bash
# Runs the Trainyard benchmarks and prints a summary table.
#   bench/run.sh [quick] [SECTION...]   (quick: fewer jobs / shorter load points / smaller
#                                        checkpoints and sync sets; SECTIONs: a b c d e f g h,
#                                        default all)
# Builds build-bench/trainyard (Release) and build-bench/describe_load unless TRAINYARD_BIN /
# DESCRIBE_LOAD point elsewhere. Uses the pyenv `python3` (boto3 1.43, moto_server).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-bench"
PY="${PYTHON:-python3}"
N=30; T=5; MEMN=10000
SPOT_SIZES=10x1M,4x256M; SPOT_N=7; SYNC_REPS=8; SYNC_BASE=3; S3_ARGS="-n 3"
JOBSTART_ARGS="-n 5 --contention 3"; EDGE_ARGS="-r 3 -t 5"
if [[ "${1:-}" == quick ]]; then
  N=10; T=2; MEMN=2000
  SPOT_SIZES=10x1M,4x64M; SPOT_N=3; SYNC_REPS=4; SYNC_BASE=2; S3_ARGS="--quick"
  JOBSTART_ARGS="--quick --contention 2"; EDGE_ARGS="-r 2 -t 3"
  shift
fi
SECTIONS=" ${*:-a b c d e f g h} "
want() { [[ "$SECTIONS" == *" $1 "* ]]; }

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
touch "$OUT/a" "$OUT/b" "$OUT/c" "$OUT/d" "$OUT/e" "$OUT/f" "$OUT/g" "$OUT/h"
# (a) twice: polling every 20 ms (the tight loop steals a core on a 2-core box and inflates the
# start itself), then the tight loop the brief asked for.
if want a; then
  echo; echo "== (a) start overhead, poll every 20 ms"; "$PY" "$ROOT/bench/start_overhead.py" -n "$N" --poll-sleep 0.02 | tee "$OUT/a"
  echo; echo "== (a') start overhead, tight poll loop"; "$PY" "$ROOT/bench/start_overhead.py" -n "$N" --poll-sleep 0 --linger 0 | sed 's/^RESULT start_overhead/RESULT start_overhead(tight-poll)/' | tee -a "$OUT/a"
fi
if want b; then echo; echo "== (b) describe throughput"; "$PY" "$ROOT/bench/describe_throughput.py" -t "$T" | tee "$OUT/b"; fi
if want c; then echo; echo "== (c) memory"; "$PY" "$ROOT/bench/memory.py" -n "$MEMN" | tee "$OUT/c"; fi
if want d; then
  echo; echo "== (d) spot resume latency"
  "$PY" "$ROOT/bench/spot_resume.py" --sizes "$SPOT_SIZES" -n "$SPOT_N" | tee "$OUT/d"
fi
if want e; then
  echo; echo "== (e) checkpoint sync lag, 0.5 s between files"
  "$PY" "$ROOT/bench/checkpoint_sync_lag.py" --reps "$SYNC_REPS" --base-reps "$SYNC_BASE" --pause 0.5 | tee "$OUT/e"
  echo; echo "== (e') checkpoint sync lag, burst (0.05 s between files)"
  "$PY" "$ROOT/bench/checkpoint_sync_lag.py" --reps "$SYNC_REPS" --base-reps 1 --pause 0.05 \
    | sed 's/^RESULT checkpoint_sync_lag/RESULT checkpoint_sync_lag(burst)/' | tee -a "$OUT/e"
fi

if want f; then
  echo; echo "== (f) trainyard storage sync vs aws s3 sync (v2 and v1), s3rver on loopback"
  "$PY" "$ROOT/bench/s3_sync.py" $S3_ARGS | tee "$OUT/f" || echo "RESULT s3_sync: FAILED (exit $?)" >>"$OUT/f"
fi

# (g) needs root (network namespaces for the 2- and 4-instance jobs) and runs the jobs one at
# a time; it refuses to start while another server's job networks exist (a starting server
# removes the ty-* networks it does not know).
if want g; then
  echo; echo "== (g) job start overhead, 1 / 2 / 4 instances (+ 1 instance, isolation none)"
  "$PY" "$ROOT/bench/job_start.py" $JOBSTART_ARGS | tee "$OUT/g" || echo "RESULT job_start: FAILED (exit $?)" >>"$OUT/g"
fi

if want h; then
  echo; echo "== (h) HTTP edge: Describe idle vs under 2,000 idle + 100 slow-header + 500 agents"
  "$PY" "$ROOT/bench/http_edge.py" $EDGE_ARGS | tee "$OUT/h" || echo "RESULT http_edge: FAILED (exit $?)" >>"$OUT/h"
fi

echo; echo "== summary"
grep -h '^RESULT ' "$OUT/a" "$OUT/b" "$OUT/c" "$OUT/d" "$OUT/e" "$OUT/f" "$OUT/g" "$OUT/h" | sed 's/^RESULT /  /'
rm -rf "$OUT"
