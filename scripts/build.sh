#!/usr/bin/env bash
# Configure (only when needed) and build Trainyard with CMake + Ninja.
#
# usage: scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
#   BUILD_DIR defaults to "build"; leaves BUILD_DIR/trainyard.
#   env TY_BUILD_TYPE (default RelWithDebInfo), TY_JOBS (ninja -j, default: ninja's).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${1:-build}"
shift || true
build_type="${TY_BUILD_TYPE:-RelWithDebInfo}"

# A tree configured with another generator cannot be re-used for Ninja.
if [[ -f "$build_dir/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build_dir/CMakeCache.txt"; then
  echo "build: $build_dir was configured with another generator; reconfiguring"
  rm -rf "$build_dir/CMakeCache.txt" "$build_dir/CMakeFiles"
fi
if [[ ! -f "$build_dir/build.ninja" || ! -f "$build_dir/CMakeCache.txt" || $# -gt 0 ]]; then
  echo "build: configuring $build_dir ($build_type${*:+ $*})"
  launcher=()
  # ccache (when the machine has it) lets several checkouts share compiled objects.
  if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" "${launcher[@]}" "$@" >/dev/null
fi

echo "build: ninja -C $build_dir"
if [[ -n "${TY_JOBS:-}" ]]; then
  ninja -C "$build_dir" -j "$TY_JOBS"
else
  ninja -C "$build_dir"
fi
echo "build: ok ($build_dir/trainyard)"
