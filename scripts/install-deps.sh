#!/usr/bin/env bash
# Installs every Debian package heapscope's build and test suite need (Debian 12).
#   scripts/install-deps.sh          build + tests (includes the real programs the e2e suite runs)
#   scripts/install-deps.sh --bench  also what bench/ compares against or reads with: heaptrack,
#                                    valgrind, the zstd command
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  libunwind-dev libdw-dev libelf-dev libfmt-dev nlohmann-json3-dev libgtest-dev libboost-stacktrace-dev libzstd-dev
  # validating JSON reports against docs/report.schema.json
  python3-jsonschema
  # the trace-reader fuzzer (libFuzzer)
  clang libclang-rt-14-dev
  # real programs the end-to-end suite runs under heapscope
  python3 perl bash git sqlite3 jq xz-utils openssl curl redis-server default-jre-headless gdb
  # installing and packaging (issue 14): man renders the page, dpkg-shlibdeps finds the dependencies
  man-db groff-base dpkg-dev
  # the HTML report's end-to-end test runs the page in headless Chromium
  chromium fonts-liberation
  # allocators the agent must work on top of
  libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0
  # bench/*.sh arithmetic
  bc
)
if [[ ${1:-} == --bench ]]; then packages+=(heaptrack valgrind zstd); fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" > /dev/null
echo "heapscope: build and test dependencies installed"
