#!/bin/sh
# Runs a test in its own D-Bus session: "keyring" adds an unlocked gnome-keyring-daemon (Secret Service),
# "nologin" one that was never unlocked (no "login" collection: writes fail, as on minimal desktops), any
# other mode is the bare session bus. The mode is passed on as KEYRELAY_KEYCHAIN_TEST. HOME and the XDG folders point into a temporary folder, so the user's own
# keyring and settings are never touched. Exits 77 (CTest SKIP_RETURN_CODE) when the tools are missing.
# Usage: with-dbus-session.sh keyring|nologin|silent|nocollection TEST [ARGS...]
set -u
mode=$1
shift
if ! command -v dbus-run-session >/dev/null 2>&1; then
    echo "SKIP: dbus-run-session is not installed (Debian package: dbus)"
    exit 77
fi
if { [ "$mode" = keyring ] || [ "$mode" = nologin ]; } && ! command -v gnome-keyring-daemon >/dev/null 2>&1; then
    echo "SKIP: gnome-keyring-daemon is not installed (Debian package: gnome-keyring)"
    exit 77
fi
tmp=$(mktemp -d) || exit 1
mkdir -p "$tmp/run" && chmod 700 "$tmp/run"
export HOME="$tmp" XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config" XDG_CACHE_HOME="$tmp/cache"
export XDG_RUNTIME_DIR="$tmp/run" KEYRELAY_KEYCHAIN_TEST="$mode"
unset DISPLAY WAYLAND_DISPLAY KEYRELAY_KEYSTORE
dbus-run-session -- sh -c '
    daemon=""
    if [ "$KEYRELAY_KEYCHAIN_TEST" = keyring ]; then
        printf pw | gnome-keyring-daemon --foreground --unlock --components=secrets >/dev/null 2>&1 &
        daemon=$!
    elif [ "$KEYRELAY_KEYCHAIN_TEST" = nologin ]; then
        # Started on demand, never unlocked: no "login" collection, and no prompter can be shown.
        gnome-keyring-daemon --foreground --components=secrets </dev/null >/dev/null 2>&1 &
        daemon=$!
    fi
    "$@"
    rc=$?
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; fi
    exit $rc' sh "$@"
rc=$?
rm -rf "$tmp"
exit $rc
