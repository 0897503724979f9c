#!/usr/bin/env bash
# The version in CMakeLists.txt is the one the package documents: the top Debian changelog entry
# (VERSION-1), the newest AppStream release, the man page's header and `keyrelay --version`.
# Usage: versions_agree.sh SOURCE_DIR PROJECT_VERSION KEYRELAY_BINARY
set -euo pipefail
src=$1
version=$2
binary=$3
status=0
check() { # what expected actual
    if [ "$2" = "$3" ]; then
        echo "ok: $1 $3"
    else
        echo "FAIL: $1 is '$3', CMakeLists.txt says '$2'"
        status=1
    fi
}
check "debian/changelog" "$version-1" "$(sed -n '1s/^keyrelay (\([^)]*\)).*/\1/p' "$src/installer/debian/changelog")"
check "metainfo release" "$version" \
    "$(grep -o '<release version="[^"]*"' "$src/resources/io.github.keyrelay.KeyRelay.metainfo.xml" | head -n1 | cut -d'"' -f2)"
check "man page" "KeyRelay $version" "$(sed -n 's/^\.TH KEYRELAY 1 "[^"]*" "\([^"]*\)".*/\1/p' "$src/resources/keyrelay.1")"
check "keyrelay --version" "KeyRelay $version" "$("$binary" --version)"
exit "$status"
