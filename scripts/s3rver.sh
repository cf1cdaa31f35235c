#!/usr/bin/env bash
# s3rver (npm), the local S3 server the S3 tests and benchmarks run against.
#
# usage: scripts/s3rver.sh install   install s3rver@3.7.1 into <repo>/.deps/s3rver (idempotent;
#                                    does nothing, quickly, when that version is already there)
#        scripts/s3rver.sh path      print the s3rver binary's path (exit 1 when not installed)
#
# Run it with NODE_OPTIONS=--openssl-legacy-provider (without it, paginated listings fail with a
# 500), e.g.:
#   NODE_OPTIONS=--openssl-legacy-provider "$(scripts/s3rver.sh path)" \
#     -d DATA_DIR -a 127.0.0.1 -p PORT --silent          # credentials S3RVER / S3RVER
set -euo pipefail

version=3.7.1
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$repo/.deps/s3rver"
bin="$prefix/node_modules/.bin/s3rver"
pkg_json="$prefix/node_modules/s3rver/package.json"

installed_version() {
  [[ -x "$bin" && -f "$pkg_json" ]] || return 1
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$pkg_json" | head -n1
}

case "${1:-}" in
  install)
    if [[ "$(installed_version || true)" == "$version" ]]; then
      echo "s3rver: $version present ($bin)"
      exit 0
    fi
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
      echo "s3rver: error: npm and node are needed to install s3rver" \
           "(apt-get install nodejs npm, or run scripts/install-deps.sh)" >&2
      exit 1
    fi
    mkdir -p "$prefix"
    # A package.json of our own keeps npm from walking up into the repository.
    [[ -f "$prefix/package.json" ]] ||
      echo '{"name":"trainyard-s3rver","private":true}' >"$prefix/package.json"
    echo "s3rver: npm install s3rver@$version into $prefix"
    if ! npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
         "s3rver@$version" >"$prefix/npm-install.log" 2>&1; then
      cat "$prefix/npm-install.log" >&2
      echo "s3rver: error: npm install s3rver@$version failed (log: $prefix/npm-install.log)" >&2
      exit 1
    fi
    if [[ "$(installed_version || true)" != "$version" ]]; then
      echo "s3rver: error: npm finished but $bin is missing" >&2
      exit 1
    fi
    echo "s3rver: installed $version ($bin)"
    ;;
  path)
    if [[ ! -x "$bin" ]]; then
      echo "s3rver: not installed; run scripts/s3rver.sh install" >&2
      exit 1
    fi
    echo "$bin"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
