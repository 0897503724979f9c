#!/usr/bin/env bash
# The SDK tests (sdk_clients.mjs): installs the SDKs into MODULES_DIR when needed (install.sh), then runs them
# against KEYRELAY_BINARY.
# Usage: run.sh KEYRELAY_BINARY MODULES_DIR [multi|single]
#   multi (default, or $KEYRELAY_SDK_MODE): one KeyRelay with [providers] in its --config file
#   single: today's single-upstream KeyRelay (--upstream, --keys-file), one instance per mock
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BINARY=${1:?usage: run.sh KEYRELAY_BINARY MODULES_DIR [multi|single]}
MODULES=${2:?usage: run.sh KEYRELAY_BINARY MODULES_DIR [multi|single]}
MODE=${3:-${KEYRELAY_SDK_MODE:-multi}}
command -v node >/dev/null || { echo "node is not installed (Debian: apt-get install nodejs npm)"; exit 1; }
[ -x "$BINARY" ] || { echo "not an executable: $BINARY"; exit 1; }
"$HERE/install.sh" "$MODULES"
exec node "$HERE/sdk_clients.mjs" --binary "$BINARY" --modules "$MODULES" --mode "$MODE"
