#!/usr/bin/env bash
# Installs the SDKs pinned in tests/sdk/package-lock.json into DEST/node_modules with `npm ci` (never into the
# source tree). Does nothing when DEST already holds an install of this very package.json and lock file.
# Usage: install.sh DEST
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DEST=${1:?usage: install.sh DEST}
command -v npm >/dev/null || { echo "npm is not installed (Debian: apt-get install npm)"; exit 1; }
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
# One install at a time in DEST (two test runs may start together).
if command -v flock >/dev/null; then
    exec 9>"$DEST/.install.lock"
    flock 9
fi
STAMP=$DEST/node_modules/.keyrelay-sdk-tests.sha256
want=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "SDKs already installed in $DEST (package-lock.json unchanged)"
    exit 0
fi
cp "$HERE/package.json" "$HERE/package-lock.json" "$DEST/"
cd "$DEST"
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$STAMP"
echo "SDKs installed in $DEST: $(node -p 'const p = require("./package-lock.json").packages;
    ["@anthropic-ai/sdk", "openai"].map((n) => n + " " + p["node_modules/" + n].version).join(", ")')"
