#!/usr/bin/env bash
# House-style checks: clang-format (.clang-format) over every C++ file of src/ tests/ apps/ bench/
# fuzz/, and clang-tidy (.clang-tidy) over the sources of src/ and apps/, using the
# compile_commands.json of a configured build. Exits non-zero on any finding.
#
# usage: scripts/check-style.sh [--format] [--tidy] [BUILD_DIR]
#   --format   only the clang-format check (no build needed; seconds)
#   --tidy     only clang-tidy (needs BUILD_DIR/compile_commands.json; minutes)
#   BUILD_DIR  a configured build (default: build); its generated sources must exist, so build it
#              first (scripts/build.sh).
#   env TY_JOBS (clang-tidy processes, default 2), CLANG_FORMAT, CLANG_TIDY, RUN_CLANG_TIDY.
set -euo pipefail
cd "$(dirname "$0")/.."

do_format=0
do_tidy=0
build_dir=build
for arg in "$@"; do
  case "$arg" in
    --format) do_format=1 ;;
    --tidy) do_tidy=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check-style: unknown option $arg" >&2; exit 2 ;;
    *) build_dir="$arg" ;;
  esac
done
if (( !do_format && !do_tidy )); then do_format=1; do_tidy=1; fi

clang_format="${CLANG_FORMAT:-clang-format-14}"
clang_tidy="${CLANG_TIDY:-clang-tidy-14}"
run_clang_tidy="${RUN_CLANG_TIDY:-run-clang-tidy-14}"
jobs="${TY_JOBS:-2}"
status=0

if (( do_format )); then
  mapfile -t files < <(find src tests apps bench fuzz -type f \
    \( -name '*.h' -o -name '*.cc' -o -name '*.hpp' -o -name '*.cpp' \) 2>/dev/null | sort)
  start=$SECONDS
  echo "check-style: $clang_format --dry-run over ${#files[@]} files"
  log="$(mktemp)"
  if "$clang_format" --dry-run -Werror "${files[@]}" 2>"$log"; then
    echo "check-style: format ok ($((SECONDS - start)) s)"
  else
    head -n 40 "$log"
    bad="$(grep -oE '^[^:]+:[0-9]+:[0-9]+: error' "$log" | cut -d: -f1 | sort -u | tr '\n' ' ')"
    echo "check-style: not formatted: ${bad:-see above}"
    echo "check-style: fix with: $clang_format -i <files>"
    status=1
  fi
  rm -f "$log"
fi

if (( do_tidy )); then
  if [[ ! -f "$build_dir/compile_commands.json" ]]; then
    echo "check-style: $build_dir/compile_commands.json missing: run scripts/build.sh $build_dir" >&2
    exit 2
  fi
  start=$SECONDS
  # Sources only: tests are gtest-heavy (they would double the time) and hold no locks or naming
  # the sources do not already show.
  echo "check-style: $run_clang_tidy -j $jobs over src/ apps/ ($build_dir/compile_commands.json)"
  raw="$(mktemp)"
  set +e
  "$run_clang_tidy" -quiet -j "$jobs" -clang-tidy-binary "$(command -v "$clang_tidy")" \
    -p "$build_dir" "$PWD/(src|apps)/.*\.cc\$" >"$raw" 2>&1
  rc=$?
  set -e
  # run-clang-tidy always colours and echoes each command; keep the findings, once each (a header's
  # finding is reported by every file that includes it). The whole output stays in the build dir.
  log="$build_dir/clang-tidy.log"
  sed -E 's/\x1b\[[0-9;]*m//g' "$raw" >"$log"
  rm -f "$raw"
  findings="$(grep -E '(warning|error): .*\[[a-z][a-zA-Z0-9.,-]*\]$' "$log" |
    sed -E 's/,-warnings-as-errors\]$/]/' | sort -u || true)"
  nfind=0
  [[ -n "$findings" ]] && nfind="$(wc -l <<<"$findings")"
  if (( nfind != 0 )); then
    echo "$findings"
    echo "check-style: clang-tidy: $nfind finding(s) ($((SECONDS - start)) s; details in $log)"
    status=1
  elif (( rc != 0 )); then
    grep -E 'error' "$log" | head -n 20 || true
    echo "check-style: clang-tidy failed to run ($((SECONDS - start)) s; see $log)"
    status=1
  else
    echo "check-style: clang-tidy ok ($((SECONDS - start)) s)"
  fi
fi

exit "$status"
