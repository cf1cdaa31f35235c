#!/usr/bin/env bash
# The AWS SDK for JavaScript v3 clients (npm) that tests/e2e/test_js_sdk.py drives Trainyard with:
# @aws-sdk/client-sagemaker, -cloudwatch-logs, -cloudwatch, -sns, -lambda and -eventbridge, one pinned
# version for all. Test tools only: Trainyard never loads them.
#
# usage: scripts/install-js-clients.sh install   install into <repo>/.deps/js (idempotent; does
#                                                nothing, quickly, when that version is there)
#        scripts/install-js-clients.sh path      print the node_modules folder (exit 1 when the
#                                                pinned version is not installed)
set -euo pipefail

version=3.1142.0
packages=(@aws-sdk/client-sagemaker @aws-sdk/client-cloudwatch-logs @aws-sdk/client-cloudwatch
          @aws-sdk/client-sns @aws-sdk/client-lambda @aws-sdk/client-eventbridge)
repo="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$repo/.deps/js"
modules="$prefix/node_modules"

# True when every package is installed at the pinned version.
present() {
  local p v
  for p in "${packages[@]}"; do
    [[ -f "$modules/$p/package.json" ]] || return 1
    v="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$modules/$p/package.json" |
         head -n1)"
    [[ "$v" == "$version" ]] || return 1
  done
}

case "${1:-}" in
  install)
    if present; then
      echo "js-clients: @aws-sdk $version present ($modules)"
      exit 0
    fi
    if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
      echo "js-clients: error: npm and node are needed (apt-get install nodejs npm," \
           "or run scripts/install-deps.sh)" >&2
      exit 1
    fi
    mkdir -p "$prefix"
    # A package.json of our own keeps npm from walking up into the repository.
    [[ -f "$prefix/package.json" ]] ||
      echo '{"name":"trainyard-js-clients","private":true}' >"$prefix/package.json"
    specs=()
    for p in "${packages[@]}"; do specs+=("$p@$version"); done
    echo "js-clients: npm install ${specs[*]} into $prefix"
    if ! npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
         "${specs[@]}" >"$prefix/npm-install.log" 2>&1; then
      cat "$prefix/npm-install.log" >&2
      echo "js-clients: error: npm install failed (log: $prefix/npm-install.log)" >&2
      exit 1
    fi
    if ! present; then
      echo "js-clients: error: npm finished but the packages are not at $version in $modules" >&2
      exit 1
    fi
    echo "js-clients: installed @aws-sdk $version ($modules)"
    ;;
  path)
    if ! present; then
      echo "js-clients: not installed; run scripts/install-js-clients.sh install" >&2
      exit 1
    fi
    echo "$modules"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
