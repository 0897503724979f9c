#!/usr/bin/env bash
# CI smoke run of the KeyRelay benchmark: checks the prerequisites (installs nothing), then runs
# bench/compare.sh --smoke against an existing build. It must print the table; it makes no timing
# assertions and fails only when a prerequisite is missing or a part of the benchmark did not run.
#
# Usage: bench/ci-smoke.sh BUILD_DIR      (BUILD_DIR/app/keyrelay must exist)
# Debian packages it needs: wrk curl gcc golang-go nginx-light (or nginx) openssl ca-certificates util-linux iproute2
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=${1:?usage: bench/ci-smoke.sh BUILD_DIR}
BIN=$BUILD_DIR/app/keyrelay
[[ -x $BIN ]] || { echo "ci-smoke.sh: $BIN not found or not executable; build KeyRelay first" >&2; exit 1; }

missing=()
for tool in wrk curl cc go nginx openssl unshare timeout awk; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "ci-smoke.sh: missing tools: ${missing[*]}" >&2
    echo "ci-smoke.sh: install with: apt-get install -y wrk curl gcc golang-go nginx-light openssl ca-certificates util-linux iproute2" >&2
    exit 1
fi

start=$(date +%s)
rc=0
KEYRELAY_BIN=$BIN "$SCRIPT_DIR/compare.sh" --smoke || rc=$?
echo "ci-smoke.sh: benchmark smoke run took $(($(date +%s) - start)) s, exit status $rc"
exit "$rc"
