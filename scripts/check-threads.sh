#!/usr/bin/env bash
# Clang thread-safety check: configures BUILD_DIR (default build-tsa/) with clang++-14 and
# -DTY_THREAD_SAFETY=ON (-Wthread-safety -Werror=thread-safety) and builds the static libraries
# under src/, which is where every annotated lock lives. Tests and the binary are not built:
# they add minutes and no annotated code. Exits non-zero on any finding.
#
# usage: scripts/check-threads.sh [BUILD_DIR]
#   env CXX_CLANG (default clang++-14), TY_JOBS (ninja -j, default: ninja's).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${1:-build-tsa}"
cxx="${CXX_CLANG:-clang++-14}"
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "check-threads: $cxx not found (Debian package clang-14)" >&2
  exit 2
fi

# First prove that the analysis is live: an unlocked access to a guarded field must be rejected.
# (If the macros expanded to nothing, every build below would pass without checking anything.)
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
cat >"$probe/unlocked.cc" <<'PROBE'
#include "common/mutex.h"
struct Guarded {
  ty::Mutex mu;
  int value TY_GUARDED_BY(mu) = 0;
};
int Read(Guarded& g) { return g.value; }
int ReadLocked(Guarded& g) {
  ty::MutexLock lock(&g.mu);
  return g.value;
}
PROBE
if "$cxx" -std=c++20 -fsyntax-only -Isrc -Wthread-safety -Werror=thread-safety \
    "$probe/unlocked.cc" 2>"$probe/out"; then
  echo "check-threads: clang accepted an unlocked read of a TY_GUARDED_BY field;" \
       "the annotations are not compiled in" >&2
  exit 1
fi
if ! grep -q "reading variable 'value' requires holding mutex" "$probe/out" ||
   [[ "$(grep -c 'error:' "$probe/out")" != 1 ]]; then
  echo "check-threads: unexpected result from the probe:" >&2
  cat "$probe/out" >&2
  exit 1
fi

if [[ ! -f "$build_dir/build.ninja" ]]; then
  echo "check-threads: configuring $build_dir ($cxx, TY_THREAD_SAFETY=ON)"
  launcher=()
  if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  # Debug: the analysis runs in the front end, so optimising would only cost time.
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" \
    -DTY_THREAD_SAFETY=ON "${launcher[@]}" >/dev/null
fi

# Every static library target of src/ (ty_<module>, and the few split ones such as ty_api_auth).
mapfile -t targets < <(sed -nE 's/^[[:space:]]*add_library\((ty_[a-z0-9_]+)[[:space:]]+STATIC.*/\1/p' \
  src/*/CMakeLists.txt src/*/*.cmake 2>/dev/null | sort -u)
if (( ${#targets[@]} == 0 )); then
  echo "check-threads: found no library targets under src/" >&2
  exit 2
fi

echo "check-threads: ninja -C $build_dir ${targets[*]}"
jobs=()
[[ -n "${TY_JOBS:-}" ]] && jobs=(-j "$TY_JOBS")
if ! ninja -C "$build_dir" "${jobs[@]}" "${targets[@]}"; then
  echo "check-threads: FAILED (see the -Wthread-safety errors above)"
  exit 1
fi
echo "check-threads: ok (${#targets[@]} libraries)"
