#!/usr/bin/env bash
# Kept for existing callers: the benchmark is bench/compare.sh now (the mock, nginx, the original Go
# proxy and KeyRelay in one table). Same variables: DURATION, KEYRELAY_BIN, BUILD_DIR, RESULTS_DIR.
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/compare.sh" "$@"
