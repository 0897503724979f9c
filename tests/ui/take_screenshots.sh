#!/bin/bash
# Takes docs/screenshot-*.png of the real app under Xvfb with trayer as the tray host.
# Needs: Xvfb trayer xdotool imagemagick python3 curl. Usage: tests/ui/take_screenshots.sh [build-dir]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-gui}
OUT=$ROOT/docs
WORK=$(mktemp -d /tmp/keyrelay-shots.XXXXXX)
DISPLAY_NUM=${KEYRELAY_SHOT_DISPLAY:-:99}
MOCK_PORT=${KEYRELAY_SHOT_MOCK_PORT:-18555}
LISTEN_PORT=${KEYRELAY_SHOT_PORT:-9000}
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
export DISPLAY=$DISPLAY_NUM

make_home() { # $1 = home, $2 = listen port
    mkdir -p "$1/.config/KeyRelay" "$1/run"; chmod 700 "$1/run"
    printf '[meta]\nsettingsVersion=1\n\n[proxy]\nlistenHost=127.0.0.1\nlistenPort=%s\nupstream=http://127.0.0.1:%s\n' \
        "$2" "$MOCK_PORT" > "$1/.config/KeyRelay/KeyRelay.ini"
    cat > "$1/.config/KeyRelay/keys.json" <<'KEYS'
{"version":1,"keys":[
{"secret":"sk-proj-a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2","label":"Personal","enabled":true},
{"secret":"sk-proj-f00dbabe0000111122223333444455556666777788","label":"Team shared","enabled":true},
{"secret":"sk-proj-bad0000000000000000000000000000000000dead","label":"","enabled":true},
{"secret":"sk-proj-9999888877776666555544443333222211110000aa","label":"Spare","enabled":false}
]}
KEYS
    chmod 600 "$1/.config/KeyRelay/keys.json"
}
start_app() { # $1 = home, $2 = LANG
    env HOME="$1" XDG_CONFIG_HOME="$1/.config" XDG_RUNTIME_DIR="$1/run" LANG="$2" LANGUAGE= LC_ALL= \
        "$BUILD/app/keyrelay" > "$1/app.log" 2>&1 &
    APP=$!; PIDS+=("$APP"); sleep 3
}
req() { curl -s -o /dev/null http://127.0.0.1:$LISTEN_PORT$1 -H 'Content-Type: application/json' -H 'Authorization: Bearer x' -d "$2" || true; }
traffic() {
    for i in 1 2 3 4 5 6; do
        model=gpt-4o-mini; [ $((i % 3)) = 0 ] && model=gpt-4o
        req /v1/chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi $i\"}]}"
    done
    req /v1/chat/completions '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"stream"}]}'
    req /v1/embeddings '{"model":"text-embedding-4","input":"x"}'
    req /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream"}]}'
    curl -s -o /dev/null http://127.0.0.1:$LISTEN_PORT/v1/models || true
    req /v1/chat/completions '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bye"}]}'
}
quit_app() { # the tray menu's last entry, "Quit KeyRelay"
    xdotool mousemove 1268 12 click 3; sleep 0.7; xdotool mousemove 1230 92 click 1; sleep 1.5
    if kill -0 "$APP" 2>/dev/null; then echo "warning: the app did not quit from the tray menu" >&2; kill "$APP"; sleep 1; fi
}
shoot() { sleep 0.7; import -window root "$OUT/screenshot-$1.png"; }

python3 "$ROOT/tests/ui/screenshot_mock_upstream.py" "$MOCK_PORT" & PIDS+=($!)
Xvfb "$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp & PIDS+=($!)
sleep 1
trayer --edge top --align right --widthtype request --height 24 --transparent false --tint 0x303030 & PIDS+=($!)
sleep 1

# English: every page, a key test, and the tray menu.
make_home "$WORK/en" "$LISTEN_PORT"
start_app "$WORK/en" en_US.UTF-8
traffic
sleep 11 # let the "key stopped working" balloon time out
xdotool mousemove 735 195 click 1; sleep 0.3; xdotool mousemove 735 255 click 1; sleep 1.5; xdotool mousemove 600 500
shoot keys
xdotool mousemove 83 64 click 1; shoot log
xdotool mousemove 143 64 click 1; shoot settings
xdotool mousemove 1268 12 click 3; shoot tray-menu; xdotool key Escape
quit_app

# The port is taken: the status line, the tray icon and a balloon say so.
make_home "$WORK/busy" "$MOCK_PORT"
start_app "$WORK/busy" en_US.UTF-8
shoot notification
sleep 10
shoot port-in-use
quit_app

# Simplified Chinese.
make_home "$WORK/zh" "$LISTEN_PORT"
start_app "$WORK/zh" zh_CN.UTF-8
traffic
sleep 11
xdotool mousemove 600 500 key alt+l; shoot log-zh_CN
xdotool key alt+s; shoot settings-zh_CN
quit_app
echo "screenshots in $OUT"
