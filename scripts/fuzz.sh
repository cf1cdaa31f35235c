#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz/: clang-14, -DTY_FUZZ=ON, ASan + UBSan) and runs each
# for a bounded time or number of executions on its seed corpus (checked in: fuzz/corpus/request/
# for fuzz_request, and so on) plus a working corpus that grows across runs
# (build-fuzz/corpus/<target>/, not checked in).
# A crash, a sanitizer report, a leak, a timeout or an out-of-memory is a failure: its input is
# saved in build-fuzz/artifacts/<target>/ (reproduce: build-fuzz/fuzz/<target> <file>).
# Prints one line per target: executions, executions/s, coverage (cov/ft) at the end.
#
# usage: scripts/fuzz.sh [--seconds N | --runs N] [--no-build] [target...]
#   --seconds N   run each target N seconds (default 60)
#   --runs N      run each target for N executions instead
#   --no-build    use the targets already in build-fuzz/
#   targets       default: fuzz_request fuzz_search fuzz_s3_xml fuzz_job_spec fuzz_query_form
#                 fuzz_cbor fuzz_event_pattern fuzz_query_xml fuzz_governance_policy fuzz_zip
#                 fuzz_schedule fuzz_debugger_event fuzz_debugger_index fuzz_system_metrics
#                 fuzz_action_json
# env TY_JOBS: ninja -j for the build; TY_FUZZ_NICE: nice level for the runs (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
runs=""
build=1
targets=()
while (( $# > 0 )); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown argument: $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
(( ${#targets[@]} > 0 )) || targets=(fuzz_request fuzz_search fuzz_s3_xml fuzz_job_spec fuzz_query_form fuzz_cbor fuzz_event_pattern
                               fuzz_query_xml fuzz_governance_policy fuzz_zip fuzz_schedule
                               fuzz_debugger_event fuzz_debugger_index fuzz_system_metrics
                               fuzz_action_json)

dir=build-fuzz
if (( build )); then
  command -v clang++-14 >/dev/null || { echo "fuzz.sh: clang++-14 missing (scripts/install-deps.sh)" >&2; exit 2; }
  if [[ ! -f "$dir/build.ninja" ]]; then
    launcher=()
    if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
    cmake -G Ninja -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTY_FUZZ=ON \
      -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_C_COMPILER=clang-14 "${launcher[@]}" >/dev/null
  fi
  ninja -C "$dir" ${TY_JOBS:+-j "$TY_JOBS"} "${targets[@]}"
fi

failed=0
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/${t#fuzz_}"
  corpus="$dir/corpus/$t"
  artifacts="$dir/artifacts/$t"
  log="$dir/logs/$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  limit=(-max_total_time="$seconds")
  [[ -n "$runs" ]] && limit=(-runs="$runs")
  echo "fuzz.sh: $t (${runs:+$runs runs}${runs:-$seconds s})"
  set +e
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: one input may not take 2 GB.
  nice -n "${TY_FUZZ_NICE:-10}" "$dir/fuzz/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  last="$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')"
  ft="$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo '?')"
  if (( rc != 0 )); then
    failed=$((failed + 1))
    echo "fuzz.sh: $t FAILED (exit $rc); log $log, input in $artifacts/:"
    grep -E 'ERROR: |SUMMARY: |runtime error|Test unit written|No such file' "$log" | head -n 10 || true
  fi
  echo "fuzz.sh: $t executions=$execs exec/s=$rate cov=$cov ft=$ft"
done
(( failed == 0 )) || { echo "fuzz.sh: $failed target(s) failed"; exit 1; }
echo "fuzz.sh: OK"
