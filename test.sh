#!/usr/bin/env bash
# Trainyard's full test run (what CI runs via .ci/run):
#   1. install dependencies (with PyTorch: an e2e test trains examples/digits)
#   2. build (build/)
#   3. unit + integration tests: ctest --test-dir build
#   4. fuzzing: scripts/fuzz.sh builds build-fuzz/ (clang, libFuzzer) and runs each target for
#      TY_FUZZ_SECONDS (default 20) seconds; a crash fails that target
#   5. end-to-end tests: /usr/bin/python3 -m pytest -q tests/e2e (if any); as root these include
#      the Slurm tests on a real two-node Slurm (scripts/slurm.sh, up and down around them)
#   6. checks, one count each: the clang thread-safety build (scripts/check-threads.sh,
#      build-tsa/), clang-format and clang-tidy (scripts/check-style.sh --format / --tidy)
# Ends with one line "N passed, M failed" (ctest + fuzz + pytest + checks) and exits non-zero
# if anything failed.
#
# usage: ./test.sh [--asan]
#   --asan   also build build-asan/ with -DTY_SANITIZE=address and run ctest there
#            (same as env TY_SANITIZE=address)
set -euo pipefail
cd "$(dirname "$0")"

asan=0
[[ "${TY_SANITIZE:-}" == "address" ]] && asan=1
for arg in "$@"; do
  case "$arg" in
    --asan) asan=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
status=0
logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT

summary() {
  echo "$passed passed, $failed failed"
}

# Runs ctest in build dir $1, streaming its output, and adds its counts.
run_ctest() {
  local dir="$1" log="$logdir/ctest-${1//\//_}.log" rc=0
  echo "test.sh: ctest ($dir)"
  set +e
  ctest --test-dir "$dir" --output-on-failure -j2 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  # "97% tests passed, 1 tests failed out of 35"
  local line total nfail
  line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)"
  if [[ -n "$line" ]]; then
    nfail="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
    total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")"
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
    (( nfail == 0 && rc != 0 )) && failed=$((failed + 1))   # ctest failed for another reason
  elif (( rc != 0 )); then
    failed=$((failed + 1))
  else
    echo "test.sh: warning: no tests found in $dir"
  fi
  (( rc == 0 )) || status=1
}

# Runs one check (a command) and counts it as one test.
run_check() {
  local name="$1"
  shift
  echo "test.sh: check $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "test.sh: check $name FAILED"
    failed=$((failed + 1))
    status=1
  fi
}

# Runs every fuzz target for a bounded time; each target counts as one test.
run_fuzz() {
  local log="$logdir/fuzz.log" ok bad
  echo "test.sh: fuzzing (${TY_FUZZ_SECONDS:-20} s per target)"
  set +e
  scripts/fuzz.sh --seconds "${TY_FUZZ_SECONDS:-20}" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  ok="$(grep -cE '^fuzz.sh: [a-z_0-9]+ executions=' "$log" || true)"
  bad="$(grep -cE '^fuzz.sh: [a-z_0-9]+ FAILED' "$log" || true)"
  passed=$((passed + ok - bad))
  failed=$((failed + bad))
  (( rc != 0 && bad == 0 )) && failed=$((failed + 1))   # the build failed
  (( rc == 0 )) || status=1
}

run_pytest() {
  local dir="$1" log="$logdir/pytest.log" rc=0
  if [[ -z "$(find "$dir" \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]]; then
    echo "test.sh: no e2e tests in $dir"
    return 0
  fi
  echo "test.sh: pytest $dir"
  set +e
  # As root (CI) the Slurm tests must run: tests/e2e/test_slurm.py brings up a real two-node
  # Slurm with scripts/slurm.sh and fails, instead of skipping, if it cannot.
  local require_slurm=0
  [[ "$(id -u)" -eq 0 ]] && require_slurm=1
  TY_REQUIRE_SLURM="$require_slurm" TRAINYARD_BIN="$PWD/build/trainyard" \
    /usr/bin/python3 -m pytest -q "$dir" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if (( rc == 5 )); then   # no tests collected
    echo "test.sh: pytest collected no tests"
    return 0
  fi
  # last summary line, e.g. "3 passed, 1 failed, 2 skipped in 4.20s" or "1 error in 0.1s"
  local line p f e
  line="$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?).* in [0-9.]+s' "$log" | tail -n1 || true)"
  p="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)"
  f="$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)"
  e="$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)"
  passed=$((passed + p))
  failed=$((failed + f + e))
  (( rc != 0 && f + e == 0 )) && failed=$((failed + 1))   # e.g. internal error / interrupted
  (( rc == 0 )) || status=1
}

echo "test.sh: dependencies"
scripts/install-deps.sh --torch

echo "test.sh: build"
if ! scripts/build.sh build; then
  echo "test.sh: build failed"
  failed=$((failed + 1)); summary; exit 1
fi
if (( asan )); then
  echo "test.sh: build (address sanitizer)"
  if ! scripts/build.sh build-asan -DTY_SANITIZE=address; then
    echo "test.sh: asan build failed"
    failed=$((failed + 1)); summary; exit 1
  fi
fi

run_ctest build
if (( asan )); then
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    run_ctest build-asan
fi
run_fuzz
run_pytest tests/e2e
run_check threads scripts/check-threads.sh build-tsa
run_check format scripts/check-style.sh --format
run_check tidy scripts/check-style.sh --tidy build

if (( status != 0 )); then
  echo "test.sh: FAILED"
else
  echo "test.sh: OK"
fi
summary
exit "$status"
