#!/usr/bin/env bash
# Installs what KeyRelay needs to build, test and run on Debian 12 (bookworm), and to build and check its package
# (file for CPack, lintian, desktop-file-validate, appstreamcli, rsvg-convert for tools/render-icons.sh; python3,
# curl and nginx-light for the deployment tests and .ci/package-check.sh; nodejs and npm for the SDK tests).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PACKAGES=(
    build-essential cmake ninja-build pkg-config
    qt6-base-dev
    libcurl4-openssl-dev libssl-dev
    qt6-tools-dev qt6-tools-dev-tools qt6-l10n-tools qt6-qpa-plugins libgl-dev
    qt6-charts-dev libqt6opengl6-dev libqt6sql6-sqlite
    # Keys at rest in the system keychain: QtKeychain loads libsecret at run time (not a declared
    # dependency). gnome-keyring and dbus (dbus-run-session) let the tests run a private Secret Service.
    qtkeychain-qt6-dev libsecret-1-0 gnome-keyring dbus
    clang libclang-rt-14-dev
    file lintian desktop-file-utils appstream librsvg2-bin
    python3 curl nginx-light
)
# tests/sdk runs the official JavaScript SDKs: Debian's nodejs (18) and npm, unless a node with its npm is there
# already (NodeSource's nodejs package carries npm and conflicts with Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    PACKAGES+=(nodejs npm)
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "KeyRelay build dependencies are installed."
