#!/usr/bin/env bash
# CI: build the .deb from build/, check its contents, dependencies and metadata (lintian, desktop-file-validate,
# appstreamcli), install it, run the installed binary (version, one proxied request in headless mode against a
# local mock upstream), purge it and check that nothing of it is left. Run from the repository root after
# build/ was built; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

fail() {
    echo "package-check: FAIL: $*" >&2
    exit 1
}
step() { echo "--- $*"; }

WORK=$(mktemp -d)
MOCK_PID=""
KR_PID=""
cleanup() {
    [ -n "$KR_PID" ] && kill "$KR_PID" 2>/dev/null || true
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds or time runs out.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local tries=$((seconds * 10))
    for ((i = 0; i < tries; i++)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    fail "timed out after ${seconds}s waiting for $what"
}

step "build the package"
[ -f build/CMakeCache.txt ] || fail "build/ is not configured (run the build stage first)"
cmake --build build
rm -f build/keyrelay_*.deb build/keyrelay-dbgsym_*.ddeb
(cd build && cpack -G DEB >"$WORK/cpack.log") || { cat "$WORK/cpack.log"; fail "cpack -G DEB failed"; }
debs=(build/keyrelay_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected exactly one build/keyrelay_*.deb, found: ${debs[*]}"
DEB=${debs[0]}
echo "$DEB ($(du -h "$DEB" | cut -f1))"

step "file list"
dpkg-deb -c "$DEB" | awk '{print $1, $6}' | sed 's#^\(.\{10\}\) \./#\1 /#' >"$WORK/contents"
cat "$WORK/contents"
expected_files=(
    /usr/bin/keyrelay
    /usr/share/man/man1/keyrelay.1.gz
    /usr/share/doc/keyrelay/changelog.Debian.gz
    /usr/share/doc/keyrelay/copyright
    /usr/lib/systemd/user/keyrelay.service
    /usr/share/applications/io.github.keyrelay.KeyRelay.desktop
    /usr/share/metainfo/io.github.keyrelay.KeyRelay.metainfo.xml
    /usr/share/icons/hicolor/scalable/apps/keyrelay.svg
)
for size in 16 22 24 32 48 64 128 256 512; do
    expected_files+=("/usr/share/icons/hicolor/${size}x${size}/apps/keyrelay.png")
done
for f in "${expected_files[@]}"; do
    grep -q " $f\$" "$WORK/contents" || fail "the package lacks $f"
done
# Nothing outside /usr, no build or test leftovers.
if grep -vE ' /usr(/|$)| /$' "$WORK/contents"; then fail "files outside /usr (above)"; fi
if grep -E 'tst_|\.a$|/include/|CMake' "$WORK/contents"; then fail "build or test files in the package (above)"; fi
grep -E '^-' "$WORK/contents" | grep -vE '^-rw-r--r-- |^-rwxr-xr-x ' && fail "files with modes other than 0644/0755 (above)"
grep -E '^d' "$WORK/contents" | grep -v '^drwxr-xr-x ' && fail "directories with modes other than 0755 (above)"
grep -q '^-rwxr-xr-x /usr/bin/keyrelay$' "$WORK/contents" || fail "/usr/bin/keyrelay is not 0755"

step "control fields and dependencies"
dpkg-deb -f "$DEB" Package Version Architecture Maintainer Section Depends
depends=$(dpkg-deb -f "$DEB" Depends)
# Package names only (no versions, no alternatives' bars).
depends_names=$(tr ',|' '\n\n' <<<"$depends" | sed 's/^ *//; s/[ (].*//' | sort -u)
# Found by shlibdeps (the ELF's libraries), then the run-time-loaded ones listed by hand.
for dep in libc6 libstdc++6 libqt6core6 libqt6network6 libqt6widgets6 qt6-qpa-plugins libqt6sql6-sqlite \
    libqt6keychain1 libsecret-1-0; do
    grep -qxF "$dep" <<<"$depends_names" || fail "Depends lacks $dep: $depends"
done
[ -n "$(dpkg-deb -f "$DEB" Maintainer)" ] || fail "no Maintainer"
[ "$(dpkg-deb -f "$DEB" Description | wc -l)" -gt 3 ] || fail "no extended description"

step "stripped binary"
dpkg-deb -x "$DEB" "$WORK/root"
readelf -S "$WORK/root/usr/bin/keyrelay" | grep -qE '\.symtab|\.debug_' && fail "/usr/bin/keyrelay is not stripped"
echo "/usr/bin/keyrelay has no .symtab and no .debug_* sections"

step "lintian"
# Errors fail the check; warnings are shown. --tag-display-limit 0: every occurrence.
lintian --tag-display-limit 0 --info "$DEB" | tee "$WORK/lintian.txt" || true
if grep -q '^E: ' "$WORK/lintian.txt"; then fail "lintian reports errors (above)"; fi
echo "lintian: $(grep -c '^E: ' "$WORK/lintian.txt") errors, $(grep -c '^W: ' "$WORK/lintian.txt") warnings"

step "desktop-file-validate and appstreamcli"
desktop-file-validate "$WORK/root/usr/share/applications/io.github.keyrelay.KeyRelay.desktop" \
    || fail "desktop-file-validate"
# --no-net: CI has no network; the screenshot and homepage URLs are then not fetched.
appstreamcli validate --no-net --explain "$WORK/root/usr/share/metainfo/io.github.keyrelay.KeyRelay.metainfo.xml" \
    || fail "appstreamcli validate"

step "install"
if dpkg-query -W -f='${Status}' keyrelay 2>/dev/null | grep -q "install ok installed"; then
    fail "keyrelay is already installed here; purge it first (apt-get purge keyrelay)"
fi
$SUDO apt-get install -y -qq "./$DEB" >"$WORK/apt-install.log" 2>&1 || { cat "$WORK/apt-install.log"; fail "apt-get install"; }
dpkg -L keyrelay | sort >"$WORK/installed-paths"
version_line=$(/usr/bin/keyrelay --version)
echo "$version_line"
grep -qx "KeyRelay $(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')" <<<"$version_line" \
    || fail "keyrelay --version says '$version_line'"
[ -f /usr/share/man/man1/keyrelay.1.gz ] || fail "the man page was not installed"
if command -v systemd-analyze >/dev/null; then
    # System mode parses the same syntax; user mode needs a running user manager, which CI has not.
    XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK} systemd-analyze verify /usr/lib/systemd/user/keyrelay.service \
        || fail "systemd-analyze verify keyrelay.service"
    echo "systemd-analyze verify keyrelay.service: ok"
fi

step "one proxied request through the installed binary (headless)"
python3 "$ROOT/tests/deploy/mock_upstream.py" "$WORK/mock.port" "$WORK/auth.log" &
MOCK_PID=$!
wait_for "the mock upstream" 15 test -s "$WORK/mock.port"
mock_port=$(cat "$WORK/mock.port")
key="sk-package-check-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$key" >"$WORK/keys.txt"
chmod 600 "$WORK/keys.txt"
# A config folder of its own: the tester's settings and keys must not take part.
XDG_CONFIG_HOME="$WORK/config" /usr/bin/keyrelay --headless --listen 127.0.0.1:0 \
    --upstream "http://127.0.0.1:$mock_port" --keys-file "$WORK/keys.txt" >"$WORK/keyrelay.out" 2>"$WORK/keyrelay.err" &
KR_PID=$!
listening() { grep -q 'listening on http://127.0.0.1:' "$WORK/keyrelay.out" || ! kill -0 "$KR_PID" 2>/dev/null; }
wait_for "keyrelay to listen" 15 listening
kill -0 "$KR_PID" 2>/dev/null || { cat "$WORK/keyrelay.err"; fail "the installed keyrelay exited at start"; }
kr_port=$(sed -n 's#.*listening on http://127\.0\.0\.1:\([0-9]*\) .*#\1#p' "$WORK/keyrelay.out" | head -n1)
answer=$(curl -sS --max-time 15 -H 'Authorization: Bearer sk-client-key-ignored' \
    -H 'Content-Type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$kr_port/v1/chat/completions")
[ "$answer" = '{"object": "mock", "path": "/v1/chat/completions"}' ] || fail "unexpected answer: $answer"
grep -qxF "Bearer $key" "$WORK/auth.log" || fail "the upstream did not get the key from the keys file"
grep -q 'sk-client-key-ignored' "$WORK/auth.log" && fail "the client's own key reached the upstream"
wait_for "the request's log line" 10 grep -q 'POST /v1/chat/completions.*status=200' "$WORK/keyrelay.out"
grep -qF "$key" "$WORK/keyrelay.out" "$WORK/keyrelay.err" && fail "the whole key appears in keyrelay's output"
kill -TERM "$KR_PID"
wait "$KR_PID" || fail "keyrelay did not exit 0 on SIGTERM"
KR_PID=""
echo "proxied: 200 from the mock, with the key from --keys-file (masked in the log)"

step "the service's command and the tray app share one configuration (installed binary)"
# The unit's own ExecStart, with a config folder of its own whose settings pick a free port and the mock.
exec_start=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/user/keyrelay.service)
[ -n "$exec_start" ] || fail "no ExecStart in keyrelay.service"
mkdir -p "$WORK/svc/config/KeyRelay" "$WORK/svc/run"
chmod 700 "$WORK/svc/run"
printf '[proxy]\nlistenPort=0\nupstream=http://127.0.0.1:%s\n' "$mock_port" >"$WORK/svc/config/KeyRelay/KeyRelay.ini"
# KEYRELAY_KEYSTORE=file: the files next to those settings, whatever keychain this machine has.
svc_env=(env HOME="$WORK/svc" XDG_CONFIG_HOME="$WORK/svc/config" XDG_RUNTIME_DIR="$WORK/svc/run" KEYRELAY_KEYSTORE=file)
# shellcheck disable=SC2086 # ExecStart is a command line: split it into words
"${svc_env[@]}" $exec_start >"$WORK/svc.out" 2>"$WORK/svc.err" &
KR_PID=$!
svc_listening() { grep -q 'listening on http://127.0.0.1:' "$WORK/svc.err" "$WORK/svc.out" || ! kill -0 "$KR_PID" 2>/dev/null; }
wait_for "the service command to listen" 15 svc_listening
kill -0 "$KR_PID" 2>/dev/null || { cat "$WORK/svc.err"; fail "the unit's command exited at start"; }
set +e
"${svc_env[@]}" QT_QPA_PLATFORM=offscreen timeout 20 /usr/bin/keyrelay >"$WORK/tray.out" 2>"$WORK/tray.err"
tray_code=$?
set -e
[ "$tray_code" -eq 1 ] || { cat "$WORK/tray.err"; fail "the tray app next to the service: exit $tray_code, expected 1"; }
grep -q 'already runs in the background' "$WORK/tray.err" || fail "the tray app does not say the service runs: $(cat "$WORK/tray.err")"
kill -TERM "$KR_PID"
wait "$KR_PID" || fail "the service command did not exit 0 on SIGTERM"
KR_PID=""
echo "the tray app refuses with a clear message while the service runs with the same settings"
set +e
env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM "${svc_env[@]}" timeout 20 /usr/bin/keyrelay 2>"$WORK/nodisplay.err"
nodisplay_code=$?
set -e
[ "$nodisplay_code" -eq 1 ] && grep -q 'keyrelay --headless' "$WORK/nodisplay.err" \
    || fail "without a display: exit $nodisplay_code, $(cat "$WORK/nodisplay.err")"
echo "without a display: $(cat "$WORK/nodisplay.err")"

step "purge and check nothing is left"
$SUDO apt-get purge -y -qq keyrelay >"$WORK/apt-purge.log" 2>&1 || { cat "$WORK/apt-purge.log"; fail "apt-get purge"; }
dpkg-query -W -f='${Status}' keyrelay 2>/dev/null | grep -q "installed" && fail "keyrelay is still installed"
left=()
while read -r path; do
    # Shared directories (/usr, /usr/share/icons/hicolor/...) belong to other packages too.
    if [ -e "$path" ] && [ ! -d "$path" ]; then left+=("$path"); fi
    if [ -d "$path" ] && [[ "$path" == *keyrelay* ]]; then left+=("$path"); fi
done <"$WORK/installed-paths"
[ "${#left[@]}" -eq 0 ] || fail "left after purge: ${left[*]}"
[ -e /usr/share/doc/keyrelay ] && fail "/usr/share/doc/keyrelay is left"
echo "package check passed: $(wc -l <"$WORK/installed-paths") paths installed and removed"
