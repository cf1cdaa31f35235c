#!/usr/bin/env bash
# Install the Debian packages Trainyard needs to build, test and run its examples,
# s3rver (npm, into .deps/s3rver) for the S3 tests and benchmarks, and the AWS SDK for
# JavaScript v3 clients (npm, into .deps/js) for tests/e2e/test_js_sdk.py.
# Idempotent: packages already installed are skipped; on a complete machine this
# does nothing (no apt-get update, no npm) and takes well under a second.
#
# usage: scripts/install-deps.sh [--torch]
#   --torch   also install python3-torch and python3-sklearn (examples, e2e tests)
set -euo pipefail

with_torch=0
for arg in "$@"; do
  case "$arg" in
    --torch) with_torch=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if [[ "${TY_WITH_TORCH:-0}" == 1 ]]; then with_torch=1; fi

packages=(
  build-essential cmake ninja-build pkg-config
  nlohmann-json3-dev libcpp-httplib-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
  zlib1g-dev libarchive-dev libre2-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev libxml2-dev
  libgtest-dev libgmock-dev libboost-dev libseccomp-dev
  bubblewrap iproute2 nftables e2fsprogs procps
  # a real two-node Slurm for the Slurm launcher's tests (scripts/slurm.sh)
  slurmctld slurmd slurm-client munge
  clang-14 clang-format-14 clang-tidy-14 libfuzzer-14-dev libclang-rt-14-dev
  awscli python3-boto3 python3-botocore python3-pytest python3-yaml python3-numpy python3-prometheus-client
  # what the SageMaker Python SDK in ../shared/clients imports (tests/e2e/test_sagemaker_sdk.py;
  # the list of ../shared/clients/setup.sh, so that it has nothing left to install)
  python3-pandas python3-protobuf python3-packaging python3-schema python3-platformdirs
  python3-importlib-metadata python3-zipp python3-more-itertools python3-tz python3-psutil
  python3-requests
)
if (( with_torch )); then
  packages+=(python3-torch python3-sklearn)
fi
# Node.js and npm (for s3rver and the JS SDK) come from Debian only when the machine has no npm:
# images that ship NodeSource's nodejs (which bundles npm) conflict with Debian's
# npm package ("held broken packages").
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

# One dpkg-query for all packages: prints "<name> <status>" for the known ones.
missing=()
declare -A installed=()
while read -r name status; do
  [[ "$status" == "installed" ]] && installed["${name%%:*}"]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
for p in "${packages[@]}"; do
  [[ -n "${installed[$p]:-}" ]] || missing+=("$p")
done

install_npm_tools() {
  "$(dirname "$0")/s3rver.sh" install
  "$(dirname "$0")/install-js-clients.sh" install
}

if (( ${#missing[@]} == 0 )); then
  echo "install-deps: all ${#packages[@]} packages present"
  install_npm_tools
  exit 0
fi

echo "install-deps: missing ${#missing[@]}: ${missing[*]}"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "install-deps: error: must run as root to install packages (try: sudo $0 $*)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: apt-get update"
apt-get update -qq >/dev/null
echo "install-deps: apt-get install ${#missing[@]} packages"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || { echo "install-deps: error: apt-get install failed" >&2; exit 1; }
install_npm_tools
echo "install-deps: done"
